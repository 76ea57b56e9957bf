/*
 * The pure parts of snapshot memory handling: page sets and their run
 * encoding, merging KVM dirty bitmaps, the save decision and the
 * incremental plan, memory-file trailers, the VMM's own dirty bitmap (also
 * through a virtqueue), and the loading-set format with hostile variants.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "snapshot/loadset.h"
#include "snapshot/pageset.h"
#include "snapshot/plan.h"
#include "snapshot/snap_int.h"
#include "vq_builder.h"

/* --- page sets --- */

static void set_of(struct pageset *s, uint64_t npages, const uint64_t (*runs)[2], int n)
{
	pageset_init(s, npages);
	for (int i = 0; i < n; i++)
		pageset_add(s, runs[i][0], runs[i][1]);
}

TEST(pageset_runs_across_words)
{
	static const uint64_t runs[][2] = { { 0, 1 }, { 63, 2 }, { 100, 64 }, { 250, 6 } };
	struct pageset s;
	set_of(&s, 256, runs, 4);
	CHECK_EQ(pageset_count(&s), 1 + 2 + 64 + 6);
	CHECK(pageset_test(&s, 64) && !pageset_test(&s, 65) && pageset_test(&s, 163));
	CHECK(!pageset_test(&s, 256)); /* past the end */
	uint64_t pos = 0, cnt, got[8][2];
	int n = 0;
	while (pageset_next_run(&s, &pos, &cnt) && n < 8) {
		got[n][0] = pos;
		got[n][1] = cnt;
		n++;
		pos += cnt;
	}
	CHECK_EQ(n, 4);
	for (int i = 0; i < n && i < 4; i++) {
		CHECK_EQ(got[i][0], runs[i][0]);
		CHECK_EQ(got[i][1], runs[i][1]);
	}
	CHECK_EQ(pageset_runs(&s), 4);
	pageset_add(&s, 254, 100); /* clipped at the end */
	CHECK_EQ(pageset_count(&s), 1 + 2 + 64 + 6);
	pageset_add(&s, 164, 86); /* joins the two last runs */
	CHECK_EQ(pageset_runs(&s), 3);
	pageset_free(&s);
}

TEST(pageset_or_kvm_bitmap)
{
	/* A slot of 100 pages at page offset 128: KVM's bitmap, stray bits past
	 * the slot's end are ignored. */
	struct pageset s;
	pageset_init(&s, 300);
	uint64_t bits[2] = { 0x8000000000000001ULL, ~0ULL };
	pageset_or_bits(&s, 128, bits, 100);
	CHECK(pageset_test(&s, 128) && pageset_test(&s, 191) && pageset_test(&s, 192));
	CHECK(pageset_test(&s, 227) && !pageset_test(&s, 228));
	CHECK_EQ(pageset_count(&s), 2 + 36);
	pageset_or_bits(&s, 129, bits, 10); /* not word-aligned: refused, nothing changes */
	CHECK_EQ(pageset_count(&s), 38);
	struct pageset t;
	pageset_init(&t, 300);
	pageset_add(&t, 0, 3);
	pageset_or(&s, &t);
	CHECK_EQ(pageset_count(&s), 41);
	pageset_free(&s);
	pageset_free(&t);
}

TEST(pageset_encode_roundtrip_and_cap)
{
	static const uint64_t runs[][2] = { { 5, 3 }, { 70, 1 }, { 900, 124 } };
	struct pageset s, d;
	struct enc e;
	struct dec dd;
	set_of(&s, 1024, runs, 3);
	enc_init(&e);
	CHECK_EQ(pageset_encode(&s, &e, 3), 0);
	CHECK_EQ(e.len, 4 + 3 * 16);
	pageset_init(&d, 1024);
	dec_init(&dd, e.buf, e.len);
	CHECK_EQ(pageset_decode(&dd, &d, 3), 0);
	CHECK_EQ(dec_left(&dd), 0);
	CHECK(!memcmp(s.w, d.w, pageset_words(1024) * 8));
	enc_free(&e);
	enc_init(&e);
	CHECK_EQ(pageset_encode(&s, &e, 2), -E2BIG); /* more runs than allowed */
	CHECK_EQ(e.len, 0);
	enc_free(&e);
	pageset_free(&s);
	pageset_free(&d);
}

