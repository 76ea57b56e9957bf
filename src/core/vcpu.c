#define _GNU_SOURCE
#include "core/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

#define VCPU_KICK_SIGNAL SIGUSR1

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

void vcpu_signal_init(void)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

int vcpu_create(struct vm *vm, int id)
{
	struct vcpu *v = &vm->vcpu[id];

	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return -errno;
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		int e = -errno;
		close(v->fd);
		v->fd = -1;
		return e;
	}
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run && v->run != MAP_FAILED)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* Only a thread that has published its own id can be signalled. */
	if (__atomic_load_n(&v->kickable, __ATOMIC_ACQUIRE))
		pthread_kill(v->self, VCPU_KICK_SIGNAL);
}

/* Print what we know about a failure KVM could not handle: RIP, bytes, regs. */
static void vcpu_report_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	char bytes[3 * 16 + 1] = "";
	int have_regs = ioctl(v->fd, KVM_GET_REGS, &regs) == 0;
	int have_sregs = ioctl(v->fd, KVM_GET_SREGS, &sregs) == 0;
	uint8_t insn[16];
	unsigned n = 0;

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    run->internal.ndata >= 2 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = run->emulation_failure.insn_size;
		if (n > 16)
			n = 16;
		memcpy(insn, run->emulation_failure.insn_bytes, n);
	} else if (have_regs) {
		/* Translate RIP and read the bytes from guest memory ourselves. */
		struct kvm_translation tr = { .linear_address = regs.rip };
		if (ioctl(v->fd, KVM_TRANSLATE, &tr) == 0 && tr.valid) {
			for (n = 0; n < 16; n++) {
				const uint8_t *p = gm_ptr(&v->vm->mem, tr.physical_address + n, 1);
				if (!p)
					break;
				insn[n] = *p;
			}
		}
	}
	for (unsigned i = 0; i < n; i++)
		snprintf(bytes + 3 * i, 4, "%02x ", insn[i]);

	pr_err("vcpu%d: KVM internal error, suberror %u (%s)", v->id, run->internal.suberror,
	       run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
		       "emulation failure: the host cannot execute this guest instruction" :
		       "see Documentation/virt/kvm/api.rst");
	if (have_regs) {
		pr_err("vcpu%d: RIP=%016llx RSP=%016llx RFLAGS=%08llx", v->id, regs.rip, regs.rsp,
		       regs.rflags);
		pr_err("vcpu%d: RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx", v->id, regs.rax,
		       regs.rbx, regs.rcx, regs.rdx);
		pr_err("vcpu%d: RSI=%016llx RDI=%016llx RBP=%016llx", v->id, regs.rsi, regs.rdi,
		       regs.rbp);
	}
	if (have_sregs)
		pr_err("vcpu%d: CS=%04x (CPL %u) CR0=%08llx CR3=%016llx CR4=%08llx EFER=%llx", v->id,
		       sregs.cs.selector, sregs.cs.selector & 3, sregs.cr0, sregs.cr3, sregs.cr4,
		       sregs.efer);
	pr_err("vcpu%d: instruction bytes at RIP: %s", v->id, n ? bytes : "(unavailable)");
	for (unsigned i = 0; i < run->internal.ndata && i < 16; i++)
		pr_err("vcpu%d: data[%u]=%llx", v->id, i, (unsigned long long)run->internal.data[i]);
}

/* Handle one exit. Returns 0 to keep running, or the stop reason. */
static enum vm_exit vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < run->io.count; i++) {
			io_bus_access(&vm->pio, run->io.port, data, run->io.size,
				      run->io.direction == KVM_EXIT_IO_OUT);
			data += run->io.size;
		}
		return VM_EXIT_NONE;
	}
	case KVM_EXIT_MMIO:
		if (run->mmio.len <= 8)
			io_bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data,
				      run->mmio.len, run->mmio.is_write);
		return VM_EXIT_NONE;
	case KVM_EXIT_SHUTDOWN:
		pr_err("vcpu%d: guest triple fault (KVM_EXIT_SHUTDOWN)", v->id);
		return VM_EXIT_SHUTDOWN_FAULT;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			return VM_EXIT_RESET;
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			return VM_EXIT_QUIT;
		pr_err("vcpu%d: system event %u", v->id, run->system_event.type);
		return VM_EXIT_FAILURE;
	case KVM_EXIT_INTERNAL_ERROR:
		vcpu_report_internal_error(v);
		return VM_EXIT_INTERNAL_ERROR;
	case KVM_EXIT_FAIL_ENTRY:
		pr_err("vcpu%d: VM entry failed, hardware reason %llx", v->id,
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return VM_EXIT_INTERNAL_ERROR;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; we always have one. */
		return VM_EXIT_NONE;
	case KVM_EXIT_INTR:
		return VM_EXIT_NONE;
	default:
		pr_err("vcpu%d: unexpected exit reason %u", v->id, run->exit_reason);
		return VM_EXIT_FAILURE;
	}
}

/* Park while a pause is requested. Called with vm->lock held. */
static void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	vm->parked++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->pause_req && vm->exit == VM_EXIT_NONE)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->parked--;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];
	enum vm_exit why = VM_EXIT_NONE;

	snprintf(name, sizeof(name), "vcpu%d", v->id);
	pthread_setname_np(pthread_self(), name);
	v->self = pthread_self();
	__atomic_store_n(&v->kickable, 1, __ATOMIC_RELEASE);

	for (;;) {
		pthread_mutex_lock(&vm->lock);
		if (vm->pause_req && vm->exit == VM_EXIT_NONE)
			vcpu_park(v);
		bool stop = vm->exit != VM_EXIT_NONE;
		/* Clear the kick only when no pause/stop is pending. */
		if (!stop)
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;
		/* A kick between unlock and KVM_RUN sets immediate_exit again. */
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_SEQ_CST))
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);

		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* kicked, or an AP still waiting for SIPI */
			pr_err("vcpu%d: KVM_RUN: %s", v->id, strerror(errno));
			why = VM_EXIT_FAILURE;
			break;
		}
		why = vcpu_handle_exit(v);
		if (why != VM_EXIT_NONE)
			break;
	}
	if (why != VM_EXIT_NONE)
		vm_request_exit(vm, why);
	pthread_mutex_lock(&vm->lock);
	vm->running_vcpus--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	sigset_t set, old;

	/* Threads inherit the mask: keep the kick signal deliverable. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, &old);
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	v->started = true;
	return 0;
}
