#include "vq_builder.h"

#include <stdlib.h>
#include <string.h>

#include "core/le.h"

void vqb_init(struct vqb *b, uint16_t size)
{
	memset(b, 0, sizeof(*b));
	b->ram = calloc(1, VQB_RAM_SIZE);
	gm_init_fake(&b->gm, b->ram, 0, VQB_RAM_SIZE);
	b->size = size;
	b->next_buf = VQB_BUFS;
	b->q.size = size;
	b->q.desc_gpa = VQB_DESC;
	b->q.avail_gpa = VQB_AVAIL;
	b->q.used_gpa = VQB_USED;
	b->q.name = "test.q0";
}

void vqb_free(struct vqb *b)
{
	free(b->ram);
	b->ram = NULL;
}

void vqb_desc(struct vqb *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next)
{
	uint8_t *d = b->ram + VQB_DESC + 16u * i;
	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

uint64_t vqb_buf(struct vqb *b, uint32_t len)
{
	uint64_t a = b->next_buf;
	b->next_buf += (len + 15u) & ~15u;
	return a;
}

uint16_t vqb_chain(struct vqb *b, const uint32_t *out_len, int n_out, const uint32_t *in_len,
		   int n_in)
{
	uint16_t head = b->next_desc;
	int n = n_out + n_in;
	for (int k = 0; k < n; k++) {
		uint16_t i = (uint16_t)((head + k) % b->size);
		uint32_t len = k < n_out ? out_len[k] : in_len[k - n_out];
		uint16_t flags = (uint16_t)((k < n_out ? 0 : VIRTQ_DESC_F_WRITE) |
					    (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		vqb_desc(b, i, vqb_buf(b, len), len, flags, (uint16_t)((i + 1) % b->size));
	}
	b->next_desc = (uint16_t)((head + n) % b->size);
	return head;
}

void vqb_publish(struct vqb *b, uint16_t head)
{
	put16(b->ram + VQB_AVAIL + 4 + 2u * (b->avail_idx % b->size), head);
	b->avail_idx++;
	put16(b->ram + VQB_AVAIL + 2, b->avail_idx);
}

void vqb_set_avail_idx(struct vqb *b, uint16_t idx)
{
	b->avail_idx = idx;
	put16(b->ram + VQB_AVAIL + 2, idx);
}

uint16_t vqb_used_idx(const struct vqb *b)
{
	return le16(b->ram + VQB_USED + 2);
}

void vqb_used_elem(const struct vqb *b, uint16_t i, uint32_t *id, uint32_t *len)
{
	const uint8_t *e = b->ram + VQB_USED + 4 + 8u * (i % b->size);
	*id = le32(e);
	*len = le32(e + 4);
}

void vqb_set_avail_flags(struct vqb *b, uint16_t flags)
{
	put16(b->ram + VQB_AVAIL, flags);
}

void vqb_set_used_event(struct vqb *b, uint16_t v)
{
	put16(b->ram + VQB_AVAIL + 4 + 2u * b->size, v);
}

uint16_t vqb_avail_event(const struct vqb *b)
{
	return le16(b->ram + VQB_USED + 4 + 8u * b->size);
}
