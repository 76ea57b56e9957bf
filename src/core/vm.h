/*
 * The virtual machine: configuration, KVM handles, guest memory, buses,
 * devices and vCPUs, and the lifecycle (run, pause/resume handshake, stop).
 * The VM owns everything; nothing lives in file-scope globals.
 */
#ifndef POCKETVM_VM_H
#define POCKETVM_VM_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "balloon/controller.h"
#include "bus/io_bus.h"
#include "bus/irq.h"
#include "mem/guest_mem.h"

#define VM_MAX_VCPUS 8
#define VM_MAX_DISKS 8

struct disk_config {
	const char *path;
	bool readonly;
	const char *serial; /* NULL: derived from the file name */
};

/* virtio-balloon features the device offers (all on by default). */
struct balloon_config {
	bool stats;		  /* VIRTIO_BALLOON_F_STATS_VQ */
	bool deflate_on_oom;	  /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	bool free_page_reporting; /* VIRTIO_BALLOON_F_FREE_PAGE_REPORTING */
};

struct vm_config {
	uint64_t mem_size;
	int cpus;
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	struct disk_config disk[VM_MAX_DISKS];
	int nr_disks;
	const char *api_path;
	bool rng;
	bool balloon_enabled;	  /* --balloon */
	struct balloon_config balloon;
	struct bctl_config bctl;  /* --balloon-policy, --metrics */
	bool console_raw; /* raw terminal + escape sequence (stdin is a tty) */
	const char *restore_dir; /* --restore: the machine comes from this snapshot */
	const char *state_dir;	 /* --state: restore if valid, save on the way out */
	bool force_disks;	 /* restore even if a disk changed since the snapshot */
	enum restore_mode {
		RESTORE_EAGER,	 /* read the memory file's data extents into RAM */
		RESTORE_LAZY,	 /* map the memory file MAP_PRIVATE: pages load on first touch */
		RESTORE_LOADSET, /* lazy, and the recorded loading set prefetched first while
				    the guest runs, then the rest */
		RESTORE_LOADSET_UFFD, /* RAM filled through userfaultfd: the loading set
					 first while the guest runs, then the rest */
	} restore_mode;
	uint64_t start_ns;	 /* CLOCK_MONOTONIC at main(): the restore timeline's zero */
};

enum vm_exit {
	VM_EXIT_NONE = 0,
	VM_EXIT_RESET,	       /* guest reboot: status 0 */
	VM_EXIT_QUIT,	       /* ctl quit or console escape: status 0 */
	VM_EXIT_SNAPSHOT,      /* saved with `snapshot --exit` or --state: status 0 */
	VM_EXIT_SHUTDOWN_FAULT, /* triple fault */
	VM_EXIT_INTERNAL_ERROR, /* KVM emulation failure or internal error */
	VM_EXIT_FAILURE,       /* a pocketvm failure */
};

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;     /* from pthread_create, for join */
	pthread_t self;	      /* set by the thread itself, for kicks */
	bool started;	      /* pthread_create succeeded (join needed) */
	int kickable;	      /* the thread has set @self (atomic) */
};

struct pci_bus;
struct snap_image;
struct snap_runtime;
struct virtio_dev;
struct uart;
struct balloon;

struct vm {
	struct vm_config cfg;
	int kvm_fd;
	int vm_fd;
	size_t run_size;
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, fetched once */
	struct guest_mem mem;
	struct io_bus pio;
	struct io_bus mmio;
	struct irq_router irq;
	struct pci_bus *pci;
	struct uart *uart;
	struct virtio_dev *vdev[VM_MAX_DISKS + 4];
	int nr_vdev;
	struct balloon *balloon; /* the virtio-balloon among vdev[], or NULL */
	struct bctl *bctl;	 /* its controller while the VM runs, or NULL */
	struct vcpu vcpu[VM_MAX_VCPUS];
	int nr_vcpus;

	/* Lifecycle, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;	     /* vCPUs must park */
	int parked;	     /* vCPUs parked outside KVM_RUN */
	int running_vcpus;   /* vCPU threads alive */
	enum vm_exit exit;   /* first reason to stop wins */
	int wake_fd;	     /* eventfd: wakes the main loop on exit */

	/* Snapshots: memory slot flags (KVM_MEM_LOG_DIRTY_PAGES while writes are
	 * tracked for incremental saves) and the snapshot runtime (snapshot/). */
	uint32_t memslot_flags;
	struct snap_runtime *snap;
};

/*
 * Create the VM from @cfg: KVM, memory, irqchip, devices, and either the
 * boot state or, with @img (from snapshot_open), the snapshot's state.
 */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct snap_image *img);

/*
 * vm_snapshot - pause (handshake), quiesce devices, save to @dir, then
 * resume unless @then_exit (then the VM stops with VM_EXIT_QUIT).
 * Returns 0 or a negative errno with @err; the guest keeps running on error.
 */
int vm_snapshot(struct vm *vm, const char *dir, bool then_exit, char *err, size_t errlen);

/*
 * The signals that stop a VM (SIGTERM, SIGINT, SIGHUP). main() blocks them
 * before creating any thread, so that every thread inherits the mask and
 * they reach the main loop's signalfd.
 */
void vm_stop_signals(sigset_t *set);

/*
 * Start the vCPU threads, run the main loop until the VM stops, join.
 * @api: the control socket, opened by the caller (may be NULL).
 */
struct api_server;
int vm_run(struct vm *vm, struct api_server *api);

/*
 * vm_set_memslot_flags - set @flags (KVM_MEM_*) on every RAM memory slot.
 * 0 or a negative errno (then the slots keep their old flags).
 */
int vm_set_memslot_flags(struct vm *vm, uint32_t flags);

/* Tear down everything vm_create() built. */
void vm_destroy(struct vm *vm);

/*
 * vm_pause - the handshake: ask every vCPU to leave KVM_RUN, kick each one
 * out (immediate_exit + signal), and wait until every one has parked.
 * vm_resume releases them. Both are idempotent; callers serialise.
 */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);

/* Kick every vCPU out of KVM_RUN (immediate_exit + signal). */
void vm_kick_all(struct vm *vm);

/*
 * Wait on vm->cond (vm->lock held) until @done(vm) holds, kicking every
 * vCPU again every 20 ms: a kick can be lost on some hosts (a vCPU that
 * waits for SIPI may ignore immediate_exit), a repeated one cannot.
 */
void vm_wait_kicking(struct vm *vm, bool (*done)(struct vm *vm));

/* Request the VM to stop for @why (thread-safe, first reason wins). */
void vm_request_exit(struct vm *vm, enum vm_exit why);

/* Process exit status for a stop reason. */
int vm_exit_status(enum vm_exit why);
const char *vm_exit_name(enum vm_exit why);

#endif
