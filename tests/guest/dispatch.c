/* Port-I/O and MMIO dispatch, from CPL 3: UART, PCI config, a virtio BAR. */
#include "rt.h"

#define N "dispatch"

void user_main(void)
{
	outb(0x3ff, 0x5a); /* UART scratch */
	CHECK_OR_FAIL(inb(0x3ff) == 0x5a, N);
	outb(0x3ff, 0xa5);
	CHECK_OR_FAIL(inb(0x3ff) == 0xa5, N);
	CHECK_OR_FAIL((pci_read32(0, 0) & 0xffff) != 0xffff, N); /* 00:00.0 is there */
	CHECK_OR_FAIL((pci_read32(0, 8) >> 8) == 0x060000, N);	  /* a host bridge */
	CHECK_OR_FAIL(pci_read32(31, 0) == 0xffffffffu, N);	  /* empty slot */
	inb(0x2f8);						  /* unclaimed port: no crash */
	int s = pci_find(0x1af4, 0x1044);
	CHECK_OR_FAIL(s > 0, N);
	CHECK_OR_FAIL(pci_read16(s, 6) & 0x10, N);		/* a capability list */
	pci_write16(s, 4, 0x2);
	CHECK_OR_FAIL(pci_read16(s, 4) & 0x2, N);		/* memory space enabled */
	/* Find the common config through the capability list. */
	uint64_t common = 0, bar = 0;
	int guard = 0;
	for (uint8_t cap = (uint8_t)pci_read32(s, 0x34); cap && guard < 48;
	     cap = (uint8_t)(pci_read32(s, cap) >> 8), guard++)
		if ((pci_read32(s, cap) & 0xff) == 9 && (pci_read32(s, cap) >> 24) == 1) {
			bar = pci_bar(s, pci_read32(s, cap + 4) & 0xff); /* 32- or 64-bit */
			common = bar + pci_read32(s, cap + 8);
		}
	CHECK_OR_FAIL(common, N);
	/* assigned by pocketvm in the PCI hole, below the IOAPIC */
	CHECK_OR_FAIL(bar >= 0xC0000000ULL && bar < 0xFEC00000ULL, N);
	mmio_w32(common + 0, 1);			/* device_feature_select = 1 */
	CHECK_OR_FAIL(mmio_r32(common + 4) & 1, N);	/* VERSION_1 */
	mmio_w16(common + 22, 0);			/* queue_select */
	uint16_t qs = mmio_r16(common + 24);
	CHECK_OR_FAIL(qs && qs <= 32768 && !(qs & (qs - 1)), N); /* split: a power of 2 */
	mmio_w16(common + 22, 7);			/* a queue that does not exist */
	CHECK_OR_FAIL(mmio_r16(common + 22) == 7, N);
	CHECK_OR_FAIL(mmio_r16(common + 24) == 0, N);
	mmio_w16(common + 22, 0);
	CHECK_OR_FAIL(mmio_r16(common + 24) == qs, N);
	CHECK_OR_FAIL(mmio_r16(common + 18) >= 1, N);	/* num_queues */
	mmio_w32(common + 0, 0x12345678);		/* writes stick */
	CHECK_OR_FAIL(mmio_r32(common + 0) == 0x12345678, N);
	printf_serial("rng slot=%u class=%x bar0=%x queue_size=%u\n", (unsigned long)s,
		      (unsigned long)(pci_read32(s, 8) >> 8), (unsigned long)bar, (unsigned long)qs);
	test_pass(N);
}
