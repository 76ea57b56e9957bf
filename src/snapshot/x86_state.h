/*
 * x86 vCPU and VM state for snapshots: read from KVM, encoded field by field
 * (never as struct dumps), decoded with validation, installed into KVM.
 * Decoding is pure so the state-file fuzzer can drive it.
 */
#ifndef POCKETVM_X86_STATE_H
#define POCKETVM_X86_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "core/vm.h"
#include "snapshot/codec.h"

#define X86_MAX_MSRS 256
#define X86_XSAVE_SIZE 4096 /* the legacy KVM_GET_XSAVE region */

struct x86_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t xsave[X86_XSAVE_SIZE / 4]; /* the legacy KVM_GET_XSAVE region */
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	uint32_t nr_msrs;
	struct kvm_msr_entry msrs[X86_MAX_MSRS];
};

struct x86_vm_state {
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	uint64_t realtime_ns; /* host CLOCK_REALTIME when saved */
};

/* Read every piece of vCPU state from KVM (the vCPU must be paused). */
int x86_vcpu_get(struct vm *vm, struct vcpu *v, struct x86_vcpu_state *st);
/* Install state into a freshly created vCPU (CPUID already set). */
int x86_vcpu_set(struct vcpu *v, const struct x86_vcpu_state *st);
void x86_vcpu_encode(struct enc *e, const struct x86_vcpu_state *st);
/* Returns 0, or -EINVAL when the payload is malformed or out of range. */
int x86_vcpu_decode(struct dec *d, struct x86_vcpu_state *st);

int x86_vm_get(struct vm *vm, struct x86_vm_state *st);
int x86_vm_set(struct vm *vm, const struct x86_vm_state *st);
void x86_vm_encode(struct enc *e, const struct x86_vm_state *st);
int x86_vm_decode(struct dec *d, struct x86_vm_state *st);

/*
 * x86_advance_time - the guest was saved @elapsed_ns ago: move its TSC and
 * kvmclock forward by that much, so its wall clock is right after restore.
 */
void x86_advance_time(struct x86_vm_state *vm, struct x86_vcpu_state *vcpus, int n,
		      uint64_t elapsed_ns, uint32_t tsc_khz);

/* The MSR indices to save: KVM's list, filtered to those that read back. */
int x86_msr_list(struct vm *vm, struct vcpu *v, uint32_t *idx, uint32_t max);

#endif
