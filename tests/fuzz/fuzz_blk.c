/* libFuzzer: virtio-blk request parsing over arbitrary chain shapes. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "virtio/blk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct virtq_chain c;
static struct blk_req req;
static uint8_t mem[65536];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	/* First bytes choose the chain shape; the rest fills the buffers. */
	unsigned nbuf = 1 + data[0] % 16, nout = data[1] % (nbuf + 1);
	uint64_t capacity = (uint64_t)data[2] << (data[3] % 56);
	bool readonly = data[3] & 0x80;
	data += 4;
	size -= 4;
	memset(&c, 0, sizeof(c));
	size_t off = 0;
	for (unsigned i = 0; i < nbuf; i++) {
		size_t len = size ? data[i % size] * 17u % 4096 : 0;
		if (off + len > sizeof(mem))
			len = 0;
		c.iov[i] = (struct iovec){ mem + off, len };
		if (i < nout)
			c.out_len += len;
		else
			c.in_len += len;
		off += len;
	}
	c.n_out = nout;
	c.n_in = nbuf - nout;
	memcpy(mem, data, size < sizeof(mem) ? size : sizeof(mem));
	int st = blk_parse(&c, capacity, readonly, &req);
	if (st == VIRTIO_BLK_S_OK && (req.type == VIRTIO_BLK_T_IN || req.type == VIRTIO_BLK_T_OUT)) {
		/* a request we would execute must lie inside the disk */
		if (req.sector > capacity || req.len / 512 > capacity - req.sector)
			__builtin_trap();
	}
	if (st >= 0 && !req.status)
		__builtin_trap();
	return 0;
}
