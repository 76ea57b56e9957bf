/*
 * Page sets: bitmaps over the memory file's pages and their runs. Pure.
 */
#include "snapshot/pageset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int pageset_init(struct pageset *s, uint64_t npages)
{
	s->npages = npages;
	s->w = calloc(pageset_words(npages) ? pageset_words(npages) : 1, sizeof(uint64_t));
	return s->w ? 0 : -ENOMEM;
}

void pageset_free(struct pageset *s)
{
	free(s->w);
	s->w = NULL;
	s->npages = 0;
}

void pageset_clear(struct pageset *s)
{
	if (s->w)
		memset(s->w, 0, pageset_words(s->npages) * sizeof(uint64_t));
}

void pageset_add(struct pageset *s, uint64_t first, uint64_t count)
{
	if (first >= s->npages)
		return;
	if (count > s->npages - first)
		count = s->npages - first;
	uint64_t p = first, end = first + count;
	while (p < end && (p & 63)) {
		s->w[p / 64] |= 1ULL << (p & 63);
		p++;
	}
	for (; p + 64 <= end; p += 64)
		s->w[p / 64] = ~0ULL;
	for (; p < end; p++)
		s->w[p / 64] |= 1ULL << (p & 63);
}

bool pageset_test(const struct pageset *s, uint64_t page)
{
	return page < s->npages && (s->w[page / 64] >> (page & 63) & 1);
}

uint64_t pageset_count(const struct pageset *s)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < pageset_words(s->npages); i++)
		n += (uint64_t)__builtin_popcountll(s->w[i]);
	return n;
}

void pageset_or(struct pageset *dst, const struct pageset *src)
{
	uint64_t n = pageset_words(dst->npages < src->npages ? dst->npages : src->npages);
	for (uint64_t i = 0; i < n; i++)
		dst->w[i] |= src->w[i];
}

void pageset_or_bits(struct pageset *dst, uint64_t first, const uint64_t *bits, uint64_t nbits)
{
	if (first & 63 || first >= dst->npages)
		return;
	if (nbits > dst->npages - first)
		nbits = dst->npages - first;
	uint64_t words = pageset_words(nbits), base = first / 64;
	for (uint64_t i = 0; i < words; i++) {
		uint64_t v = bits[i];
		if (i == words - 1 && nbits & 63)
			v &= (1ULL << (nbits & 63)) - 1;
		dst->w[base + i] |= v;
	}
}

/* First set page at or after @p, or npages. */
static uint64_t next_set(const struct pageset *s, uint64_t p)
{
	while (p < s->npages) {
		uint64_t v = s->w[p / 64] >> (p & 63);
		if (v)
			return p + (uint64_t)__builtin_ctzll(v) < s->npages ?
				       p + (uint64_t)__builtin_ctzll(v) : s->npages;
		p = (p | 63) + 1;
	}
	return s->npages;
}

/* First clear page at or after @p, or npages. */
static uint64_t next_clear(const struct pageset *s, uint64_t p)
{
	while (p < s->npages) {
		uint64_t v = ~s->w[p / 64] >> (p & 63);
		if (v)
			return p + (uint64_t)__builtin_ctzll(v) < s->npages ?
				       p + (uint64_t)__builtin_ctzll(v) : s->npages;
		p = (p | 63) + 1;
	}
	return s->npages;
}

bool pageset_next_run(const struct pageset *s, uint64_t *pos, uint64_t *count)
{
	uint64_t a = next_set(s, *pos);
	if (a >= s->npages)
		return false;
	uint64_t b = next_clear(s, a);
	*pos = a;
	*count = b - a;
	return true;
}

uint64_t pageset_runs(const struct pageset *s)
{
	uint64_t n = 0, pos = 0, cnt;
	while (pageset_next_run(s, &pos, &cnt)) {
		n++;
		pos += cnt;
	}
	return n;
}

int pageset_encode(const struct pageset *s, struct enc *e, uint32_t max_runs)
{
	uint64_t runs = pageset_runs(s), pos = 0, cnt;
	if (runs > max_runs)
		return -E2BIG;
	enc_u32(e, (uint32_t)runs);
	while (pageset_next_run(s, &pos, &cnt)) {
		enc_u64(e, pos);
		enc_u64(e, cnt);
		pos += cnt;
	}
	return e->err ? -ENOMEM : 0;
}

int pageset_decode(struct dec *d, struct pageset *s, uint32_t max_runs)
{
	uint32_t n = dec_u32(d);
	uint64_t next = 0; /* the first page the next run may start at */

	if (d->err || n > max_runs || (uint64_t)n * 16 > dec_left(d))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t first = dec_u64(d), count = dec_u64(d);
		if (d->err || count == 0 || first < next || first >= s->npages ||
		    count > s->npages - first)
			return -EINVAL;
		pageset_add(s, first, count);
		next = first + count + 1; /* runs are maximal: never touching */
	}
	return 0;
}
