/*
 * Loading-set file format: encode and validate. Pure (no system calls).
 */
#include "snapshot/loadset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_LEN 12u /* first u64, count u32 */

uint64_t loadset_data_pages(const struct loadset_run *runs, uint32_t nr_runs)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < nr_runs; i++)
		if (!runs[i].zero)
			n += runs[i].count;
	return n;
}

static uint64_t meta_len_of(uint32_t nr_runs, uint64_t data_pages)
{
	return LOADSET_HDR_LEN + (uint64_t)nr_runs * RUN_LEN + 4ULL * loadset_chunks(data_pages) + 4;
}

static uint64_t round_page(uint64_t n)
{
	return (n + LOADSET_PAGE - 1) / LOADSET_PAGE * LOADSET_PAGE;
}

uint64_t loadset_data_offset(uint32_t nr_runs, uint64_t data_pages)
{
	return round_page(meta_len_of(nr_runs, data_pages));
}

int loadset_encode_meta(struct enc *e, const struct loadset_bind *b,
			const struct loadset_run *runs, uint32_t nr_runs,
			const uint32_t *chunk_crc, uint64_t *data_off)
{
	uint64_t pages = chunk_crc ? loadset_data_pages(runs, nr_runs) : 0;
	if (nr_runs > LOADSET_MAX_RUNS)
		return -EINVAL;
	size_t start = e->len;
	enc_bytes(e, LOADSET_MAGIC, 8);
	enc_u32(e, LOADSET_VERSION);
	enc_u32(e, chunk_crc ? LOADSET_F_DATA : 0);
	enc_bytes(e, b->uuid, 16);
	enc_u64(e, b->gen);
	enc_u64(e, b->ram_size);
	enc_u32(e, nr_runs);
	enc_u64(e, pages);
	if (e->err)
		return -ENOMEM;
	enc_u32(e, crc32c(0, e->buf + start, e->len - start));
	size_t idx = e->len;
	for (uint32_t i = 0; i < nr_runs; i++) {
		if (!runs[i].count || runs[i].count > LOADSET_MAX_RUN_PAGES)
			return -EINVAL;
		enc_u64(e, runs[i].first);
		enc_u32(e, runs[i].count | (runs[i].zero ? LOADSET_RUN_ZERO : 0));
	}
	for (uint32_t i = 0; i < loadset_chunks(pages); i++)
		enc_u32(e, chunk_crc[i]);
	if (e->err)
		return -ENOMEM;
	enc_u32(e, crc32c(0, e->buf + idx, e->len - idx));
	*data_off = round_page(meta_len_of(nr_runs, pages));
	return e->err ? -ENOMEM : 0;
}

/* Header fields shared by loadset_meta_len() and loadset_parse(). */
static int parse_header(struct dec *d, struct loadset *ls, char *why, size_t whylen)
{
	char magic[8];
	dec_bytes(d, magic, 8);
	uint32_t version = dec_u32(d);
	ls->flags = dec_u32(d);
	dec_bytes(d, ls->bind.uuid, 16);
	ls->bind.gen = dec_u64(d);
	ls->bind.ram_size = dec_u64(d);
	ls->nr_runs = dec_u32(d);
	ls->data_pages = dec_u64(d);
	size_t hlen = d->pos;
	uint32_t crc = dec_u32(d);
	if (d->err) {
		snprintf(why, whylen, "truncated header");
		return -EINVAL;
	}
	if (memcmp(magic, LOADSET_MAGIC, 8)) {
		snprintf(why, whylen, "bad magic");
		return -EINVAL;
	}
	if (crc != crc32c(0, d->buf, hlen)) {
		snprintf(why, whylen, "header checksum mismatch");
		return -EINVAL;
	}
	if (version != LOADSET_VERSION || (ls->flags & ~LOADSET_F_DATA)) {
		snprintf(why, whylen, "version %u, flags %#x", version, ls->flags);
		return -EINVAL;
	}
	if (!ls->bind.ram_size || ls->bind.ram_size % LOADSET_PAGE ||
	    ls->bind.ram_size > (1ULL << 40) || ls->nr_runs > LOADSET_MAX_RUNS ||
	    ls->data_pages > ls->bind.ram_size / LOADSET_PAGE ||
	    (!(ls->flags & LOADSET_F_DATA) && ls->data_pages)) {
		snprintf(why, whylen, "header out of range");
		return -EINVAL;
	}
	return 0;
}

