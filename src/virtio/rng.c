/*
 * virtio-rng (virtio spec 5.4): the smallest device, and the template for
 * the others. One queue of device-writable buffers, filled from the host's
 * getrandom(2). No configuration space, no feature bits.
 */
#include "virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "core/log.h"
#include "virtio/virtio.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_PER_REQUEST 4096 /* bytes handed out per buffer chain */

/* --- state --- */

struct rng {
	struct virtio_dev vdev;
	struct virtq_chain chain; /* scratch for the I/O thread */
};

/* --- queue handler --- */

static void rng_queue_notify(struct virtio_dev *d, int qi)
{
	struct rng *r = d->priv;
	struct virtq *q = &d->q[qi].vq;
	bool pushed = false;
	int ret;

	while ((ret = virtq_pop(q, &r->chain)) == 1) {
		uint64_t done = 0;
		/* Fill the writable buffers, up to a per-request cap. */
		for (unsigned i = r->chain.n_out; i < r->chain.n_out + r->chain.n_in; i++) {
			size_t want = r->chain.iov[i].iov_len;
			if (want > RNG_MAX_PER_REQUEST - done)
				want = RNG_MAX_PER_REQUEST - done;
			ssize_t got = getrandom(r->chain.iov[i].iov_base, want, 0);
			if (got <= 0)
				break;
			done += (uint64_t)got;
			if ((size_t)got < r->chain.iov[i].iov_len || done == RNG_MAX_PER_REQUEST)
				break;
		}
		virtq_push(q, r->chain.head, (uint32_t)done);
		pushed = true;
	}
	if (ret < 0)
		virtio_set_needs_reset(d, "virtqueue protocol violation");
	if (pushed)
		virtio_notify(d, qi);
}

/* --- config space: none --- */

static void rng_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size)
{
	(void)d;
	(void)off;
	for (uint32_t i = 0; i < size; i++)
		data[i] = 0;
}

/* --- save/load: stateless apart from the queue, which the transport saves. --- */

static int rng_save(struct virtio_dev *d, struct enc *e)
{
	return 0;
}

static void rng_destroy(struct virtio_dev *d)
{
	free(d->priv);
}

/* --- ops table --- */

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = 0xff0000,
	.num_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.config_read = rng_config_read,
	.config_size = 0,
	.queue_notify = rng_queue_notify,
	.save = rng_save,
	.destroy = rng_destroy,
};

int virtio_rng_create(struct vm *vm)
{
	struct rng *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	int ret = virtio_dev_create(&r->vdev, vm, &rng_ops, r, 0);
	if (ret) {
		pr_err("virtio-rng: %d", ret);
		virtio_dev_destroy(&r->vdev);
		return ret;
	}
	vm->vdev[vm->nr_vdev++] = &r->vdev;
	return 0;
}
