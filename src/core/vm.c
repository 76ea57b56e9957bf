/*
 * VM lifecycle: create (KVM, memory, irqchip, devices, boot state), run
 * (vCPU threads plus the main event loop), the pause/resume handshake, and
 * teardown.
 */
#define _GNU_SOURCE
#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86_64/boot.h"
#include "core/log.h"
#include "core/vcpu.h"
#include "devices/i8042.h"
#include "devices/uart.h"
#include "pci/pci.h"
#include "snapshot/snapshot.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/rng.h"
#include "virtio/virtio.h"

#define KVM_TSS_ADDR 0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static int vm_kvm_open(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = -errno;
		pr_err("cannot open /dev/kvm: %s%s", strerror(errno),
		       errno == EACCES ? " (is this user in the kvm group?)" :
		       errno == ENOENT ? " (is KVM enabled in this kernel and BIOS?)" : "");
		return e;
	}
	int ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		pr_err("unsupported KVM API version %d", ver);
		return -ENOTSUP;
	}
	static const struct { int cap; const char *name; } need[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
		{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			pr_err("KVM lacks %s, which pocketvm requires", need[i].name);
			return -ENOTSUP;
		}
	}
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return -errno;
	vm->run_size = (size_t)sz;

	/* Fetched once: the call is slow on some hosts (~300 us here). */
	for (int n = 128; n <= 4096; n *= 2) {
		vm->cpuid = calloc(1, sizeof(*vm->cpuid) + (size_t)n * sizeof(vm->cpuid->entries[0]));
		if (!vm->cpuid)
			return -ENOMEM;
		vm->cpuid->nent = (uint32_t)n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) == 0)
			return 0;
		free(vm->cpuid);
		vm->cpuid = NULL;
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

static int vm_set_memslots(struct vm *vm)
{
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		struct gm_region *r = &vm->mem.region[i];
		struct kvm_userspace_memory_region slot = {
			.slot = (uint32_t)i,
			.flags = vm->memslot_flags,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			int e = -errno;
			pr_err("KVM_SET_USER_MEMORY_REGION slot %d: %s", i, strerror(errno));
			return e;
		}
	}
	return 0;
}

int vm_set_memslot_flags(struct vm *vm, uint32_t flags)
{
	uint32_t old = vm->memslot_flags;
	vm->memslot_flags = flags;
	int r = vm_set_memslots(vm);
	if (r) {
		vm->memslot_flags = old;
		vm_set_memslots(vm);
	}
	return r;
}

static int vm_create_irqchip(struct vm *vm)
{
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return -errno;
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		int e = -errno;
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return e;
	}
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		int e = -errno;
		pr_err("KVM_CREATE_PIT2: %s", strerror(errno));
		return e;
	}
	return irq_init(&vm->irq, vm->vm_fd);
}

static int vm_create_devices(struct vm *vm)
{
	int r;

	vm->uart = uart_create(vm, STDOUT_FILENO);
	if (!vm->uart)
		return -ENOMEM;
	r = i8042_create(vm);
	if (r)
		return r;
	vm->pci = calloc(1, sizeof(*vm->pci));
	if (!vm->pci)
		return -ENOMEM;
	r = pci_bus_init(vm->pci, &vm->pio, &vm->mmio);
	if (r)
		return r;
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		r = virtio_blk_create(vm, &vm->cfg.disk[i]);
		if (r)
			return r;
	}
	if (vm->cfg.rng) {
		r = virtio_rng_create(vm);
		if (r)
			return r;
	}
	if (vm->cfg.balloon_enabled) {
		r = virtio_balloon_create(vm, &vm->cfg.balloon);
		if (r)
			return r;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct snap_image *img)
{
	int r;
	char err[512] = "";

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->wake_fd = -1;
	for (int i = 0; i < VM_MAX_VCPUS; i++)
		vm->vcpu[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	io_bus_init(&vm->pio, "pio");
	io_bus_init(&vm->mmio, "mmio");
	vm->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->wake_fd < 0)
		return -errno;

	r = vm_kvm_open(vm);
	if (r)
		return r;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = -errno;
		pr_err("KVM_CREATE_VM: %s", strerror(errno));
		return r;
	}
	r = gm_init(&vm->mem, cfg->mem_size);
	if (r) {
		pr_err("cannot allocate %llu MiB of guest memory: %s",
		       (unsigned long long)(cfg->mem_size >> 20), strerror(-r));
		return r;
	}
	/* Memory slots before the irqchip: the first slot change after
	 * KVM_CREATE_IRQCHIP is expensive on some hosts (see docs). */
	r = vm_set_memslots(vm);
	if (r)
		return r;
	/* A restore brings RAM back from here on, while the rest is created. */
	if (img && (r = snapshot_restore_begin(vm, img, err, sizeof(err)))) {
		pr_err("restore: %s", err);
		return r;
	}
	r = vm_create_irqchip(vm);
	if (r)
		return r;
	r = vm_create_devices(vm);
	if (r)
		return r;

	uint64_t entry = 0;
	if (!img) {
		r = boot_setup(vm, &entry, err, sizeof(err));
		if (r) {
			pr_err("%s", err);
			return r;
		}
	}
	for (int i = 0; i < cfg->cpus; i++) {
		r = vcpu_create(vm, i);
		if (r) {
			pr_err("KVM_CREATE_VCPU %d: %s", i, strerror(-r));
			return r;
		}
		vm->nr_vcpus++;
		r = img ? boot_vcpu_cpuid(vm, &vm->vcpu[i]) : boot_vcpu_init(vm, &vm->vcpu[i], entry);
		if (r) {
			pr_err("vcpu%d: setup failed: %s", i, strerror(-r));
			return r;
		}
	}
	if (img) {
		r = snapshot_restore(vm, img, err, sizeof(err));
		if (r) {
			pr_err("restore: %s", err);
			return r;
		}
		/* Serve chains the driver queued before the snapshot. */
		for (int i = 0; i < vm->nr_vdev; i++)
			virtio_kick_all(vm->vdev[i]);
	}
	return 0;
}