int loadset_meta_len(const uint8_t *hdr, size_t n, uint64_t *len, char *why, size_t whylen)
{
	struct loadset ls;
	struct dec d;
	dec_init(&d, hdr, n < LOADSET_HDR_LEN ? n : LOADSET_HDR_LEN);
	int r = parse_header(&d, &ls, why, whylen);
	if (r)
		return r;
	*len = meta_len_of(ls.nr_runs, ls.data_pages);
	return 0;
}

static int cmp_run(const void *a, const void *b)
{
	const struct loadset_run *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

void loadset_free(struct loadset *ls)
{
	free(ls->runs);
	free(ls->chunk_crc);
	memset(ls, 0, sizeof(*ls));
}

int loadset_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		  const struct loadset_bind *want, struct loadset *ls, char *why, size_t whylen)
{
	struct dec d;
	int r;

	memset(ls, 0, sizeof(*ls));
	dec_init(&d, buf, len);
	if ((r = parse_header(&d, ls, why, whylen)))
		return r;
	if (want && (memcmp(want->uuid, ls->bind.uuid, 16) || want->gen != ls->bind.gen ||
		     want->ram_size != ls->bind.ram_size)) {
		snprintf(why, whylen, "recorded against another memory file (stale)");
		return -ESTALE;
	}
	uint64_t meta = meta_len_of(ls->nr_runs, ls->data_pages);
	if (meta > len) {
		snprintf(why, whylen, "truncated index");
		return -EINVAL;
	}
	ls->data_off = round_page(meta);
	if (file_size != ls->data_off + ls->data_pages * LOADSET_PAGE) {
		snprintf(why, whylen, "file size %llu does not match its index",
			 (unsigned long long)file_size);
		return -EINVAL;
	}
	if (crc32c(0, buf + LOADSET_HDR_LEN, meta - 4 - LOADSET_HDR_LEN) !=
	    (uint32_t)(buf[meta - 4] | buf[meta - 3] << 8 | buf[meta - 2] << 16 |
		       (uint32_t)buf[meta - 1] << 24)) {
		snprintf(why, whylen, "index checksum mismatch");
		return -EINVAL;
	}
	ls->nr_chunks = loadset_chunks(ls->data_pages);
	ls->runs = calloc(ls->nr_runs ? ls->nr_runs : 1, sizeof(*ls->runs));
	ls->chunk_crc = calloc(ls->nr_chunks ? ls->nr_chunks : 1, sizeof(uint32_t));
	struct loadset_run *sorted = calloc(ls->nr_runs ? ls->nr_runs : 1, sizeof(*sorted));
	if (!ls->runs || !ls->chunk_crc || !sorted) {
		free(sorted);
		loadset_free(ls);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	uint64_t pages = ls->bind.ram_size / LOADSET_PAGE, stored = 0;
	r = 0;
	for (uint32_t i = 0; i < ls->nr_runs && !r; i++) {
		struct loadset_run *run = &ls->runs[i];
		run->first = dec_u64(&d);
		uint32_t c = dec_u32(&d);
		run->zero = c & LOADSET_RUN_ZERO;
		run->count = c & ~LOADSET_RUN_ZERO;
		if (!run->count || run->first >= pages || run->count > pages - run->first)
			r = -EINVAL;
		if (!run->zero && (ls->flags & LOADSET_F_DATA))
			stored += run->count;
		sorted[i] = *run;
	}
	for (uint32_t i = 0; i < ls->nr_chunks; i++)
		ls->chunk_crc[i] = dec_u32(&d);
	if (!r && (d.err || stored != ls->data_pages))
		r = -EINVAL;
	if (!r) {
		qsort(sorted, ls->nr_runs, sizeof(*sorted), cmp_run);
		for (uint32_t i = 1; i < ls->nr_runs && !r; i++)
			if (sorted[i].first < sorted[i - 1].first + sorted[i - 1].count)
				r = -EINVAL;
	}
	free(sorted);
	if (r) {
		loadset_free(ls);
		snprintf(why, whylen, "index is inconsistent (runs outside RAM, overlapping, or "
			 "not adding up)");
	}
	return r;
}
