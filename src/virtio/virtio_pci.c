/*
 * The virtio 1.x PCI transport (virtio spec 4.1): vendor capabilities that
 * point into BAR 0, the common configuration structure, ISR, device
 * configuration, notifications through ioeventfds and interrupts through
 * MSI-X vectors bound to irqfds. Nothing in the request path exits to
 * userspace: the guest's notify write is caught by KVM and wakes the
 * device's I/O thread, whose interrupt is injected by KVM from an eventfd.
 */
#define _GNU_SOURCE
#include "virtio/virtio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bus/irq.h"
#include "core/le.h"
#include "core/log.h"

/* BAR 0 layout */
#define VP_BAR_SIZE 0x8000
#define VP_COMMON 0x0000
#define VP_COMMON_LEN 0x38
#define VP_ISR 0x1000
#define VP_DEVCFG 0x2000
#define VP_NOTIFY 0x3000
#define VP_NOTIFY_MULT 4
#define VP_MSIX_TABLE 0x4000
#define VP_MSIX_PBA 0x5000

/* Capability types (4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* Common configuration offsets (4.1.4.3) */
#define CC_DFSELECT 0
#define CC_DF 4
#define CC_GFSELECT 8
#define CC_GF 12
#define CC_MSIX_CONFIG 16
#define CC_NUM_QUEUES 18
#define CC_STATUS 20
#define CC_CFG_GENERATION 21
#define CC_Q_SELECT 22
#define CC_Q_SIZE 24
#define CC_Q_MSIX 26
#define CC_Q_ENABLE 28
#define CC_Q_NOFF 30
#define CC_Q_DESC 32
#define CC_Q_AVAIL 40
#define CC_Q_USED 48

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000

/* --- MSI-X --- */

static uint16_t msix_ctrl(const struct virtio_dev *d)
{
	return (uint16_t)le_get(d->pci.cfg + d->msix_cap + 2, 2);
}

/* Deliver vector @v now, or leave it pending if masked. dev->lock held. */
static void msix_fire(struct virtio_dev *d, uint16_t v)
{
	uint16_t ctrl = msix_ctrl(d);
	uint64_t one = 1;

	if (v >= d->nr_vectors || !(ctrl & MSIX_CTRL_ENABLE))
		return; /* no INTx fallback: the driver asked for no interrupt */
	if ((ctrl & MSIX_CTRL_FMASK) || (d->msix[v].ctrl & 1)) {
		d->msix_pba |= 1ULL << v;
		return;
	}
	if (write(d->msix_fd[v], &one, sizeof(one)) < 0)
		pr_warn_once("%s: msix: eventfd write: %s", d->ops->name, strerror(errno));
}

/* Re-deliver pending vectors that are no longer masked. */
static void msix_flush_pending(struct virtio_dev *d)
{
	uint16_t ctrl = msix_ctrl(d);

	if (!(ctrl & MSIX_CTRL_ENABLE) || (ctrl & MSIX_CTRL_FMASK))
		return;
	for (int v = 0; v < d->nr_vectors; v++) {
		if ((d->msix_pba >> v & 1) && !(d->msix[v].ctrl & 1)) {
			d->msix_pba &= ~(1ULL << v);
			msix_fire(d, (uint16_t)v);
		}
	}
}

static void msix_table_access(struct virtio_dev *d, uint64_t off, uint8_t *data, uint32_t size,
			      bool is_write)
{
	uint64_t v = off / 16, field = off % 16;

	if (v >= (uint64_t)d->nr_vectors || (size != 4 && size != 8) || field % size) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	struct msix_entry *e = &d->msix[v];
	uint8_t raw[16];
	le_put(raw, 8, e->addr);
	le_put(raw + 8, 4, e->data);
	le_put(raw + 12, 4, e->ctrl);
	if (!is_write) {
		memcpy(data, raw + field, size);
		return;
	}
	memcpy(raw + field, data, size);
	uint64_t addr = le_get(raw, 8);
	uint32_t mdata = (uint32_t)le_get(raw + 8, 4);
	if (addr != e->addr || mdata != e->data) {
		e->addr = addr;
		e->data = mdata;
		irq_msi_set(&d->vm->irq, (uint32_t)d->msix_gsi[v], addr, mdata);
	}
	e->ctrl = (uint32_t)le_get(raw + 12, 4) & 1;
	msix_flush_pending(d);
}

