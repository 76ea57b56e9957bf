/*
 * PCI: a host bridge on bus 0 reached through configuration mechanism #1
 * (ports 0xCF8/0xCFC), type-0 configuration spaces with write masks,
 * capability lists, and memory BARs that are pre-assigned (as firmware would)
 * and mapped on the MMIO bus while the command register enables memory.
 */
#ifndef POCKETVM_PCI_H
#define POCKETVM_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_SLOTS 32
#define PCI_NUM_BARS 6
#define PCI_CFG_SIZE 256
#define PCI_MMIO_BASE 0xC0000000ULL /* BARs are assigned from here up */
#define PCI_MMIO_END 0xFEC00000ULL

/* Config space offsets */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS_CAP_LIST 0x10

struct pci_dev;

struct pci_dev_ops {
	/* An access to BAR @bar at @off (handler runs on a vCPU thread). */
	void (*bar_access)(struct pci_dev *d, int bar, uint64_t off, uint8_t *data,
			   uint32_t size, bool is_write);
	/* BAR @bar now decodes at @addr (0: no longer decoded). */
	void (*bar_mapped)(struct pci_dev *d, int bar, uint64_t addr);
	/* Called after a config write landed in cfg[] (capability side effects). */
	void (*cfg_written)(struct pci_dev *d, uint32_t off, uint32_t size);
};

struct pci_bar {
	uint64_t size;	  /* power of two >= 4 KiB; 0 = unused */
	bool is64;
	uint64_t mapped;  /* address decoded on the MMIO bus now, 0 = none */
	struct pci_dev *dev;
	int index;
};

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
	struct pci_bar bar[PCI_NUM_BARS];
	uint8_t cap_next;	     /* where the next capability goes */
	uint8_t *cap_last_next;	     /* the previous capability's next byte */
	int slot;
	const char *name;
	const struct pci_dev_ops *ops;
	void *opaque;
	struct pci_bus *bus;
};

struct io_bus;

struct pci_bus {
	pthread_mutex_t lock;
	struct pci_dev *slot[PCI_MAX_SLOTS];
	struct pci_dev host_bridge;
	uint32_t cf8;
	uint64_t mmio_next;
	struct io_bus *mmio;
};

/* Set up the bus and its host bridge (slot 0); register the conf1 ports. */
int pci_bus_init(struct pci_bus *bus, struct io_bus *pio, struct io_bus *mmio);

/*
 * pci_dev_init - a type-0 header: IDs, class, subsystem; no BARs yet.
 * pci_dev_add_bar - declare memory BAR @bar of @size bytes.
 * pci_dev_add_cap - append a capability (@len bytes starting with the ID;
 * the next pointer is filled in); returns its config offset or 0 when full.
 */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id);
void pci_dev_add_bar(struct pci_dev *d, int bar, uint64_t size, bool is64);
uint8_t pci_dev_add_cap(struct pci_dev *d, const uint8_t *cap, uint8_t len);

/* Plug @d into the next free slot and assign its BAR addresses. */
int pci_bus_add(struct pci_bus *bus, struct pci_dev *d);

/* Configuration space accesses (also used by unit tests). */
uint32_t pci_cfg_read(struct pci_dev *d, uint32_t off, uint32_t size);
void pci_cfg_write(struct pci_dev *d, uint32_t off, uint32_t size, uint32_t val);

/* Current address of BAR @bar as programmed by the guest. */
uint64_t pci_bar_addr(const struct pci_dev *d, int bar);

#endif
