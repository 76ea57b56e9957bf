#ifndef POCKETVM_VIRTIO_RNG_H
#define POCKETVM_VIRTIO_RNG_H

#include "core/vm.h"

/* virtio_rng_create - an entropy device fed by getrandom(2). */
int virtio_rng_create(struct vm *vm);

#endif
