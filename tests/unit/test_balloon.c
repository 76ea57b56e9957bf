/*
 * virtio-balloon: chain parsing (PFNs, statistics, free page reports),
 * the queue-role mapping, the device's recorded memory effects, config
 * space, save/load with corrupted state, the snapshot's BALLOON section
 * and the --balloon option.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/le.h"
#include "harness.h"
#include "snapshot/snapshot.h"
#include "virtio/balloon.h"
#include "virtio/virtio.h"
#include "vq_builder.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

#define PG 4096u
#define F(bit) (1ULL << (bit))
#define F_STATS F(VIRTIO_BALLOON_F_STATS_VQ)
#define F_REPORT F(VIRTIO_BALLOON_F_FREE_PAGE_REPORTING)

/* --- a recorder for the memory effects --- */

struct rec_op {
	char what; /* 'd' discard, 'p' populate */
	uint64_t gpa, len;
};

static struct {
	struct rec_op op[64];
	int n;
} rec;

static int rec_discard(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	if (rec.n < 64)
		rec.op[rec.n++] = (struct rec_op){ 'd', gpa, len };
	return 0;
}

static int rec_populate(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	if (rec.n < 64)
		rec.op[rec.n++] = (struct rec_op){ 'p', gpa, len };
	return 0;
}

static const struct balloon_mem_ops rec_ops = { rec_discard, rec_populate };
static const struct balloon_config all_on = { true, true, true };

/* --- chains built by hand over fake RAM --- */

static uint8_t ram[64 * PG]; /* 64 frames of guest RAM at gpa 0 */
static struct guest_mem gm;
static struct virtq_chain c;
static struct balloon_pfns pfns;
static struct balloon_report rep;

/* A readable chain holding the PFNs, split over iovecs of @split bytes. */
static void pfn_chain(const uint32_t *pfn, unsigned n, unsigned extra_bytes, unsigned split)
{
	static uint8_t buf[20000 * 4 + 8];
	unsigned bytes = n * 4 + extra_bytes;
	memset(&c, 0, sizeof(c));
	for (unsigned i = 0; i < n; i++)
		put32(buf + 4 * i, pfn[i]);
	memset(buf + 4 * n, 0x11, extra_bytes);
	for (unsigned off = 0; off < bytes && c.n_out < VIRTQ_MAX_CHAIN; off += split) {
		unsigned len = bytes - off < split ? bytes - off : split;
		c.iov[c.n_out++] = (struct iovec){ buf + off, len };
		c.out_len += len;
	}
}

TEST(pfns_merge_runs)
{
	gm_init_fake(&gm, ram, 0, sizeof(ram));
	uint32_t p[] = { 16, 17, 18, 40, 39, 38, 5, 7 };
	pfn_chain(p, 8, 0, 1 << 20);
	balloon_parse_pfns(&c, &gm, &pfns);
	CHECK_EQ(pfns.nr_pfns, 8);
	CHECK_EQ(pfns.ignored, 0);
	CHECK(!pfns.truncated);
	CHECK_EQ(pfns.nr_ranges, 4);
	CHECK_EQ(pfns.range[0].gpa, 16 * PG);
	CHECK_EQ(pfns.range[0].len, 3 * PG);
	CHECK_EQ(pfns.range[1].gpa, 38 * PG); /* descending frames merge too */
	CHECK_EQ(pfns.range[1].len, 3 * PG);
	CHECK_EQ(pfns.range[2].gpa, 5 * PG);
	CHECK_EQ(pfns.range[3].gpa, 7 * PG); /* 5 and 7 are not adjacent */
	/* the same PFNs split across iovecs in the middle of a PFN */
	pfn_chain(p, 8, 0, 3);
	balloon_parse_pfns(&c, &gm, &pfns);
	CHECK_EQ(pfns.nr_pfns, 8);
	CHECK_EQ(pfns.nr_ranges, 4);
	CHECK_EQ(pfns.range[1].gpa, 38 * PG);
}

