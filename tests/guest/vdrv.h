/* A minimal virtio 1.x PCI driver for test guests (polling or MSI-X). */
#ifndef TG_VDRV_H
#define TG_VDRV_H

#include "rt.h"

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct vq {
	uint16_t size;
	struct vdesc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[] */
	volatile uint8_t *used;	  /* flags, idx, ring[]{id,len} */
	uint16_t avail_idx, last_used;
	uint64_t notify;
	uint16_t index;
};

struct vdev {
	int slot;
	uint64_t common, notify, isr, devcfg, msix_table;
	uint32_t notify_mult;
	uint8_t msix_cap;
	uint64_t features; /* offered */
};

/* Find the device (virtio id), enable memory + bus mastering, map its caps. */
bool vdev_open(struct vdev *d, uint16_t virtio_id);
/* Reset, ACK, DRIVER, accept @want & offered (+VERSION_1), FEATURES_OK. */
bool vdev_negotiate(struct vdev *d, uint64_t want);
/* Route MSI-X vector @v to IDT vector @idt_vec on APIC 0 and enable MSI-X. */
void vdev_msix(struct vdev *d, int v, uint8_t idt_vec);
/* Set up queue @qi with @size entries (fewer if the device's maximum is
 * smaller; power of 2, at most 256) in @mem (16 KiB aligned to 4 KiB), vector @vec. */
bool vq_setup(struct vdev *d, struct vq *q, uint16_t qi, uint16_t size, void *mem, uint16_t vec);
void vdev_driver_ok(struct vdev *d);
/* Post chain @head (already in desc[]) and notify. */
void vq_kick(struct vq *q, uint16_t head);
/* Wait (spinning, bounded) for a used entry; returns false on timeout. */
bool vq_wait_used(struct vq *q, uint32_t *id, uint32_t *len);

#endif
