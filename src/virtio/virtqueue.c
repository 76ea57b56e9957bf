/*
 * Split virtqueue, device side (virtio 1.x, 2.7). See virtqueue.h.
 */
#include "virtio/virtqueue.h"

#include <errno.h>
#include <string.h>

#include "core/log.h"

/* Ring layout offsets */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4

static uint64_t avail_bytes(uint16_t size)
{
	return 4 + 2ULL * size + 2; /* flags, idx, ring, used_event */
}

static uint64_t used_bytes(uint16_t size)
{
	return 4 + 8ULL * size + 2; /* flags, idx, ring, avail_event */
}

int virtq_activate(struct virtq *q, const struct guest_mem *mem)
{
	uint16_t n = q->size;

	q->ready = false;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1))) {
		pr_warn("%s: queue size %u is not a power of two up to %d", q->name, n,
			VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3)) {
		pr_warn("%s: misaligned ring addresses", q->name);
		return -EINVAL;
	}
	void *desc = gm_ptr(mem, q->desc_gpa, 16ULL * n);
	void *avail = gm_ptr(mem, q->avail_gpa, avail_bytes(n));
	void *used = gm_ptr(mem, q->used_gpa, used_bytes(n));
	if (!desc || !avail || !used) {
		pr_warn("%s: ring outside guest RAM", q->name);
		return -EINVAL;
	}
	q->mem = mem;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->broken = false;
	q->ready = true;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	const char *name = q->name;
	memset(q, 0, sizeof(*q));
	q->name = name;
}

static uint16_t avail_idx(const struct virtq *q)
{
	return __atomic_load_n(&q->avail[AVAIL_IDX / 2], __ATOMIC_ACQUIRE);
}

bool virtq_has_avail(const struct virtq *q)
{
	return q->ready && !q->broken && avail_idx(q) != q->last_avail;
}

static int virtq_violation(struct virtq *q, const char *why)
{
	if (!q->broken)
		pr_warn("%s: driver error: %s; queue stopped", q->name ? q->name : "virtq", why);
	q->broken = true;
	return -EIO;
}

/* Append one descriptor's buffer to the chain, enforcing out-before-in. */
static int chain_add(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d,
		     unsigned *count)
{
	uint64_t addr = d->addr;
	uint32_t len = d->len;
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;

	if (*count >= VIRTQ_MAX_CHAIN)
		return virtq_violation(q, "chain too long");
	void *p = gm_ptr(q->mem, addr, len);
	if (!p)
		return virtq_violation(q, "buffer outside guest RAM");
	if (!writable && c->n_in)
		return virtq_violation(q, "readable buffer after a writable one");
	c->iov[*count].iov_base = p;
	c->iov[*count].iov_len = len;
	(*count)++;
	if (writable) {
		gm_mark_dirty_hva(q->mem, p, len); /* the device may write it: snapshots save it */
		c->n_in++;
		c->in_len += len;
	} else {
		c->n_out++;
		c->out_len += len;
	}
	return 0;
}