TEST(pfns_outside_ram_ignored)
{
	gm_init_fake(&gm, ram, 0, sizeof(ram));
	uint32_t p[] = { 63, 64, 0xffffffffu, 1000000, 0 };
	pfn_chain(p, 5, 0, 4096);
	balloon_parse_pfns(&c, &gm, &pfns);
	CHECK_EQ(pfns.nr_pfns, 2);
	CHECK_EQ(pfns.ignored, 3);
	CHECK_EQ(pfns.nr_ranges, 2);
	CHECK_EQ(pfns.range[0].gpa, 63 * PG);
	CHECK_EQ(pfns.range[1].gpa, 0);
	/* RAM that does not start at 0: frames below it are outside */
	gm_init_fake(&gm, ram, 32 * PG, sizeof(ram));
	uint32_t q[] = { 31, 32, 95, 96 };
	pfn_chain(q, 4, 0, 4096);
	balloon_parse_pfns(&c, &gm, &pfns);
	CHECK_EQ(pfns.nr_pfns, 2);
	CHECK_EQ(pfns.ignored, 2);
}

TEST(pfns_odd_lengths_and_cap)
{
	gm_init_fake(&gm, ram, 0, sizeof(ram));
	static const struct { unsigned n, extra; unsigned want; bool trunc; } t[] = {
		{ 0, 0, 0, false }, { 0, 3, 0, true }, { 2, 2, 2, true },
		{ 1, 0, 1, false }, { 3, 1, 3, true },
	};
	uint32_t p[4] = { 1, 2, 3, 4 };
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		pfn_chain(p, t[i].n, t[i].extra, 5);
		balloon_parse_pfns(&c, &gm, &pfns);
		CHECK_EQ(pfns.nr_pfns, t[i].want);
		CHECK_EQ(pfns.truncated, t[i].trunc);
	}
	static uint32_t many[5000];
	for (unsigned i = 0; i < 5000; i++)
		many[i] = i % 128; /* half inside RAM */
	pfn_chain(many, 5000, 0, 1 << 20);
	balloon_parse_pfns(&c, &gm, &pfns);
	CHECK(pfns.truncated);
	CHECK_EQ(pfns.nr_pfns + pfns.ignored, BALLOON_MAX_PFNS);
	CHECK(pfns.nr_ranges <= pfns.nr_pfns);
	uint64_t sum = 0;
	for (unsigned i = 0; i < pfns.nr_ranges; i++)
		sum += pfns.range[i].len;
	CHECK_EQ(sum, (uint64_t)pfns.nr_pfns * PG);
}