TEST(pageset_decode_refusals)
{
	static const struct {
		const char *what;
		uint32_t n;
		uint64_t r[2][2];
		int want;
	} t[] = {
		{ "fine", 2, { { 0, 1 }, { 2, 1 } }, 0 },
		{ "empty run", 1, { { 0, 0 } }, -EINVAL },
		{ "touching runs", 2, { { 0, 2 }, { 2, 1 } }, -EINVAL },
		{ "overlapping runs", 2, { { 0, 4 }, { 2, 1 } }, -EINVAL },
		{ "backwards", 2, { { 10, 1 }, { 2, 1 } }, -EINVAL },
		{ "start past the end", 1, { { 64, 1 } }, -EINVAL },
		{ "runs past the end", 1, { { 60, 5 } }, -EINVAL },
		{ "count wraps", 1, { { 1, ~0ULL } }, -EINVAL },
		{ "too many runs", 3, { { 0, 1 }, { 2, 1 } }, -EINVAL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct enc e;
		struct dec d;
		struct pageset s;
		enc_init(&e);
		enc_u32(&e, t[i].n);
		for (uint32_t k = 0; k < t[i].n && k < 2; k++) {
			enc_u64(&e, t[i].r[k][0]);
			enc_u64(&e, t[i].r[k][1]);
		}
		pageset_init(&s, 64);
		dec_init(&d, e.buf, e.len);
		int r = pageset_decode(&d, &s, 2);
		if (r != t[i].want)
			fprintf(stderr, "  %s: %d\n", t[i].what, r);
		CHECK_EQ(r, t[i].want);
		pageset_free(&s);
		enc_free(&e);
	}
}

/* --- the save decision and the plan --- */

TEST(save_decision_table)
{
	static const struct {
		bool same, tracking, other, mapped;
		enum snap_save_how want;
	} t[] = {
		{ false, true, true, false, SNAP_SAVE_NEW_DIR },
		{ false, false, false, true, SNAP_SAVE_NEW_DIR },
		{ true, false, true, false, SNAP_SAVE_FULL },	  /* writes not tracked */
		{ true, true, false, false, SNAP_SAVE_FULL },	  /* other file unknown */
		{ true, true, false, true, SNAP_SAVE_NEW_DIR },	  /* never rewrite a mapped file */
		{ true, false, true, true, SNAP_SAVE_NEW_DIR },
		{ true, true, true, false, SNAP_SAVE_INCREMENTAL },
		{ true, true, true, true, SNAP_SAVE_INCREMENTAL }, /* pages written = RAM's view */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct snap_save_facts f = { t[i].same, t[i].tracking, t[i].other, t[i].mapped };
		const char *why = NULL;
		CHECK_EQ(snap_save_decide(&f, &why), t[i].want);
		CHECK(why && why[0]);
	}
}

TEST(incremental_plan_is_union_of_two_epochs)
{
	static const uint64_t diff_runs[][2] = { { 0, 4 }, { 100, 1 } };
	static const uint64_t dirty_runs[][2] = { { 2, 4 }, { 200, 3 } };
	struct pageset diff, dirty, plan, bad;
	set_of(&diff, 256, diff_runs, 2);
	set_of(&dirty, 256, dirty_runs, 2);
	pageset_init(&plan, 256);
	pageset_add(&plan, 50, 1); /* stale contents are cleared */
	CHECK_EQ(snap_save_plan(&plan, &diff, &dirty), 0);
	CHECK_EQ(pageset_count(&plan), 6 + 1 + 3);
	CHECK(!pageset_test(&plan, 50) && pageset_test(&plan, 5) && pageset_test(&plan, 100));
	CHECK_EQ(pageset_runs(&plan), 3);
	pageset_init(&bad, 128);
	CHECK_EQ(snap_save_plan(&bad, &diff, &dirty), -EINVAL);
	pageset_free(&diff);
	pageset_free(&dirty);
	pageset_free(&plan);
	pageset_free(&bad);
}

/* --- memory-file trailer --- */

TEST(trailer_roundtrip_and_refusals)
{
	uint8_t buf[SNAP_TRAILER_LEN];
	struct snap_trailer t = { .uuid = { 1, 2, 3 }, .gen = 7, .ram_size = 64 << 20 }, u;
	snap_trailer_encode(buf, &t);
	CHECK_EQ(snap_trailer_decode(buf, sizeof(buf), &u), 0);
	CHECK(!memcmp(&t, &u, sizeof(t)));
	for (size_t i = 0; i < 48; i++) { /* magic, version, uuid, gen, size, CRC */
		buf[i] ^= 0x10;
		CHECK(snap_trailer_decode(buf, sizeof(buf), &u) != 0);
		buf[i] ^= 0x10;
	}
	t.gen = 0; /* "being written" */
	snap_trailer_encode(buf, &t);
	CHECK(snap_trailer_decode(buf, sizeof(buf), &u) != 0);
	CHECK(snap_trailer_decode(buf, 20, &u) != 0);
}

/* --- what the VMM writes into guest RAM --- */

TEST(vmm_writes_are_marked_dirty)
{
	static uint8_t ram[1 << 20];
	struct guest_mem gm;
	uint64_t bits[4] = { 0 };
	gm_init_fake(&gm, ram, 0x100000, sizeof(ram));
	gm_mark_dirty(&gm, 0x100000, 4096); /* off: nothing recorded */
	CHECK_EQ(gm_dirty_enable(&gm), 0);
	gm_dirty_take(&gm, bits);
	CHECK_EQ(bits[0], 0);
	CHECK_EQ(gm_write(&gm, 0x100000 + 4095, "ab", 2), 0); /* straddles pages 0 and 1 */
	gm_mark_dirty(&gm, 0x100000 + 10 * 4096, 1);
	gm_mark_dirty(&gm, 0x100000 + 255 * 4096, 1 << 20); /* clipped to RAM */
	gm_mark_dirty(&gm, 0, 0x100000);		      /* below RAM: ignored */
	gm_dirty_take(&gm, bits);
	CHECK_EQ(bits[0], 0x403ULL);
	CHECK_EQ(bits[3], 1ULL << 63);
	memset(bits, 0, sizeof(bits));
	gm_dirty_take(&gm, bits); /* taking clears */
	CHECK_EQ(bits[0] | bits[3], 0);
	free(gm.dirty);
}

TEST(virtqueue_marks_device_writes)
{
	struct vqb b = { 0 };
	struct virtq_chain c;
	uint64_t bits[4] = { 0 };
	vqb_init(&b, 8);
	CHECK_EQ(virtq_activate(&b.q, &b.gm), 0);
	CHECK_EQ(gm_dirty_enable(&b.gm), 0);
	uint32_t out[] = { 16 }, in[] = { 8192 };
	uint16_t h = vqb_chain(&b, out, 1, in, 1);
	vqb_publish(&b, h);
	CHECK_EQ(virtq_pop(&b.q, &c), 1);
	virtq_push(&b.q, c.head, 8192);
	gm_dirty_take(&b.gm, bits);
	/* the writable buffer (after the 16-byte readable one at VQB_BUFS) and
	 * the used ring; not the readable buffer's page unless they share one */
	uint64_t in_gpa = VQB_BUFS + 16;
	for (uint64_t p = in_gpa / 4096; p <= (in_gpa + 8191) / 4096; p++)
		CHECK(bits[p / 64] >> (p % 64) & 1);
	CHECK(bits[VQB_USED / 4096 / 64] >> (VQB_USED / 4096 % 64) & 1);
	CHECK(!(bits[VQB_DESC / 4096 / 64] >> (VQB_DESC / 4096 % 64) & 1));
	CHECK(!(bits[VQB_AVAIL / 4096 / 64] >> (VQB_AVAIL / 4096 % 64) & 1));
	free(b.gm.dirty);
	b.gm.dirty = NULL;
	vqb_free(&b);
}

/* --- loading sets --- */

static const struct loadset_bind bind = {
	.uuid = { 0xde, 0xad, 0xbe, 0xef }, .gen = 3, .ram_size = 64 << 20
};

/* A valid metadata block for @runs; its file size in *@size. */
static struct enc meta_of(const struct loadset_run *runs, uint32_t n, uint64_t *size)
{
	struct enc e;
	uint64_t pages = loadset_data_pages(runs, n), off = 0;
	uint32_t crc[8] = { 0x11, 0x22, 0x33 };
	enc_init(&e);
	CHECK_EQ(loadset_encode_meta(&e, &bind, runs, n, crc, &off), 0);
	CHECK_EQ(off, loadset_data_offset(n, pages));
	*size = off + pages * LOADSET_PAGE;
	return e;
}

static const struct loadset_run good[] = {
	{ .first = 100, .count = 300 }, /* first touched */
	{ .first = 0, .count = 16, .zero = true },
	{ .first = 5000, .count = 1 },
	{ .first = 16, .count = 4 },
};

TEST(loadset_roundtrip)
{
	uint64_t size, len = 0;
	struct enc e = meta_of(good, 4, &size);
	struct loadset ls;
	char why[128] = "";
	CHECK_EQ(loadset_meta_len(e.buf, e.len, &len, why, sizeof(why)), 0);
	CHECK_EQ(len, e.len);
	int r = loadset_parse(e.buf, e.len, size, &bind, &ls, why, sizeof(why));
	if (r)
		fprintf(stderr, "  %s\n", why);
	CHECK_EQ(r, 0);
	CHECK_EQ(ls.nr_runs, 4);
	CHECK_EQ(ls.data_pages, 305);
	CHECK_EQ(ls.nr_chunks, 2);
	CHECK_EQ(ls.chunk_crc[1], 0x22);
	CHECK(ls.runs[1].zero && ls.runs[1].count == 16 && !ls.runs[0].zero);
	CHECK_EQ(ls.runs[2].first, 5000);
	CHECK_EQ(ls.data_off % LOADSET_PAGE, 0);
	loadset_free(&ls);
	enc_free(&e);
}

TEST(loadset_refusals)
{
	uint64_t size;
	struct enc e = meta_of(good, 4, &size);
	struct loadset ls;
	char why[128];
	struct loadset_bind other = bind;
	other.gen = 4;
	CHECK_EQ(loadset_parse(e.buf, e.len, size, &other, &ls, why, sizeof(why)), -ESTALE);
	CHECK(strstr(why, "stale") != NULL);
	other = bind;
	other.uuid[0] ^= 1;
	CHECK_EQ(loadset_parse(e.buf, e.len, size, &other, &ls, why, sizeof(why)), -ESTALE);
	CHECK_EQ(loadset_parse(e.buf, e.len, size + 4096, &bind, &ls, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "size") != NULL);
	for (size_t n = 0; n < e.len; n++)
		if (loadset_parse(e.buf, n, size, &bind, &ls, why, sizeof(why)) == 0) {
			fprintf(stderr, "  truncated to %zu accepted\n", n);
			CHECK(0);
			break;
		}
	for (size_t i = 0; i < e.len; i++) {
		e.buf[i] ^= 0x40;
		if (loadset_parse(e.buf, e.len, size, &bind, &ls, why, sizeof(why)) == 0) {
			fprintf(stderr, "  flip at %zu accepted\n", i);
			CHECK(0);
			break;
		}
		e.buf[i] ^= 0x40;
	}
	enc_free(&e);
}

/* Indexes that are well-formed and correctly checksummed, but inconsistent. */
TEST(loadset_inconsistent_index)
{
	static const struct {
		const char *what;
		struct loadset_run r[2];
	} t[] = {
		{ "overlapping runs", { { .first = 10, .count = 5 }, { .first = 14, .count = 1 } } },
		{ "data run overlapping a zero run",
		  { { .first = 10, .count = 5 }, { .first = 12, .count = 9, .zero = true } } },
		{ "run past RAM", { { .first = 16383, .count = 2 }, { .first = 0, .count = 1 } } },
		{ "run outside RAM", { { .first = 1ULL << 40, .count = 1 }, { .first = 0, .count = 1 } } },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t size;
		struct enc e = meta_of(t[i].r, 2, &size);
		struct loadset ls;
		char why[128];
		int r = loadset_parse(e.buf, e.len, size, &bind, &ls, why, sizeof(why));
		if (r != -EINVAL)
			fprintf(stderr, "  %s: %d\n", t[i].what, r);
		CHECK_EQ(r, -EINVAL);
		enc_free(&e);
	}
	/* an empty loading set is valid (nothing to prefetch) */
	uint64_t size;
	struct enc e = meta_of(NULL, 0, &size);
	struct loadset ls;
	char why[128];
	CHECK_EQ(loadset_parse(e.buf, e.len, size, &bind, &ls, why, sizeof(why)), 0);
	loadset_free(&ls);
	enc_free(&e);
}

int main(void)
{
	RUN(pageset_runs_across_words);
	RUN(pageset_or_kvm_bitmap);
	RUN(pageset_encode_roundtrip_and_cap);
	RUN(pageset_decode_refusals);
	RUN(save_decision_table);
	RUN(incremental_plan_is_union_of_two_epochs);
	RUN(trailer_roundtrip_and_refusals);
	RUN(vmm_writes_are_marked_dirty);
	RUN(virtqueue_marks_device_writes);
	RUN(loadset_roundtrip);
	RUN(loadset_refusals);
	RUN(loadset_inconsistent_index);
	TEST_MAIN_END();
}
