/*
 * virtio-balloon (virtio spec 5.5): inflate/deflate queues of le32 PFNs,
 * the statistics queue (one buffer the device holds until the host wants
 * fresh numbers) and the free page reporting queue.
 * Parts, in order: config, state, parsing (pure), effects, queue handlers,
 * config space, save/load, ops table, creation and the host-side API.
 */
#define _GNU_SOURCE
#include "virtio/balloon.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/le.h"
#include "core/clock.h"
#include "core/log.h"
#include "virtio/virtio.h"

/* --- config --- */

#define BALLOON_QUEUE_SIZE 128 /* Linux needs >= 32 (PAGE_REPORTING_CAPACITY) on reporting */
#define BALLOON_CONFIG_SIZE 8  /* num_pages, actual: no hinting, no poison value */
#define BALLOON_PAGE (1ULL << BALLOON_PFN_SHIFT)
#define BALLOON_SAVE_VERSION 1
#define BALLOON_NEVER UINT64_MAX /* saved age of something that never happened */

/* Configuration flags byte (snapshot MACHINE description, device state). */
#define BALLOON_CFG_STATS 1
#define BALLOON_CFG_DEFLATE_ON_OOM 2
#define BALLOON_CFG_REPORTING 4

/* Conditions logged once per device. */
enum {
	WARN_PFN_OUTSIDE = 1 << 0,
	WARN_PFN_TAIL = 1 << 1,
	WARN_REPORT_BAD = 1 << 2,
	WARN_EFFECT = 1 << 3,
	WARN_STATS_TWICE = 1 << 4,
};

/* --- state --- */

struct balloon {
	struct virtio_dev vdev;
	const struct guest_mem *gm;
	struct balloon_config cfg;
	const struct balloon_mem_ops *mops;
	void *mctx;
	int event_fd;
	uint64_t ram_pages;

	/* Configuration space. */
	uint32_t num_pages; /* host -> driver target */
	uint32_t actual;    /* driver -> host */
	uint64_t actual_changed_ns;

	/* Transport queue index -> role, fixed once the features are. */
	bool roles_valid;
	enum balloon_role role[BALLOON_NR_QUEUES];

	/* The statistics buffer the driver posted, kept until the host asks. */
	bool stats_held;
	uint16_t stats_head;
	struct balloon_guest_stats stats;

	/* Counters, as the host saw them. */
	uint64_t inflated_pages, inflate_ops, deflate_ops, reported_bytes, ignored_pfns;
	unsigned warned; /* WARN_* bits already logged */

	/* Scratch for the I/O thread. */
	struct virtq_chain chain;
	struct balloon_pfns pfns;
	struct balloon_report report;
};

__attribute__((format(printf, 3, 4)))
static void balloon_warn_once(struct balloon *b, unsigned bit, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (b->warned & bit)
		return;
	b->warned |= bit;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_warn("virtio-balloon: %s (logged once)", msg);
}