TEST(stats_parse)
{
	static uint8_t buf[100 * 10];
	struct balloon_guest_stats st;
	memset(&c, 0, sizeof(c));
	put16(buf, BALLOON_S_MEMTOT);
	put64(buf + 2, 512ULL << 20);
	put16(buf + 10, 77); /* unknown: ignored */
	put64(buf + 12, 1);
	put16(buf + 20, BALLOON_S_MEMFREE);
	put64(buf + 22, 100);
	put16(buf + 30, BALLOON_S_MEMFREE); /* repeated: the later wins */
	put64(buf + 32, 200);
	static const struct { unsigned bytes, entries; uint32_t have; uint64_t free; } t[] = {
		{ 0, 0, 0, 0 },
		{ 9, 0, 0, 0 },
		{ 10, 1, 1u << BALLOON_S_MEMTOT, 0 },
		{ 29, 2, 1u << BALLOON_S_MEMTOT, 0 },
		{ 30, 3, 1u << BALLOON_S_MEMTOT | 1u << BALLOON_S_MEMFREE, 100 },
		{ 41, 4, 1u << BALLOON_S_MEMTOT | 1u << BALLOON_S_MEMFREE, 200 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* in two iovecs, split inside an entry */
		unsigned a = t[i].bytes / 2;
		c.iov[0] = (struct iovec){ buf, a };
		c.iov[1] = (struct iovec){ buf + a, t[i].bytes - a };
		c.n_out = 2;
		c.out_len = t[i].bytes;
		CHECK_EQ(balloon_parse_stats(&c, &st), t[i].entries);
		CHECK_EQ(st.have, t[i].have);
		CHECK_EQ(st.val[BALLOON_S_MEMFREE], t[i].free);
	}
	CHECK_EQ(st.val[BALLOON_S_MEMTOT], 512ULL << 20);
	/* more entries than the cap: the rest ignored */
	for (int i = 0; i < 100; i++)
		put16(buf + 10 * i, (uint16_t)(i % 10));
	c.iov[0] = (struct iovec){ buf, sizeof(buf) };
	c.n_out = 1;
	c.out_len = sizeof(buf);
	CHECK_EQ(balloon_parse_stats(&c, &st), BALLOON_MAX_STATS);
	CHECK_EQ(st.have, (1u << BALLOON_S_NR) - 1);
}

TEST(report_parse)
{
	gm_init_fake(&gm, ram, 0x100000, sizeof(ram));
	static uint8_t outside[PG];
	memset(&c, 0, sizeof(c));
	c.iov[0] = (struct iovec){ ram, 8 };			 /* readable: ignored */
	c.iov[1] = (struct iovec){ ram + 4 * PG, 2 * PG };	 /* pages 4-5 */
	c.iov[2] = (struct iovec){ ram + 6 * PG, PG };		 /* page 6: merges */
	c.iov[3] = (struct iovec){ ram + 10 * PG + 1, 2 * PG }; /* only page 11 is whole */
	c.iov[4] = (struct iovec){ ram + 20 * PG, 100 };	 /* no whole page */
	c.iov[5] = (struct iovec){ outside, PG };		 /* not guest RAM */
	c.iov[6] = (struct iovec){ ram + 63 * PG, 2 * PG };	 /* runs past RAM */
	c.n_out = 1;
	c.n_in = 6;
	balloon_parse_report(&c, &gm, &rep);
	CHECK_EQ(rep.nr_ranges, 2);
	CHECK_EQ(rep.range[0].gpa, 0x100000 + 4 * PG);
	CHECK_EQ(rep.range[0].len, 3 * PG);
	CHECK_EQ(rep.range[1].gpa, 0x100000 + 11 * PG);
	CHECK_EQ(rep.range[1].len, PG);
	CHECK_EQ(rep.bytes, 4 * PG);
	CHECK_EQ(rep.ignored, 4);
}

TEST(queue_roles)
{
#define N BALLOON_Q_NONE
#define I BALLOON_Q_INFLATE
#define D BALLOON_Q_DEFLATE
#define S BALLOON_Q_STATS
#define R BALLOON_Q_REPORTING
	static const struct { uint64_t f; enum balloon_role want[4]; } t[] = {
		{ 0, { I, D, N, N } },
		{ F_STATS, { I, D, S, N } },
		{ F_REPORT, { I, D, R, N } }, /* Linux numbers reporting 2 without stats */
		{ F_STATS | F_REPORT, { I, D, S, R } },
		{ F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | F(VIRTIO_F_VERSION_1), { I, D, N, N } },
	};
#undef N
#undef I
#undef D
#undef S
#undef R
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum balloon_role r[BALLOON_NR_QUEUES];
		balloon_queue_roles(t[i].f, r);
		for (int q = 0; q < BALLOON_NR_QUEUES; q++)
			CHECK_EQ(r[q], t[i].want[q]);
	}
	struct balloon_config none = { false, false, false };
	CHECK_EQ(balloon_features(&all_on), F_STATS | F_REPORT | F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	CHECK_EQ(balloon_features(&none), 0);
}

/* --- the device, driven through fake queues --- */

static struct vqb vb;

/* A device on vb's RAM with @features negotiated and queue @qi on vb. */
static struct balloon *device(const struct balloon_config *cfg, uint64_t features, int qi)
{
	vqb_free(&vb);
	vqb_init(&vb, 16);
	rec.n = 0;
	struct balloon *b = balloon_new(&vb.gm, cfg, &rec_ops, NULL);
	struct virtio_dev *d = balloon_vdev(b);
	d->driver_features = features | F(VIRTIO_F_VERSION_1);
	d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		    VIRTIO_STATUS_DRIVER_OK;
	if (qi >= 0) {
		d->q[qi].vq.size = vb.q.size;
		d->q[qi].vq.desc_gpa = vb.q.desc_gpa;
		d->q[qi].vq.avail_gpa = vb.q.avail_gpa;
		d->q[qi].vq.used_gpa = vb.q.used_gpa;
		CHECK_EQ(virtq_activate(&d->q[qi].vq, &vb.gm), 0);
		d->q[qi].enabled = true;
	}
	return b;
}

/* Post a one-buffer readable chain of PFNs on vb; returns the head. */
static uint16_t post_pfns(const uint32_t *pfn, unsigned n)
{
	uint32_t len = 4 * n;
	uint16_t h = vqb_chain(&vb, &len, 1, NULL, 0);
	uint64_t a = le64(vb.ram + VQB_DESC + 16u * h);
	for (unsigned i = 0; i < n; i++)
		put32(vb.ram + a + 4 * i, pfn[i]);
	vqb_publish(&vb, h);
	return h;
}

static void notify(struct balloon *b, int qi)
{
	struct virtio_dev *d = balloon_vdev(b);
	d->ops->queue_notify(d, qi);
}

TEST(inflate_deflate_effects)
{
	struct balloon *b = device(&all_on, F_STATS | F_REPORT, 0);
	struct balloon_info bi;
	uint32_t p[] = { 100, 101, 102, 200, 9999999 };
	uint16_t h = post_pfns(p, 5);
	notify(b, 0);
	CHECK_EQ(rec.n, 2);
	CHECK(rec.op[0].what == 'd' && rec.op[0].gpa == 100 * PG && rec.op[0].len == 3 * PG);
	CHECK(rec.op[1].what == 'd' && rec.op[1].gpa == 200 * PG && rec.op[1].len == PG);
	CHECK_EQ(vqb_used_idx(&vb), 1);
	uint32_t id, len;
	vqb_used_elem(&vb, 0, &id, &len);
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.inflated_pages, 4);
	CHECK_EQ(bi.inflate_ops, 1);
	CHECK_EQ(bi.ignored_pfns, 1);
	balloon_free(b);

	/* deflate on queue 1: populate, and the count goes down (never below 0) */
	b = device(&all_on, F_STATS | F_REPORT, 1);
	uint32_t q[] = { 101, 102 };
	post_pfns(q, 2);
	notify(b, 1);
	CHECK_EQ(rec.n, 1);
	CHECK(rec.op[0].what == 'p' && rec.op[0].gpa == 101 * PG && rec.op[0].len == 2 * PG);
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.inflated_pages, 0);
	CHECK_EQ(bi.deflate_ops, 1);
	balloon_free(b);
}

