/* Port-I/O and MMIO dispatch, from CPL 3: UART, PCI config, a virtio BAR. */
#include "rt.h"

#define N "dispatch"

void user_main(void)
{
	outb(0x3ff, 0x5a); /* UART scratch */
	CHECK_OR_FAIL(inb(0x3ff) == 0x5a, N);
	outb(0x3ff, 0xa5);
	CHECK_OR_FAIL(inb(0x3ff) == 0xa5, N);
	CHECK_OR_FAIL((pci_read32(0, 8) >> 8) == 0x060000, N); /* host bridge */
	CHECK_OR_FAIL(pci_read32(31, 0) == 0xffffffffu, N);	  /* empty slot */
	inb(0x2f8);						  /* unclaimed port: no crash */
	int s = pci_find(0x1af4, 0x1044);
	CHECK_OR_FAIL(s > 0, N);
	pci_write16(s, 4, 0x2);
	uint64_t bar = pci_bar(s, 0);
	CHECK_OR_FAIL(bar >= 0xC0000000ULL && bar < 0xFEC00000ULL, N);
	/* Find the common config through the capability list. */
	uint64_t common = 0;
	for (uint8_t cap = (uint8_t)pci_read32(s, 0x34); cap; cap = (uint8_t)(pci_read32(s, cap) >> 8))
		if ((pci_read32(s, cap) & 0xff) == 9 && (pci_read32(s, cap) >> 24) == 1)
			common = bar + pci_read32(s, cap + 8);
	CHECK_OR_FAIL(common, N);
	mmio_w32(common + 0, 1);			/* device_feature_select = 1 */
	CHECK_OR_FAIL(mmio_r32(common + 4) & 1, N);	/* VERSION_1 */
	mmio_w16(common + 22, 0);			/* queue_select */
	uint16_t qs = mmio_r16(common + 24);
	CHECK_OR_FAIL(qs >= 16 && !(qs & (qs - 1)), N);
	mmio_w16(common + 22, 7);			/* a queue that does not exist */
	CHECK_OR_FAIL(mmio_r16(common + 24) == 0, N);
	mmio_w32(common + 0, 0x12345678);		/* writes stick */
	CHECK_OR_FAIL(mmio_r32(common + 0) == 0x12345678, N);
	printf_serial("bar0=%x queue_size=%u\n", (unsigned long)bar, (unsigned long)qs);
	test_pass(N);
}
