/*
 * virtio-blk over a raw image file: read, write, flush, discard,
 * write-zeroes, serial number (GET_ID), optional read-only.
 */
#ifndef POCKETVM_VIRTIO_BLK_H
#define POCKETVM_VIRTIO_BLK_H

#include <stdint.h>
#include <sys/uio.h>

#include "core/vm.h"
#include "virtio/virtqueue.h"

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define BLK_SECTOR 512

/*
 * A parsed request: what to do, where, and which guest buffers hold the
 * data. Produced by blk_parse() (pure), consumed by the effects step.
 */
struct blk_req {
	uint32_t type;
	uint64_t sector;
	uint64_t len;		/* data bytes */
	struct iovec data[VIRTQ_MAX_CHAIN];
	int nr_data;
	uint8_t *status;	/* where the status byte goes */
	uint64_t seg_sector;	/* discard / write zeroes: the one segment */
	uint32_t seg_sectors;
	uint32_t seg_flags;
};

/*
 * blk_parse - turn a chain into a request. Returns VIRTIO_BLK_S_OK when the
 * request is well formed and within @capacity sectors (the caller then acts
 * on it), or the status to complete it with. Returns -1 when the chain has
 * no room for a status byte (the chain is returned with 0 bytes written).
 */
int blk_parse(const struct virtq_chain *c, uint64_t capacity, bool readonly,
	      struct blk_req *req);

/* Create a virtio-blk device for @cfg on @vm (adds itself to vm->vdev). */
int virtio_blk_create(struct vm *vm, const struct disk_config *cfg);

#endif
