/*
 * blkloop: a virtio-blk driver that keeps many requests in flight all the
 * time, for snapshot tests that save and restore it at any moment.
 *
 * SLOTS request slots each own a private region of the disk and always have
 * one request outstanding: a write of 4-64 KiB at a pseudo-random place in
 * the region (every sector carries a magic, the slot, a sequence number,
 * its LBA and a checksum), or a read of part of what the slot last wrote,
 * verified word by word (into a buffer of its own, not cleared first: only
 * the device writes it, so a save that misses the device's writes shows).
 * Completions come by MSI-X; the used ring is polled only as a watchdog;
 * with event_idx=1 the driver also notifies only when avail_event asks.
 * The LAPIC timer runs periodically on the BSP (and on the AP with cpus=2,
 * which halts in a loop with known registers), and the BSP's CPL 3 loop
 * holds known values in every general register and xmm0-xmm14, checked on
 * every turn.
 *
 * It fails ("TEST-FAIL blkloop: why", after a line with the details) on a
 * request completed twice (a used id that is not outstanding, or a status
 * byte the device never wrote), a request lost (outstanding for longer
 * than a deadline while others complete), no completion at all for long,
 * a wrong used length or status, data that does not verify, a lost
 * interrupt (used ring advanced but no interrupt within a deadline), a
 * timer that stopped, a register that changed (BSP or AP).
 *
 * Deadlines count run time: a step of more than GAP ticks between two
 * turns of the loop is time the guest did not run (a pause, a snapshot and
 * restore, which moves the TSC on by the time spent saved, or the host not
 * scheduling the vCPU), so it does not count towards any deadline.
 *
 * cmdline: rounds=N (TEST-PASS after N completions, then a verifying read
 * of every slot's last write; 0 = forever), report=N (a progress line
 * "BLK n irq=.. timer=.. ap=.. gaps=.." every N completions, default
 * 1000), cpus=N (2: start one AP), event_idx=1 (negotiate
 * VIRTIO_F_EVENT_IDX), seed=N.
 */
#include "vdrv.h"

#define N "blkloop"
#define QSIZE 128
#define SLOTS 32
#define MAXLEN 65536
#define SECT 512
#define WORDS (SECT / 8)
#define MAGIC 0x4b4c4f4f50424c4bULL
#define POISON 0xa5
#define T_IN 0
#define T_OUT 1
#define F_EVENT_IDX 29
#define D_NEXT 1
#define D_WRITE 2
#define VEC_TIMER 0x30
#define VEC_AP 0x31
#define VEC_BLK 0x40
#define LAPIC 0xFEE00000ULL
#define TRAMPOLINE 0x10000

/* Run-time deadlines in TSC ticks (at 2.1 GHz: GAP 0.19 s, interrupt 1.9 s,
 * lost request 3.8 s, no completion 9.5 s). */
#define GAP 400000000ULL
#define IRQ_DEADLINE 4000000000ULL
#define LOST_DEADLINE 8000000000ULL
#define LOST_OTHERS 1024 /* completions of others a lost request waits through */
#define STALL_DEADLINE 20000000000ULL
#define TIMER_DEADLINE 4000000000ULL
#define REGCHECK_TURNS 4000

struct slot {
	struct { uint32_t type, reserved; uint64_t sector; } hdr;
	volatile uint8_t status;
	bool busy, is_write;
	uint32_t len;
	uint64_t lba, seq;
	uint32_t last_len; /* the slot's last completed write; 0: none yet */
	uint64_t last_lba, last_seq;
	uint64_t sub_time, sub_done;
};

static uint8_t ring[16384] __attribute__((aligned(4096)));
static uint8_t wbufs[SLOTS][MAXLEN] __attribute__((aligned(4096)));
/* Reads land apart from writes, so a read buffer left stale holds another
 * read's data, never by chance the data the read should bring. */
static uint8_t rbufs[SLOTS][MAXLEN] __attribute__((aligned(4096)));
static struct slot slots[SLOTS];
static struct vq q;
static bool event_idx;
static uint64_t region, capacity; /* sectors per slot, total */
static uint64_t rng_state, wseq, done, outstanding;
static uint64_t runtime, last_tsc, gaps;

/* ---- register check (BSP, CPL 3): values loaded from rc_g/rc_x, kept
 * in rax..r15 and xmm0-xmm14 for REGCHECK_TURNS turns, compared each turn ---- */

