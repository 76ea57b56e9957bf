/* PCI configuration space: conf1 ports, masks, BAR sizing and decoding, caps. */
#include <string.h>

#include "bus/io_bus.h"
#include "harness.h"
#include "pci/pci.h"

static struct io_bus pio, mmio;
static struct pci_bus bus;
static int accesses;
static uint64_t last_off;
static int mapped_calls;
static uint64_t mapped_addr;

static void dev_bar(struct pci_dev *d, int bar, uint64_t off, uint8_t *data, uint32_t size,
		    bool is_write)
{
	accesses++;
	last_off = off;
	if (!is_write)
		memset(data, 0xab, size);
}

static void dev_mapped(struct pci_dev *d, int bar, uint64_t addr)
{
	mapped_calls++;
	mapped_addr = addr;
}

static const struct pci_dev_ops dev_ops = { .bar_access = dev_bar, .bar_mapped = dev_mapped };

static uint32_t conf1_read(int slot, uint32_t reg, uint32_t size)
{
	uint8_t a[4], d[4] = { 0 };
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (reg & 0xfc);
	memcpy(a, &addr, 4);
	io_bus_access(&pio, 0xcf8, a, 4, true);
	io_bus_access(&pio, 0xcfc + (reg & 3), d, size, false);
	uint32_t v = 0;
	memcpy(&v, d, size);
	return v;
}

static void conf1_write(int slot, uint32_t reg, uint32_t size, uint32_t v)
{
	uint8_t a[4], d[4];
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (reg & 0xfc);
	memcpy(a, &addr, 4);
	memcpy(d, &v, 4);
	io_bus_access(&pio, 0xcf8, a, 4, true);
	io_bus_access(&pio, 0xcfc + (reg & 3), d, size, true);
}

TEST(host_bridge_and_empty_slots)
{
	CHECK_EQ(conf1_read(0, 0, 2), 0x1b36);
	CHECK_EQ(conf1_read(0, 0x0a, 2), 0x0600); /* class: host bridge */
	CHECK_EQ(conf1_read(7, 0, 4), 0xffffffffu);
	/* function != 0 and bus != 0 are absent */
	uint8_t a[4], d[4];
	uint32_t addr = 0x80000100u;
	memcpy(a, &addr, 4);
	io_bus_access(&pio, 0xcf8, a, 4, true);
	io_bus_access(&pio, 0xcfc, d, 4, false);
	CHECK_EQ(d[0], 0xff);
}

TEST(device_bar_sizing_and_decode)
{
	static struct pci_dev dev;
	pci_dev_init(&dev, "t", 0x1af4, 0x1044, 0xff0000, 1, 0x1af4, 0x40);
	dev.ops = &dev_ops;
	dev.opaque = &dev;
	pci_dev_add_bar(&dev, 0, 0x8000, false);
	uint8_t cap[4] = { 0x11, 0, 0, 0 };
	uint8_t off = pci_dev_add_cap(&dev, cap, sizeof(cap));
	CHECK_EQ(off, 0x40);
	CHECK_EQ(pci_bus_add(&bus, &dev), 0);
	int slot = dev.slot;
	CHECK_EQ(slot, 1);

	uint32_t bar = conf1_read(slot, 0x10, 4);
	CHECK_EQ(bar, PCI_MMIO_BASE);
	CHECK_EQ(conf1_read(slot, PCI_CAP_PTR, 1), 0x40);
	CHECK(conf1_read(slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);

	/* memory decoding is off until the command register enables it */
	uint8_t data[4];
	CHECK(!io_bus_access(&mmio, PCI_MMIO_BASE, data, 4, false));
	conf1_write(slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	CHECK_EQ(mapped_calls, 1);
	CHECK_EQ(mapped_addr, PCI_MMIO_BASE);
	CHECK(io_bus_access(&mmio, PCI_MMIO_BASE + 0x10, data, 4, false));
	CHECK_EQ(accesses, 1);
	CHECK_EQ(last_off, 0x10);
	CHECK_EQ(data[0], 0xab);

	/* sizing: decode off, all ones, read back the size mask */
	conf1_write(slot, PCI_COMMAND, 2, 0);
	CHECK_EQ(mapped_addr, 0);
	conf1_write(slot, 0x10, 4, 0xffffffffu);
	CHECK_EQ(conf1_read(slot, 0x10, 4), 0xffff8000u);
	/* move it and decode again */
	conf1_write(slot, 0x10, 4, 0xd0000000u);
	conf1_write(slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CHECK_EQ(mapped_addr, 0xd0000000u);
	CHECK(!io_bus_access(&mmio, PCI_MMIO_BASE, data, 4, false));
	CHECK(io_bus_access(&mmio, 0xd0000000u + 0x7ffc, data, 4, false));

	/* read-only fields stay */
	conf1_write(slot, 0, 4, 0);
	CHECK_EQ(conf1_read(slot, 0, 2), 0x1af4);
	/* out of range config access */
	CHECK_EQ(pci_cfg_read(&dev, 254, 4), 0xffffffffu);
	pci_cfg_write(&dev, 300, 4, 0); /* ignored, no crash */
}

TEST(bar_refuses_low_memory)
{
	static struct pci_dev dev;
	pci_dev_init(&dev, "low", 0x1af4, 0x1042, 0x018000, 1, 0x1af4, 0x40);
	dev.ops = &dev_ops;
	dev.opaque = &dev;
	pci_dev_add_bar(&dev, 0, 0x1000, false);
	CHECK_EQ(pci_bus_add(&bus, &dev), 0);
	mapped_calls = 0;
	conf1_write(dev.slot, 0x10, 4, 0x0);
	conf1_write(dev.slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	CHECK_EQ(mapped_calls, 0); /* a BAR at 0 is never decoded over RAM */
}

int main(void)
{
	io_bus_init(&pio, "pio");
	io_bus_init(&mmio, "mmio");
	if (pci_bus_init(&bus, &pio, &mmio))
		return 1;
	RUN(host_bridge_and_empty_slots);
	RUN(device_bar_sizing_and_decode);
	RUN(bar_refuses_low_memory);
	TEST_MAIN_END();
}
