/*
 * virtio-blk (virtio spec 5.2) over a raw image file.
 * Parts, in order: config, state, request parsing (pure), effects, queue
 * handler, config space, save/load, ops table, creation.
 */
#define _GNU_SOURCE
#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/le.h"
#include "core/log.h"
#include "virtio/virtio.h"

/* Feature bits */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define BLK_QUEUE_SIZE 256
#define BLK_CONFIG_SIZE 60
#define BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per request */

/* --- state --- */

struct blk {
	struct virtio_dev vdev;
	int fd;
	bool readonly;
	uint64_t capacity; /* sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	char path[256];
	struct virtq_chain chain; /* scratch, used by the I/O thread only */
	struct blk_req req;
};

/* --- request parsing (pure) --- */

/* Collect @len bytes of the chain's iovecs starting at byte @off. */
static int iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		     struct iovec *out, int max)
{
	int k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		if (k == max)
			return -1;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return len ? -1 : k;
}

static bool blk_range_ok(uint64_t sector, uint64_t bytes, uint64_t capacity)
{
	uint64_t n = bytes / BLK_SECTOR;
	return bytes % BLK_SECTOR == 0 && sector <= capacity && n <= capacity - sector;
}

int blk_parse(const struct virtq_chain *c, uint64_t capacity, bool readonly, struct blk_req *req)
{
	uint8_t hdr[16];

	memset(req, 0, offsetof(struct blk_req, data));
	req->nr_data = 0;
	req->status = NULL;
	/* The status byte is the last byte of the writable part. */
	if (c->in_len < 1)
		return -1;
	struct iovec st;
	if (iov_slice(c->iov + c->n_out, c->n_in, c->in_len - 1, 1, &st, 1) != 1)
		return -1;
	req->status = st.iov_base;

	if (virtq_chain_read(c, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	req->type = le32(hdr);
	req->sector = le64(hdr + 8);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		req->len = c->in_len - 1;
		req->nr_data = iov_slice(c->iov + c->n_out, c->n_in, 0, req->len, req->data,
					 VIRTQ_MAX_CHAIN);
		if (req->nr_data < 0 || !blk_range_ok(req->sector, req->len, capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		if (readonly)
			return VIRTIO_BLK_S_IOERR;
		req->len = c->out_len - sizeof(hdr);
		req->nr_data = iov_slice(c->iov, c->n_out, sizeof(hdr), req->len, req->data,
					 VIRTQ_MAX_CHAIN);
		if (req->nr_data < 0 || !blk_range_ok(req->sector, req->len, capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		req->len = c->in_len - 1;
		if (req->len > VIRTIO_BLK_ID_BYTES)
			req->len = VIRTIO_BLK_ID_BYTES;
		req->nr_data = iov_slice(c->iov + c->n_out, c->n_in, 0, req->len, req->data,
					 VIRTQ_MAX_CHAIN);
		return req->nr_data < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		uint8_t seg[16];
		if (readonly)
			return VIRTIO_BLK_S_IOERR;
		/* Exactly one segment (max_discard_seg = max_write_zeroes_seg = 1). */
		if (c->out_len != sizeof(hdr) + sizeof(seg) ||
		    virtq_chain_read(c, sizeof(hdr), seg, sizeof(seg)) != sizeof(seg))
			return VIRTIO_BLK_S_UNSUPP;
		req->seg_sector = le64(seg);
		req->seg_sectors = le32(seg + 8);
		req->seg_flags = le32(seg + 12);
		if (req->seg_sectors > BLK_MAX_DISCARD_SECTORS ||
		    (req->type == VIRTIO_BLK_T_DISCARD && (req->seg_flags & ~0u)) ||
		    (req->type == VIRTIO_BLK_T_WRITE_ZEROES && (req->seg_flags & ~1u)))
			return VIRTIO_BLK_S_UNSUPP;
		if (!blk_range_ok(req->seg_sector, (uint64_t)req->seg_sectors * BLK_SECTOR,
				  capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* --- effects --- */

/* Full-length positional I/O over iovecs; 0 or -errno. */
static int blk_rw(int fd, struct iovec *iov, int n, uint64_t off, bool write)
{
	while (n > 0) {
		ssize_t r = write ? pwritev(fd, iov, n, (off_t)off) : preadv(fd, iov, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) /* reading past EOF of a short file: zero fill */
			return write ? -EIO : 0;
		off += (uint64_t)r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static uint8_t blk_execute(struct blk *b, struct blk_req *req, uint32_t *written)
{
	int r = 0;

	*written = 0;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		r = blk_rw(b->fd, req->data, req->nr_data, req->sector * BLK_SECTOR, false);
		if (!r)
			*written = (uint32_t)req->len;
		break;
	case VIRTIO_BLK_T_OUT:
		r = blk_rw(b->fd, req->data, req->nr_data, req->sector * BLK_SECTOR, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		r = fdatasync(b->fd) < 0 ? -errno : 0;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t off = 0;
		for (int i = 0; i < req->nr_data; i++) {
			memcpy(req->data[i].iov_base, b->serial + off, req->data[i].iov_len);
			off += req->data[i].iov_len;
		}
		*written = (uint32_t)req->len;
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		off_t off = (off_t)(req->seg_sector * BLK_SECTOR);
		off_t len = (off_t)req->seg_sectors * BLK_SECTOR;
		int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		if (req->type == VIRTIO_BLK_T_WRITE_ZEROES && !(req->seg_flags & 1))
			mode = FALLOC_FL_ZERO_RANGE;
		if (len && fallocate(b->fd, mode, off, len) < 0) {
			/* Zeroing must happen even where the file system cannot punch. */
			if (req->type == VIRTIO_BLK_T_WRITE_ZEROES &&
			    fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0)
				r = -errno;
			/* A discard is a hint: success even when not supported. */
		}
		break;
	}
	}
	if (r) {
		pr_warn_once("virtio-blk: %s: I/O error: %s", b->path, strerror(-r));
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/* --- queue handler (I/O thread) --- */

static void blk_queue_notify(struct virtio_dev *d, int qi)
{
	struct blk *b = d->priv;
	struct virtq *q = &d->q[qi].vq;
	bool pushed = false;
	int r;

	while ((r = virtq_pop(q, &b->chain)) == 1) {
		uint32_t written = 0;
		int st = blk_parse(&b->chain, b->capacity, b->readonly, &b->req);

		if (st == VIRTIO_BLK_S_OK)
			st = blk_execute(b, &b->req, &written);
		if (st >= 0) {
			*b->req.status = (uint8_t)st;
			written += 1;
		} else {
			pr_warn_once("virtio-blk: %s: request without a status byte", b->path);
			written = 0;
		}
		virtq_push(q, b->chain.head, written);
		pushed = true;
	}
	if (r < 0)
		virtio_set_needs_reset(d, "virtqueue protocol violation");
	if (pushed)
		virtio_notify(d, qi);
}

/* --- config space --- */

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size)
{
	struct blk *b = d->priv;
	uint8_t cfg[BLK_CONFIG_SIZE] = { 0 };

	put64(cfg + 0, b->capacity);
	put32(cfg + 12, BLK_QUEUE_SIZE - 2);	    /* seg_max */
	put32(cfg + 20, BLK_SECTOR);		    /* blk_size */
	put16(cfg + 34, 1);			    /* num_queues */
	put32(cfg + 36, BLK_MAX_DISCARD_SECTORS); /* max_discard_sectors */
	put32(cfg + 40, 1);			    /* max_discard_seg */
	put32(cfg + 44, 1);			    /* discard_sector_alignment */
	put32(cfg + 48, BLK_MAX_DISCARD_SECTORS); /* max_write_zeroes_sectors */
	put32(cfg + 52, 1);			    /* max_write_zeroes_seg */
	cfg[56] = 1;				    /* write_zeroes_may_unmap */
	memcpy(data, cfg + off, size); /* the transport bounds off + size */
}

/* --- save/load --- */

/*
 * Requests are served to completion under the device lock, so a quiesced
 * device has none in flight: chains the driver made available but we did
 * not pop stay in the ring (last_avail is saved by the transport) and are
 * served after restore. The disk's identity is in the MACHINE section.
 */
static int blk_save(struct virtio_dev *d, struct enc *e)
{
	struct blk *b = d->priv;
	enc_u64(e, b->capacity);
	enc_u8(e, b->readonly);
	return e->err ? -ENOMEM : 0;
}

static int blk_load(struct virtio_dev *d, struct dec *dd)
{
	struct blk *b = d->priv;
	uint64_t cap = dec_u64(dd);
	bool ro = dec_u8(dd) != 0;
	if (dd->err || cap != b->capacity || ro != b->readonly)
		return -EINVAL;
	return 0;
}

static void blk_destroy(struct virtio_dev *d)
{
	struct blk *b = d->priv;
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

/* --- ops table --- */

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x018000,
	.num_queues = 1,
	.queue_size = BLK_QUEUE_SIZE,
	.config_read = blk_config_read,
	.config_size = BLK_CONFIG_SIZE,
	.queue_notify = blk_queue_notify,
	.save = blk_save,
	.load = blk_load,
	.destroy = blk_destroy,
};

/* --- creation --- */

int virtio_blk_create(struct vm *vm, const struct disk_config *cfg)
{
	struct blk *b = calloc(1, sizeof(*b));
	struct stat st;
	int r;

	if (!b)
		return -ENOMEM;
	snprintf(b->path, sizeof(b->path), "%s", cfg->path);
	b->readonly = cfg->readonly;
	b->fd = open(cfg->path, (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		r = -errno;
		pr_err("virtio-blk: cannot open disk %s: %s", cfg->path, strerror(errno));
		free(b);
		return r;
	}
	/* Two writers on one image corrupt it: take the lock QEMU would. */
	if (flock(b->fd, (cfg->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		pr_err("virtio-blk: disk %s is in use by another process", cfg->path);
		close(b->fd);
		free(b);
		return -EBUSY;
	}
	if (fstat(b->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		pr_err("virtio-blk: disk %s is not a regular file", cfg->path);
		close(b->fd);
		free(b);
		return -EINVAL;
	}
	b->capacity = (uint64_t)st.st_size / BLK_SECTOR;
	if ((uint64_t)st.st_size % BLK_SECTOR)
		pr_warn("virtio-blk: %s: size is not a multiple of 512; the tail is not visible",
			cfg->path);
	const char *base = strrchr(cfg->path, '/');
	base = base ? base + 1 : cfg->path;
	memcpy(b->serial, cfg->serial ? cfg->serial : base,
	       strnlen(cfg->serial ? cfg->serial : base, sizeof(b->serial)));

	uint64_t features = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
			    1ULL << VIRTIO_BLK_F_FLUSH;
	if (cfg->readonly)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	else
		features |= 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;

	vm->vdev[vm->nr_vdev] = &b->vdev;
	r = virtio_dev_create(&b->vdev, vm, &blk_ops, b, features);
	if (r) {
		pr_err("virtio-blk: %s: %s", cfg->path, strerror(-r));
		virtio_dev_destroy(&b->vdev); /* frees b */
		return r;
	}
	vm->nr_vdev++;
	return 0;
}
