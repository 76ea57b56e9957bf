/* virtio-rng through MSI-X: each request completes with an interrupt. */
#include "vdrv.h"

#define N "msix"
#define ROUNDS 100

static uint8_t ring[16384] __attribute__((aligned(4096)));
static uint8_t buf[64] __attribute__((aligned(64)));

void user_main(void)
{
	struct vdev d;
	struct vq q;
	CHECK_OR_FAIL(vdev_open(&d, 4), N);
	CHECK_OR_FAIL(d.msix_cap, N);
	CHECK_OR_FAIL(vdev_negotiate(&d, 0), N);
	vdev_msix(&d, 0, 0x40);
	CHECK_OR_FAIL(vq_setup(&d, &q, 0, 16, ring, 0), N);
	vdev_driver_ok(&d);
	uint32_t nonzero = 0;
	for (int i = 0; i < ROUNDS; i++) {
		uint32_t before = irq_count[0x40], id, len;
		memset(buf, 0, sizeof(buf));
		q.desc[0] = (struct vdesc){ (uint64_t)buf, sizeof(buf), 2, 0 };
		vq_kick(&q, 0);
		CHECK_OR_FAIL(vq_wait_used(&q, &id, &len), N);
		CHECK_OR_FAIL(id == 0 && len == sizeof(buf), N);
		for (uint64_t t0 = rdtsc(); irq_count[0x40] == before;)
			if (rdtsc() - t0 > TSC_TIMEOUT)
				test_fail(N, "no interrupt");
		for (unsigned k = 0; k < sizeof(buf); k++)
			nonzero += buf[k] != 0;
	}
	printf_serial("interrupts=%u nonzero=%u\n", (unsigned long)irq_count[0x40],
		      (unsigned long)nonzero);
	CHECK_OR_FAIL(irq_count[0x40] == ROUNDS, N);
	CHECK_OR_FAIL(nonzero > ROUNDS * 60, N); /* random bytes are rarely zero */
	test_pass(N);
}