TEST(reporting_effects_and_index)
{
	/* reporting is queue 3 with stats, queue 2 without */
	static const struct { uint64_t f; int qi; } t[] = { { F_STATS | F_REPORT, 3 },
							    { F_REPORT, 2 } };
	for (size_t i = 0; i < 2; i++) {
		struct balloon *b = device(&all_on, t[i].f, t[i].qi);
		uint32_t in[] = { 2 * PG, PG, 100 };
		uint16_t h = vqb_chain(&vb, NULL, 0, in, 3);
		vqb_publish(&vb, h);
		notify(b, t[i].qi);
		CHECK_EQ(rec.n, 1);
		CHECK(rec.op[0].what == 'd' && rec.op[0].gpa == VQB_BUFS && rec.op[0].len == 3 * PG);
		CHECK_EQ(vqb_used_idx(&vb), 1);
		struct balloon_info bi;
		balloon_get_info(b, &bi);
		CHECK_EQ(bi.reported_bytes, 3 * PG);
		CHECK_EQ(bi.inflated_pages, 0);
		CHECK(!(balloon_vdev(b)->status & VIRTIO_STATUS_NEEDS_RESET));
		balloon_free(b);
	}
	/* a notify on a queue these features do not have: needs reset */
	struct balloon *b = device(&all_on, F_STATS, 3);
	notify(b, 3);
	CHECK(balloon_vdev(b)->status & VIRTIO_STATUS_NEEDS_RESET);
	balloon_free(b);
}

/* Post a statistics buffer of @n entries (tag i, value v+i). */
static uint16_t post_stats(unsigned n, uint64_t v)
{
	uint32_t len = 10 * n;
	uint16_t h = vqb_chain(&vb, &len, 1, NULL, 0);
	uint64_t a = le64(vb.ram + VQB_DESC + 16u * h);
	for (unsigned i = 0; i < n; i++) {
		put16(vb.ram + a + 10 * i, (uint16_t)i);
		put64(vb.ram + a + 10 * i + 2, v + i);
	}
	vqb_publish(&vb, h);
	return h;
}

