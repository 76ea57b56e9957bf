#include "vdrv.h"

#define CC_DFSELECT 0
#define CC_DF 4
#define CC_GFSELECT 8
#define CC_GF 12
#define CC_MSIX_CONFIG 16
#define CC_STATUS 20
#define CC_Q_SELECT 22
#define CC_Q_SIZE 24
#define CC_Q_MSIX 26
#define CC_Q_ENABLE 28
#define CC_Q_NOFF 30
#define CC_Q_DESC 32
#define CC_Q_AVAIL 40
#define CC_Q_USED 48

bool vdev_open(struct vdev *d, uint16_t virtio_id)
{
	memset(d, 0, sizeof(*d));
	d->slot = pci_find(0x1af4, (uint16_t)(0x1040 + virtio_id));
	if (d->slot < 0)
		return false;
	pci_write16(d->slot, 4, 0x6); /* memory space, bus master */
	uint8_t cap = (uint8_t)pci_read32(d->slot, 0x34);
	for (int guard = 0; cap && guard < 48; guard++) {
		uint32_t h = pci_read32(d->slot, cap);
		uint8_t id = (uint8_t)h, next = (uint8_t)(h >> 8);
		if (id == 0x09) {
			uint8_t type = (uint8_t)(h >> 24);
			uint8_t bar = (uint8_t)pci_read32(d->slot, cap + 4);
			uint64_t a = pci_bar(d->slot, bar) + pci_read32(d->slot, cap + 8);
			if (type == 1) d->common = a;
			if (type == 2) { d->notify = a; d->notify_mult = pci_read32(d->slot, cap + 16); }
			if (type == 3) d->isr = a;
			if (type == 4) d->devcfg = a;
		} else if (id == 0x11) {
			d->msix_cap = cap;
			uint32_t t = pci_read32(d->slot, cap + 4);
			d->msix_table = pci_bar(d->slot, t & 7) + (t & ~7u);
		}
		cap = next;
	}
	return d->common && d->notify;
}

bool vdev_negotiate(struct vdev *d, uint64_t want)
{
	uint64_t c = d->common;
	mmio_w8(c + CC_STATUS, 0);
	mmio_w8(c + CC_STATUS, 1);
	mmio_w8(c + CC_STATUS, 1 | 2);
	mmio_w32(c + CC_DFSELECT, 0);
	uint64_t f = mmio_r32(c + CC_DF);
	mmio_w32(c + CC_DFSELECT, 1);
	f |= (uint64_t)mmio_r32(c + CC_DF) << 32;
	d->features = f;
	uint64_t acc = (f & want) | (1ULL << 32);
	mmio_w32(c + CC_GFSELECT, 0);
	mmio_w32(c + CC_GF, (uint32_t)acc);
	mmio_w32(c + CC_GFSELECT, 1);
	mmio_w32(c + CC_GF, (uint32_t)(acc >> 32));
	mmio_w8(c + CC_STATUS, 1 | 2 | 8);
	return mmio_r8(c + CC_STATUS) & 8;
}

void vdev_msix(struct vdev *d, int v, uint8_t idt_vec)
{
	uint64_t e = d->msix_table + 16u * (unsigned)v;
	mmio_w32(e, 0xFEE00000u);
	mmio_w32(e + 4, 0);
	mmio_w32(e + 8, idt_vec);
	mmio_w32(e + 12, 0); /* unmask */
	uint16_t ctl = pci_read16(d->slot, d->msix_cap + 2);
	pci_write16(d->slot, d->msix_cap + 2, (uint16_t)(ctl | 0x8000));
}

bool vq_setup(struct vdev *d, struct vq *q, uint16_t qi, uint16_t size, void *mem, uint16_t vec)
{
	uint64_t c = d->common;
	uint8_t *m = mem;
	if (size > 256)
		return false; /* the layout below holds 256 entries */
	memset(mem, 0, 16384);
	mmio_w16(c + CC_Q_SELECT, qi);
	uint16_t max = mmio_r16(c + CC_Q_SIZE);
	if (!max)
		return false; /* no such queue */
	if (max < size)
		size = max; /* a smaller queue (QEMU's virtio-rng offers 8) */
	q->size = size;
	q->index = qi;
	q->desc = (struct vdesc *)m;
	q->avail = (volatile uint16_t *)(m + 16u * size);
	q->used = (volatile uint8_t *)(m + 8192);
	q->avail_idx = q->last_used = 0;
	mmio_w16(c + CC_Q_SIZE, size);
	mmio_w16(c + CC_Q_MSIX, vec);
	if (mmio_r16(c + CC_Q_MSIX) != vec)
		return false;
	mmio_w64(c + CC_Q_DESC, (uint64_t)q->desc);
	mmio_w64(c + CC_Q_AVAIL, (uint64_t)q->avail);
	mmio_w64(c + CC_Q_USED, (uint64_t)q->used);
	q->notify = d->notify + (uint64_t)mmio_r16(c + CC_Q_NOFF) * d->notify_mult;
	mmio_w16(c + CC_Q_ENABLE, 1);
	return mmio_r16(c + CC_Q_ENABLE) == 1;
}

void vdev_driver_ok(struct vdev *d)
{
	mmio_w8(d->common + CC_STATUS, 1 | 2 | 4 | 8);
}

void vq_kick(struct vq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	barrier();
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
	barrier();
	mmio_w16(q->notify, q->index);
}

bool vq_wait_used(struct vq *q, uint32_t *id, uint32_t *len)
{
	for (uint64_t t0 = rdtsc(); rdtsc() - t0 < TSC_TIMEOUT;) {
		uint16_t idx = *(volatile uint16_t *)(q->used + 2);
		if (idx != q->last_used) {
			barrier();
			volatile uint8_t *e = q->used + 4 + 8u * (q->last_used % q->size);
			*id = *(volatile uint32_t *)e;
			*len = *(volatile uint32_t *)(e + 4);
			q->last_used++;
			return true;
		}
		__asm__ volatile("pause");
	}
	return false;
}
