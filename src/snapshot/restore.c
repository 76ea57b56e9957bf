/*
 * Restoring snapshots, and the per-VM snapshot runtime: what RAM is known
 * to match (so the next save can be incremental), the tracking of writes
 * (KVM's dirty log on every memory slot plus guest_mem's bitmap of what
 * the VMM itself wrote), and the restore timeline.
 */
#define _GNU_SOURCE
#include "snapshot/snap_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "devices/uart.h"

double snap_now_ms(void)
{
	return (double)mono_ns() / 1e6;
}

struct snap_runtime *snap_runtime(struct vm *vm)
{
	if (vm->snap)
		return vm->snap;
	struct snap_runtime *rt = calloc(1, sizeof(*rt));
	uint64_t pages = vm->mem.ram_size / SNAP_PAGE;
	if (!rt || pageset_init(&rt->pending, pages) || pageset_init(&rt->mem.diff, pages)) {
		if (rt) {
			pageset_free(&rt->pending);
			free(rt);
		}
		return NULL;
	}
	rt->mapped_slot = -1;
	vm->snap = rt;
	return rt;
}

/* --- tracking writes --- */

/*
 * Two ways to know every page written since the known image, besides what
 * the VMM itself writes (gm's bitmap, always on):
 *  - RAM a private mapping of a memory file (lazy and loading-set restores):
 *    a page anyone wrote is a private copy now, which /proc/self/pagemap
 *    tells apart from a page of the file. This costs the guest nothing and
 *    covers everything written since the restore: a superset of what changed
 *    since the last save, so it stays valid for every later save too;
 *  - RAM the memfd: KVM's dirty log on the memory slots. It is switched on
 *    only by a save after which the VM keeps running, because a slot that
 *    logs writes makes the guest's first touch of a page much slower here
 *    (bench/snapshot: a restore's working set took 2.5-7x as long).
 */
int snap_track_enable(struct vm *vm)
{
	struct snap_runtime *rt = snap_runtime(vm);
	if (!rt)
		return -ENOMEM;
	int r = gm_dirty_enable(&vm->mem);
	if (!r && vm->mem.file_fd < 0 && !(vm->memslot_flags & KVM_MEM_LOG_DIRTY_PAGES))
		r = vm_set_memslot_flags(vm, vm->memslot_flags | KVM_MEM_LOG_DIRTY_PAGES);
	if (r) {
		pr_warn("snapshot: cannot track writes (%s); saves stay complete", strerror(-r));
		return r;
	}
	rt->tracking = true;
	return 0;
}

/* Pages of the private mapping that are copies: written since the restore. */
static int harvest_private(struct vm *vm, struct pageset *dst)
{
	const uint64_t batch = 1 << 16;
	uint64_t pages = vm->mem.ram_size / SNAP_PAGE;
	uint64_t *ent = malloc(batch * sizeof(uint64_t));
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;

	if (pm < 0 || !ent) {
		r = pm < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (uint64_t p = 0; p < pages && !r; p += batch) {
		uint64_t n = pages - p < batch ? pages - p : batch;
		uint64_t at = (uint64_t)(uintptr_t)vm->mem.base / SNAP_PAGE + p;
		if (pread(pm, ent, n * 8, (off_t)(at * 8)) != (ssize_t)(n * 8)) {
			r = -EIO;
			break;
		}
		for (uint64_t i = 0; i < n; i++) {
			bool present = ent[i] >> 63 & 1, swapped = ent[i] >> 62 & 1;
			bool file = ent[i] >> 61 & 1;
			if ((present && !file) || swapped)
				pageset_add(dst, p + i, 1);
		}
	}
out:
	if (pm >= 0)
		close(pm);
	free(ent);
	return r;
}

int snap_track_harvest(struct vm *vm)
{
	struct snap_runtime *rt = vm->snap;
	uint64_t maxw = 0;
	int r;

	gm_dirty_take(&vm->mem, rt->pending.w);
	if (vm->mem.file_fd >= 0) {
		if ((r = harvest_private(vm, &rt->pending)))
			pr_warn("snapshot: cannot read /proc/self/pagemap (%s); the next save is "
				"complete", strerror(-r));
		return r;
	}
	if (!(vm->memslot_flags & KVM_MEM_LOG_DIRTY_PAGES))
		return -ENOENT;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		uint64_t w = pageset_words(vm->mem.region[i].size / SNAP_PAGE);
		maxw = w > maxw ? w : maxw;
	}
	if (!rt->kvm_bits && !(rt->kvm_bits = calloc(maxw ? maxw : 1, sizeof(uint64_t))))
		return -ENOMEM;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		const struct gm_region *g = &vm->mem.region[i];
		uint64_t pages = g->size / SNAP_PAGE;
		struct kvm_dirty_log log = { .slot = (uint32_t)i, .dirty_bitmap = rt->kvm_bits };
		memset(rt->kvm_bits, 0, pageset_words(pages) * sizeof(uint64_t));
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			r = -errno;
			pr_warn("snapshot: KVM_GET_DIRTY_LOG slot %d: %s; the next save is complete", i,
				strerror(errno));
			return r;
		}
		pageset_or_bits(&rt->pending, g->offset / SNAP_PAGE, rt->kvm_bits, pages);
	}
	return 0;
}

