/*
 * libFuzzer: the virtqueue against a hostile driver. The input becomes the
 * queue parameters and the contents of the ring area of fake guest RAM;
 * the device then pops, reads, writes and pushes as a real device would.
 */
#include <stdint.h>
#include <string.h>

#include "core/le.h"
#include "vq_builder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vqb b;
	static struct virtq_chain c;
	static uint8_t scratch[4096];

	if (size < 8)
		return 0;
	if (!b.ram)
		vqb_init(&b, 16);
	memset(b.ram, 0, VQB_BUFS); /* rings; buffers keep whatever they had */
	virtq_reset(&b.q);
	b.q.size = (uint16_t)(1u << (data[0] % 11)); /* 1..1024 */
	b.q.event_idx = data[1] & 1;
	b.q.indirect = data[1] & 2;
	b.q.desc_gpa = VQB_DESC;
	b.q.avail_gpa = VQB_AVAIL + (data[1] & 4 ? 0x2000 : 0);
	b.q.used_gpa = VQB_USED + (data[1] & 8 ? 0x4000 : 0);
	b.q.last_avail = le16(data + 2);
	b.q.used_idx = le16(data + 4);
	unsigned rounds = 1 + data[6] % 8;
	data += 8;
	size -= 8;
	/* The descriptor table, then the avail ring, come from the input. */
	size_t n = size < VQB_AVAIL - VQB_DESC ? size : VQB_AVAIL - VQB_DESC;
	memcpy(b.ram + VQB_DESC, data, n);
	if (size > n) {
		size_t m = size - n < 0x1000 ? size - n : 0x1000;
		memcpy(b.ram + b.q.avail_gpa, data + n, m);
	}
	if (virtq_activate(&b.q, &b.gm))
		return 0;
	for (unsigned r = 0; r < rounds; r++) {
		int ret;
		unsigned popped = 0;
		while ((ret = virtq_pop(&b.q, &c)) == 1) {
			if (c.n_out + c.n_in > VIRTQ_MAX_CHAIN)
				__builtin_trap();
			virtq_chain_read(&c, 0, scratch, sizeof(scratch));
			virtq_chain_write(&c, 0, scratch, sizeof(scratch));
			virtq_push(&b.q, c.head, (uint32_t)c.in_len);
			if (++popped > b.q.size)
				__builtin_trap(); /* more chains than the ring holds */
		}
		virtq_should_notify(&b.q);
		if (ret < 0 && !b.q.broken)
			__builtin_trap();
	}
	return 0;
}