TEST(stats_buffer_held_and_returned)
{
	struct balloon *b = device(&all_on, F_STATS | F_REPORT, 2);
	struct balloon_info bi;
	uint64_t cnt;
	CHECK_EQ(balloon_request_stats(b), -EAGAIN); /* nothing posted yet */
	uint16_t h = post_stats(6, 1000);
	notify(b, 2);
	CHECK_EQ(vqb_used_idx(&vb), 0); /* kept, not returned */
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.stats.seq, 1);
	CHECK_EQ(bi.stats.have, 0x3f);
	CHECK_EQ(bi.stats.val[BALLOON_S_MEMTOT], 1005);
	CHECK(bi.stats.updated_ns != 0);
	CHECK_EQ(read(balloon_event_fd(b), &cnt, 8), 8);	 /* signalled */
	CHECK_EQ(read(balloon_event_fd(b), &cnt, 8), -1); /* drained */
	CHECK_EQ(balloon_request_stats(b), 0);
	CHECK_EQ(vqb_used_idx(&vb), 1);
	uint32_t id, len;
	vqb_used_elem(&vb, 0, &id, &len);
	CHECK_EQ(id, h);
	CHECK_EQ(len, 0);
	CHECK_EQ(balloon_request_stats(b), -EAGAIN); /* already out */
	post_stats(2, 7);
	notify(b, 2);
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.stats.seq, 2);
	CHECK_EQ(bi.stats.have, 0x3);
	/* a second buffer while one is held: the older goes back */
	post_stats(1, 1);
	notify(b, 2);
	CHECK_EQ(vqb_used_idx(&vb), 2);
	/* reset forgets the held buffer */
	balloon_vdev(b)->ops->reset(balloon_vdev(b));
	CHECK_EQ(balloon_request_stats(b), -EAGAIN);
	balloon_free(b);
}

TEST(config_space_and_target)
{
	struct balloon *b = device(&all_on, 0, -1);
	struct virtio_dev *d = balloon_vdev(b);
	struct balloon_info bi;
	uint8_t v[8];
	uint64_t cnt;
	balloon_set_target(b, 100);
	d->ops->config_read(d, 0, v, 8);
	CHECK_EQ(le32(v), 100);
	CHECK_EQ(le32(v + 4), 0);
	balloon_set_target(b, 1ULL << 40); /* clamped to RAM: 1 MiB = 256 pages */
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.target_pages, VQB_RAM_SIZE / PG);
	put32(v, 0xdead);
	d->ops->config_write(d, 0, v, 4); /* num_pages is the host's */
	put32(v, 77);
	d->ops->config_write(d, 4, v, 4);
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.target_pages, 256);
	CHECK_EQ(bi.actual_pages, 77);
	CHECK(bi.actual_changed_ns != 0);
	CHECK_EQ(read(balloon_event_fd(b), &cnt, 8), 8);
	v[0] = 1;
	d->ops->config_write(d, 5, v, 1); /* byte writes merge */
	balloon_get_info(b, &bi);
	CHECK_EQ(bi.actual_pages, 77 + 256);
	d->ops->config_read(d, 6, v, 2);
	CHECK_EQ(le16(v), 0);
	balloon_free(b);
}

/* --- save/load --- */

static struct enc saved;

/* A device with some state, saved into `saved`. */
static struct balloon *saved_device(void)
{
	struct balloon *b = device(&all_on, F_STATS | F_REPORT, 2);
	balloon_set_target(b, 50);
	post_stats(10, 5);
	notify(b, 2);
	uint8_t v[4];
	put32(v, 3);
	balloon_vdev(b)->ops->config_write(balloon_vdev(b), 4, v, 4);
	enc_free(&saved);
	enc_init(&saved);
	CHECK_EQ(balloon_vdev(b)->ops->save(balloon_vdev(b), &saved), 0);
	return b;
}

/* A fresh device shaped like the saved one, loading @buf. */
static int load_into_fresh(const struct balloon_config *cfg, const uint8_t *buf, size_t len,
			   struct balloon_info *bi)
{
	struct balloon *b = balloon_new(&vb.gm, cfg, &rec_ops, NULL);
	struct virtio_dev *d = balloon_vdev(b);
	struct dec dd;
	d->driver_features = F_STATS | F_REPORT | F(VIRTIO_F_VERSION_1);
	d->q[2].enabled = true;
	d->q[2].vq.size = 16;
	dec_init(&dd, buf, len);
	int r = d->ops->load(d, &dd);
	if (bi)
		balloon_get_info(b, bi);
	balloon_free(b);
	return r;
}