static int walk_indirect(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d,
			 unsigned *count)
{
	if (!q->indirect)
		return virtq_violation(q, "indirect descriptor not negotiated");
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return virtq_violation(q, "indirect descriptor with NEXT");
	if (d->len == 0 || d->len % 16 || d->len / 16 > VIRTQ_MAX_CHAIN)
		return virtq_violation(q, "bad indirect table length");
	const struct virtq_desc *tbl = gm_ptr(q->mem, d->addr, d->len);
	if (!tbl)
		return virtq_violation(q, "indirect table outside guest RAM");
	uint32_t n = d->len / 16, i = 0;
	for (uint32_t steps = 0;; steps++) {
		if (steps >= n)
			return virtq_violation(q, "indirect chain loops");
		struct virtq_desc e;
		memcpy(&e, &tbl[i], sizeof(e));
		if (e.flags & VIRTQ_DESC_F_INDIRECT)
			return virtq_violation(q, "nested indirect table");
		int r = chain_add(q, c, &e, count);
		if (r)
			return r;
		if (!(e.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (e.next >= n)
			return virtq_violation(q, "indirect next out of range");
		i = e.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	if (!q->ready || q->broken)
		return q->broken ? -EIO : 0;
	uint16_t idx = avail_idx(q);
	uint16_t pending = (uint16_t)(idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return virtq_violation(q, "avail index ran ahead of the queue size");

	uint16_t head = __atomic_load_n(&q->avail[AVAIL_RING / 2 + (q->last_avail % q->size)],
					__ATOMIC_RELAXED);
	if (head >= q->size)
		return virtq_violation(q, "head index out of range");

	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	unsigned count = 0;
	uint16_t i = head;
	for (unsigned steps = 0;; steps++) {
		if (steps >= q->size)
			return virtq_violation(q, "descriptor chain loops");
		struct virtq_desc d;
		memcpy(&d, &q->desc[i], sizeof(d));
		int r;
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (steps != 0 || count != 0)
				return virtq_violation(q, "indirect descriptor inside a chain");
			r = walk_indirect(q, c, &d, &count);
			if (r)
				return r;
			break;
		}
		r = chain_add(q, c, &d, &count);
		if (r)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->size)
			return virtq_violation(q, "next index out of range");
		i = d.next;
	}
	if (c->out_len > UINT32_MAX || c->in_len > UINT32_MAX)
		return virtq_violation(q, "chain longer than 4 GiB");
	q->last_avail++;
	if (q->event_idx) {
		/* avail_event: tell the driver where to notify us next. */
		volatile uint16_t *ae = (volatile uint16_t *)(q->used + USED_RING + 8u * q->size);
		__atomic_store_n(ae, q->last_avail, __ATOMIC_RELEASE);
		/* Store-load order: the driver must see the new avail_event before
		 * our next read of avail idx, or a chain it adds in between may go
		 * without a notification (x86 reorders a later load before this
		 * store; vhost has the same barrier). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		gm_mark_dirty_hva(q->mem, (const void *)ae, 2);
	}
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	if (!q->ready)
		return;
	volatile uint8_t *e = q->used + USED_RING + 8u * (q->used_idx % q->size);
	uint32_t id = head;
	memcpy((void *)e, &id, 4);
	memcpy((void *)(e + 4), &len, 4);
	q->used_idx++;
	__atomic_store_n((volatile uint16_t *)(q->used + USED_IDX), q->used_idx, __ATOMIC_RELEASE);
	gm_mark_dirty_hva(q->mem, (const void *)e, 8);
	gm_mark_dirty_hva(q->mem, (const void *)(q->used + USED_IDX), 2);
}

bool virtq_should_notify(struct virtq *q)
{
	if (!q->ready)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* used idx visible before we read flags */
	if (!q->event_idx) {
		uint16_t flags = __atomic_load_n(&q->avail[AVAIL_FLAGS / 2], __ATOMIC_RELAXED);
		return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	uint16_t used_event = __atomic_load_n(&q->avail[AVAIL_RING / 2 + q->size], __ATOMIC_RELAXED);
	uint16_t new_idx = q->used_idx;
	uint16_t old = q->signalled_used;
	bool valid = q->signalled_used_valid;
	q->signalled_used = new_idx;
	q->signalled_used_valid = true;
	if (!valid)
		return true;
	/* vring_need_event: did new_idx pass used_event since old? */
	return (uint16_t)(new_idx - used_event - 1) < (uint16_t)(new_idx - old);
}

static uint64_t chain_copy(const struct iovec *iov, unsigned n, uint64_t off, uint8_t *buf,
			   uint64_t len, bool to_chain)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		if (to_chain)
			memcpy((uint8_t *)iov[i].iov_base + off, buf + done, take);
		else
			memcpy(buf + done, (uint8_t *)iov[i].iov_base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	return chain_copy(c->iov, c->n_out, off, dst, len, false);
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, uint64_t len)
{
	return chain_copy(c->iov + c->n_out, c->n_in, off, (uint8_t *)src, len, true);
}
