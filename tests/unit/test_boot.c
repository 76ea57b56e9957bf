/* boot_params, e820 and MP table construction. */
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot.h"
#include "harness.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* A guest_mem shaped like gm_init's layout without allocating RAM. */
static void fake_layout(struct guest_mem *gm, uint64_t ram)
{
	memset(gm, 0, sizeof(*gm));
	uint64_t low = ram < GM_PCI_HOLE_START ? ram : GM_PCI_HOLE_START;
	gm->region[0] = (struct gm_region){ .gpa = 0, .size = low };
	gm->nr_regions = 1;
	if (ram > low) {
		gm->region[1] = (struct gm_region){ .gpa = GM_HIGH_START, .size = ram - low };
		gm->nr_regions = 2;
	}
	gm->ram_size = ram;
}

TEST(e820_small)
{
	struct guest_mem gm;
	struct e820_entry e[E820_MAX];
	fake_layout(&gm, 512ULL << 20);
	int n = boot_e820_build(&gm, e, E820_MAX);
	CHECK_EQ(n, 4);
	CHECK_EQ(e[0].addr, 0);
	CHECK_EQ(e[0].type, E820_RAM);
	CHECK_EQ(e[1].type, E820_RESERVED);
	CHECK_EQ(e[2].addr, 0x100000);
	CHECK_EQ(e[2].addr + e[2].size, 512ULL << 20);
	CHECK_EQ(e[3].type, E820_RESERVED);
	uint64_t ram = 0;
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM)
			ram += e[i].size;
	/* everything but the EBDA/BIOS window is RAM */
	CHECK_EQ(ram, (512ULL << 20) - (0x100000 - 0x9fc00));
}

TEST(e820_above_4g)
{
	struct guest_mem gm;
	struct e820_entry e[E820_MAX];
	fake_layout(&gm, 5ULL << 30);
	int n = boot_e820_build(&gm, e, E820_MAX);
	CHECK_EQ(n, 5);
	CHECK_EQ(e[2].addr + e[2].size, GM_PCI_HOLE_START);
	CHECK_EQ(e[4].addr, GM_HIGH_START);
	CHECK_EQ(e[4].size, 2ULL << 30);
	CHECK_EQ(e[4].type, E820_RAM);
	/* no RAM entry overlaps the PCI hole */
	for (int i = 0; i < n; i++)
		if (e[i].type == E820_RAM)
			CHECK(e[i].addr + e[i].size <= GM_PCI_HOLE_START || e[i].addr >= GM_HIGH_START);
}

TEST(boot_params_elf)
{
	struct guest_mem gm;
	struct kernel_info ki = { .entry = 0x1000000, .compression = "none" };
	uint8_t *zp = malloc(4096);
	fake_layout(&gm, 256ULL << 20);
	boot_params_build(zp, &ki, &gm, 0x20000, 10, 0x8000000, 0x123456);
	CHECK_EQ(zp[0x1fe] | zp[0x1ff] << 8, 0xAA55);
	CHECK(memcmp(zp + 0x202, "HdrS", 4) == 0);
	CHECK_EQ(zp[0x210], 0xff);
	CHECK_EQ(rd32(zp + 0x228), 0x20000);
	CHECK_EQ(rd32(zp + 0x218), 0x8000000);
	CHECK_EQ(rd32(zp + 0x21c), 0x123456);
	CHECK_EQ(zp[0x1e8], 4);
	CHECK_EQ(rd64(zp + 0x2d0 + 20 * 2), 0x100000);
	CHECK_EQ(rd32(zp + 0x2d0 + 20 * 2 + 16), E820_RAM);
	free(zp);
}

TEST(boot_params_bzimage_keeps_header)
{
	struct guest_mem gm;
	struct kernel_info ki = { .entry = 0x1000000, .bzimage = true };
	uint8_t *zp = malloc(4096);
	fake_layout(&gm, 256ULL << 20);
	memset(ki.setup_hdr, 0, sizeof(ki.setup_hdr));
	ki.setup_hdr[0] = 0x1f;			/* setup_sects */
	memcpy(ki.setup_hdr + (0x202 - 0x1f1), "HdrS", 4);
	ki.setup_hdr[0x206 - 0x1f1] = 0x0f;	/* version 2.15 */
	ki.setup_hdr[0x207 - 0x1f1] = 0x02;
	boot_params_build(zp, &ki, &gm, 0x20000, 0, 0, 0);
	CHECK_EQ(zp[0x1f1], 0x1f);
	CHECK_EQ(zp[0x206] | zp[0x207] << 8, 0x020f);
	CHECK_EQ(zp[0x210], 0xff);
	CHECK_EQ(rd32(zp + 0x228), 0x20000);
	free(zp);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

TEST(mptable)
{
	uint8_t buf[1024];
	for (int cpus = 1; cpus <= 8; cpus++) {
		size_t n = boot_mptable_build(buf, sizeof(buf), 0x9fc00, cpus);
		CHECK(n > 0);
		CHECK(memcmp(buf, "_MP_", 4) == 0);
		CHECK_EQ(sum(buf, 16), 0);
		CHECK_EQ(rd32(buf + 4), 0x9fc10);
		uint8_t *hdr = buf + 16;
		CHECK(memcmp(hdr, "PCMP", 4) == 0);
		unsigned len = hdr[4] | hdr[5] << 8;
		CHECK_EQ(sum(hdr, len), 0);
		/* processor entries come first, one per vCPU, BSP flagged once */
		int procs = 0, bsp = 0;
		for (uint8_t *p = hdr + 44; p[0] == 0; p += 20) {
			procs++;
			bsp += (p[3] & 2) != 0;
		}
		CHECK_EQ(procs, cpus);
		CHECK_EQ(bsp, 1);
	}
	CHECK_EQ(boot_mptable_build(buf, 64, 0x9fc00, 8), 0); /* too small */
	CHECK_EQ(boot_mptable_build(buf, sizeof(buf), 0x9fc00, 0), 0);
}

int main(void)
{
	RUN(e820_small);
	RUN(e820_above_4g);
	RUN(boot_params_elf);
	RUN(boot_params_bzimage_keeps_header);
	RUN(mptable);
	TEST_MAIN_END();
}