static void balloon_signal(struct balloon *b)
{
	uint64_t one = 1;
	if (write(b->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_debug("virtio-balloon: event fd: %s", strerror(errno));
}

/* --- parsing (pure) --- */

static void range_add(struct balloon_range *r, unsigned *n, unsigned max, uint64_t gpa,
		      uint64_t len)
{
	if (*n) {
		struct balloon_range *last = &r[*n - 1];
		if (last->gpa + last->len == gpa) {
			last->len += len;
			return;
		}
		if (gpa + len == last->gpa) {
			last->gpa = gpa;
			last->len += len;
			return;
		}
	}
	if (*n < max)
		r[(*n)++] = (struct balloon_range){ gpa, len };
}

void balloon_parse_pfns(const struct virtq_chain *c, const struct guest_mem *gm,
			struct balloon_pfns *out)
{
	uint8_t buf[256 * 4];
	uint64_t n = c->out_len / 4;

	out->nr_ranges = out->nr_pfns = out->ignored = 0;
	out->truncated = c->out_len % 4 != 0;
	if (n > BALLOON_MAX_PFNS) {
		n = BALLOON_MAX_PFNS;
		out->truncated = true;
	}
	for (uint64_t i = 0; i < n;) {
		uint64_t k = n - i < 256 ? n - i : 256;
		uint64_t got = virtq_chain_read(c, i * 4, buf, k * 4) / 4;
		for (uint64_t j = 0; j < got; j++) {
			uint64_t gpa = (uint64_t)le32(buf + 4 * j) << BALLOON_PFN_SHIFT;
			if (!gm_ptr(gm, gpa, BALLOON_PAGE)) {
				out->ignored++;
				continue;
			}
			out->nr_pfns++;
			/* At most one range per PFN: the array never overflows. */
			range_add(out->range, &out->nr_ranges, BALLOON_MAX_PFNS, gpa, BALLOON_PAGE);
		}
		if (got < k)
			break; /* cannot happen: out_len counts these bytes */
		i += k;
	}
}

unsigned balloon_parse_stats(const struct virtq_chain *c, struct balloon_guest_stats *st)
{
	uint8_t buf[BALLOON_MAX_STATS * BALLOON_STAT_BYTES];
	uint64_t n = c->out_len / BALLOON_STAT_BYTES;

	memset(st->val, 0, sizeof(st->val));
	st->have = 0;
	if (n > BALLOON_MAX_STATS)
		n = BALLOON_MAX_STATS;
	n = virtq_chain_read(c, 0, buf, n * BALLOON_STAT_BYTES) / BALLOON_STAT_BYTES;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = buf + i * BALLOON_STAT_BYTES;
		uint16_t tag = le16(e);
		if (tag >= BALLOON_S_NR)
			continue; /* a newer driver's statistic */
		st->val[tag] = le64(e + 2);
		st->have |= 1u << tag;
	}
	return (unsigned)n;
}

void balloon_parse_report(const struct virtq_chain *c, const struct guest_mem *gm,
			  struct balloon_report *out)
{
	out->nr_ranges = 0;
	out->bytes = 0;
	out->ignored = c->n_out; /* the driver reports free pages in writable buffers */
	for (unsigned i = c->n_out; i < c->n_out + c->n_in && i < VIRTQ_MAX_CHAIN; i++) {
		uint64_t gpa;
		if (gm_hva_to_gpa(gm, c->iov[i].iov_base, c->iov[i].iov_len, &gpa)) {
			out->ignored++;
			continue;
		}
		uint64_t start = (gpa + BALLOON_PAGE - 1) & ~(BALLOON_PAGE - 1);
		uint64_t end = (gpa + c->iov[i].iov_len) & ~(BALLOON_PAGE - 1);
		if (end <= start) {
			out->ignored++;
			continue;
		}
		range_add(out->range, &out->nr_ranges, VIRTQ_MAX_CHAIN, start, end - start);
		out->bytes += end - start;
	}
}

void balloon_queue_roles(uint64_t features, enum balloon_role role[BALLOON_NR_QUEUES])
{
	int i = 0;

	for (int k = 0; k < BALLOON_NR_QUEUES; k++)
		role[k] = BALLOON_Q_NONE;
	role[i++] = BALLOON_Q_INFLATE;
	role[i++] = BALLOON_Q_DEFLATE;
	if (features >> VIRTIO_BALLOON_F_STATS_VQ & 1)
		role[i++] = BALLOON_Q_STATS;
	/* FREE_PAGE_HINT's queue would come here; it is never offered. */
	if (features >> VIRTIO_BALLOON_F_FREE_PAGE_REPORTING & 1)
		role[i++] = BALLOON_Q_REPORTING;
}

uint64_t balloon_features(const struct balloon_config *cfg)
{
	return (cfg->stats ? 1ULL << VIRTIO_BALLOON_F_STATS_VQ : 0) |
	       (cfg->deflate_on_oom ? 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0) |
	       (cfg->free_page_reporting ? 1ULL << VIRTIO_BALLOON_F_FREE_PAGE_REPORTING : 0);
}

void balloon_config_encode(struct enc *e, const struct balloon_config *cfg)
{
	enc_u8(e, (uint8_t)((cfg->stats ? BALLOON_CFG_STATS : 0) |
			    (cfg->deflate_on_oom ? BALLOON_CFG_DEFLATE_ON_OOM : 0) |
			    (cfg->free_page_reporting ? BALLOON_CFG_REPORTING : 0)));
}

int balloon_config_decode(struct dec *d, struct balloon_config *cfg)
{
	uint8_t f = dec_u8(d);
	if (d->err || (f & ~(BALLOON_CFG_STATS | BALLOON_CFG_DEFLATE_ON_OOM | BALLOON_CFG_REPORTING)))
		return -EINVAL;
	cfg->stats = f & BALLOON_CFG_STATS;
	cfg->deflate_on_oom = f & BALLOON_CFG_DEFLATE_ON_OOM;
	cfg->free_page_reporting = f & BALLOON_CFG_REPORTING;
	return 0;
}

/* --- effects --- */

/* Discard (inflate, reporting) or populate (deflate) each range. */
static void balloon_apply(struct balloon *b, const struct balloon_range *r, unsigned n,
			  bool discard)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = discard ? b->mops->discard(b->mctx, r[i].gpa, r[i].len)
				  : b->mops->populate(b->mctx, r[i].gpa, r[i].len);
		if (ret)
			balloon_warn_once(b, WARN_EFFECT, "%s %#llx+%#llx: %s",
					  discard ? "discard" : "populate",
					  (unsigned long long)r[i].gpa, (unsigned long long)r[i].len,
					  strerror(-ret));
	}
}