uint64_t rc_g[15];			    /* rax rbx rcx rdx rsi rdi rbp r8-r15 */
uint64_t rc_x[30] __attribute__((aligned(16))); /* xmm0-xmm14 */
uint64_t rc_rsp, rc_n, rc_flags_bad, rc_dflags;
uint64_t rc_dg[15], rc_drsp;		    /* what the registers held on a mismatch */
uint64_t rc_dx[30] __attribute__((aligned(16)));
/* Returns 0, or 1 when a register differed (rc_d* hold the registers). */
uint32_t regcheck(void);

static const char *const gpr_names[15] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8",
					   "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };

__asm__(".text\n"
	".globl regcheck\n"
	"regcheck:\n"
	"	push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"	mov %rsp, rc_rsp(%rip)\n"
	"	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14\n"
	"	movdqa rc_x+16*\\n(%rip), %xmm\\n\n"
	"	.endr\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	mov rc_g+8*rc_i(%rip), %\\r\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"1:\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	cmp rc_g+8*rc_i(%rip), %\\r\n"
	"	jne 8f\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"	cmp rc_rsp(%rip), %rsp\n"
	"	jne 8f\n"
	"	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14\n"
	"	movdqa %xmm\\n, %xmm15\n"
	"	pxor rc_x+16*\\n(%rip), %xmm15\n"
	"	ptest %xmm15, %xmm15\n"
	"	jnz 8f\n"
	"	.endr\n"
	"	pushfq\n"
	"	testl $0x200, (%rsp)\n" /* IF set */
	"	jz 7f\n"
	"	testl $0x400, (%rsp)\n" /* DF clear */
	"	jnz 7f\n"
	"	lea 8(%rsp), %rsp\n"
	"	decq rc_n(%rip)\n"
	"	jnz 1b\n"
	"	xor %eax, %eax\n"
	"	jmp 9f\n"
	"7:	popq rc_dflags(%rip)\n"
	"	movq $1, rc_flags_bad(%rip)\n"
	"8:\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	mov %\\r, rc_dg+8*rc_i(%rip)\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"	mov %rsp, rc_drsp(%rip)\n"
	"	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14\n"
	"	movdqa %xmm\\n, rc_dx+16*\\n(%rip)\n"
	"	.endr\n"
	"	mov rc_rsp(%rip), %rsp\n"
	"	mov $1, %eax\n"
	"9:	pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"	ret\n");

/* ---- the AP (CPL 0): its own periodic timer, halts with known registers ---- */

extern const char ap_trampoline[], ap_trampoline_end[];
extern uint32_t ap_cr3;
uint64_t ap_g[15];  /* rax rbx rcx rdx rsi rdi rbp r8-r15 */
uint64_t ap_dg[15]; /* what they held on a mismatch */
volatile uint64_t ap_loops, ap_bad;
static volatile uint32_t ap_online;
__attribute__((noreturn)) void ap_halt_loop(void);

__asm__(".text\n"
	".globl ap_halt_loop\n"
	"ap_halt_loop:\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	mov ap_g+8*rc_i(%rip), %\\r\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"	sti\n"
	"1:	hlt\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	cmp ap_g+8*rc_i(%rip), %\\r\n"
	"	jne 8f\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"	lock incq ap_loops(%rip)\n"
	"	jmp 1b\n"
	"8:\n"
	"	.set rc_i, 0\n"
	"	.irp r, rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15\n"
	"	mov %\\r, ap_dg+8*rc_i(%rip)\n"
	"	.set rc_i, rc_i+1\n"
	"	.endr\n"
	"	movq $1, ap_bad(%rip)\n"
	"	cli\n"
	"2:	hlt\n"
	"	jmp 2b\n");

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t n)
{
	rng_state = mix(rng_state);
	return rng_state % n;
}

static void lapic_timer(uint32_t vec, uint32_t count)
{
	mmio_w32(LAPIC + 0x3e0, 3);		   /* divide by 16 */
	mmio_w32(LAPIC + 0x320, vec | 1u << 17); /* periodic */
	mmio_w32(LAPIC + 0x380, count);
}

void kernel_setup(void)
{
	uint64_t cr3, cr4;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	ap_cr3 = (uint32_t)cr3;
	/* SSE for the register check: CR4.OSFXSR and OSXMMEXCPT (CR0.MP is set). */
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= 1u << 9 | 1u << 10;
	__asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
}