TEST(save_load_roundtrip)
{
	struct balloon *b = saved_device();
	struct balloon_info want, got;
	balloon_get_info(b, &want);
	CHECK_EQ(load_into_fresh(&all_on, saved.buf, saved.len, &got), 0);
	CHECK_EQ(got.target_pages, 50);
	CHECK_EQ(got.actual_pages, 3);
	CHECK_EQ(got.stats.seq, want.stats.seq);
	CHECK_EQ(got.stats.have, want.stats.have);
	CHECK(!memcmp(got.stats.val, want.stats.val, sizeof(got.stats.val)));
	CHECK(got.stats.updated_ns != 0 && got.actual_changed_ns != 0);
	balloon_free(b);

	/* the loaded device still holds the stats buffer and can return it */
	b = balloon_new(&vb.gm, &all_on, &rec_ops, NULL);
	struct virtio_dev *d = balloon_vdev(b);
	struct dec dd;
	d->driver_features = F_STATS | F_REPORT | F(VIRTIO_F_VERSION_1);
	d->status = VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
	d->q[2].vq.size = 16;
	d->q[2].vq.desc_gpa = VQB_DESC;
	d->q[2].vq.avail_gpa = VQB_AVAIL;
	d->q[2].vq.used_gpa = VQB_USED;
	d->q[2].vq.last_avail = 1;
	CHECK_EQ(virtq_activate(&d->q[2].vq, &vb.gm), 0);
	d->q[2].enabled = true;
	dec_init(&dd, saved.buf, saved.len);
	CHECK_EQ(d->ops->load(d, &dd), 0);
	CHECK_EQ(balloon_request_stats(b), 0);
	CHECK_EQ(vqb_used_idx(&vb), 1);
	balloon_free(b);
}

TEST(load_refuses_corruption)
{
	struct balloon *b = saved_device();
	balloon_free(b);
	uint8_t *buf = malloc(saved.len + 1);
	/* every truncation, and a trailing byte */
	for (size_t n = 0; n < saved.len; n++)
		if (load_into_fresh(&all_on, saved.buf, n, NULL) == 0) {
			fprintf(stderr, "  truncated to %zu accepted\n", n);
			CHECK(0);
			break;
		}
	memcpy(buf, saved.buf, saved.len);
	buf[saved.len] = 0;
	CHECK_EQ(load_into_fresh(&all_on, buf, saved.len + 1, NULL), -EINVAL);
	/* another configuration */
	struct balloon_config nostats = { false, true, true };
	CHECK_EQ(load_into_fresh(&nostats, saved.buf, saved.len, NULL), -EINVAL);
	/* field by field: offsets in the layout of balloon_save */
	static const struct { size_t off; unsigned bytes; uint64_t val; } bad[] = {
		{ 0, 2, 2 },		       /* version */
		{ 2, 1, 0x08 },		       /* unknown configuration bit */
		{ 3, 4, 257 },		       /* num_pages beyond RAM (256 pages) */
		{ 19, 8, 1000 },	       /* inflated pages beyond RAM */
		{ 59, 1, 2 },		       /* roles valid not 0/1 */
		{ 62, 1, BALLOON_Q_REPORTING }, /* role mapping not the features' */
		{ 64, 1, 2 },		       /* held not 0/1 */
		{ 65, 2, 16 },		       /* head >= queue size */
		{ 67, 4, 1u << BALLOON_S_NR }, /* a stats tag that does not exist */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(buf, saved.buf, saved.len);
		le_put(buf + bad[i].off, bad[i].bytes, bad[i].val);
		int r = load_into_fresh(&all_on, buf, saved.len, NULL);
		if (r != -EINVAL)
			fprintf(stderr, "  corruption %zu accepted\n", i);
		CHECK_EQ(r, -EINVAL);
	}
	/* held, but the stats queue is not enabled */
	struct balloon *f = balloon_new(&vb.gm, &all_on, &rec_ops, NULL);
	struct virtio_dev *d = balloon_vdev(f);
	struct dec dd;
	d->driver_features = F_STATS | F_REPORT | F(VIRTIO_F_VERSION_1);
	dec_init(&dd, saved.buf, saved.len);
	CHECK_EQ(d->ops->load(d, &dd), -EINVAL);
	balloon_free(f);
	free(buf);
}