/* --- interrupts to the driver --- */

void virtio_notify(struct virtio_dev *d, int q)
{
	struct virtio_queue *vq = &d->q[q];

	if (!virtq_should_notify(&vq->vq))
		return;
	d->isr |= 1;
	if (vq->msix_vector != VIRTIO_NO_VECTOR)
		msix_fire(d, vq->msix_vector);
}

void virtio_config_changed(struct virtio_dev *d)
{
	d->isr |= 2;
	d->config_generation++;
	if (d->msix_config != VIRTIO_NO_VECTOR)
		msix_fire(d, d->msix_config);
}

void virtio_set_needs_reset(struct virtio_dev *d, const char *why)
{
	if (d->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	pr_warn("%s: %s: device needs reset", d->ops->name, why);
	d->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (d->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_config_changed(d);
}

/* --- common configuration --- */

static void virtio_reset(struct virtio_dev *d)
{
	d->status = 0;
	d->driver_features = 0;
	d->dfselect = d->gfselect = 0;
	d->isr = 0;
	d->queue_sel = 0;
	d->msix_config = VIRTIO_NO_VECTOR;
	for (int i = 0; i < d->ops->num_queues; i++) {
		virtq_reset(&d->q[i].vq);
		d->q[i].vq.size = d->ops->queue_size;
		d->q[i].msix_vector = VIRTIO_NO_VECTOR;
		d->q[i].enabled = false;
	}
	if (d->ops->reset)
		d->ops->reset(d);
}

static void virtio_set_status(struct virtio_dev *d, uint8_t val)
{
	if (val == 0) {
		virtio_reset(d);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(d->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only a subset of what we offered, and only modern drivers. */
		if ((d->driver_features & ~d->host_features) ||
		    !(d->driver_features >> VIRTIO_F_VERSION_1 & 1))
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		for (int i = 0; i < d->ops->num_queues; i++) {
			d->q[i].vq.event_idx = virtio_has_feature(d, VIRTIO_F_EVENT_IDX);
			d->q[i].vq.indirect = virtio_has_feature(d, VIRTIO_F_INDIRECT_DESC);
		}
	}
	bool now_ok = (val & VIRTIO_STATUS_DRIVER_OK) && !(d->status & VIRTIO_STATUS_DRIVER_OK);
	d->status = (uint8_t)(val | (d->status & VIRTIO_STATUS_NEEDS_RESET));
	/* Serve chains made available before DRIVER_OK, whose notifications
	 * the I/O thread dropped: Linux's balloon primes its stats queue then. */
	if (now_ok)
		virtio_kick_all(d);
}

static struct virtio_queue *virtio_selected(struct virtio_dev *d)
{
	return d->queue_sel < d->ops->num_queues ? &d->q[d->queue_sel] : NULL;
}

static void virtio_common_read(struct virtio_dev *d, uint64_t off, uint8_t *data, uint32_t size)
{
	uint8_t cc[VP_COMMON_LEN] = { 0 };
	struct virtio_queue *q = virtio_selected(d);

	le_put(cc + CC_DFSELECT, 4, d->dfselect);
	le_put(cc + CC_DF, 4, d->dfselect < 2 ? (uint32_t)(d->host_features >> (32 * d->dfselect)) : 0);
	le_put(cc + CC_GFSELECT, 4, d->gfselect);
	le_put(cc + CC_GF, 4,
	       d->gfselect < 2 ? (uint32_t)(d->driver_features >> (32 * d->gfselect)) : 0);
	le_put(cc + CC_MSIX_CONFIG, 2, d->msix_config);
	le_put(cc + CC_NUM_QUEUES, 2, (uint64_t)d->ops->num_queues);
	cc[CC_STATUS] = d->status;
	cc[CC_CFG_GENERATION] = d->config_generation;
	le_put(cc + CC_Q_SELECT, 2, d->queue_sel);
	if (q) {
		le_put(cc + CC_Q_SIZE, 2, q->vq.size);
		le_put(cc + CC_Q_MSIX, 2, q->msix_vector);
		le_put(cc + CC_Q_ENABLE, 2, q->enabled);
		le_put(cc + CC_Q_NOFF, 2, d->queue_sel);
		le_put(cc + CC_Q_DESC, 8, q->vq.desc_gpa);
		le_put(cc + CC_Q_AVAIL, 8, q->vq.avail_gpa);
		le_put(cc + CC_Q_USED, 8, q->vq.used_gpa);
	}
	if (off + size > sizeof(cc)) {
		memset(data, 0, size);
		return;
	}
	memcpy(data, cc + off, size);
}

/* Replace bytes [off, off+size) of a 64-bit field that starts at @base. */
static uint64_t merge64(uint64_t old, uint64_t base, uint64_t off, uint32_t size, uint64_t val)
{
	uint8_t b[8];
	le_put(b, 8, old);
	if (off >= base && off + size <= base + 8)
		le_put(b + (off - base), size, val);
	return le_get(b, 8);
}

static void virtio_common_write(struct virtio_dev *d, uint64_t off, const uint8_t *data,
				uint32_t size)
{
	uint64_t val = le_get(data, size);
	struct virtio_queue *q = virtio_selected(d);
	/* Queue setup fields are frozen while the queue is enabled. */
	bool q_writable = q && !q->enabled;

	switch (off) {
	case CC_DFSELECT:
		d->dfselect = (uint32_t)val;
		return;
	case CC_GFSELECT:
		d->gfselect = (uint32_t)val;
		return;
	case CC_GF:
		if (d->status & VIRTIO_STATUS_FEATURES_OK)
			return;
		if (d->gfselect < 2) {
			uint64_t mask = 0xffffffffULL << (32 * d->gfselect);
			d->driver_features = (d->driver_features & ~mask) |
					     ((val & 0xffffffffULL) << (32 * d->gfselect));
		}
		return;
	case CC_MSIX_CONFIG:
		d->msix_config = (uint16_t)val < d->nr_vectors ? (uint16_t)val : VIRTIO_NO_VECTOR;
		return;
	case CC_STATUS:
		virtio_set_status(d, (uint8_t)val);
		return;
	case CC_Q_SELECT:
		d->queue_sel = (uint16_t)val;
		return;
	case CC_Q_SIZE:
		if (q_writable)
			q->vq.size = (uint16_t)val;
		return;
	case CC_Q_MSIX:
		if (q)
			q->msix_vector = (uint16_t)val < d->nr_vectors ? (uint16_t)val
								       : VIRTIO_NO_VECTOR;
		return;
	case CC_Q_ENABLE:
		if (!q || val != 1 || q->enabled)
			return;
		if (q->vq.size > d->ops->queue_size || virtq_activate(&q->vq, &d->vm->mem)) {
			virtio_set_needs_reset(d, "queue setup rejected");
			return;
		}
		q->enabled = true;
		return;
	default:
		break;
	}
	if (!q_writable)
		return;
	if (off >= CC_Q_DESC && off < CC_Q_DESC + 8)
		q->vq.desc_gpa = merge64(q->vq.desc_gpa, CC_Q_DESC, off, size, val);
	else if (off >= CC_Q_AVAIL && off < CC_Q_AVAIL + 8)
		q->vq.avail_gpa = merge64(q->vq.avail_gpa, CC_Q_AVAIL, off, size, val);
	else if (off >= CC_Q_USED && off < CC_Q_USED + 8)
		q->vq.used_gpa = merge64(q->vq.used_gpa, CC_Q_USED, off, size, val);
}

/* --- BAR 0 dispatch (vCPU threads) --- */

static void virtio_bar_access(struct pci_dev *pd, int bar, uint64_t off, uint8_t *data,
			      uint32_t size, bool is_write)
{
	struct virtio_dev *d = pd->opaque;

	if (bar != 0 || size > 8) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off < VP_COMMON + VP_COMMON_LEN) {
		if (is_write)
			virtio_common_write(d, off, data, size);
		else
			virtio_common_read(d, off, data, size);
	} else if (off >= VP_ISR && off < VP_ISR + 4) {
		if (!is_write) {
			memset(data, 0, size);
			data[0] = d->isr;
			d->isr = 0; /* reading ISR acknowledges it */
		}
	} else if (off >= VP_DEVCFG && off < VP_DEVCFG + 0x1000) {
		uint64_t o = off - VP_DEVCFG;
		if (o + size > d->ops->config_size) {
			if (!is_write)
				memset(data, 0, size);
		} else if (is_write) {
			if (d->ops->config_write)
				d->ops->config_write(d, (uint32_t)o, data, size);
		} else {
			d->ops->config_read(d, (uint32_t)o, data, size);
		}
	} else if (off >= VP_NOTIFY && off < VP_NOTIFY + VP_NOTIFY_MULT * VIRTIO_MAX_QUEUES) {
		/* Reached only when the ioeventfd did not match (odd width). */
		uint64_t qi = (off - VP_NOTIFY) / VP_NOTIFY_MULT, one = 1;
		if (is_write && qi < (uint64_t)d->ops->num_queues &&
		    write(d->q[qi].kick_fd, &one, sizeof(one)) < 0)
			pr_warn_once("%s: notify: %s", d->ops->name, strerror(errno));
		if (!is_write)
			memset(data, 0, size);
	} else if (off >= VP_MSIX_TABLE && off < VP_MSIX_TABLE + 16 * VIRTIO_MAX_QUEUES + 16) {
		msix_table_access(d, off - VP_MSIX_TABLE, data, size, is_write);
	} else if (off >= VP_MSIX_PBA && off < VP_MSIX_PBA + 8) {
		if (!is_write) {
			uint8_t pba[8];
			le_put(pba, 8, d->msix_pba);
			memset(data, 0, size);
			if (off - VP_MSIX_PBA + size <= 8)
				memcpy(data, pba + (off - VP_MSIX_PBA), size);
		}
	} else if (!is_write) {
		memset(data, 0, size);
	}
	pthread_mutex_unlock(&d->lock);
}

static void virtio_ioeventfds(struct virtio_dev *d, uint64_t base, bool assign)
{
	for (int i = 0; i < d->ops->num_queues; i++) {
		struct kvm_ioeventfd io = {
			.addr = base + VP_NOTIFY + (uint64_t)VP_NOTIFY_MULT * (uint64_t)i,
			.len = 2,
			.fd = d->q[i].kick_fd,
			.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
		};
		if (ioctl(d->vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
			pr_warn("%s: KVM_IOEVENTFD %s %#llx: %s", d->ops->name,
				assign ? "assign" : "deassign", (unsigned long long)io.addr,
				strerror(errno));
	}
}

static void virtio_bar_mapped(struct pci_dev *pd, int bar, uint64_t addr)
{
	struct virtio_dev *d = pd->opaque;

	if (bar != 0)
		return;
	if (d->notify_base)
		virtio_ioeventfds(d, d->notify_base, false);
	d->notify_base = addr;
	if (addr)
		virtio_ioeventfds(d, addr, true);
}

static void virtio_cfg_written(struct pci_dev *pd, uint32_t off, uint32_t size)
{
	struct virtio_dev *d = pd->opaque;
	uint32_t ctl = d->msix_cap + 2u;

	if (off < ctl + 2 && off + size > ctl) {
		pthread_mutex_lock(&d->lock);
		msix_flush_pending(d);
		pthread_mutex_unlock(&d->lock);
	}
}

static const struct pci_dev_ops virtio_pci_ops = {
	.bar_access = virtio_bar_access,
	.bar_mapped = virtio_bar_mapped,
	.cfg_written = virtio_cfg_written,
};

/* --- I/O thread --- */

static void *virtio_thread(void *arg)
{
	struct virtio_dev *d = arg;
	char name[16];

	snprintf(name, sizeof(name), "%.15s", d->ops->name);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		struct epoll_event ev[VIRTIO_MAX_QUEUES + 1];
		int n = epoll_wait(d->epoll_fd, ev, VIRTIO_MAX_QUEUES + 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_err("%s: epoll_wait: %s", d->ops->name, strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			int qi = (int)ev[i].data.u32;
			uint64_t cnt;

			if (qi == VIRTIO_MAX_QUEUES)
				return NULL; /* stop requested */
			if (read(d->q[qi].kick_fd, &cnt, sizeof(cnt)) < 0)
				continue;
			pthread_mutex_lock(&d->lock);
			struct virtio_queue *q = &d->q[qi];
			if (!d->frozen && (d->status & VIRTIO_STATUS_DRIVER_OK) &&
			    !(d->status & VIRTIO_STATUS_NEEDS_RESET) && q->enabled && !q->vq.broken)
				d->ops->queue_notify(d, qi);
			pthread_mutex_unlock(&d->lock);
		}
	}
}

/* --- creation --- */

static void virtio_add_cap(struct pci_dev *pd, uint8_t type, uint32_t off, uint32_t len,
			   uint32_t extra, bool has_extra)
{
	uint8_t cap[20] = { 0 };
	uint8_t caplen = has_extra ? 20 : 16;

	cap[0] = 0x09; /* vendor specific */
	cap[2] = caplen;
	cap[3] = type;
	cap[4] = 0; /* BAR 0 */
	le_put(cap + 8, 4, off);
	le_put(cap + 12, 4, len);
	if (has_extra)
		le_put(cap + 16, 4, extra);
	pci_dev_add_cap(pd, cap, caplen);
}

int virtio_dev_create(struct virtio_dev *d, struct vm *vm, const struct virtio_dev_ops *ops,
		      void *priv, uint64_t device_features)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->vm = vm;
	d->epoll_fd = d->stop_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	d->host_features = device_features | 1ULL << VIRTIO_F_VERSION_1 |
			   1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC;
	d->nr_vectors = ops->num_queues + 1;
	for (int i = 0; i <= VIRTIO_MAX_QUEUES; i++)
		d->msix_fd[i] = -1;
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		d->q[i].kick_fd = -1;
	if (ops->num_queues < 1 || ops->num_queues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	for (int i = 0; i < ops->num_queues; i++) {
		snprintf(d->q[i].name, sizeof(d->q[i].name), "%s.q%d", ops->name, i);
		d->q[i].vq.name = d->q[i].name;
		d->q[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->q[i].kick_fd < 0)
			return -errno;
	}
	virtio_reset(d);

	for (int v = 0; v < d->nr_vectors; v++) {
		d->msix[v].ctrl = 1; /* masked at reset */
		d->msix_gsi[v] = irq_msi_alloc(&vm->irq);
		if (d->msix_gsi[v] < 0)
			return d->msix_gsi[v];
		d->msix_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->msix_fd[v] < 0)
			return -errno;
		r = irq_irqfd(vm->vm_fd, d->msix_fd[v], (uint32_t)d->msix_gsi[v], 1);
		if (r) {
			pr_err("%s: KVM_IRQFD: %s", ops->name, strerror(-r));
			return r;
		}
	}

	struct pci_dev *pd = &d->pci;
	pci_dev_init(pd, ops->name, 0x1af4, (uint16_t)(0x1040 + ops->device_id), ops->pci_class,
		     1, 0x1af4, 0x40);
	pd->ops = &virtio_pci_ops;
	pd->opaque = d;
	pci_dev_add_bar(pd, 0, VP_BAR_SIZE, false);
	virtio_add_cap(pd, VIRTIO_PCI_CAP_COMMON_CFG, VP_COMMON, VP_COMMON_LEN, 0, false);
	virtio_add_cap(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, VP_NOTIFY,
		       VP_NOTIFY_MULT * (uint32_t)ops->num_queues, VP_NOTIFY_MULT, true);
	virtio_add_cap(pd, VIRTIO_PCI_CAP_ISR_CFG, VP_ISR, 4, 0, false);
	if (ops->config_size)
		virtio_add_cap(pd, VIRTIO_PCI_CAP_DEVICE_CFG, VP_DEVCFG, ops->config_size, 0, false);
	uint8_t msix[12] = { 0x11, 0 };
	le_put(msix + 2, 2, (uint64_t)d->nr_vectors - 1);
	le_put(msix + 4, 4, VP_MSIX_TABLE); /* BIR 0 */
	le_put(msix + 8, 4, VP_MSIX_PBA);
	d->msix_cap = pci_dev_add_cap(pd, msix, sizeof(msix));
	pd->wmask[d->msix_cap + 3] = 0xc0; /* enable, function mask */

	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->epoll_fd < 0 || d->stop_fd < 0)
		return -errno;
	for (int i = 0; i <= ops->num_queues; i++) {
		bool stop = i == ops->num_queues;
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u32 = stop ? VIRTIO_MAX_QUEUES : (uint32_t)i };
		if (epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, stop ? d->stop_fd : d->q[i].kick_fd,
			      &ev) < 0)
			return -errno;
	}
	r = pci_bus_add(vm->pci, pd);
	if (r)
		return r;
	r = pthread_create(&d->thread, NULL, virtio_thread, d);
	if (r)
		return -r;
	d->thread_started = true;
	return 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
	uint64_t one = 1;

	if (d->thread_started) {
		if (write(d->stop_fd, &one, sizeof(one)) < 0)
			pr_warn("%s: stop: %s", d->ops->name, strerror(errno));
		pthread_join(d->thread, NULL);
		d->thread_started = false;
	}
	for (int i = 0; i < d->ops->num_queues; i++)
		if (d->q[i].kick_fd >= 0)
			close(d->q[i].kick_fd);
	for (int v = 0; v < d->nr_vectors; v++)
		if (d->msix_fd[v] >= 0)
			close(d->msix_fd[v]);
	if (d->epoll_fd >= 0)
		close(d->epoll_fd);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	if (d->ops->destroy)
		d->ops->destroy(d);
}

