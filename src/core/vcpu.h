/*
 * vCPU threads: KVM_RUN loop, exit dispatch to the buses, the pause
 * handshake's vCPU side, and loud reports of faults KVM cannot handle.
 */
#ifndef POCKETVM_VCPU_H
#define POCKETVM_VCPU_H

#include "core/vm.h"

/* Create vCPU @id (fd and kvm_run mapping). Returns 0 or a negative errno. */
int vcpu_create(struct vm *vm, int id);

/* Start the vCPU's thread. */
int vcpu_start(struct vcpu *vcpu);

/* Kick a vCPU out of KVM_RUN (immediate_exit + signal). */
void vcpu_kick(struct vcpu *vcpu);

/* Install the (empty) kick signal handler; call once per process. */
void vcpu_signal_init(void);

void vcpu_destroy(struct vcpu *vcpu);

#endif