/* --- restore --- */

static int check_devices(struct vm *vm, struct snap_image *img, char *err, size_t errlen)
{
	if (img->nr_vdev != vm->nr_vdev) {
		snprintf(err, errlen, "snapshot has %d devices, this machine %d", img->nr_vdev,
			 vm->nr_vdev);
		return -EINVAL;
	}
	for (int i = 0; i < vm->nr_vdev; i++)
		if (virtio_state_check(vm->vdev[i], &img->vdev[i])) {
			snprintf(err, errlen, "snapshot state of %s (device %d) does not match it",
				 vm->vdev[i]->ops->name, i);
			return -EINVAL;
		}
	return 0;
}

/* Readers of an eager restore; POCKETVM_EAGER_THREADS=1..4 overrides (bench/snapshot). */
static int eager_threads(void)
{
	const char *t = getenv("POCKETVM_EAGER_THREADS");
	int n = t ? atoi(t) : 0;
	return n >= 1 && n <= 4 ? n : SNAP_EAGER_THREADS;
}

static void *eager_main(void *arg)
{
	struct snap_runtime *rt = arg;
	pthread_setname_np(pthread_self(), "restore-eager");
	rt->eager_err = snap_mem_load_eager(rt->eager_vm, rt->eager_img->mem_fd, eager_threads(),
					    rt->eager_msg, sizeof(rt->eager_msg));
	return NULL;
}

/* Wait for an eager restore's readers. */
static int eager_join(struct snap_runtime *rt, char *err, size_t errlen)
{
	if (!rt->eager_started)
		return 0;
	pthread_join(rt->eager_thr, NULL);
	rt->eager_started = false;
	if (rt->eager_err)
		snprintf(err, errlen, "%s", rt->eager_msg);
	return rt->eager_err;
}