/* --- save/load --- */

#define VIRTIO_SAVE_VERSION 1

int virtio_save(struct virtio_dev *d, struct enc *e)
{
	if (!d->ops->save)
		return -ENOTSUP;
	enc_u16(e, d->ops->device_id);
	enc_u16(e, (uint16_t)d->ops->num_queues);
	enc_u64(e, d->host_features);
	enc_u64(e, d->driver_features);
	enc_u32(e, d->dfselect);
	enc_u32(e, d->gfselect);
	enc_u8(e, d->status);
	enc_u8(e, d->config_generation);
	enc_u8(e, d->isr);
	enc_u16(e, d->queue_sel);
	enc_u16(e, d->msix_config);
	for (int i = 0; i < d->ops->num_queues; i++) {
		struct virtio_queue *q = &d->q[i];
		enc_u16(e, q->vq.size);
		enc_u8(e, q->enabled);
		enc_u16(e, q->msix_vector);
		enc_u64(e, q->vq.desc_gpa);
		enc_u64(e, q->vq.avail_gpa);
		enc_u64(e, q->vq.used_gpa);
		enc_u16(e, q->vq.last_avail);
		enc_u16(e, q->vq.used_idx);
		enc_u16(e, q->vq.signalled_used);
		enc_u8(e, q->vq.signalled_used_valid);
		enc_u8(e, q->vq.broken);
	}
	enc_u16(e, (uint16_t)d->nr_vectors);
	for (int v = 0; v < d->nr_vectors; v++) {
		enc_u64(e, d->msix[v].addr);
		enc_u32(e, d->msix[v].data);
		enc_u32(e, d->msix[v].ctrl);
	}
	enc_u64(e, d->msix_pba);
	/* PCI configuration space: the architectural 256-byte layout. */
	enc_bytes(e, d->pci.cfg, PCI_CFG_SIZE);
	return d->ops->save(d, e);
}

