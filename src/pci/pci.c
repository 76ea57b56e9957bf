#include "pci/pci.h"

#include <errno.h>
#include <string.h>

#include "bus/io_bus.h"
#include "core/le.h"
#include "core/log.h"

#define PCI_CONF1_ADDR 0xcf8
#define PCI_CONF1_DATA 0xcfc

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	put16(d->cfg + PCI_VENDOR_ID, vendor);
	put16(d->cfg + PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION] = revision;
	d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	d->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	d->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	put16(d->cfg + PCI_SUBSYS_VENDOR, subsys_vendor);
	put16(d->cfg + PCI_SUBSYS_ID, subsys_id);
	/* Command: I/O, memory, bus master, INTx disable are writable. */
	put16(d->wmask + PCI_COMMAND, 0x0407);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_next = 0x40;
	d->cap_last_next = &d->cfg[PCI_CAP_PTR];
}

void pci_dev_add_bar(struct pci_dev *d, int bar, uint64_t size, bool is64)
{
	d->bar[bar].size = size;
	d->bar[bar].is64 = is64;
	d->bar[bar].dev = d;
	d->bar[bar].index = bar;
	/* memory, 64-bit type 2 or 32-bit type 0, not prefetchable */
	put32(d->cfg + PCI_BAR0 + 4 * bar, is64 ? 0x4 : 0x0);
}

uint8_t pci_dev_add_cap(struct pci_dev *d, const uint8_t *cap, uint8_t len)
{
	uint8_t off = d->cap_next;

	if (len < 2 || (unsigned)off + len > PCI_CFG_SIZE)
		return 0;
	memcpy(d->cfg + off, cap, len);
	d->cfg[off + 1] = 0;
	*d->cap_last_next = off;
	d->cap_last_next = &d->cfg[off + 1];
	d->cap_next = (uint8_t)((off + len + 3) & ~3u);
	put16(d->cfg + PCI_STATUS, PCI_STATUS_CAP_LIST);
	return off;
}

uint64_t pci_bar_addr(const struct pci_dev *d, int bar)
{
	uint64_t a = le32(d->cfg + PCI_BAR0 + 4 * bar) & ~0xfULL;
	if (d->bar[bar].is64 && bar < PCI_NUM_BARS - 1)
		a |= (uint64_t)le32(d->cfg + PCI_BAR0 + 4 * (bar + 1)) << 32;
	return a;
}

static void pci_bar_mmio(void *opaque, uint64_t off, uint8_t *data, uint32_t size,
			 bool is_write);

/* Compare what each BAR should decode with what it does, and fix it. */
static void pci_update_mappings(struct pci_dev *d)
{
	bool mem_on = d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		uint64_t want = mem_on ? pci_bar_addr(d, i) : 0;
		/* Never decode over low memory or across the top of the space. */
		if (want && (want < 0x100000ULL || want + b->size < want))
			want = 0;
		if (want == b->mapped)
			continue;
		if (b->mapped) {
			io_bus_unregister(d->bus->mmio, b->mapped, b);
			b->mapped = 0;
		}
		if (want && io_bus_register(d->bus->mmio, want, b->size, pci_bar_mmio, b,
					    d->name) == 0)
			b->mapped = want;
		if (d->ops && d->ops->bar_mapped)
			d->ops->bar_mapped(d, i, b->mapped);
	}
}

static void pci_bar_mmio(void *opaque, uint64_t off, uint8_t *data, uint32_t size,
			 bool is_write)
{
	struct pci_bar *b = opaque;
	struct pci_dev *d = b->dev;

	if (d->ops && d->ops->bar_access)
		d->ops->bar_access(d, b->index, off, data, size, is_write);
	else if (!is_write)
		memset(data, 0xff, size);
}

uint32_t pci_cfg_read(struct pci_dev *d, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	if (off >= PCI_CFG_SIZE || size > 4 || off + size > PCI_CFG_SIZE)
		return 0xffffffffu;
	for (uint32_t i = 0; i < size; i++)
		v |= (uint32_t)d->cfg[off + i] << (8 * i);
	return v;
}