int vm_snapshot(struct vm *vm, const char *dir, bool then_exit, char *err, size_t errlen)
{
	pthread_mutex_lock(&vm->lock);
	bool was_paused = vm->pause_req;
	pthread_mutex_unlock(&vm->lock);
	vm_pause(vm);
	/* Quiesce: a device thread finishes its batch, then waits on its lock. */
	for (int i = 0; i < vm->nr_vdev; i++)
		pthread_mutex_lock(&vm->vdev[i]->lock);
	int r = snapshot_save(vm, dir, !then_exit, err, errlen);
	/* Chains the driver made available but no device popped are in the
	 * snapshot, to be served after the restore. When the VM ends here they
	 * must not be served now as well: that would write to the disks after
	 * their identity was recorded, and the restore would refuse them. */
	for (int i = 0; i < vm->nr_vdev && !r && then_exit; i++)
		vm->vdev[i]->frozen = true;
	for (int i = vm->nr_vdev - 1; i >= 0; i--)
		pthread_mutex_unlock(&vm->vdev[i]->lock);
	if (!r && then_exit)
		vm_request_exit(vm, VM_EXIT_SNAPSHOT);
	if (!was_paused)
		vm_resume(vm);
	return r;
}

void vm_kick_all(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpu[i]);
}

void vm_wait_kicking(struct vm *vm, bool (*done)(struct vm *vm))
{
	while (!done(vm)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT && !done(vm)) {
			pthread_mutex_unlock(&vm->lock);
			vm_kick_all(vm);
			pthread_mutex_lock(&vm->lock);
		}
	}
}

void vm_request_exit(struct vm *vm, enum vm_exit why)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_EXIT_NONE)
		vm->exit = why;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm_kick_all(vm);
	if (write(vm->wake_fd, &one, sizeof(one)) < 0)
		pr_debug("vm: wake: %s", strerror(errno));
}

static bool vm_all_parked(struct vm *vm)
{
	return vm->parked >= vm->running_vcpus || vm->exit != VM_EXIT_NONE;
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	pthread_mutex_unlock(&vm->lock);
	vm_kick_all(vm);
	pthread_mutex_lock(&vm->lock);
	vm_wait_kicking(vm, vm_all_parked);
	pthread_mutex_unlock(&vm->lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

bool vm_is_paused(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool p = vm->pause_req && vm->parked == vm->running_vcpus;
	pthread_mutex_unlock(&vm->lock);
	return p;
}

int vm_exit_status(enum vm_exit why)
{
	switch (why) {
	case VM_EXIT_RESET:
	case VM_EXIT_QUIT:
	case VM_EXIT_SNAPSHOT:
		return 0;
	case VM_EXIT_SHUTDOWN_FAULT:
		return 2;
	case VM_EXIT_INTERNAL_ERROR:
		return 3;
	default:
		return 1;
	}
}

const char *vm_exit_name(enum vm_exit why)
{
	static const char *const names[] = {
		[VM_EXIT_NONE] = "running",
		[VM_EXIT_RESET] = "guest reset",
		[VM_EXIT_QUIT] = "quit",
		[VM_EXIT_SNAPSHOT] = "saved to a snapshot",
		[VM_EXIT_SHUTDOWN_FAULT] = "triple fault",
		[VM_EXIT_INTERNAL_ERROR] = "KVM internal error",
		[VM_EXIT_FAILURE] = "internal failure",
	};
	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

void vm_destroy(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vdev; i++)
		virtio_dev_destroy(vm->vdev[i]);
	vm->nr_vdev = 0;
	vm->balloon = NULL;
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpu[i]);
	vm->nr_vcpus = 0;
	snapshot_vm_free(vm); /* loader threads serve RAM: before it goes */
	uart_destroy(vm->uart);
	vm->uart = NULL;
	free(vm->pci);
	vm->pci = NULL;
	gm_destroy(&vm->mem);
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
	vm->vm_fd = vm->kvm_fd = vm->wake_fd = -1;
}
