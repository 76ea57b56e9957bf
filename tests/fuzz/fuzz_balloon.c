/*
 * libFuzzer: virtio-balloon chain parsing (inflate/deflate PFNs, statistics,
 * free page reports) over arbitrary chain shapes, as in fuzz_blk.c. The
 * buffers lie in a fake guest RAM, so reports resolve to real ranges.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "virtio/balloon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct virtq_chain c;
static struct balloon_pfns pfns;
static struct balloon_report rep;
static uint8_t ram[64 * 4096] __attribute__((aligned(4096)));
static struct guest_mem gm;

static bool range_ok(const struct balloon_range *r)
{
	return r->len && !(r->gpa & 4095) && !(r->len & 4095) && gm_ptr(&gm, r->gpa, r->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	/* First bytes choose the chain shape and where RAM sits; the rest fills it. */
	unsigned nbuf = 1 + data[0] % 32, nout = data[1] % (nbuf + 1);
	uint64_t base = (uint64_t)(data[2] & 0x0f) << 16;
	unsigned scale = 1 + data[3] % 64;
	data += 4;
	size -= 4;
	gm_init_fake(&gm, ram, base, sizeof(ram));
	memset(&c, 0, sizeof(c));
	size_t off = 0;
	for (unsigned i = 0; i < nbuf; i++) {
		size_t len = size ? data[i % size] * (size_t)scale * 13 % 20000 : 0;
		if (off + len > sizeof(ram))
			len = 0;
		c.iov[i] = (struct iovec){ ram + off, len };
		if (i < nout)
			c.out_len += len;
		else
			c.in_len += len;
		off += size ? data[(i + 1) % size] * (size_t)scale * 7 % 9000 : len;
		if (off > sizeof(ram))
			off = 0;
	}
	c.n_out = nout;
	c.n_in = nbuf - nout;
	memcpy(ram, data, size < sizeof(ram) ? size : sizeof(ram));

	balloon_parse_pfns(&c, &gm, &pfns);
	uint64_t sum = 0;
	for (unsigned i = 0; i < pfns.nr_ranges; i++) {
		if (!range_ok(&pfns.range[i]))
			__builtin_trap();
		sum += pfns.range[i].len;
	}
	if (pfns.nr_pfns + pfns.ignored > BALLOON_MAX_PFNS || pfns.nr_ranges > pfns.nr_pfns ||
	    sum != (uint64_t)pfns.nr_pfns * 4096 ||
	    pfns.nr_pfns + pfns.ignored != (c.out_len / 4 > BALLOON_MAX_PFNS ? BALLOON_MAX_PFNS
									      : c.out_len / 4))
		__builtin_trap();

	struct balloon_guest_stats st;
	unsigned n = balloon_parse_stats(&c, &st);
	if (n > BALLOON_MAX_STATS || n > c.out_len / 10 || (st.have >> BALLOON_S_NR))
		__builtin_trap();

	balloon_parse_report(&c, &gm, &rep);
	sum = 0;
	for (unsigned i = 0; i < rep.nr_ranges; i++) {
		if (!range_ok(&rep.range[i]))
			__builtin_trap();
		sum += rep.range[i].len;
	}
	if (sum != rep.bytes || rep.bytes > c.in_len || rep.nr_ranges + rep.ignored > nbuf)
		__builtin_trap();
	return 0;
}