void pci_cfg_write(struct pci_dev *d, uint32_t off, uint32_t size, uint32_t val)
{
	if (off >= PCI_CFG_SIZE || size > 4 || off + size > PCI_CFG_SIZE)
		return;
	bool bar_touched = false, cmd_touched = false;

	for (uint32_t i = 0; i < size; i++) {
		uint32_t o = off + i;
		uint8_t b = (uint8_t)(val >> (8 * i));

		if (o >= PCI_BAR0 && o < PCI_BAR0 + 4 * PCI_NUM_BARS) {
			int bar = (int)(o - PCI_BAR0) / 4;
			int lo_bar = bar;
			bool high = false;
			if (bar > 0 && d->bar[bar - 1].is64 && d->bar[bar - 1].size) {
				lo_bar = bar - 1;
				high = true;
			}
			uint64_t sz = d->bar[lo_bar].size;
			if (!sz)
				continue;
			/* The writable address bits are those above the size. */
			uint64_t mask = ~(sz - 1);
			uint32_t m32 = high ? (uint32_t)(mask >> 32) : ((uint32_t)mask & ~0xfu);
			uint8_t bm = (uint8_t)(m32 >> (8 * ((o - PCI_BAR0) % 4)));
			d->cfg[o] = (uint8_t)((d->cfg[o] & ~bm) | (b & bm));
			bar_touched = true;
			continue;
		}
		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (b & d->wmask[o]));
		if (o == PCI_COMMAND)
			cmd_touched = true;
	}
	if (bar_touched || cmd_touched)
		pci_update_mappings(d);
	if (d->ops && d->ops->cfg_written)
		d->ops->cfg_written(d, off, size);
}

static struct pci_dev *pci_conf1_target(struct pci_bus *bus, uint32_t *reg)
{
	uint32_t a = bus->cf8;

	if (!(a & 0x80000000u))
		return NULL;
	unsigned busnr = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	if (busnr != 0 || fn != 0)
		return NULL;
	*reg = a & 0xfc;
	return bus->slot[slot];
}

static void pci_conf1_addr(void *opaque, uint64_t off, uint8_t *data, uint32_t size,
			   bool is_write)
{
	struct pci_bus *bus = opaque;

	if (off != 0 || size != 4) { /* only dword accesses hit CONFIG_ADDRESS */
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	if (is_write)
		bus->cf8 = le32(data) & 0x80fffffcu;
	else
		put32(data, bus->cf8);
	pthread_mutex_unlock(&bus->lock);
}

static void pci_conf1_data(void *opaque, uint64_t off, uint8_t *data, uint32_t size,
			   bool is_write)
{
	struct pci_bus *bus = opaque;
	uint32_t reg;

	pthread_mutex_lock(&bus->lock);
	struct pci_dev *d = pci_conf1_target(bus, &reg);
	if (!d || off + size > 4) {
		if (!is_write)
			memset(data, 0xff, size);
	} else if (is_write) {
		uint32_t v = 0;
		for (uint32_t i = 0; i < size; i++)
			v |= (uint32_t)data[i] << (8 * i);
		pci_cfg_write(d, reg + (uint32_t)off, size, v);
	} else {
		uint32_t v = pci_cfg_read(d, reg + (uint32_t)off, size);
		for (uint32_t i = 0; i < size; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
	pthread_mutex_unlock(&bus->lock);
}

int pci_bus_init(struct pci_bus *bus, struct io_bus *pio, struct io_bus *mmio)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	bus->mmio = mmio;
	bus->mmio_next = PCI_MMIO_BASE;
	/* Host bridge: Red Hat's ID for a generic virtual host bridge. */
	pci_dev_init(&bus->host_bridge, "host-bridge", 0x1b36, 0x0008, 0x060000, 0, 0x1af4, 0x1100);
	bus->host_bridge.bus = bus;
	bus->host_bridge.slot = 0;
	bus->slot[0] = &bus->host_bridge;
	int r = io_bus_register(pio, PCI_CONF1_ADDR, 4, pci_conf1_addr, bus, "pci-conf1-addr");
	if (r)
		return r;
	return io_bus_register(pio, PCI_CONF1_DATA, 4, pci_conf1_data, bus, "pci-conf1-data");
}

int pci_bus_add(struct pci_bus *bus, struct pci_dev *d)
{
	int slot;

	for (slot = 1; slot < PCI_MAX_SLOTS; slot++)
		if (!bus->slot[slot])
			break;
	if (slot == PCI_MAX_SLOTS)
		return -ENOSPC;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint64_t sz = d->bar[i].size;
		if (!sz)
			continue;
		uint64_t a = (bus->mmio_next + sz - 1) & ~(sz - 1);
		if (a + sz > PCI_MMIO_END)
			return -ENOSPC;
		put32(d->cfg + PCI_BAR0 + 4 * i, (uint32_t)a | (d->bar[i].is64 ? 0x4 : 0));
		if (d->bar[i].is64)
			put32(d->cfg + PCI_BAR0 + 4 * (i + 1), (uint32_t)(a >> 32));
		bus->mmio_next = a + sz;
	}
	d->bus = bus;
	d->slot = slot;
	pthread_mutex_lock(&bus->lock);
	bus->slot[slot] = d;
	pthread_mutex_unlock(&bus->lock);
	return 0;
}
