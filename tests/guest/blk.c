/* A minimal virtio-blk driver: write, flush, read back, serial, bounds, read-only. */
#include "vdrv.h"

#define N "blk"
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define CHUNK 65536

static uint8_t ring[16384] __attribute__((aligned(4096)));
static uint8_t data[CHUNK] __attribute__((aligned(4096)));
static uint8_t check[CHUNK] __attribute__((aligned(4096)));
static struct { uint32_t type, reserved; uint64_t sector; } hdr __attribute__((aligned(16)));
static volatile uint8_t status;
static struct vq q;

static uint8_t request(uint32_t type, uint64_t sector, void *buf, uint32_t len, bool dev_writes)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	status = 0xff;
	q.desc[0] = (struct vdesc){ (uint64_t)&hdr, 16, 1, 1 };
	uint16_t next = 1;
	if (len) {
		q.desc[1] = (struct vdesc){ (uint64_t)buf, len, (uint16_t)(1 | (dev_writes ? 2 : 0)), 2 };
		next = 2;
	}
	q.desc[next] = (struct vdesc){ (uint64_t)&status, 1, 2, 0 };
	vq_kick(&q, 0);
	uint32_t id, l;
	if (!vq_wait_used(&q, &id, &l))
		test_fail(N, "request timed out");
	return status;
}

static void pattern(uint8_t *p, uint64_t sector, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(sector * 7 + i * 13 + (i >> 9));
}

void user_main(void)
{
	struct vdev d;
	CHECK_OR_FAIL(vdev_open(&d, 2), N);
	/* RO, BLK_SIZE and FLUSH change what we do; nothing else is accepted. */
	CHECK_OR_FAIL(vdev_negotiate(&d, 1ULL << F_RO | 1ULL << F_BLK_SIZE | 1ULL << F_FLUSH), N);
	CHECK_OR_FAIL(vq_setup(&d, &q, 0, 16, ring, 0xffff), N); /* polled, no vector */
	vdev_driver_ok(&d);
	uint64_t capacity = mmio_r32(d.devcfg) | (uint64_t)mmio_r32(d.devcfg + 4) << 32;
	bool ro = d.features & (1ULL << F_RO);
	bool flush = d.features & (1ULL << F_FLUSH);
	/* config: capacity 0, size_max 8, seg_max 12, geometry 16, blk_size 20 */
	uint32_t blk_size = d.features & (1ULL << F_BLK_SIZE) ? mmio_r32(d.devcfg + 20) : 512;
	printf_serial("capacity=%u sectors ro=%u flush=%u blk_size=%u\n", (unsigned long)capacity,
		      (unsigned long)ro, (unsigned long)flush, (unsigned long)blk_size);
	CHECK_OR_FAIL(blk_size >= 512 && !(blk_size & (blk_size - 1)), N);
	CHECK_OR_FAIL(capacity >= CHUNK / 512 * 3, N); /* three chunks that do not overlap */

	char serial[21] = { 0 };
	CHECK_OR_FAIL(request(T_GET_ID, 0, serial, 20, true) == 0, N);
	printf_serial("serial=%s\n", serial);

	uint64_t where[] = { 0, 128, capacity - CHUNK / 512 };
	if (ro) {
		pattern(data, 0, CHUNK);
		CHECK_OR_FAIL(request(T_OUT, 0, data, CHUNK, false) == 1, N); /* IOERR */
		CHECK_OR_FAIL(request(T_OUT, capacity - 1, data, 512, false) == 1, N);
		CHECK_OR_FAIL(request(T_IN, 0, check, CHUNK, true) == 0, N); /* reads work */
	} else {
		for (int i = 0; i < 3; i++) {
			pattern(data, where[i], CHUNK);
			CHECK_OR_FAIL(request(T_OUT, where[i], data, CHUNK, false) == 0, N);
		}
		if (flush) /* only with VIRTIO_BLK_F_FLUSH negotiated */
			CHECK_OR_FAIL(request(T_FLUSH, 0, NULL, 0, false) == 0, N);
		CHECK_OR_FAIL(request(T_OUT, capacity, data, 512, false) == 1, N); /* past the end */
		for (int i = 0; i < 3; i++) {
			memset(check, 0, CHUNK);
			CHECK_OR_FAIL(request(T_IN, where[i], check, CHUNK, true) == 0, N);
			pattern(data, where[i], CHUNK);
			CHECK_OR_FAIL(memcmp(check, data, CHUNK) == 0, N);
		}
	}
	/* past the end: an error status, not a crash or a hang */
	CHECK_OR_FAIL(request(T_IN, capacity, check, 512, true) == 1, N);
	CHECK_OR_FAIL(request(T_IN, capacity - 1, check, 1024, true) == 1, N);
	CHECK_OR_FAIL(request(99, 0, NULL, 0, false) == 2, N); /* UNSUPP */
	test_pass(N);
}