static void balloon_do_pfns(struct balloon *b, bool inflate)
{
	struct balloon_pfns *p = &b->pfns;

	balloon_parse_pfns(&b->chain, b->gm, p);
	if (p->ignored) {
		b->ignored_pfns += p->ignored;
		balloon_warn_once(b, WARN_PFN_OUTSIDE, "%s: %u PFNs outside guest RAM ignored",
				  inflate ? "inflate" : "deflate", p->ignored);
	}
	if (p->truncated)
		balloon_warn_once(b, WARN_PFN_TAIL, "%s: chain of %llu bytes: not a multiple of 4 "
				  "or more than %d PFNs; the rest ignored",
				  inflate ? "inflate" : "deflate",
				  (unsigned long long)b->chain.out_len, BALLOON_MAX_PFNS);
	balloon_apply(b, p->range, p->nr_ranges, inflate);
	if (inflate) {
		b->inflate_ops++;
		b->inflated_pages += p->nr_pfns;
		if (b->inflated_pages > b->ram_pages)
			b->inflated_pages = b->ram_pages; /* repeated PFNs: never above RAM */
	} else {
		b->deflate_ops++;
		b->inflated_pages -= p->nr_pfns < b->inflated_pages ? p->nr_pfns : b->inflated_pages;
	}
}

static void balloon_do_report(struct balloon *b)
{
	struct balloon_report *r = &b->report;

	balloon_parse_report(&b->chain, b->gm, r);
	if (r->ignored)
		balloon_warn_once(b, WARN_REPORT_BAD, "reporting: %u buffers that are not whole "
				  "writable pages of RAM ignored", r->ignored);
	balloon_apply(b, r->range, r->nr_ranges, true);
	b->reported_bytes += r->bytes;
}

/* Take a statistics buffer: parse it and keep it until the host asks. */
static bool balloon_do_stats(struct balloon *b, struct virtq *q)
{
	bool pushed = false;

	if (b->stats_held) {
		/* A second buffer: the driver broke the one-buffer protocol; return the old. */
		balloon_warn_once(b, WARN_STATS_TWICE, "stats: a second buffer while one is held");
		virtq_push(q, b->stats_head, 0);
		pushed = true;
	}
	balloon_parse_stats(&b->chain, &b->stats);
	b->stats.updated_ns = mono_ns();
	b->stats.actual_pages = b->actual;
	b->stats.seq++;
	b->stats_held = true;
	b->stats_head = b->chain.head;
	balloon_signal(b);
	return pushed;
}

/* --- queue handlers (I/O thread, dev->lock held) --- */

static enum balloon_role balloon_role_at(struct balloon *b, int qi)
{
	if (!b->roles_valid) {
		balloon_queue_roles(b->vdev.driver_features, b->role);
		b->roles_valid = true;
	}
	return qi >= 0 && qi < BALLOON_NR_QUEUES ? b->role[qi] : BALLOON_Q_NONE;
}

static int balloon_stats_queue(struct balloon *b)
{
	for (int i = 0; b->roles_valid && i < BALLOON_NR_QUEUES; i++)
		if (b->role[i] == BALLOON_Q_STATS)
			return i;
	return -1;
}

