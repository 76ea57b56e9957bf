#include "snapshot/x86_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "core/log.h"

/* --- reading and installing --- */

#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0

int x86_msr_list(struct vm *vm, struct vcpu *v, uint32_t *idx, uint32_t max)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + 1024 * sizeof(uint32_t));
	uint32_t n = 0;

	if (!l)
		return -ENOMEM;
	l->nmsrs = 1024;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int e = -errno;
		free(l);
		return e;
	}
	struct kvm_msrs *one = calloc(1, sizeof(*one) + sizeof(struct kvm_msr_entry));
	if (!one) {
		free(l);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < l->nmsrs && n < max; i++) {
		one->nmsrs = 1;
		one->entries[0].index = l->indices[i];
		one->entries[0].data = 0;
		/* Keep only the MSRs this host lets us read. */
		if (ioctl(v->fd, KVM_GET_MSRS, one) == 1)
			idx[n++] = l->indices[i];
	}
	free(one);
	free(l);
	return (int)n;
}

int x86_vcpu_get(struct vm *vm, struct vcpu *v, struct x86_vcpu_state *st)
{
	uint32_t idx[X86_MAX_MSRS];

	memset(st, 0, sizeof(*st));
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	if (!xs)
		return -ENOMEM;
	int xr = ioctl(v->fd, KVM_GET_XSAVE, xs);
	memcpy(st->xsave, xs->region, sizeof(st->xsave));
	free(xs);
	if (xr < 0 ||
	    ioctl(v->fd, KVM_GET_MP_STATE, &st->mp_state) < 0 ||
	    ioctl(v->fd, KVM_GET_REGS, &st->regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &st->sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_XCRS, &st->xcrs) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &st->debugregs) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &st->lapic) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &st->events) < 0)
		return -errno;
	int n = x86_msr_list(vm, v, idx, X86_MAX_MSRS);
	if (n < 0)
		return n;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)n * sizeof(struct kvm_msr_entry));
	if (!m)
		return -ENOMEM;
	m->nmsrs = (uint32_t)n;
	for (int i = 0; i < n; i++)
		m->entries[i].index = idx[i];
	int got = ioctl(v->fd, KVM_GET_MSRS, m);
	if (got != n) {
		free(m);
		return got < 0 ? -errno : -EIO;
	}
	st->nr_msrs = (uint32_t)n;
	memcpy(st->msrs, m->entries, (size_t)n * sizeof(struct kvm_msr_entry));
	free(m);
	return 0;
}

int x86_vcpu_set(struct vcpu *v, const struct x86_vcpu_state *st)
{
	/* Order matters: SREGS before MSRs and LAPIC (apic_base), events last. */
	struct kvm_vcpu_events ev = st->events;
	ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		    KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(v->fd, KVM_SET_SREGS, &st->sregs) < 0)
		return -errno;
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	if (!xs)
		return -ENOMEM;
	memcpy(xs->region, st->xsave, sizeof(st->xsave));
	int xr = ioctl(v->fd, KVM_SET_XSAVE, xs);
	free(xs);
	if (xr < 0 ||
	    ioctl(v->fd, KVM_SET_MP_STATE, &st->mp_state) < 0 ||
	    ioctl(v->fd, KVM_SET_REGS, &st->regs) < 0 ||
	    ioctl(v->fd, KVM_SET_XCRS, &st->xcrs) < 0 ||
	    ioctl(v->fd, KVM_SET_DEBUGREGS, &st->debugregs) < 0)
		return -errno;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + st->nr_msrs * sizeof(struct kvm_msr_entry));
	if (!m)
		return -ENOMEM;
	m->nmsrs = st->nr_msrs;
	memcpy(m->entries, st->msrs, st->nr_msrs * sizeof(struct kvm_msr_entry));
	int set = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (set != (int)st->nr_msrs) {
		pr_err("snapshot: vcpu%d: KVM_SET_MSRS set %d of %u", v->id, set, st->nr_msrs);
		return -EIO;
	}
	if (ioctl(v->fd, KVM_SET_LAPIC, &st->lapic) < 0 ||
	    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	/* KVM ignores a TSC deadline written while the LAPIC timer is not in
	 * TSC-deadline mode, which it was not until KVM_SET_LAPIC: write it
	 * again now, or a guest waiting for its next tick sleeps forever. */
	for (uint32_t k = 0; k < st->nr_msrs; k++) {
		if (st->msrs[k].index != MSR_IA32_TSC_DEADLINE)
			continue;
		union {
			struct kvm_msrs h;
			uint8_t room[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
		} one = { .h.nmsrs = 1 };
		one.h.entries[0] = st->msrs[k];
		if (ioctl(v->fd, KVM_SET_MSRS, &one) != 1) {
			pr_err("snapshot: vcpu%d: cannot restore the TSC deadline", v->id);
			return -EIO;
		}
	}
	return 0;
}

int x86_vm_get(struct vm *vm, struct x86_vm_state *st)
{
	memset(st, 0, sizeof(*st));
	st->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	st->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	st->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->ioapic) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_PIT2, &st->pit) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_CLOCK, &st->clock) < 0)
		return -errno;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	st->realtime_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	return 0;
}


