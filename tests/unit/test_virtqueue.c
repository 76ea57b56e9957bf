/* The split virtqueue against fake guest memory, normal and hostile chains. */
#include <errno.h>
#include <string.h>

#include "core/le.h"
#include "harness.h"
#include "vq_builder.h"

static struct vqb b;
static struct virtq_chain c;

static void setup(uint16_t size)
{
	vqb_free(&b);
	vqb_init(&b, size);
	CHECK_EQ(virtq_activate(&b.q, &b.gm), 0);
}

TEST(chain_out_in_and_used)
{
	setup(8);
	uint32_t out[] = { 16, 100 }, in[] = { 512, 1 };
	uint16_t h = vqb_chain(&b, out, 2, in, 2);
	vqb_publish(&b, h);
	CHECK_EQ(virtq_pop(&b.q, &c), 1);
	CHECK_EQ(c.head, h);
	CHECK_EQ(c.n_out, 2);
	CHECK_EQ(c.n_in, 2);
	CHECK_EQ(c.out_len, 116);
	CHECK_EQ(c.in_len, 513);
	CHECK_EQ(virtq_pop(&b.q, &c), 0); /* empty now */
	/* reads and writes cross buffer boundaries */
	uint8_t pat[116], got[116];
	for (int i = 0; i < 116; i++)
		pat[i] = (uint8_t)i;
	memcpy(c.iov[0].iov_base, pat, 16);
	memcpy(c.iov[1].iov_base, pat + 16, 100);
	CHECK_EQ(virtq_chain_read(&c, 0, got, 116), 116);
	CHECK(!memcmp(got, pat, 116));
	CHECK_EQ(virtq_chain_write(&c, 510, "abc", 3), 3);
	CHECK_EQ(((uint8_t *)c.iov[3].iov_base)[0], 'c');
	CHECK_EQ(virtq_chain_write(&c, 512, "xyz", 3), 1); /* capped at the chain */
	virtq_push(&b.q, c.head, 77);
	CHECK_EQ(vqb_used_idx(&b), 1);
	uint32_t id, len;
	vqb_used_elem(&b, 0, &id, &len);
	CHECK_EQ(id, h);
	CHECK_EQ(len, 77);
	CHECK(virtq_should_notify(&b.q));
	vqb_set_avail_flags(&b, VIRTQ_AVAIL_F_NO_INTERRUPT);
	CHECK(!virtq_should_notify(&b.q));
}

TEST(index_wraparound)
{
	setup(4);
	b.q.last_avail = 65534;
	b.q.used_idx = 65534;
	vqb_set_avail_idx(&b, 65534);
	for (int i = 0; i < 6; i++) {
		uint32_t in[] = { 8 };
		uint16_t h = vqb_chain(&b, NULL, 0, in, 1);
		vqb_publish(&b, h);
		CHECK_EQ(virtq_pop(&b.q, &c), 1);
		CHECK_EQ(c.head, h);
		virtq_push(&b.q, c.head, 8);
	}
	CHECK_EQ(b.q.last_avail, 4);
	CHECK_EQ(vqb_used_idx(&b), 4);
}

TEST(indirect)
{
	setup(8);
	b.q.indirect = true;
	uint64_t tbl = vqb_buf(&b, 3 * 16);
	uint8_t *t = b.ram + tbl;
	uint64_t a0 = vqb_buf(&b, 16), a1 = vqb_buf(&b, 64), a2 = vqb_buf(&b, 1);
	put64(t, a0); put32(t + 8, 16); put16(t + 12, VIRTQ_DESC_F_NEXT); put16(t + 14, 1);
	put64(t + 16, a1); put32(t + 24, 64); put16(t + 28, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE); put16(t + 30, 2);
	put64(t + 32, a2); put32(t + 40, 1); put16(t + 44, VIRTQ_DESC_F_WRITE); put16(t + 46, 0);
	vqb_desc(&b, 0, tbl, 48, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	CHECK_EQ(virtq_pop(&b.q, &c), 1);
	CHECK_EQ(c.n_out, 1);
	CHECK_EQ(c.n_in, 2);
	CHECK_EQ(c.in_len, 65);
}

TEST(event_idx)
{
	setup(8);
	b.q.event_idx = true;
	uint32_t in[] = { 8 };
	for (int i = 0; i < 3; i++)
		vqb_publish(&b, vqb_chain(&b, NULL, 0, in, 1));
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(virtq_pop(&b.q, &c), 1);
		CHECK_EQ(vqb_avail_event(&b), i + 1); /* tells the driver where to kick */
	}
	vqb_set_used_event(&b, 0); /* driver wants an interrupt after used entry 0 */
	virtq_push(&b.q, 0, 8);
	CHECK(virtq_should_notify(&b.q)); /* first: always */
	virtq_push(&b.q, 1, 8);
	CHECK(!virtq_should_notify(&b.q)); /* used_event 0 already passed */
	vqb_set_used_event(&b, 2);
	virtq_push(&b.q, 2, 8);
	CHECK(virtq_should_notify(&b.q)); /* crossed 2 */
}

