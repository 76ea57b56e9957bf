/* virtio-blk request parsing (the pure half of the device). */
#include <string.h>

#include "harness.h"
#include "virtio/blk.h"

static uint8_t hdr[16], data[4096], status, seg[16], idbuf[20];

/* A chain: [header][out data?] | [in data?][status] */
static void chain(struct virtq_chain *c, uint32_t type, uint64_t sector, size_t out_data,
		  size_t in_data, bool with_status)
{
	memset(c, 0, sizeof(*c));
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	unsigned n = 0;
	c->iov[n++] = (struct iovec){ hdr, sizeof(hdr) };
	c->out_len = sizeof(hdr);
	if (out_data) {
		c->iov[n++] = (struct iovec){ data, out_data };
		c->out_len += out_data;
	}
	c->n_out = n;
	if (in_data) {
		c->iov[n++] = (struct iovec){ data, in_data };
		c->in_len += in_data;
	}
	if (with_status) {
		c->iov[n++] = (struct iovec){ &status, 1 };
		c->in_len += 1;
	}
	c->n_in = n - c->n_out;
}

static struct virtq_chain c;
static struct blk_req req;

TEST(read_ok_and_bounds)
{
	chain(&c, VIRTIO_BLK_T_IN, 0, 0, 4096, true);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_OK);
	CHECK_EQ(req.len, 4096);
	CHECK_EQ(req.nr_data, 1);
	CHECK(req.status == &status);
	/* last 8 sectors of an 8-sector disk: fine; one more: error */
	chain(&c, VIRTIO_BLK_T_IN, 1, 0, 4096, true);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_IOERR);
	chain(&c, VIRTIO_BLK_T_IN, ~0ULL, 0, 512, true); /* sector + count wraps */
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_IOERR);
	chain(&c, VIRTIO_BLK_T_IN, 0, 0, 100, true); /* not a whole sector */
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_IOERR);
}

TEST(write_and_readonly)
{
	chain(&c, VIRTIO_BLK_T_OUT, 2, 1024, 0, true);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_OK);
	CHECK_EQ(req.len, 1024);
	CHECK_EQ(req.sector, 2);
	CHECK_EQ(blk_parse(&c, 8, true, &req), VIRTIO_BLK_S_IOERR);
}

TEST(status_byte_required)
{
	chain(&c, VIRTIO_BLK_T_IN, 0, 0, 0, false);
	CHECK_EQ(blk_parse(&c, 8, false, &req), -1);
	/* header too short: still answered with an error status */
	chain(&c, VIRTIO_BLK_T_IN, 0, 0, 0, true);
	c.iov[0].iov_len = 8;
	c.out_len = 8;
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_IOERR);
}

TEST(get_id_flush_unknown)
{
	chain(&c, VIRTIO_BLK_T_GET_ID, 0, 0, 0, true);
	c.iov[1] = (struct iovec){ idbuf, sizeof(idbuf) };
	c.iov[2] = (struct iovec){ &status, 1 };
	c.n_in = 2;
	c.in_len = sizeof(idbuf) + 1;
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_OK);
	CHECK_EQ(req.len, 20);
	chain(&c, VIRTIO_BLK_T_FLUSH, 0, 0, 0, true);
	CHECK_EQ(blk_parse(&c, 8, true, &req), VIRTIO_BLK_S_OK);
	chain(&c, 77, 0, 0, 0, true);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_UNSUPP);
}

TEST(discard_segments)
{
	uint64_t sector = 4;
	uint32_t n = 4, flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &n, 4);
	memcpy(seg + 12, &flags, 4);
	chain(&c, VIRTIO_BLK_T_DISCARD, 0, 0, 0, true);
	c.iov[1] = (struct iovec){ seg, 16 };
	c.iov[2] = (struct iovec){ &status, 1 };
	c.n_out = 2;
	c.n_in = 1;
	c.out_len = 32;
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_OK);
	CHECK_EQ(req.seg_sector, 4);
	CHECK_EQ(req.seg_sectors, 4);
	CHECK_EQ(blk_parse(&c, 8, true, &req), VIRTIO_BLK_S_IOERR);	 /* read-only */
	CHECK_EQ(blk_parse(&c, 7, false, &req), VIRTIO_BLK_S_IOERR); /* past the end */
	c.iov[1].iov_len = 15;
	c.out_len = 31;
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_UNSUPP); /* not one segment */
	c.iov[1].iov_len = 16;
	c.out_len = 32;
	flags = 1; /* unmap flag is only for write-zeroes */
	memcpy(seg + 12, &flags, 4);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_UNSUPP);
	memcpy(hdr, &(uint32_t){ VIRTIO_BLK_T_WRITE_ZEROES }, 4);
	CHECK_EQ(blk_parse(&c, 8, false, &req), VIRTIO_BLK_S_OK);
}

int main(void)
{
	RUN(read_ok_and_bounds);
	RUN(write_and_readonly);
	RUN(status_byte_required);
	RUN(get_id_flush_unknown);
	RUN(discard_segments);
	TEST_MAIN_END();
}
