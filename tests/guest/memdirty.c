/*
 * Memory that keeps changing, for incremental snapshots: RAM from 16 MiB is
 * cut into 64 KiB blocks, each holding a generation's pattern, with the
 * generation of every block in a table below it (the table is guest RAM
 * too, so it is saved with the blocks). Every pass verifies every block
 * against its generation, then rewrites one block in @every with the next
 * generation; every fourth generation is all zeros (pages that became zero
 * must become holes). A snapshot can stop the guest in the middle of a
 * rewrite: it finishes it after the restore, before it verifies that block.
 * cmdline: fill=MiB (default 64), every=N (default 8), passes=N (0:
 * forever). Prints "FILLED n", "HB n" every 4 MiB, "PASS-OK n" per pass,
 * "MISMATCH at ADDR gen G" on a bad word, then fails.
 */
#include "rt.h"

#define N "memdirty"
#define TABLE (15ULL << 20) /* generations, one u32 per block */
#define BASE (16ULL << 20)
#define BLOCK (64ULL << 10)

static inline uint64_t val(uint64_t a, uint32_t gen)
{
	if (gen % 4 == 0)
		return 0; /* a zero generation */
	return (a * 0x9E3779B97F4A7C15ULL ^ 0x5bd1e995) + gen * 0x100000001ULL;
}

static void write_block(uint64_t b, uint32_t gen)
{
	for (uint64_t a = b; a < b + BLOCK; a += 8)
		*(volatile uint64_t *)a = val(a, gen);
}

void user_main(void)
{
	uint64_t mib = cmdline_num("fill", 64), end = BASE + (mib << 20);
	uint64_t every = cmdline_num("every", 8), passes = cmdline_num("passes", 0);
	volatile uint32_t *gen = (volatile uint32_t *)TABLE;
	uint64_t blocks = (mib << 20) / BLOCK;

	if (every == 0 || blocks * 4 > BASE - TABLE || end > 0xC0000000ULL)
		test_fail(N, "bad fill or every");
	for (uint64_t i = 0; i < blocks; i++) {
		gen[i] = 1;
		write_block(BASE + i * BLOCK, 1);
	}
	printf_serial("FILLED %u\n", (unsigned long)mib);
	for (uint64_t pass = 1;; pass++) {
		for (uint64_t i = 0; i < blocks; i++) {
			uint64_t b = BASE + i * BLOCK;
			uint32_t g = gen[i];
			for (uint64_t a = b; a < b + BLOCK; a += 8)
				if (*(volatile uint64_t *)a != val(a, g)) {
					printf_serial("MISMATCH at %x gen %u\n", (unsigned long)a,
						      (unsigned long)g);
					test_fail(N, "memory changed");
				}
			if ((i + pass) % every == 0) {
				write_block(b, g + 1);
				gen[i] = g + 1; /* after the block (a save mid-rewrite resumes it) */
			}
			if ((i + 1) % (4 << 20 >> 16) == 0)
				printf_serial("HB %u\n", (unsigned long)((i + 1) >> 6));
		}
		printf_serial("PASS-OK %u\n", (unsigned long)pass);
		if (pass == passes)
			test_pass(N);
	}
}