/*
 * Loading is three steps so a restore validates every device's transport
 * state before it installs any: decode (pure, from the section alone: the
 * state-file fuzzer runs it), check (against the device as created:
 * identity, features, vectors, rings inside RAM), install (then the
 * device's own payload through ops->load, which validates before it
 * changes anything).
 */
int virtio_state_decode(struct dec *dd, struct virtio_saved *s)
{
	memset(s, 0, sizeof(*s));
	s->device_id = dec_u16(dd);
	s->num_queues = dec_u16(dd);
	if (s->num_queues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	s->host_features = dec_u64(dd);
	s->driver_features = dec_u64(dd);
	s->dfselect = dec_u32(dd);
	s->gfselect = dec_u32(dd);
	s->status = dec_u8(dd);
	s->config_generation = dec_u8(dd);
	s->isr = dec_u8(dd);
	s->queue_sel = dec_u16(dd);
	s->msix_config = dec_u16(dd);
	for (int i = 0; i < s->num_queues; i++) {
		struct virtq *q = &s->q[i].vq;
		q->size = dec_u16(dd);
		s->q[i].enabled = dec_u8(dd) != 0;
		s->q[i].msix_vector = dec_u16(dd);
		q->desc_gpa = dec_u64(dd);
		q->avail_gpa = dec_u64(dd);
		q->used_gpa = dec_u64(dd);
		q->last_avail = dec_u16(dd);
		q->used_idx = dec_u16(dd);
		q->signalled_used = dec_u16(dd);
		q->signalled_used_valid = dec_u8(dd) != 0;
		q->broken = dec_u8(dd) != 0;
		q->event_idx = (s->driver_features >> VIRTIO_F_EVENT_IDX) & 1;
		q->indirect = (s->driver_features >> VIRTIO_F_INDIRECT_DESC) & 1;
		if (q->size > VIRTQ_MAX_SIZE)
			return -EINVAL;
	}
	s->nr_vectors = dec_u16(dd);
	if (s->nr_vectors > VIRTIO_MAX_QUEUES + 1)
		return -EINVAL;
	for (int v = 0; v < s->nr_vectors; v++) {
		s->msix[v].addr = dec_u64(dd);
		s->msix[v].data = dec_u32(dd);
		s->msix[v].ctrl = dec_u32(dd) & 1;
	}
	s->msix_pba = dec_u64(dd);
	dec_bytes(dd, s->cfg, sizeof(s->cfg));
	if (dd->err || (s->driver_features & ~s->host_features))
		return -EINVAL;
	/* The device's own payload: checked against the device by ops->load. */
	s->dev_len = dec_left(dd);
	s->dev_payload = dec_take(dd, s->dev_len);
	return 0;
}

int virtio_state_check(struct virtio_dev *d, const struct virtio_saved *s)
{
	if (s->device_id != d->ops->device_id || s->num_queues != d->ops->num_queues ||
	    s->host_features != d->host_features || s->nr_vectors != d->nr_vectors)
		return -EINVAL;
	/* Identity fields of the config space must match this device. */
	if (memcmp(s->cfg, d->pci.cfg, 4) != 0)
		return -EINVAL;
	if (s->msix_config >= d->nr_vectors && s->msix_config != VIRTIO_NO_VECTOR)
		return -EINVAL;
	for (int i = 0; i < s->num_queues; i++) {
		struct virtq probe = s->q[i].vq; /* a copy: activation only resolves pointers */
		probe.name = d->q[i].name;
		if (probe.size > d->ops->queue_size ||
		    (s->q[i].msix_vector >= d->nr_vectors && s->q[i].msix_vector != VIRTIO_NO_VECTOR))
			return -EINVAL;
		if (s->q[i].enabled && virtq_activate(&probe, &d->vm->mem))
			return -EINVAL; /* ring outside RAM: the snapshot is inconsistent */
	}
	if (!d->ops->load && s->dev_len)
		return -EINVAL;
	return 0;
}

int virtio_state_install(struct virtio_dev *d, const struct virtio_saved *s)
{
	pthread_mutex_lock(&d->lock);
	d->driver_features = s->driver_features;
	d->dfselect = s->dfselect;
	d->gfselect = s->gfselect;
	d->status = s->status;
	d->config_generation = s->config_generation;
	d->isr = s->isr;
	d->queue_sel = s->queue_sel;
	d->msix_config = s->msix_config;
	int r = 0;
	for (int i = 0; i < d->ops->num_queues && !r; i++) {
		struct virtio_queue *q = &d->q[i];
		const char *name = q->vq.name;
		q->vq = s->q[i].vq;
		q->vq.name = name;
		q->vq.ready = false;
		q->enabled = s->q[i].enabled;
		q->msix_vector = s->q[i].msix_vector;
		if (q->enabled && virtq_activate(&q->vq, &d->vm->mem))
			r = -EINVAL; /* checked before: cannot happen */
	}
	for (int v = 0; v < d->nr_vectors && !r; v++) {
		d->msix[v] = s->msix[v];
		if (s->msix[v].addr)
			r = irq_msi_set(&d->vm->irq, (uint32_t)d->msix_gsi[v], s->msix[v].addr,
					s->msix[v].data);
	}
	d->msix_pba = s->msix_pba;
	pthread_mutex_unlock(&d->lock);
	if (r)
		return r;
	/* Config space through the normal write path so BARs decode again. */
	memcpy(d->pci.cfg, s->cfg, sizeof(s->cfg));
	uint16_t cmd = (uint16_t)(s->cfg[PCI_COMMAND] | s->cfg[PCI_COMMAND + 1] << 8);
	d->pci.cfg[PCI_COMMAND] = 0;
	pci_cfg_write(&d->pci, PCI_COMMAND, 2, cmd);
	/* The device's own state last: its hook may depend on the transport's
	 * (negotiated features, enabled queues). */
	struct dec dd;
	dec_init(&dd, s->dev_payload, s->dev_len);
	r = d->ops->load ? d->ops->load(d, &dd) : 0;
	return r ? r : dd.err || dec_left(&dd) ? -EINVAL : 0;
}

int virtio_load(struct virtio_dev *d, struct dec *dd)
{
	struct virtio_saved s;
	int r = virtio_state_decode(dd, &s);
	if (!r)
		r = virtio_state_check(d, &s);
	return r ? r : virtio_state_install(d, &s);
}

void virtio_kick_all(struct virtio_dev *d)
{
	uint64_t one = 1;

	for (int i = 0; i < d->ops->num_queues; i++)
		if (d->q[i].enabled && write(d->q[i].kick_fd, &one, sizeof(one)) < 0)
			pr_warn("%s: kick: %s", d->ops->name, strerror(errno));
}