void x86_advance_time(struct x86_vm_state *vm, struct x86_vcpu_state *vcpus, int n,
		      uint64_t elapsed_ns, uint32_t tsc_khz)
{
	/* ticks = ns * kHz / 1e6, without overflow for any realistic gap */
	uint64_t ticks = (uint64_t)((unsigned __int128)elapsed_ns * tsc_khz / 1000000u);

	vm->clock.clock += elapsed_ns;
	for (int i = 0; i < n; i++)
		for (uint32_t k = 0; k < vcpus[i].nr_msrs; k++)
			if (vcpus[i].msrs[k].index == MSR_IA32_TSC)
				vcpus[i].msrs[k].data += ticks;
}

int x86_vm_set(struct vm *vm, const struct x86_vm_state *st)
{
	struct kvm_clock_data clock = { .clock = st->clock.clock };

	if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &st->pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &st->pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &st->ioapic) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_PIT2, &st->pit) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return -errno;
	return 0;
}

/* --- encoding --- */

static void enc_seg(struct enc *e, const struct kvm_segment *s)
{
	enc_u64(e, s->base);
	enc_u32(e, s->limit);
	enc_u16(e, s->selector);
	enc_u8(e, s->type);
	enc_u8(e, s->present);
	enc_u8(e, s->dpl);
	enc_u8(e, s->db);
	enc_u8(e, s->s);
	enc_u8(e, s->l);
	enc_u8(e, s->g);
	enc_u8(e, s->avl);
	enc_u8(e, s->unusable);
}

static void dec_seg(struct dec *d, struct kvm_segment *s)
{
	s->base = dec_u64(d);
	s->limit = dec_u32(d);
	s->selector = dec_u16(d);
	s->type = dec_u8(d);
	s->present = dec_u8(d);
	s->dpl = dec_u8(d);
	s->db = dec_u8(d);
	s->s = dec_u8(d);
	s->l = dec_u8(d);
	s->g = dec_u8(d);
	s->avl = dec_u8(d);
	s->unusable = dec_u8(d);
}

#define REGS_LIST(X)                                                           \
	X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) X(r8) X(r9)    \
	X(r10) X(r11) X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)

