/*
 * A descriptor-table builder for unit tests and fuzzers: lays a split
 * virtqueue (descriptors, avail ring, used ring) into fake guest RAM and
 * lets a test post chains and read back used entries.
 */
#ifndef POCKETVM_VQ_BUILDER_H
#define POCKETVM_VQ_BUILDER_H

#include <stdint.h>

#include "mem/guest_mem.h"
#include "virtio/virtqueue.h"

/* Fake RAM layout (guest physical): rings at 0x1000, buffers from 0x10000. */
#define VQB_RAM_SIZE (1u << 20)
#define VQB_DESC 0x1000
#define VQB_AVAIL 0x5000
#define VQB_USED 0x6000
#define VQB_BUFS 0x10000

struct vqb {
	uint8_t *ram;
	struct guest_mem gm;
	struct virtq q;
	uint16_t size;
	uint16_t next_desc; /* next free descriptor */
	uint16_t avail_idx;
	uint64_t next_buf;  /* next free buffer address */
};

/* Set up RAM and a queue of @size entries (not yet activated). */
void vqb_init(struct vqb *b, uint16_t size);
void vqb_free(struct vqb *b);

/* Write descriptor @i raw. */
void vqb_desc(struct vqb *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next);

/* Allocate @len bytes of buffer space in fake RAM; returns its address. */
uint64_t vqb_buf(struct vqb *b, uint32_t len);

/*
 * Post a chain of @n_out readable then @n_in writable buffers with the given
 * lengths, linked through consecutive descriptors; returns the head.
 */
uint16_t vqb_chain(struct vqb *b, const uint32_t *out_len, int n_out, const uint32_t *in_len,
		   int n_in);

/* Put @head in the avail ring and publish the new avail index. */
void vqb_publish(struct vqb *b, uint16_t head);

/* Set avail->idx directly (hostile drivers). */
void vqb_set_avail_idx(struct vqb *b, uint16_t idx);

/* Used ring: index, and element @i's id and length. */
uint16_t vqb_used_idx(const struct vqb *b);
void vqb_used_elem(const struct vqb *b, uint16_t i, uint32_t *id, uint32_t *len);

/* Ring flags / event fields. */
void vqb_set_avail_flags(struct vqb *b, uint16_t flags);
void vqb_set_used_event(struct vqb *b, uint16_t v);
uint16_t vqb_avail_event(const struct vqb *b);

#endif
