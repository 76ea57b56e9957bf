/*
 * Fill memory with a pattern, then verify it forever in 4 MiB steps with a
 * heartbeat between steps: the snapshot tests and bench/snapshot save it
 * after "FILLED" and check that a restored guest keeps verifying.
 * cmdline: fill=MiB (default 64), passes=N (default 0: forever; else
 * "TEST-PASS memfill" and a reset after N passes). Prints "FILLED n",
 * "HB n" per step, "PASS-OK n" per complete pass, "MISMATCH at ADDR" (and
 * fails) on a bad word.
 */
#include "rt.h"

#define N "memfill"
#define BASE (16ULL << 20) /* above the image, below everything the VMM uses */
#define STEP (4ULL << 20)

static inline uint64_t pat(uint64_t a)
{
	return a * 0x9E3779B97F4A7C15ULL ^ 0x5bd1e995;
}

void user_main(void)
{
	uint64_t mib = cmdline_num("fill", 64), end = BASE + (mib << 20);
	uint64_t passes = cmdline_num("passes", 0);
	uint64_t ram_end = boot_params ? 0 : 0xC0000000ULL; /* PVH (QEMU): trust fill= */
	/* e820: the RAM entry that holds BASE must cover the fill */
	for (unsigned i = 0; i < e820_entries(); i++) {
		uint64_t a, s;
		if (e820_entry(i, &a, &s) == 1 && a <= BASE && a + s > BASE)
			ram_end = a + s;
	}
	if (end > ram_end || end > 0xC0000000ULL)
		test_fail(N, "fill does not fit in low RAM");
	for (uint64_t a = BASE; a < end; a += 8)
		*(volatile uint64_t *)a = pat(a);
	printf_serial("FILLED %u\n", (unsigned long)mib);
	for (uint64_t pass = 1;; pass++) {
		for (uint64_t s = BASE; s < end; s += STEP) {
			uint64_t lim = s + STEP < end ? s + STEP : end;
			for (uint64_t a = s; a < lim; a += 8)
				if (*(volatile uint64_t *)a != pat(a)) {
					printf_serial("MISMATCH at %x\n", (unsigned long)a);
					test_fail(N, "memory changed");
				}
			printf_serial("HB %u\n", (unsigned long)((s - BASE) / STEP));
		}
		printf_serial("PASS-OK %u\n", (unsigned long)pass);
		if (pass == passes)
			test_pass(N);
	}
}
