/*
 * Page sets for snapshots: one bit per 4 KiB page of the memory file (the
 * memfd's offset order, region 0 then region 1), the runs of set bits, and
 * their encoding as (first page, count) runs. Pure: no system calls, so the
 * incremental-save planning and the run decoder are unit tested and fuzzed.
 */
#ifndef POCKETVM_SNAPSHOT_PAGESET_H
#define POCKETVM_SNAPSHOT_PAGESET_H

#include <stdbool.h>
#include <stdint.h>

#include "snapshot/codec.h"

#define PAGESET_PAGE 4096ULL

struct pageset {
	uint64_t *w;	 /* (npages + 63) / 64 words, bit i of word j = page 64 j + i */
	uint64_t npages;
};

/* pageset_init - an empty set over @npages pages. 0 or -ENOMEM. */
int pageset_init(struct pageset *s, uint64_t npages);
void pageset_free(struct pageset *s);
void pageset_clear(struct pageset *s);
static inline uint64_t pageset_words(uint64_t npages) { return (npages + 63) / 64; }

/* Add pages [first, first + count), clipped to the set. */
void pageset_add(struct pageset *s, uint64_t first, uint64_t count);
bool pageset_test(const struct pageset *s, uint64_t page);
uint64_t pageset_count(const struct pageset *s);

/* pageset_or - @dst |= @src (same size; a smaller @src is ORed in part). */
void pageset_or(struct pageset *dst, const struct pageset *src);

/*
 * pageset_or_bits - OR a bitmap of @nbits bits (KVM_GET_DIRTY_LOG's layout:
 * little-endian 64-bit words) into @dst starting at page @first, which must
 * be a multiple of 64. Bits past the set are ignored.
 */
void pageset_or_bits(struct pageset *dst, uint64_t first, const uint64_t *bits, uint64_t nbits);

/*
 * pageset_next_run - the first run of set pages at or after *@pos: returns
 * true with the run in [*@pos, *@pos + *@count), false when none is left.
 * Iterate with pos += count.
 */
bool pageset_next_run(const struct pageset *s, uint64_t *pos, uint64_t *count);

/* Number of runs of set pages. */
uint64_t pageset_runs(const struct pageset *s);

/*
 * pageset_encode - the set as u32 n, n x (first u64, count u64), ascending.
 * Returns 0, or -E2BIG (nothing written) when it has more than @max_runs runs.
 */
int pageset_encode(const struct pageset *s, struct enc *e, uint32_t max_runs);

/*
 * pageset_decode - read what pageset_encode wrote into @s (initialised over
 * the memory's pages). Refuses (-EINVAL) more than @max_runs runs, empty
 * runs, runs that overlap, touch, go backwards or leave the set.
 */
int pageset_decode(struct dec *d, struct pageset *s, uint32_t max_runs);

#endif
