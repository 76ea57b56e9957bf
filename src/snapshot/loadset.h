/*
 * The loading set: the guest pages a restored VM touched first, recorded on
 * one restore and stored in first-touch order as the file `loadset` of the
 * snapshot directory, so the next restore can read them in one sequential
 * pass while the guest already runs (FaaSnap/REAP). It is a cache: a file
 * that is missing, corrupt, or recorded against another memory file is
 * ignored. Format: docs/snapshot-format.md. The parser is pure (fuzzed).
 */
#ifndef POCKETVM_SNAPSHOT_LOADSET_H
#define POCKETVM_SNAPSHOT_LOADSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/codec.h"

#define LOADSET_MAGIC "PKVMLSET"
#define LOADSET_VERSION 1
#define LOADSET_PAGE 4096u
#define LOADSET_HDR_LEN 64u
#define LOADSET_F_DATA 1u		      /* the pages' contents are stored after the index */
#define LOADSET_CHUNK_PAGES 256u	      /* one CRC per 1 MiB of data */
#define LOADSET_MAX_RUNS (1u << 20)	      /* index entries */
#define LOADSET_RUN_ZERO 0x80000000u	      /* count flag: zero pages, no data stored */
#define LOADSET_MAX_RUN_PAGES 0x7fffffffu

/* What a loading set must have been recorded against. */
struct loadset_bind {
	uint8_t uuid[16];  /* the snapshot's identity (state MEMORY section) */
	uint64_t gen;	   /* the save generation: the memory file's contents */
	uint64_t ram_size; /* bytes */
};

struct loadset_run {
	uint64_t first; /* page index in the memory file */
	uint32_t count; /* pages */
	bool zero;	/* all zero in the memory file (a hole): nothing stored */
};

struct loadset {
	struct loadset_bind bind;
	uint32_t flags;		  /* LOADSET_F_*: without DATA the pages are read from the
				     memory file (only the order is recorded) */
	uint32_t nr_runs;
	struct loadset_run *runs; /* first-touch order */
	uint64_t data_pages;	  /* pages stored (DATA): the non-zero runs, in index order */
	uint64_t data_off;	  /* file offset of the first stored page */
	uint32_t nr_chunks;
	uint32_t *chunk_crc;	  /* CRC32C of each LOADSET_CHUNK_PAGES of data */
};

/*
 * loadset_meta_len - from the first LOADSET_HDR_LEN bytes: the length of
 * the whole metadata block (header, index, chunk CRCs, their CRC) that
 * loadset_parse() needs. Returns 0 with *@len, or -EINVAL (@why says why).
 */
int loadset_meta_len(const uint8_t *hdr, size_t n, uint64_t *len, char *why, size_t whylen);

/*
 * loadset_parse - validate the metadata block @buf of a loading-set file of
 * @file_size bytes: magic, version, page size, header and index CRCs, the
 * binding (against @want unless NULL), runs inside RAM that never overlap,
 * counts that add up, the file size. Fills @ls (free with loadset_free).
 * Pure. Returns 0 or -EINVAL/-ESTALE/-ENOMEM with a reason in @why.
 */
int loadset_parse(const uint8_t *buf, size_t len, uint64_t file_size,
		  const struct loadset_bind *want, struct loadset *ls, char *why, size_t whylen);
void loadset_free(struct loadset *ls);

/*
 * loadset_encode_meta - the metadata block for @runs (first-touch order).
 * With @chunk_crc (the CRCs of the stored data) the file stores the pages,
 * starting at the returned *@data_off (a page multiple); with NULL it is
 * an index only. Returns 0 or -ENOMEM/-EINVAL.
 */
int loadset_encode_meta(struct enc *e, const struct loadset_bind *b,
			const struct loadset_run *runs, uint32_t nr_runs,
			const uint32_t *chunk_crc, uint64_t *data_off);

/* File offset of the first stored page for an index of @nr_runs runs. */
uint64_t loadset_data_offset(uint32_t nr_runs, uint64_t data_pages);

/* Pages stored for @runs (the non-zero ones), and the chunks they make. */
uint64_t loadset_data_pages(const struct loadset_run *runs, uint32_t nr_runs);
static inline uint32_t loadset_chunks(uint64_t data_pages)
{
	return (uint32_t)((data_pages + LOADSET_CHUNK_PAGES - 1) / LOADSET_CHUNK_PAGES);
}

#endif