/* Each hostile setup must give -EIO, mark the queue broken, and stay broken. */
static void expect_broken(const char *what)
{
	int r = virtq_pop(&b.q, &c);
	if (r != -EIO)
		fprintf(stderr, "  %s: pop returned %d\n", what, r);
	CHECK_EQ(r, -EIO);
	CHECK(b.q.broken);
	CHECK_EQ(virtq_pop(&b.q, &c), -EIO);
}

TEST(hostile_chains)
{
	setup(8); /* loop: 0 -> 1 -> 0 */
	vqb_desc(&b, 0, VQB_BUFS, 8, VIRTQ_DESC_F_NEXT, 1);
	vqb_desc(&b, 1, VQB_BUFS, 8, VIRTQ_DESC_F_NEXT, 0);
	vqb_publish(&b, 0);
	expect_broken("loop");

	setup(8); /* head out of range */
	vqb_publish(&b, 8);
	expect_broken("head >= size");

	setup(8); /* next out of range */
	vqb_desc(&b, 0, VQB_BUFS, 8, VIRTQ_DESC_F_NEXT, 200);
	vqb_publish(&b, 0);
	expect_broken("next >= size");

	setup(8); /* buffer outside RAM */
	vqb_desc(&b, 0, VQB_RAM_SIZE - 4, 8, 0, 0);
	vqb_publish(&b, 0);
	expect_broken("addr out of RAM");

	setup(8); /* addr + len wraps */
	vqb_desc(&b, 0, ~0ULL - 2, 16, 0, 0);
	vqb_publish(&b, 0);
	expect_broken("wrap");

	setup(8); /* huge length */
	vqb_desc(&b, 0, VQB_BUFS, 0xffffffffu, 0, 0);
	vqb_publish(&b, 0);
	expect_broken("oversized length");

	setup(8); /* avail index far ahead */
	vqb_set_avail_idx(&b, 9);
	expect_broken("avail idx ahead");

	setup(8); /* readable after writable */
	vqb_desc(&b, 0, VQB_BUFS, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	vqb_desc(&b, 1, VQB_BUFS, 8, 0, 0);
	vqb_publish(&b, 0);
	expect_broken("readable after writable");

	setup(8); /* indirect not negotiated */
	vqb_desc(&b, 0, VQB_BUFS, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	expect_broken("indirect not negotiated");

	setup(8); /* nested indirect, bad table length, table outside RAM, loop in table */
	b.q.indirect = true;
	uint8_t *t = b.ram + VQB_BUFS;
	put64(t, VQB_BUFS + 0x100); put32(t + 8, 16); put16(t + 12, VIRTQ_DESC_F_INDIRECT);
	vqb_desc(&b, 0, VQB_BUFS, 16, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	expect_broken("nested indirect");
	setup(8);
	b.q.indirect = true;
	vqb_desc(&b, 0, VQB_BUFS, 20, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	expect_broken("indirect len not multiple of 16");
	setup(8);
	b.q.indirect = true;
	vqb_desc(&b, 0, VQB_RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	expect_broken("indirect table outside RAM");
	setup(8);
	b.q.indirect = true;
	t = b.ram + VQB_BUFS;
	put64(t, VQB_BUFS + 0x100); put32(t + 8, 8); put16(t + 12, VIRTQ_DESC_F_NEXT); put16(t + 14, 1);
	put64(t + 16, VQB_BUFS + 0x100); put32(t + 24, 8); put16(t + 28, VIRTQ_DESC_F_NEXT); put16(t + 30, 0);
	vqb_desc(&b, 0, VQB_BUFS, 32, VIRTQ_DESC_F_INDIRECT, 0);
	vqb_publish(&b, 0);
	expect_broken("indirect loop");

	/* reset clears broken; a reactivated queue works again */
	virtq_reset(&b.q);
	CHECK(!b.q.broken);
}

TEST(activation_checks)
{
	vqb_free(&b);
	vqb_init(&b, 8);
	b.q.size = 6;
	CHECK(virtq_activate(&b.q, &b.gm) < 0); /* not a power of two */
	b.q.size = 2048;
	CHECK(virtq_activate(&b.q, &b.gm) < 0); /* too large */
	b.q.size = 8;
	b.q.desc_gpa = VQB_DESC + 8;
	CHECK(virtq_activate(&b.q, &b.gm) < 0); /* misaligned */
	b.q.desc_gpa = VQB_DESC;
	b.q.used_gpa = VQB_RAM_SIZE - 8;
	CHECK(virtq_activate(&b.q, &b.gm) < 0); /* used ring past RAM */
	CHECK(!b.q.ready);
	CHECK_EQ(virtq_pop(&b.q, &c), 0); /* not ready: nothing, no crash */
}

int main(void)
{
	RUN(chain_out_in_and_used);
	RUN(index_wraparound);
	RUN(indirect);
	RUN(event_idx);
	RUN(hostile_chains);
	RUN(activation_checks);
	vqb_free(&b);
	TEST_MAIN_END();
}