static void balloon_queue_notify(struct virtio_dev *d, int qi)
{
	struct balloon *b = d->priv;
	struct virtq *q = &d->q[qi].vq;
	enum balloon_role role = balloon_role_at(b, qi);
	bool pushed = false;
	int r;

	if (role == BALLOON_Q_NONE) {
		virtio_set_needs_reset(d, "notify on a queue the negotiated features do not have");
		return;
	}
	while ((r = virtq_pop(q, &b->chain)) == 1) {
		switch (role) {
		case BALLOON_Q_INFLATE:
		case BALLOON_Q_DEFLATE:
			balloon_do_pfns(b, role == BALLOON_Q_INFLATE);
			virtq_push(q, b->chain.head, 0);
			pushed = true;
			break;
		case BALLOON_Q_REPORTING:
			balloon_do_report(b);
			virtq_push(q, b->chain.head, 0);
			pushed = true;
			break;
		case BALLOON_Q_STATS:
			pushed |= balloon_do_stats(b, q);
			break;
		case BALLOON_Q_NONE:
			break;
		}
	}
	if (r < 0)
		virtio_set_needs_reset(d, "virtqueue protocol violation");
	if (pushed)
		virtio_notify(d, qi);
}

static void balloon_reset(struct virtio_dev *d)
{
	struct balloon *b = d->priv;

	/* The held chain belonged to the old rings; the inflated pages stay
	 * discarded on the host, which is harmless. */
	b->stats_held = false;
	b->roles_valid = false;
}

/* --- config space --- */

static void balloon_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size)
{
	struct balloon *b = d->priv;
	uint8_t cfg[BALLOON_CONFIG_SIZE];

	put32(cfg, b->num_pages);
	put32(cfg + 4, b->actual);
	memcpy(data, cfg + off, size); /* the transport bounds off + size */
}

static void balloon_config_write(struct virtio_dev *d, uint32_t off, const uint8_t *data,
				 uint32_t size)
{
	struct balloon *b = d->priv;
	uint8_t cfg[BALLOON_CONFIG_SIZE];

	put32(cfg + 4, b->actual);
	for (uint32_t i = 0; i < size; i++)
		if (off + i >= 4 && off + i < 8) /* num_pages is read-only to the driver */
			cfg[off + i] = data[i];
	uint32_t actual = le32(cfg + 4);
	if (actual != b->actual) {
		b->actual = actual;
		b->actual_changed_ns = mono_ns();
		balloon_signal(b);
	}
}

/* --- save/load --- */

static uint64_t age_of(uint64_t stamp, uint64_t now)
{
	return stamp ? (now > stamp ? now - stamp : 0) : BALLOON_NEVER;
}

static uint64_t stamp_of(uint64_t age, uint64_t now)
{
	if (age == BALLOON_NEVER)
		return 0;
	return age < now ? now - age : 1;
}

/*
 * Device payload after the transport's: version u16, configuration flags
 * u8, num_pages u32, actual u32, age of the last actual change u64 (ns, or
 * all ones for never), inflated pages, inflate ops, deflate ops, reported
 * bytes, ignored PFNs (u64 each), roles valid u8 + 4 x role u8, stats held
 * u8 + head u16, guest stats: have u32, 10 x u64, seq u64, age u64. Ages,
 * not monotonic clock stamps: the clock restarts with the process.
 */
static int balloon_save(struct virtio_dev *d, struct enc *e)
{
	struct balloon *b = d->priv;
	uint64_t now = mono_ns();

	enc_u16(e, BALLOON_SAVE_VERSION);
	balloon_config_encode(e, &b->cfg);
	enc_u32(e, b->num_pages);
	enc_u32(e, b->actual);
	enc_u64(e, age_of(b->actual_changed_ns, now));
	enc_u64(e, b->inflated_pages);
	enc_u64(e, b->inflate_ops);
	enc_u64(e, b->deflate_ops);
	enc_u64(e, b->reported_bytes);
	enc_u64(e, b->ignored_pfns);
	enc_u8(e, b->roles_valid);
	for (int i = 0; i < BALLOON_NR_QUEUES; i++)
		enc_u8(e, (uint8_t)b->role[i]);
	enc_u8(e, b->stats_held);
	enc_u16(e, b->stats_head);
	enc_u32(e, b->stats.have);
	for (int i = 0; i < BALLOON_S_NR; i++)
		enc_u64(e, b->stats.val[i]);
	enc_u64(e, b->stats.seq);
	enc_u64(e, age_of(b->stats.updated_ns, now));
	return e->err ? -ENOMEM : 0;
}