int snapshot_restore_begin(struct vm *vm, struct snap_image *img, char *err, size_t errlen)
{
	struct snap_runtime *rt = snap_runtime(vm);
	enum restore_mode mode = vm->cfg.restore_mode;
	int r;

	if (!rt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rt->t_ram = snap_now_ms() - (double)vm->cfg.start_ns / 1e6;
	if ((mode == RESTORE_LOADSET || mode == RESTORE_LOADSET_UFFD) && !img->mem.present)
		mode = RESTORE_LAZY; /* a version 1 snapshot: nothing to bind a loading set to */
	switch (mode) {
	case RESTORE_EAGER:
		rt->eager_vm = vm;
		rt->eager_img = img;
		if (pthread_create(&rt->eager_thr, NULL, eager_main, rt) == 0) {
			rt->eager_started = true;
			return 0;
		}
		return snap_mem_load_eager(vm, img->mem_fd, SNAP_EAGER_THREADS, err, errlen);
	case RESTORE_LOADSET:
	case RESTORE_LOADSET_UFFD:
		return memload_start(vm, img, mode == RESTORE_LOADSET_UFFD, err, errlen);
	case RESTORE_LAZY:
	default:
		r = snap_mem_map_lazy(vm, img->mem_fd, err, errlen);
		if (!r)
			img->mem_fd = -1; /* owned by the mapping now (vm->mem.file_fd) */
		return r;
	}
}

static int install_state(struct vm *vm, struct snap_image *img, char *err, size_t errlen)
{
	/* Time passed while the VM was saved: the guest's clocks move on too. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (now > img->vm_state.realtime_ns && img->host.tsc_khz)
		x86_advance_time(&img->vm_state, img->vcpu, vm->nr_vcpus,
				 now - img->vm_state.realtime_ns, img->host.tsc_khz);
	int r = x86_vm_set(vm, &img->vm_state);
	if (r) {
		snprintf(err, errlen, "installing irqchip/PIT/clock state: %s", strerror(-r));
		return r;
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		r = x86_vcpu_set(&vm->vcpu[i], &img->vcpu[i]);
		if (r) {
			snprintf(err, errlen, "installing vCPU %d state: %s", i, strerror(-r));
			return r;
		}
	}
	struct dec d;
	dec_init(&d, img->uart.p, img->uart.len);
	if (uart_load(vm->uart, &d)) {
		snprintf(err, errlen, "snapshot UART state is malformed");
		return -EINVAL;
	}
	for (int i = 0; i < vm->nr_vdev; i++) {
		r = virtio_state_install(vm->vdev[i], &img->vdev[i]);
		if (r) {
			snprintf(err, errlen, "installing the state of %s: %s", vm->vdev[i]->ops->name,
				 r == -EINVAL ? "its own part is malformed or does not match" :
						strerror(-r));
			return r;
		}
	}
	return 0;
}

int snapshot_restore(struct vm *vm, struct snap_image *img, char *err, size_t errlen)
{
	struct snap_runtime *rt = snap_runtime(vm);
	struct snap_host host;
	double t_vm = snap_now_ms();
	int r;

	if (!rt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snap_host_identity(vm, &host);
	if (host.tsc_khz && img->host.tsc_khz != host.tsc_khz) {
		snprintf(err, errlen, "snapshot was taken with a TSC of %u kHz; this host's is %u kHz",
			 img->host.tsc_khz, host.tsc_khz);
		return -EXDEV;
	}
	if ((uint32_t)vm->nr_vcpus != img->nr_vcpus || vm->mem.ram_size != img->ram_size) {
		snprintf(err, errlen, "internal: VM shape differs from the snapshot");
		return -EINVAL;
	}
	/* Everything validated before anything is installed. */
	if ((r = check_devices(vm, img, err, errlen))) {
		char ignore[160];
		eager_join(rt, ignore, sizeof(ignore));
		return r;
	}
	if ((r = eager_join(rt, err, errlen)))
		return r;
	double t_mem = snap_now_ms();
	if ((r = install_state(vm, img, err, errlen)))
		return r;
	double t_state = snap_now_ms();

	/* What RAM matches now: the next save of this directory can be incremental. */
	if (img->mem.present && realpath(img->dir, rt->dir)) {
		rt->known = true;
		pageset_free(&rt->mem.diff);
		rt->mem = img->mem;
		img->mem.diff = (struct pageset){ 0 };
		rt->mapped_slot = vm->mem.file_fd >= 0 ? rt->mem.cur : -1;
	}
	/* A private mapping of the memory file shows what is written from now
	 * on (memfd RAM starts tracking at the first save that keeps running). */
	if (vm->mem.file_fd >= 0)
		snap_track_enable(vm);
	memload_go(vm);
	double t0 = (double)vm->cfg.start_ns / 1e6;
	rt->t_vm = t_vm - t0;
	rt->t_memory = t_mem - t0;
	rt->t_state = t_state - t0;
	pr_info("snapshot: restore timeline (ms since start): state file read and validated %.1f, "
		"RAM and memory slots %.1f (memory starts coming back), VM and vCPUs %.1f, memory "
		"ready %.1f, state installed %.1f", img->t_open, rt->t_ram, rt->t_vm, rt->t_memory,
		rt->t_state);
	return 0;
}

void snapshot_vm_free(struct vm *vm)
{
	struct snap_runtime *rt = vm->snap;
	if (!rt)
		return;
	memload_destroy(vm);
	char err[160];
	eager_join(rt, err, sizeof(err));
	pageset_free(&rt->pending);
	pageset_free(&rt->mem.diff);
	free(rt->kvm_bits);
	free(rt);
	vm->snap = NULL;
}
