/*
 * A virtio device over the modern (1.x) PCI transport.
 *
 * A device model supplies a const struct virtio_dev_ops and private state;
 * the transport owns feature negotiation, status, queues, MSI-X, the
 * notification ioeventfds and the device's I/O thread. Queue handlers run on
 * that thread (never on a vCPU thread) with dev->lock held; they pop chains,
 * act, push, and call virtio_notify().
 */
#ifndef POCKETVM_VIRTIO_H
#define POCKETVM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/vm.h"
#include "pci/pci.h"
#include "snapshot/codec.h"
#include "virtio/virtqueue.h"

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_NO_VECTOR 0xffff

/* Device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Device types */
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5

struct virtio_dev;

struct virtio_dev_ops {
	const char *name;      /* "virtio-blk" */
	uint16_t device_id;    /* VIRTIO_ID_* */
	uint32_t pci_class;    /* PCI class code */
	int num_queues;
	uint16_t queue_size;   /* max size offered for each queue */
	/* Device configuration space: read/write @size bytes at @off. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data,
			     uint32_t size);
	uint32_t config_size;
	/* The driver kicked queue @q (device thread, dev->lock held). */
	void (*queue_notify)(struct virtio_dev *d, int q);
	/* Device reset by the driver (dev->lock held). */
	void (*reset)(struct virtio_dev *d);
	/*
	 * Snapshot hooks for device-specific state (the transport saves the
	 * rest). save NULL means the device cannot be saved and snapshot
	 * refuses. load must validate everything it reads before it changes
	 * anything; it runs after the transport state is installed.
	 */
	int (*save)(struct virtio_dev *d, struct enc *e);
	int (*load)(struct virtio_dev *d, struct dec *dd);
	/* Free the private state. */
	void (*destroy)(struct virtio_dev *d);
};

struct virtio_queue {
	struct virtq vq;
	uint16_t msix_vector;
	bool enabled;
	int kick_fd;	/* eventfd: ioeventfd on the notify address */
	char name[32];
};

struct msix_entry {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl; /* bit 0: masked */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;
	struct vm *vm;
	struct pci_dev pci;
	pthread_mutex_t lock;

	uint64_t host_features;	  /* offered: device bits | VERSION_1 | ring bits */
	uint64_t driver_features; /* accepted */
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint16_t queue_sel;
	uint16_t msix_config;
	struct virtio_queue q[VIRTIO_MAX_QUEUES];

	/* MSI-X: one vector per queue plus one for configuration changes. */
	int nr_vectors;
	struct msix_entry msix[VIRTIO_MAX_QUEUES + 1];
	uint64_t msix_pba;
	int msix_gsi[VIRTIO_MAX_QUEUES + 1];
	int msix_fd[VIRTIO_MAX_QUEUES + 1];
	uint8_t msix_cap;	/* config offset of the MSI-X capability */
	uint64_t notify_base;	/* guest address of the notify region, 0 = unmapped */

	/* I/O thread */
	pthread_t thread;
	int epoll_fd;
	int stop_fd;
	bool thread_started;
	/* Set under lock by a snapshot that ends the VM: the I/O thread serves
	 * nothing more, so the disks stay as the snapshot recorded them. */
	bool frozen;
};

/*
 * virtio_dev_create - build the PCI function for a device model, plug it
 * into the VM's PCI bus and start its I/O thread. @device_features are the
 * device-specific feature bits offered. Returns 0 or a negative errno.
 */
int virtio_dev_create(struct virtio_dev *d, struct vm *vm, const struct virtio_dev_ops *ops,
		      void *priv, uint64_t device_features);

/* Stop the I/O thread and release KVM resources. */
void virtio_dev_destroy(struct virtio_dev *d);

/* Interrupt the driver for queue @q if it wants one (after pushes). */
void virtio_notify(struct virtio_dev *d, int q);

/* Signal a configuration change (config vector). */
void virtio_config_changed(struct virtio_dev *d);

/*
 * virtio_set_needs_reset - the driver broke the protocol: log, set
 * DEVICE_NEEDS_RESET, stop serving the queues, tell the driver.
 */
void virtio_set_needs_reset(struct virtio_dev *d, const char *why);

/*
 * virtio_save - encode transport state (status, features, queues with their
 * indices, MSI-X table, PCI config space) and the device's own state.
 * Called with the device quiesced. -ENOTSUP if the device cannot be saved.
 */
int virtio_save(struct virtio_dev *d, struct enc *e);

/* A device's saved transport state, decoded but not installed. */
struct virtio_saved {
	uint16_t device_id, num_queues;
	uint64_t host_features, driver_features;
	uint32_t dfselect, gfselect;
	uint8_t status, config_generation, isr;
	uint16_t queue_sel, msix_config;
	struct {
		struct virtq vq; /* size, ring addresses, indices (not resolved) */
		bool enabled;
		uint16_t msix_vector;
	} q[VIRTIO_MAX_QUEUES];
	uint16_t nr_vectors;
	struct msix_entry msix[VIRTIO_MAX_QUEUES + 1];
	uint64_t msix_pba;
	uint8_t cfg[PCI_CFG_SIZE];
	const uint8_t *dev_payload; /* the device's own part (ops->save's bytes) */
	size_t dev_len;
};

/*
 * virtio_state_decode - decode what virtio_save() wrote, checking only what
 * needs no device (counts and sizes within limits, accepted features a
 * subset of offered ones). Pure. 0 or -EINVAL. @s points into @dd's buffer.
 */
int virtio_state_decode(struct dec *dd, struct virtio_saved *s);

/*
 * virtio_state_check - does @s fit device @d as created (type, queues,
 * features, vectors, config-space identity, rings inside RAM)? Changes
 * nothing. 0 or -EINVAL.
 */
int virtio_state_check(struct virtio_dev *d, const struct virtio_saved *s);

/*
 * virtio_state_install - install checked state: features, status, queues,
 * MSI-X routes, the config space through the normal write path so the BARs
 * decode again, then the device's own payload through ops->load (which must
 * consume it exactly). 0, -EINVAL (device payload) or an errno from KVM.
 */
int virtio_state_install(struct virtio_dev *d, const struct virtio_saved *s);

/* virtio_load - decode, check and install in one go (one device). */
int virtio_load(struct virtio_dev *d, struct dec *dd);

/* Run every enabled queue's handler once (after restore: pending chains). */
void virtio_kick_all(struct virtio_dev *d);

/* Was feature bit @bit negotiated? */
static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return (d->driver_features >> bit) & 1;
}

#endif