void x86_vcpu_encode(struct enc *e, const struct x86_vcpu_state *st)
{
	const struct kvm_sregs *s = &st->sregs;
	const struct kvm_vcpu_events *ev = &st->events;

	enc_u32(e, st->mp_state.mp_state);
#define X(r) enc_u64(e, st->regs.r);
	REGS_LIST(X)
#undef X
	const struct kvm_segment *segs[] = { &s->cs, &s->ds, &s->es, &s->fs,
					     &s->gs, &s->ss, &s->tr, &s->ldt };
	for (int i = 0; i < 8; i++)
		enc_seg(e, segs[i]);
	enc_u64(e, s->gdt.base);
	enc_u16(e, s->gdt.limit);
	enc_u64(e, s->idt.base);
	enc_u16(e, s->idt.limit);
	enc_u64(e, s->cr0);
	enc_u64(e, s->cr2);
	enc_u64(e, s->cr3);
	enc_u64(e, s->cr4);
	enc_u64(e, s->cr8);
	enc_u64(e, s->efer);
	enc_u64(e, s->apic_base);
	for (int i = 0; i < 4; i++)
		enc_u64(e, s->interrupt_bitmap[i]);
	/* XSAVE area: the architectural XSAVE layout (Intel SDM vol. 1, 13.4). */
	enc_u32(e, X86_XSAVE_SIZE);
	for (int i = 0; i < X86_XSAVE_SIZE / 4; i++)
		enc_u32(e, st->xsave[i]);
	enc_u32(e, st->xcrs.nr_xcrs);
	for (uint32_t i = 0; i < st->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
		enc_u32(e, st->xcrs.xcrs[i].xcr);
		enc_u64(e, st->xcrs.xcrs[i].value);
	}
	for (int i = 0; i < 4; i++)
		enc_u64(e, st->debugregs.db[i]);
	enc_u64(e, st->debugregs.dr6);
	enc_u64(e, st->debugregs.dr7);
	/* LAPIC: the architectural register page (1 KiB). */
	enc_bytes(e, st->lapic.regs, KVM_APIC_REG_SIZE);
	enc_u8(e, ev->exception.injected);
	enc_u8(e, ev->exception.nr);
	enc_u8(e, ev->exception.has_error_code);
	enc_u8(e, ev->exception.pending);
	enc_u32(e, ev->exception.error_code);
	enc_u8(e, ev->interrupt.injected);
	enc_u8(e, ev->interrupt.nr);
	enc_u8(e, ev->interrupt.soft);
	enc_u8(e, ev->interrupt.shadow);
	enc_u8(e, ev->nmi.injected);
	enc_u8(e, ev->nmi.pending);
	enc_u8(e, ev->nmi.masked);
	enc_u32(e, ev->sipi_vector);
	enc_u32(e, ev->flags);
	enc_u32(e, st->nr_msrs);
	for (uint32_t i = 0; i < st->nr_msrs; i++) {
		enc_u32(e, st->msrs[i].index);
		enc_u64(e, st->msrs[i].data);
	}
}

