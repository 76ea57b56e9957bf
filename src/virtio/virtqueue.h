/*
 * Split virtqueue (virtio 1.x, section 2.7), device side.
 *
 * The ring addresses come from the guest and are validated once, when the
 * driver sets queue_enable (virtq_activate). Every chain walk is bounded by
 * the queue size, every descriptor buffer goes through gm_ptr(), and any
 * violation marks the queue broken: the caller then sets DEVICE_NEEDS_RESET
 * and stops serving that queue. Nothing here aborts on guest input.
 *
 * Threading: one queue is served by one thread at a time.
 */
#ifndef POCKETVM_VIRTQUEUE_H
#define POCKETVM_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem/guest_mem.h"

#define VIRTQ_MAX_SIZE 1024 /* largest queue size a device may offer */
#define VIRTQ_MAX_CHAIN 1024 /* buffers in one chain (incl. indirect) */

/* Descriptor flags (virtio 1.x 2.7.5) */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

/* Ring flags */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Feature bits the virtqueue layer implements */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

struct virtq {
	/* Set by the transport from the driver's writes. */
	uint16_t size;	     /* power of two, <= VIRTQ_MAX_SIZE */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	bool event_idx;	     /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	     /* VIRTIO_F_INDIRECT_DESC negotiated */

	/* Device-side state (part of a snapshot). */
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t used_idx;   /* next used ring slot to fill */
	uint16_t signalled_used; /* used_idx at the last interrupt (event_idx) */
	bool signalled_used_valid;

	/* Resolved at activation. */
	bool ready;
	bool broken;
	const struct guest_mem *mem;
	struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;	  /* flags, idx, ring[size]{id,len}, avail_event */
	const char *name;	  /* "virtio-blk.0" etc, for log lines */
};

/* One popped chain, split into device-readable then device-writable parts. */
struct virtq_chain {
	uint16_t head;
	unsigned n_out; /* readable buffers: iov[0 .. n_out) */
	unsigned n_in;	/* writable buffers: iov[n_out .. n_out+n_in) */
	uint64_t out_len, in_len; /* total bytes of each part */
	struct iovec iov[VIRTQ_MAX_CHAIN];
};

/*
 * virtq_activate - validate size and ring addresses (alignment, inside RAM)
 * and resolve host pointers. Returns 0, or -EINVAL and leaves the queue not
 * ready.
 */
int virtq_activate(struct virtq *q, const struct guest_mem *mem);

/* virtq_reset - forget everything (device reset). Keeps name. */
void virtq_reset(struct virtq *q);

/*
 * virtq_pop - take the next available chain.
 * Returns 1 when @c holds a chain, 0 when the ring is empty, and -EIO when
 * the driver broke the protocol (the queue is then marked broken; the caller
 * sets NEEDS_RESET). A device-writable buffer followed by a readable one,
 * loops, chains longer than allowed, out-of-range heads or buffers outside
 * RAM are all violations.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* virtq_push - return chain @head with @len bytes written to the used ring. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);

/*
 * virtq_should_notify - after one or more pushes: does the driver want an
 * interrupt (honours NO_INTERRUPT and used_event)? Updates signalled_used.
 */
bool virtq_should_notify(struct virtq *q);

/* virtq_has_avail - is at least one chain waiting? (no side effects) */
bool virtq_has_avail(const struct virtq *q);

/*
 * Copy helpers over a chain's iovecs: copy out of the readable part from
 * byte offset @off, or into the writable part at @off. Return bytes copied.
 */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, uint64_t len);
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, uint64_t len);

#endif