static int balloon_load(struct virtio_dev *d, struct dec *dd)
{
	struct balloon *b = d->priv;
	struct balloon_config cfg;
	enum balloon_role role[BALLOON_NR_QUEUES], want[BALLOON_NR_QUEUES];
	struct balloon_guest_stats st = { 0 };

	if (dec_u16(dd) != BALLOON_SAVE_VERSION || balloon_config_decode(dd, &cfg) ||
	    cfg.stats != b->cfg.stats || cfg.deflate_on_oom != b->cfg.deflate_on_oom ||
	    cfg.free_page_reporting != b->cfg.free_page_reporting)
		return -EINVAL;
	uint32_t num_pages = dec_u32(dd), actual = dec_u32(dd);
	uint64_t actual_age = dec_u64(dd);
	uint64_t inflated = dec_u64(dd), inflate_ops = dec_u64(dd), deflate_ops = dec_u64(dd);
	uint64_t reported = dec_u64(dd), ignored = dec_u64(dd);
	uint8_t roles_valid = dec_u8(dd);
	for (int i = 0; i < BALLOON_NR_QUEUES; i++)
		role[i] = (enum balloon_role)dec_u8(dd);
	uint8_t held = dec_u8(dd);
	uint16_t head = dec_u16(dd);
	st.have = dec_u32(dd);
	for (int i = 0; i < BALLOON_S_NR; i++)
		st.val[i] = dec_u64(dd);
	st.seq = dec_u64(dd);
	uint64_t stats_age = dec_u64(dd);
	if (dd->err || dec_left(dd) || num_pages > b->ram_pages || inflated > b->ram_pages ||
	    roles_valid > 1 || held > 1 || (st.have >> BALLOON_S_NR))
		return -EINVAL;

	/* The roles follow from the features the transport just installed. */
	balloon_queue_roles(d->driver_features, want);
	if (roles_valid && memcmp(role, want, sizeof(role)))
		return -EINVAL;
	if (held) {
		int qi = -1;
		for (int i = 0; roles_valid && i < BALLOON_NR_QUEUES; i++)
			if (role[i] == BALLOON_Q_STATS)
				qi = i;
		if (qi < 0 || !d->q[qi].enabled || head >= d->q[qi].vq.size)
			return -EINVAL;
	}

	pthread_mutex_lock(&d->lock);
	uint64_t now = mono_ns();
	b->num_pages = num_pages;
	b->actual = actual;
	b->actual_changed_ns = stamp_of(actual_age, now);
	b->inflated_pages = inflated;
	b->inflate_ops = inflate_ops;
	b->deflate_ops = deflate_ops;
	b->reported_bytes = reported;
	b->ignored_pfns = ignored;
	b->roles_valid = roles_valid;
	memcpy(b->role, roles_valid ? role : want, sizeof(b->role));
	b->stats_held = held;
	b->stats_head = head;
	st.updated_ns = stamp_of(stats_age, now);
	st.actual_pages = actual;
	b->stats = st;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void balloon_destroy(struct virtio_dev *d)
{
	balloon_free(d->priv);
}

/* --- ops table --- */

static const struct virtio_dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.pci_class = 0x050000, /* memory controller, as QEMU's */
	.num_queues = BALLOON_NR_QUEUES,
	.queue_size = BALLOON_QUEUE_SIZE,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.config_size = BALLOON_CONFIG_SIZE,
	.queue_notify = balloon_queue_notify,
	.reset = balloon_reset,
	.save = balloon_save,
	.load = balloon_load,
	.destroy = balloon_destroy,
};

/* --- creation --- */

static int balloon_gm_discard(void *ctx, uint64_t gpa, uint64_t len)
{
	return gm_discard(ctx, gpa, len);
}

static int balloon_gm_populate(void *ctx, uint64_t gpa, uint64_t len)
{
	return gm_populate(ctx, gpa, len);
}

static const struct balloon_mem_ops balloon_gm_ops = {
	.discard = balloon_gm_discard,
	.populate = balloon_gm_populate,
};