int x86_vcpu_decode(struct dec *d, struct x86_vcpu_state *st)
{
	struct kvm_sregs *s = &st->sregs;
	struct kvm_vcpu_events *ev = &st->events;

	memset(st, 0, sizeof(*st));
	st->mp_state.mp_state = dec_u32(d);
#define X(r) st->regs.r = dec_u64(d);
	REGS_LIST(X)
#undef X
	struct kvm_segment *segs[] = { &s->cs, &s->ds, &s->es, &s->fs,
				       &s->gs, &s->ss, &s->tr, &s->ldt };
	for (int i = 0; i < 8; i++)
		dec_seg(d, segs[i]);
	s->gdt.base = dec_u64(d);
	s->gdt.limit = dec_u16(d);
	s->idt.base = dec_u64(d);
	s->idt.limit = dec_u16(d);
	s->cr0 = dec_u64(d);
	s->cr2 = dec_u64(d);
	s->cr3 = dec_u64(d);
	s->cr4 = dec_u64(d);
	s->cr8 = dec_u64(d);
	s->efer = dec_u64(d);
	s->apic_base = dec_u64(d);
	for (int i = 0; i < 4; i++)
		s->interrupt_bitmap[i] = dec_u64(d);
	if (dec_u32(d) != X86_XSAVE_SIZE)
		return -EINVAL;
	for (int i = 0; i < X86_XSAVE_SIZE / 4; i++)
		st->xsave[i] = dec_u32(d);
	st->xcrs.nr_xcrs = dec_u32(d);
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return -EINVAL;
	for (uint32_t i = 0; i < st->xcrs.nr_xcrs; i++) {
		st->xcrs.xcrs[i].xcr = dec_u32(d);
		st->xcrs.xcrs[i].value = dec_u64(d);
	}
	for (int i = 0; i < 4; i++)
		st->debugregs.db[i] = dec_u64(d);
	st->debugregs.dr6 = dec_u64(d);
	st->debugregs.dr7 = dec_u64(d);
	dec_bytes(d, st->lapic.regs, KVM_APIC_REG_SIZE);
	ev->exception.injected = dec_u8(d);
	ev->exception.nr = dec_u8(d);
	ev->exception.has_error_code = dec_u8(d);
	ev->exception.pending = dec_u8(d);
	ev->exception.error_code = dec_u32(d);
	ev->interrupt.injected = dec_u8(d);
	ev->interrupt.nr = dec_u8(d);
	ev->interrupt.soft = dec_u8(d);
	ev->interrupt.shadow = dec_u8(d);
	ev->nmi.injected = dec_u8(d);
	ev->nmi.pending = dec_u8(d);
	ev->nmi.masked = dec_u8(d);
	ev->sipi_vector = dec_u32(d);
	ev->flags = dec_u32(d);
	st->nr_msrs = dec_u32(d);
	if (st->nr_msrs > X86_MAX_MSRS)
		return -EINVAL;
	for (uint32_t i = 0; i < st->nr_msrs; i++) {
		st->msrs[i].index = dec_u32(d);
		st->msrs[i].data = dec_u64(d);
	}
	if (st->mp_state.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
		return -EINVAL;
	return d->err ? -EINVAL : 0;
}

static void enc_pic(struct enc *e, const struct kvm_pic_state *p)
{
	const uint8_t f[] = { p->last_irr, p->irr, p->imr, p->isr, p->priority_add, p->irq_base,
			      p->read_reg_select, p->poll, p->special_mask, p->init_state,
			      p->auto_eoi, p->rotate_on_auto_eoi, p->special_fully_nested_mode,
			      p->init4, p->elcr, p->elcr_mask };
	enc_bytes(e, f, sizeof(f));
}

static void dec_pic(struct dec *d, struct kvm_pic_state *p)
{
	uint8_t f[16];
	dec_bytes(d, f, sizeof(f));
	p->last_irr = f[0]; p->irr = f[1]; p->imr = f[2]; p->isr = f[3];
	p->priority_add = f[4]; p->irq_base = f[5]; p->read_reg_select = f[6]; p->poll = f[7];
	p->special_mask = f[8]; p->init_state = f[9]; p->auto_eoi = f[10];
	p->rotate_on_auto_eoi = f[11]; p->special_fully_nested_mode = f[12]; p->init4 = f[13];
	p->elcr = f[14]; p->elcr_mask = f[15];
}

void x86_vm_encode(struct enc *e, const struct x86_vm_state *st)
{
	const struct kvm_ioapic_state *io = &st->ioapic.chip.ioapic;

	enc_pic(e, &st->pic_master.chip.pic);
	enc_pic(e, &st->pic_slave.chip.pic);
	enc_u64(e, io->base_address);
	enc_u32(e, io->ioregsel);
	enc_u32(e, io->id);
	enc_u32(e, io->irr);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		enc_u64(e, io->redirtbl[i].bits); /* the architectural RTE layout */
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &st->pit.channels[i];
		enc_u32(e, c->count);
		enc_u16(e, c->latched_count);
		const uint8_t f[] = { c->count_latched, c->status_latched, c->status,
				      c->read_state, c->write_state, c->write_latch,
				      c->rw_mode, c->mode, c->bcd, c->gate };
		enc_bytes(e, f, sizeof(f));
		enc_u64(e, (uint64_t)c->count_load_time);
	}
	enc_u32(e, st->pit.flags);
	enc_u64(e, st->clock.clock);
	enc_u64(e, st->realtime_ns);
}

int x86_vm_decode(struct dec *d, struct x86_vm_state *st)
{
	struct kvm_ioapic_state *io = &st->ioapic.chip.ioapic;

	memset(st, 0, sizeof(*st));
	st->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	st->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	st->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	dec_pic(d, &st->pic_master.chip.pic);
	dec_pic(d, &st->pic_slave.chip.pic);
	io->base_address = dec_u64(d);
	io->ioregsel = dec_u32(d);
	io->id = dec_u32(d);
	io->irr = dec_u32(d);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		io->redirtbl[i].bits = dec_u64(d);
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &st->pit.channels[i];
		uint8_t f[10];
		c->count = dec_u32(d);
		c->latched_count = dec_u16(d);
		dec_bytes(d, f, sizeof(f));
		c->count_latched = f[0]; c->status_latched = f[1]; c->status = f[2];
		c->read_state = f[3]; c->write_state = f[4]; c->write_latch = f[5];
		c->rw_mode = f[6]; c->mode = f[7]; c->bcd = f[8]; c->gate = f[9];
		c->count_load_time = (int64_t)dec_u64(d);
	}
	st->pit.flags = dec_u32(d);
	st->clock.clock = dec_u64(d);
	st->realtime_ns = dec_u64(d);
	if (io->base_address != 0xfec00000ULL)
		return -EINVAL;
	return d->err ? -EINVAL : 0;
}