/* --- the snapshot's BALLOON section, spliced into the golden state file --- */

static int parse_with_balloon_section(const uint8_t *payload, uint32_t len, char *err)
{
	FILE *f = fopen(GOLDEN_DIR "/v1-loop-2cpu-rng/state", "rb");
	if (!f)
		return -100;
	uint8_t *g = malloc(1 << 20);
	size_t n = fread(g, 1, 1 << 20, f);
	fclose(f);
	/* The END section closes the file: id 0xffff, 16 bytes, empty payload. */
	if (n < 16 || le32(g + n - 16) != SNAP_SEC_END) {
		free(g);
		return -101;
	}
	uint8_t sec[16 + 16];
	put32(sec, SNAP_SEC_BALLOON);
	put16(sec + 4, 1);
	put16(sec + 6, SNAP_SEC_F_REQUIRED);
	put32(sec + 8, len);
	put32(sec + 12, crc32c(crc32c(0, sec, 12), payload, len));
	memcpy(sec + 16, payload, len);
	uint8_t *out = malloc(n + 16 + len);
	memcpy(out, g, n - 16);
	memcpy(out + n - 16, sec, 16 + len);
	memcpy(out + n + len, g + n - 16, 16);
	int r = snapshot_parse(out, n + 16 + len, NULL, err, 256);
	free(out);
	free(g);
	return r;
}

TEST(snapshot_balloon_section)
{
	char err[256] = "";
	uint8_t ok = 7, bad = 0x18, two[2] = { 1, 0 };
	CHECK_EQ(parse_with_balloon_section(&ok, 1, err), 0);
	CHECK_EQ(parse_with_balloon_section(&bad, 1, err), -EINVAL);
	CHECK(strstr(err, "balloon") != NULL);
	CHECK_EQ(parse_with_balloon_section(two, 2, err), -EINVAL);
	CHECK_EQ(parse_with_balloon_section(two, 0, err), -EINVAL);
	/* the flags byte round-trips through the codec */
	struct enc e;
	struct dec d;
	struct balloon_config cfg = { true, false, true }, back;
	enc_init(&e);
	balloon_config_encode(&e, &cfg);
	dec_init(&d, e.buf, e.len);
	CHECK_EQ(balloon_config_decode(&d, &back), 0);
	CHECK(back.stats && !back.deflate_on_oom && back.free_page_reporting);
	enc_free(&e);
}

TEST(balloon_option)
{
	static const struct { const char *in; int rc; bool s, d, r; } t[] = {
		{ NULL, 0, true, true, true },
		{ "", 0, true, true, true },
		{ "nostats", 0, false, true, true },
		{ "nodeflate-on-oom,noreporting", 0, true, false, false },
		{ "nostats,nostats", 0, false, true, true },
		{ "bogus", -EINVAL, 0, 0, 0 },
		{ "nostats,", -EINVAL, 0, 0, 0 },
		{ ",nostats", -EINVAL, 0, 0, 0 },
		{ "nostatsx", -EINVAL, 0, 0, 0 },
		{ "nostat", -EINVAL, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct balloon_config b;
		char err[128] = "";
		int rc = config_parse_balloon(t[i].in, &b, err, sizeof(err));
		CHECK_EQ(rc, t[i].rc);
		if (rc == 0)
			CHECK(b.stats == t[i].s && b.deflate_on_oom == t[i].d &&
			      b.free_page_reporting == t[i].r);
		else
			CHECK(strstr(err, "--balloon") != NULL);
	}
}

int main(void)
{
	RUN(pfns_merge_runs);
	RUN(pfns_outside_ram_ignored);
	RUN(pfns_odd_lengths_and_cap);
	RUN(stats_parse);
	RUN(report_parse);
	RUN(queue_roles);
	RUN(inflate_deflate_effects);
	RUN(reporting_effects_and_index);
	RUN(stats_buffer_held_and_returned);
	RUN(config_space_and_target);
	RUN(save_load_roundtrip);
	RUN(load_refuses_corruption);
	RUN(snapshot_balloon_section);
	RUN(balloon_option);
	vqb_free(&vb);
	enc_free(&saved);
	TEST_MAIN_END();
}