struct balloon *balloon_new(const struct guest_mem *gm, const struct balloon_config *cfg,
			    const struct balloon_mem_ops *ops, void *ctx)
{
	struct balloon *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->event_fd < 0) {
		free(b);
		return NULL;
	}
	b->gm = gm;
	b->cfg = *cfg;
	b->mops = ops;
	b->mctx = ctx;
	b->ram_pages = gm->ram_size >> BALLOON_PFN_SHIFT;

	/* A transport-less virtio_dev, enough for the queue handlers; the
	 * transport rebuilds it in virtio_dev_create. */
	struct virtio_dev *d = &b->vdev;
	d->ops = &balloon_ops;
	d->priv = b;
	pthread_mutex_init(&d->lock, NULL);
	d->host_features = balloon_features(cfg) | 1ULL << VIRTIO_F_VERSION_1 |
			   1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC;
	d->msix_config = VIRTIO_NO_VECTOR;
	for (int i = 0; i < BALLOON_NR_QUEUES; i++) {
		snprintf(d->q[i].name, sizeof(d->q[i].name), "%s.q%d", balloon_ops.name, i);
		d->q[i].vq.name = d->q[i].name;
		d->q[i].vq.size = BALLOON_QUEUE_SIZE;
		d->q[i].msix_vector = VIRTIO_NO_VECTOR;
		d->q[i].kick_fd = -1;
	}
	return b;
}

void balloon_free(struct balloon *b)
{
	if (!b)
		return;
	if (b->event_fd >= 0)
		close(b->event_fd);
	free(b);
}

struct virtio_dev *balloon_vdev(struct balloon *b)
{
	return &b->vdev;
}

int virtio_balloon_create(struct vm *vm, const struct balloon_config *cfg)
{
	struct balloon *b = balloon_new(&vm->mem, cfg, &balloon_gm_ops, &vm->mem);

	if (!b)
		return -ENOMEM;
	vm->vdev[vm->nr_vdev] = &b->vdev;
	int r = virtio_dev_create(&b->vdev, vm, &balloon_ops, b, balloon_features(cfg));
	if (r) {
		pr_err("virtio-balloon: %s", strerror(-r));
		virtio_dev_destroy(&b->vdev); /* frees b */
		return r;
	}
	vm->nr_vdev++;
	vm->balloon = b;
	return 0;
}

/* --- host side (main thread) --- */

void balloon_set_target(struct balloon *b, uint64_t pages)
{
	struct virtio_dev *d = &b->vdev;

	if (pages > b->ram_pages)
		pages = b->ram_pages;
	if (pages > UINT32_MAX)
		pages = UINT32_MAX;
	pthread_mutex_lock(&d->lock);
	if (b->num_pages != pages) {
		b->num_pages = (uint32_t)pages;
		if (d->status & VIRTIO_STATUS_DRIVER_OK)
			virtio_config_changed(d);
	}
	pthread_mutex_unlock(&d->lock);
}

int balloon_request_stats(struct balloon *b)
{
	struct virtio_dev *d = &b->vdev;
	int r = -EAGAIN;

	pthread_mutex_lock(&d->lock);
	int qi = balloon_stats_queue(b);
	if (b->stats_held && qi >= 0 && (d->status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(d->status & VIRTIO_STATUS_NEEDS_RESET) && d->q[qi].enabled && !d->q[qi].vq.broken) {
		virtq_push(&d->q[qi].vq, b->stats_head, 0);
		b->stats_held = false;
		virtio_notify(d, qi);
		r = 0;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

void balloon_get_info(struct balloon *b, struct balloon_info *out)
{
	struct virtio_dev *d = &b->vdev;

	pthread_mutex_lock(&d->lock);
	*out = (struct balloon_info){
		.driver_ok = d->status & VIRTIO_STATUS_DRIVER_OK,
		.features = d->driver_features,
		.target_pages = b->num_pages,
		.actual_pages = b->actual,
		.inflated_pages = b->inflated_pages,
		.actual_changed_ns = b->actual_changed_ns,
		.inflate_ops = b->inflate_ops,
		.deflate_ops = b->deflate_ops,
		.reported_bytes = b->reported_bytes,
		.ignored_pfns = b->ignored_pfns,
		.stats = b->stats,
	};
	pthread_mutex_unlock(&d->lock);
}

int balloon_event_fd(struct balloon *b)
{
	return b->event_fd;
}
