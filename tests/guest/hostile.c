/*
 * A hostile driver: a looping descriptor chain and a buffer outside RAM.
 * The device must flag DEVICE_NEEDS_RESET (and the VMM keep running); after
 * a reset the same device must work again.
 */
#include "vdrv.h"

#define N "hostile"
#define NEEDS_RESET 0x40

static uint8_t ring[16384] __attribute__((aligned(4096)));
static uint8_t buf[64];

static void wait_needs_reset(struct vdev *d, const char *what)
{
	for (uint64_t t0 = rdtsc(); !(mmio_r8(d->common + 20) & NEEDS_RESET);)
		if (rdtsc() - t0 > TSC_TIMEOUT)
			test_fail(N, what);
	printf_serial("needs-reset after %s\n", what);
}

static void setup(struct vdev *d, struct vq *q)
{
	CHECK_OR_FAIL(vdev_negotiate(d, 0), N); /* writes status 0 first: a reset */
	CHECK_OR_FAIL(!(mmio_r8(d->common + 20) & NEEDS_RESET), N);
	CHECK_OR_FAIL(vq_setup(d, q, 0, 16, ring, 0xffff), N);
	vdev_driver_ok(d);
}

void user_main(void)
{
	struct vdev d;
	struct vq q;
	uint32_t id, len;
	CHECK_OR_FAIL(vdev_open(&d, 4), N);

	setup(&d, &q); /* 1: a descriptor chain that loops back on itself */
	q.desc[0] = (struct vdesc){ (uint64_t)buf, 8, 1 | 2, 1 };
	q.desc[1] = (struct vdesc){ (uint64_t)buf, 8, 1 | 2, 0 };
	vq_kick(&q, 0);
	wait_needs_reset(&d, "a looping chain");

	setup(&d, &q); /* 2: a buffer far outside guest RAM */
	q.desc[0] = (struct vdesc){ 0x7000000000ULL, 64, 2, 0 };
	vq_kick(&q, 0);
	wait_needs_reset(&d, "a buffer outside RAM");

	setup(&d, &q); /* 3: an avail index far ahead of the ring */
	q.avail[1] = 1000;
	mmio_w16(q.notify, 0);
	wait_needs_reset(&d, "an avail index ahead of the ring");

	setup(&d, &q); /* after a reset the device serves a good request */
	q.desc[0] = (struct vdesc){ (uint64_t)buf, sizeof(buf), 2, 0 };
	vq_kick(&q, 0);
	CHECK_OR_FAIL(vq_wait_used(&q, &id, &len), N);
	CHECK_OR_FAIL(len == sizeof(buf), N);
	test_pass(N);
}