void ap_main(int n)
{
	(void)n;
	mmio_w32(LAPIC + 0xf0, 0x1ff); /* software enable */
	lapic_timer(VEC_AP, 1250000);	 /* ~20 ms with KVM's 1 GHz APIC bus */
	__atomic_store_n(&ap_online, 1, __ATOMIC_SEQ_CST);
	ap_halt_loop();
}

static void ipi(uint32_t apic, uint32_t icr)
{
	mmio_w32(LAPIC + 0x310, apic << 24);
	mmio_w32(LAPIC + 0x300, icr);
	while (mmio_r32(LAPIC + 0x300) & (1u << 12))
		__asm__ volatile("pause");
}

static void start_ap(void)
{
	for (int i = 0; i < 15; i++)
		ap_g[i] = mix(0xa9000 + (uint64_t)i);
	memcpy((void *)TRAMPOLINE, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	barrier();
	ipi(1, 0x4500); /* INIT */
	ipi(1, 0x4600 | (TRAMPOLINE >> 12));
	uint64_t t0 = rdtsc();
	while (!ap_online && rdtsc() - t0 < 200000000ULL)
		__asm__ volatile("pause");
	if (!ap_online)
		ipi(1, 0x4600 | (TRAMPOLINE >> 12)); /* the second SIPI of the SDM's sequence */
	for (t0 = rdtsc(); !ap_online;)
		if (rdtsc() - t0 > TSC_TIMEOUT)
			test_fail(N, "the AP did not come online");
}

/* ---- data: every sector says who wrote it, when, where ---- */

static uint64_t word(uint64_t seq, uint64_t lba, unsigned i)
{
	return mix(seq * 0x100000001b3ULL ^ lba << 7 ^ i);
}

static void fill(uint8_t *buf, int s, uint64_t seq, uint64_t lba, uint32_t len)
{
	for (uint32_t k = 0; k < len / SECT; k++) {
		uint64_t *w = (uint64_t *)(buf + k * SECT), sum = 0;
		w[0] = MAGIC ^ (uint64_t)s;
		w[1] = seq;
		w[2] = lba + k;
		for (unsigned i = 3; i < WORDS - 1; i++)
			w[i] = word(seq, lba + k, i);
		for (unsigned i = 0; i < WORDS - 1; i++)
			sum = (sum ^ w[i]) * 0x100000001b3ULL;
		w[WORDS - 1] = sum;
	}
}

static void verify(const struct slot *sl, int s)
{
	const uint8_t *buf = rbufs[s];
	for (uint32_t k = 0; k < sl->len / SECT; k++) {
		const uint64_t *w = (const uint64_t *)(buf + k * SECT);
		uint64_t lba = sl->lba + k, sum = 0;
		for (unsigned i = 0; i < WORDS - 1; i++)
			sum = (sum ^ w[i]) * 0x100000001b3ULL;
		const char *why = NULL;
		if (w[0] != (MAGIC ^ (uint64_t)s))
			why = "no magic for this slot";
		else if (w[1] != sl->last_seq)
			why = "another write's sequence number";
		else if (w[2] != lba)
			why = "another sector's data";
		else if (w[WORDS - 1] != sum)
			why = "checksum mismatch";
		for (unsigned i = 3; !why && i < WORDS - 1; i++)
			if (w[i] != word(sl->last_seq, lba, i))
				why = "pattern mismatch";
		if (why) {
			printf_serial("blkloop: slot %u read of lba %u: %s (found seq %u lba %u, "
				      "want seq %u)\n", (unsigned long)s, (unsigned long)lba, why,
				      (unsigned long)w[1], (unsigned long)w[2],
				      (unsigned long)sl->last_seq);
			test_fail(N, "data does not verify");
		}
	}
}

/* ---- requests ---- */

static void post(int s, bool write, bool whole)
{
	struct slot *sl = &slots[s];
	uint16_t h = (uint16_t)(3 * s);

	sl->is_write = write;
	if (write) {
		sl->len = (uint32_t)(1 + rnd(MAXLEN / 4096)) * 4096;
		sl->lba = (uint64_t)s * region + rnd((region - sl->len / SECT) / 8 + 1) * 8;
		sl->seq = ++wseq;
		fill(wbufs[s], s, sl->seq, sl->lba, sl->len);
	} else {
		uint32_t pages = sl->last_len / 4096;
		uint32_t n = whole ? pages : (uint32_t)(1 + rnd(pages));
		uint32_t off = whole ? 0 : (uint32_t)rnd(pages - n + 1);
		sl->len = n * 4096;
		sl->lba = sl->last_lba + off * (4096 / SECT);
		/* Reads go into the buffer as it is (the previous read's data, which
		 * does not verify): only the device writes read buffers, so a save
		 * that misses what the device wrote leaves stale data for the
		 * restored guest to find. The final reads are poisoned. */
		if (whole)
			memset(rbufs[s], POISON, sl->len);
	}
	sl->hdr.type = write ? T_OUT : T_IN;
	sl->hdr.reserved = 0;
	sl->hdr.sector = sl->lba;
	sl->status = 0xff;
	q.desc[h] = (struct vdesc){ (uint64_t)&sl->hdr, 16, D_NEXT, (uint16_t)(h + 1) };
	q.desc[h + 1] = (struct vdesc){ (uint64_t)(write ? wbufs[s] : rbufs[s]), sl->len,
					(uint16_t)(D_NEXT | (write ? 0 : D_WRITE)), (uint16_t)(h + 2) };
	q.desc[h + 2] = (struct vdesc){ (uint64_t)&sl->status, 1, D_WRITE, 0 };
	q.avail[2 + q.avail_idx % q.size] = h;
	q.avail_idx++;
	sl->busy = true;
	sl->sub_time = runtime;
	sl->sub_done = done;
	outstanding++;
}

/* Make the posted chains available and notify; with EVENT_IDX only when
 * the device asked for it (avail_event, as Linux's driver does), so that a
 * device that misses a notification it asked for leaves requests lost. */
static void publish(void)
{
	uint16_t old = q.avail[1], now = q.avail_idx;
	barrier();
	q.avail[1] = now;
	barrier(); /* the index visible before we read avail_event */
	if (event_idx) {
		uint16_t ev = *(volatile uint16_t *)(q.used + 4 + 8u * q.size);
		if ((uint16_t)(now - ev - 1) >= (uint16_t)(now - old))
			return; /* vring_need_event() says no */
	}
	mmio_w16(q.notify, q.index);
}

static uint16_t used_idx(void)
{
	return *(volatile uint16_t *)(q.used + 2);
}

static void complete(uint32_t id, uint32_t len)
{
	if (id >= q.size || id % 3 || id / 3 >= SLOTS) {
		printf_serial("blkloop: used id %u\n", (unsigned long)id);
		test_fail(N, "a used id that is not a chain head we posted");
	}
	int s = (int)(id / 3);
	struct slot *sl = &slots[s];
	if (!sl->busy) {
		printf_serial("blkloop: slot %u completed while not outstanding\n", (unsigned long)s);
		test_fail(N, "a request completed twice");
	}
	if (sl->status == 0xff) {
		printf_serial("blkloop: slot %u seq %u: status never written\n", (unsigned long)s,
			      (unsigned long)sl->seq);
		test_fail(N, "a request completed twice (its status byte was never written)");
	}
	if (sl->status != 0) {
		printf_serial("blkloop: slot %u: status %u\n", (unsigned long)s,
			      (unsigned long)sl->status);
		test_fail(N, "request failed");
	}
	uint32_t want = sl->is_write ? 1 : sl->len + 1;
	if (len != want) {
		printf_serial("blkloop: slot %u %s of %u bytes: used length %u, want %u\n",
			      (unsigned long)s, sl->is_write ? "write" : "read",
			      (unsigned long)sl->len, (unsigned long)len, (unsigned long)want);
		test_fail(N, "wrong used length");
	}
	if (sl->is_write) {
		sl->last_len = sl->len;
		sl->last_lba = sl->lba;
		sl->last_seq = sl->seq;
	} else {
		verify(sl, s);
	}
	sl->busy = false;
	outstanding--;
	done++;
}

/* Take every used entry; with EVENT_IDX, ask for an interrupt at the next
 * one and look once more, so that an entry the device published before it
 * saw used_event is not left waiting for an interrupt that never comes. */
static uint64_t reap(void)
{
	uint64_t n = 0;
	for (;;) {
		if (used_idx() == q.last_used) {
			if (!event_idx)
				return n;
			q.avail[2 + q.size] = q.last_used; /* used_event */
			barrier();
			if (used_idx() == q.last_used)
				return n;
			continue;
		}
		barrier();
		volatile uint8_t *e = q.used + 4 + 8u * (q.last_used % q.size);
		uint32_t id = *(volatile uint32_t *)e, len = *(volatile uint32_t *)(e + 4);
		q.last_used++;
		complete(id, len);
		n++;
	}
}

/* ---- the loop ---- */

static void tick(void)
{
	uint64_t now = rdtsc(), d = now - last_tsc;
	last_tsc = now;
	if (d < GAP)
		runtime += d;
	else
		gaps++;
}

static void check_registers(uint64_t turn)
{
	for (int i = 0; i < 15; i++)
		rc_g[i] = mix(turn << 8 | (uint64_t)i);
	for (int i = 0; i < 30; i++)
		rc_x[i] = mix(turn << 8 | (uint64_t)(0x80 + i));
	rc_n = REGCHECK_TURNS;
	if (!regcheck())
		return;
	if (rc_flags_bad)
		printf_serial("blkloop: rflags %x (IF clear or DF set)\n", (unsigned long)rc_dflags);
	for (int i = 0; i < 15; i++)
		if (rc_dg[i] != rc_g[i])
			printf_serial("blkloop: %s is %x, want %x\n", gpr_names[i],
				      (unsigned long)rc_dg[i], (unsigned long)rc_g[i]);
	if (rc_drsp != rc_rsp)
		printf_serial("blkloop: rsp is %x, want %x\n", (unsigned long)rc_drsp,
			      (unsigned long)rc_rsp);
	for (int i = 0; i < 30; i++)
		if (rc_dx[i] != rc_x[i])
			printf_serial("blkloop: xmm%u word %u is %x, want %x\n",
				      (unsigned long)(i / 2), (unsigned long)(i % 2),
				      (unsigned long)rc_dx[i], (unsigned long)rc_x[i]);
	test_fail(N, "a register changed");
}

static void check_ap(void)
{
	if (!ap_bad)
		return;
	for (int i = 0; i < 15; i++)
		if (ap_dg[i] != ap_g[i])
			printf_serial("blkloop: AP %s is %x, want %x\n", gpr_names[i],
				      (unsigned long)ap_dg[i], (unsigned long)ap_g[i]);
	test_fail(N, "a register of the AP changed across hlt");
}

static void progress(void)
{
	printf_serial("BLK %u irq=%u timer=%u ap=%u gaps=%u\n", (unsigned long)done,
		      (unsigned long)irq_count[VEC_BLK], (unsigned long)irq_count[VEC_TIMER],
		      (unsigned long)ap_loops, (unsigned long)gaps);
}

/* Watchdog state, in run time (see tick()). */
static struct {
	uint32_t irq_seen, timer_seen;
	uint64_t ap_seen;
	uint64_t pend_since; /* run time + 1 when unserved used entries were first seen */
	uint64_t timer_time, ap_time, done_time;
} wd;

/* Take completions when the interrupt count moved; otherwise look at the
 * used ring only to notice an interrupt that does not come. */
static void take_completions(void)
{
	uint32_t c = irq_count[VEC_BLK];
	if (c != wd.irq_seen) {
		wd.irq_seen = c; /* before looking at the used ring */
		barrier();
		if (reap())
			wd.done_time = runtime;
		wd.pend_since = 0;
	} else if (used_idx() != q.last_used) {
		if (!wd.pend_since) {
			wd.pend_since = runtime + 1;
		} else if (runtime + 1 - wd.pend_since > IRQ_DEADLINE) {
			printf_serial("blkloop: used index %u, taken %u, interrupts %u\n",
				      (unsigned long)used_idx(), (unsigned long)q.last_used,
				      (unsigned long)c);
			test_fail(N, "lost interrupt: the used ring advanced without one");
		}
	}
}

static void watchdogs(bool ap)
{
	if (irq_count[VEC_TIMER] != wd.timer_seen) {
		wd.timer_seen = irq_count[VEC_TIMER];
		wd.timer_time = runtime;
	} else if (runtime - wd.timer_time > TIMER_DEADLINE) {
		test_fail(N, "the LAPIC timer stopped");
	}
	if (ap && ap_loops != wd.ap_seen) {
		wd.ap_seen = ap_loops;
		wd.ap_time = runtime;
	} else if (ap && runtime - wd.ap_time > TIMER_DEADLINE) {
		test_fail(N, "the AP's timer stopped waking it");
	}
	if (outstanding && runtime - wd.done_time > STALL_DEADLINE) {
		printf_serial("blkloop: %u outstanding, none completed\n", (unsigned long)outstanding);
		test_fail(N, "no request completed within the deadline");
	}
	for (int s = 0; s < SLOTS; s++) {
		struct slot *sl = &slots[s];
		if (sl->busy && runtime - sl->sub_time > LOST_DEADLINE &&
		    done - sl->sub_done > LOST_OTHERS) {
			printf_serial("blkloop: slot %u (%s lba %u) outstanding through %u "
				      "completions\n", (unsigned long)s, sl->is_write ? "write" : "read",
				      (unsigned long)sl->lba, (unsigned long)(done - sl->sub_done));
			test_fail(N, "a request was lost");
		}
	}
}

/* A new request for every idle slot, published in small groups so that the
 * device already serves some while we post the rest and batches do not line up. */
static void post_more(void)
{
	bool posted = false;
	for (int s = 0, group = (int)(1 + rnd(8)); s < SLOTS; s++) {
		if (slots[s].busy)
			continue;
		post(s, !slots[s].last_len || rnd(2), false);
		posted = true;
		if (!--group) {
			publish();
			posted = false;
			group = (int)(1 + rnd(8));
		}
	}
	if (posted)
		publish();
}

static void setup(void)
{
	struct vdev d;
	CHECK_OR_FAIL(vdev_open(&d, 2), N);
	CHECK_OR_FAIL(d.msix_cap, N);
	CHECK_OR_FAIL(vdev_negotiate(&d, event_idx ? 1ULL << F_EVENT_IDX : 0), N);
	if (event_idx)
		CHECK_OR_FAIL(d.features & 1ULL << F_EVENT_IDX, N);
	vdev_msix(&d, 0, VEC_BLK);
	CHECK_OR_FAIL(vq_setup(&d, &q, 0, QSIZE, ring, 0), N);
	CHECK_OR_FAIL(q.size == QSIZE, N);
	vdev_driver_ok(&d);
	capacity = mmio_r32(d.devcfg) | (uint64_t)mmio_r32(d.devcfg + 4) << 32;
	region = capacity / SLOTS / 8 * 8;
	CHECK_OR_FAIL(region >= MAXLEN / SECT, N);
}

void user_main(void)
{
	uint64_t rounds = cmdline_num("rounds", 0), report = cmdline_num("report", 1000);
	uint64_t cpus = cmdline_num("cpus", 1);
	event_idx = cmdline_num("event_idx", 0) != 0;
	rng_state = cmdline_num("seed", 1);
	if (!report)
		report = 1000;
	printf_serial("BLKLOOP start rounds=%u seed=%u event_idx=%u cpus=%u\n",
		      (unsigned long)rounds, (unsigned long)rng_state, (unsigned long)event_idx,
		      (unsigned long)cpus);
	if (cpus >= 2)
		start_ap();
	setup();
	lapic_timer(VEC_TIMER, 625000); /* ~10 ms */
	last_tsc = rdtsc();
	wd.timer_seen = irq_count[VEC_TIMER];
	wd.ap_seen = ap_loops;
	post_more();
	printf_serial("BLKLOOP running slots=%u queue=%u region=%u sectors\n",
		      (unsigned long)SLOTS, (unsigned long)q.size, (unsigned long)region);

	bool final_sent = false;
	for (uint64_t turn = 1, next_report = report;; turn++) {
		tick();
		check_registers(turn);
		check_ap();
		take_completions();
		watchdogs(cpus >= 2);
		if (!rounds || done < rounds) {
			post_more();
		} else if (!outstanding && final_sent) {
			progress();
			printf_serial("BLKLOOP done completions=%u writes=%u\n", (unsigned long)done,
				      (unsigned long)wseq);
			test_pass(N);
		} else if (!outstanding) {
			/* Read back every slot's last write whole, then pass. */
			for (int s = 0; s < SLOTS; s++)
				if (slots[s].last_len)
					post(s, false, true);
			publish();
			final_sent = true;
		}
		if (done >= next_report) {
			progress();
			next_report = (done / report + 1) * report;
		}
	}
}
