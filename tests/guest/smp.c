/*
 * Bring up the APs with INIT/SIPI; each reports in ("CPU <apic id> online")
 * from CPL 0 through the spinlocked serial output.
 * CPU count: cmdline cpus=N, else the MP table's enabled processors, else
 * APIC ids 1..7 are tried and whoever answers within the timeout counts.
 * The IPIs go out from CPL 3 (the LAPIC page is user-accessible).
 */
#include "rt.h"

#define N "smp"
#define LAPIC 0xFEE00000ULL
#define TRAMPOLINE 0x10000 /* below 1 MiB, clear of what pocketvm uses */
#define MAX_APIC 64

extern const char ap_trampoline[], ap_trampoline_end[];
extern uint32_t ap_cr3;
static volatile uint32_t online;
static volatile uint8_t seen[MAX_APIC];

void ap_main(int n)
{
	uint32_t id = mmio_r32(LAPIC + 0x20) >> 24;
	printf_serial("CPU %u online (AP %u)\n", (unsigned long)id, (unsigned long)n);
	if (id < MAX_APIC)
		seen[id] = 1;
	__atomic_add_fetch(&online, 1, __ATOMIC_SEQ_CST);
}

static void ipi(uint32_t apic, uint32_t icr)
{
	mmio_w32(LAPIC + 0x310, apic << 24);
	mmio_w32(LAPIC + 0x300, icr);
	while (mmio_r32(LAPIC + 0x300) & (1u << 12)) /* delivery pending */
		__asm__ volatile("pause");
}

/* Processors the MP table lists as enabled, or 0 without a table. */
static uint32_t mp_cpus(void)
{
	static const uint64_t areas[][2] = { { 0x9fc00, 0xa0000 }, { 0xf0000, 0x100000 } };
	for (int r = 0; r < 2; r++)
		for (uint64_t a = areas[r][0]; a < areas[r][1]; a += 16) {
			const uint8_t *fp = (const uint8_t *)a;
			if (memcmp(fp, "_MP_", 4))
				continue;
			uint32_t cfg;
			memcpy(&cfg, fp + 4, 4);
			const uint8_t *h = (const uint8_t *)(uintptr_t)cfg;
			if (!cfg || cfg >= 0x100000 || memcmp(h, "PCMP", 4))
				return 0;
			uint16_t count;
			memcpy(&count, h + 34, 2);
			const uint8_t *e = h + 44;
			uint32_t n = 0;
			for (int i = 0; i < count && e < h + 4096; i++) {
				if (e[0] == 0) { /* processor: 20 bytes, flags bit 0 = enabled */
					n += e[3] & 1;
					e += 20;
				} else {
					e += 8;
				}
			}
			return n;
		}
	return 0;
}

void kernel_setup(void)
{
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	ap_cr3 = (uint32_t)cr3; /* the runtime's tables, below 4 GiB */
}

void user_main(void)
{
	uint32_t mp = mp_cpus();
	uint32_t cpus = (uint32_t)cmdline_num("cpus", mp);
	bool probe = !cpus; /* count whoever answers */
	uint32_t last = probe ? 7 : cpus - 1;
	printf_serial("smp: cpus=%u (mp table %u)\n", (unsigned long)cpus, (unsigned long)mp);
	CHECK_OR_FAIL(last < MAX_APIC, N);

	memcpy((void *)TRAMPOLINE, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	barrier();
	for (uint32_t a = 1; a <= last; a++) {
		ipi(a, 0x4500);			     /* INIT, level assert */
		ipi(a, 0x4600 | (TRAMPOLINE >> 12)); /* STARTUP, vector = page */
	}
	/* A second SIPI (the SDM's sequence) to any AP not yet in: harmless
	 * for one that already left wait-for-SIPI. */
	uint64_t t0 = rdtsc();
	while (online < last && rdtsc() - t0 < 200000000ULL)
		__asm__ volatile("pause");
	for (uint32_t a = 1; a <= last; a++)
		if (!seen[a])
			ipi(a, 0x4600 | (TRAMPOLINE >> 12));

	uint64_t limit = probe ? TSC_TIMEOUT / 10 : TSC_TIMEOUT;
	t0 = rdtsc();
	while (online < last && rdtsc() - t0 < limit)
		__asm__ volatile("pause");
	if (!probe && online < last) {
		printf_serial("only %u of %u APs came online\n", (unsigned long)online,
			      (unsigned long)last);
		test_fail(N, "not every AP came online");
	}
	printf_serial("TEST-PASS smp cpus=%u\n", (unsigned long)(online + 1));
	outb(0x64, 0xfe);
	for (;;)
		;
}
