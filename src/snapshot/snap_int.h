/*
 * Snapshot internals shared by the files of src/snapshot/: the decoded
 * state file (snap_image), the memory-file helpers, the per-VM snapshot
 * runtime (what the VM's RAM is known to match, dirty tracking, the memory
 * loader). Not for use outside src/snapshot/.
 */
#ifndef POCKETVM_SNAPSHOT_INT_H
#define POCKETVM_SNAPSHOT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "snapshot/loadset.h"
#include "snapshot/pageset.h"
#include "snapshot/snapshot.h"
#include "snapshot/x86_state.h"
#include "virtio/balloon.h"
#include "virtio/virtio.h"

#define SNAP_PAGE 4096
#define SNAP_MAX_STR 4096
#define SNAP_MAX_SECTIONS 64
#define SNAP_MAX_VDEV (VM_MAX_DISKS + 4)
#define SNAP_TRAILER_LEN 4096u		/* after the RAM image in a memory file */
#define SNAP_TRAILER_MAGIC "PKVMMEMF"
#define SNAP_MAX_DIFF_RUNS (1u << 18)	/* runs in the MEMORY section's diff list */

struct snap_section {
	uint32_t id;
	uint16_t version, flags;
	const uint8_t *payload;
	uint32_t len;
};

struct snap_disk_id {
	uint64_t size;
	uint64_t mtime_ns;
	uint64_t ino;
};

/* The MEMORY section: which memory file holds this snapshot's RAM. */
struct snap_memsec {
	bool present;	     /* absent: a version 1 snapshot, RAM in `memory` */
	uint8_t uuid[16];    /* this snapshot lineage's identity */
	uint64_t gen;	     /* save generation, >= 1; the current file's trailer says so */
	uint8_t cur;	     /* 0: `memory`, 1: `memory.1` */
	uint64_t other_gen;  /* generation the other file holds, 0: none/unknown */
	struct pageset diff; /* pages where the other file differs from the current */
};

/* The trailer of a memory file (format 1 with a MEMORY section). */
struct snap_trailer {
	uint8_t uuid[16];
	uint64_t gen; /* 0: being written, contents unknown */
	uint64_t ram_size;
};

struct snap_image {
	uint8_t *buf;
	size_t len;
	char dir[PATH_MAX];
	struct snap_host host;
	uint64_t ram_size;
	uint32_t nr_vcpus;
	struct snap_section sec[SNAP_MAX_SECTIONS];
	int nr_sec;
	/* MACHINE */
	uint64_t mem_size;
	uint32_t cpus;
	bool rng;
	char *cmdline;
	uint32_t nr_disks;
	char *disk_path[VM_MAX_DISKS];
	char *disk_serial[VM_MAX_DISKS];
	bool disk_ro[VM_MAX_DISKS];
	struct snap_disk_id disk_id[VM_MAX_DISKS];
	bool balloon; /* BALLOON section present */
	struct balloon_config balloon_cfg;
	struct snap_memsec mem;
	struct x86_vm_state vm_state;
	struct x86_vcpu_state vcpu[VM_MAX_VCPUS];
	struct uart_saved_bytes { const uint8_t *p; uint32_t len; } uart;
	int nr_vdev; /* VIRTIO sections, numbered from 0 without gaps */
	struct virtio_saved vdev[SNAP_MAX_VDEV];
	/* Opened by snapshot_open(): the memory file, checked against the state. */
	int mem_fd;
	double t_open;	/* ms since main() when it was read and validated */
	struct loadset loadset; /* valid when have_loadset */
	bool have_loadset;
	int loadset_fd;
};

/* --- image.c --- */
const struct snap_section *snap_find_section(const struct snap_image *img, uint32_t id);
int snap_disk_identity(const char *path, struct snap_disk_id *id);
void snap_enc_str(struct enc *e, const char *s);
void snap_section_begin(struct enc *e, uint32_t id, uint16_t version, uint16_t flags,
			size_t *mark);
void snap_section_end(struct enc *e, size_t mark);
void snap_memsec_encode(struct enc *e, const struct snap_memsec *m);

/* --- memfile.c: the memory files --- */
const char *snap_memfile_name(int slot);
void snap_trailer_encode(uint8_t *buf, const struct snap_trailer *t);
int snap_trailer_decode(const uint8_t *buf, size_t len, struct snap_trailer *t);
/* Read @fd's trailer at @ram_size; 0 when it is valid. */
int snap_trailer_read(int fd, uint64_t ram_size, struct snap_trailer *t);
int snap_trailer_write(int fd, uint64_t ram_size, const struct snap_trailer *t);
/* Every non-zero page of RAM into @fd (sized and sparse). @stored: bytes. */
int snap_mem_write_full(struct vm *vm, int fd, uint64_t *stored);
/* The pages of @plan into @fd: non-zero ones written, zero ones punched. */
int snap_mem_write_plan(struct vm *vm, int fd, const struct pageset *plan, uint64_t *stored,
			uint64_t *punched);
/* Eager restore: the data extents of @fd into the memfd with @threads readers. */
int snap_mem_load_eager(struct vm *vm, int fd, int threads, char *err, size_t errlen);
/* Lazy restore: map @fd MAP_PRIVATE over RAM. */
int snap_mem_map_lazy(struct vm *vm, int fd, char *err, size_t errlen);
bool snap_page_is_zero(const uint8_t *p);
int snap_write_all(int fd, const uint8_t *p, size_t n, off_t off);

/* --- memload.c: loading-set restores and recording --- */
struct memload;
/*
 * memload_start - restore RAM from the memory file and the loading set, if
 * @img has one, while the guest runs: the lazy mapping with a prefetch in
 * loading-set order, or (@use_uffd, if userfaultfd is available) the memfd
 * filled through userfaultfd. Records a loading set when @img has none.
 * 0 or a negative errno with @err (then nothing was started).
 */
int memload_start(struct vm *vm, struct snap_image *img, bool use_uffd, char *err, size_t errlen);
/*
 * snap_loadset_carry - after a save of @dir moved from generation @from to
 * @new_gen: an index-only loading set recorded against @from is rebound to
 * @new_gen (the order it holds is still a good prefetch order, and it never
 * supplies contents); any other loading set is deleted. 0 when carried.
 */
int snap_loadset_carry(const char *dir, const struct loadset_bind *from, uint64_t new_gen);

/*
 * memload_go - the VM is built and its state installed: the loader starts
 * its work (until then it competes with building the VM for the CPU, see
 * docs/snapshot-format.md, restore modes). The userfaultfd fault thread
 * serves from the start.
 */
void memload_go(struct vm *vm);
/* memload_finish - fill everything now and stop (a save needs all of RAM). */
void memload_finish(struct vm *vm);
/* memload_destroy - stop the threads (teardown; the VM is not running). */
void memload_destroy(struct vm *vm);

/* The per-VM snapshot runtime, vm->snap. */
struct snap_runtime {
	/* The snapshot RAM is known to match, or where it was last saved. */
	bool known;
	char dir[PATH_MAX];	     /* realpath of the snapshot directory */
	struct snap_memsec mem;	     /* uuid, generation, current file, diff */
	int mapped_slot;	     /* memory file RAM maps MAP_PRIVATE (lazy), or -1 */
	/* Dirty tracking: KVM's log on every memslot plus gm's device bitmap. */
	bool tracking;
	struct pageset pending;	     /* written since the known image */
	uint64_t *kvm_bits;	     /* scratch for KVM_GET_DIRTY_LOG */
	struct memload *ml;	     /* a running loading-set restore, or NULL */
	/* An eager restore's readers, started by snapshot_restore_begin(). */
	pthread_t eager_thr;
	bool eager_started;
	int eager_err;
	char eager_msg[160];
	struct vm *eager_vm;
	struct snap_image *eager_img;
	/* Restore timeline, ms since main(). */
	double t_ram, t_vm, t_memory, t_state;
};

/* --- restore.c --- */
#define SNAP_EAGER_THREADS 2
struct snap_runtime *snap_runtime(struct vm *vm);
double snap_now_ms(void);
/* Start tracking writes (dirty log on the memory slots, gm's bitmap). */
int snap_track_enable(struct vm *vm);
/* OR everything written since the last harvest into vm->snap->pending. */
int snap_track_harvest(struct vm *vm);

/* --- snapshot.c, image.c --- */
int snap_fsync_dir(const char *path);
/* The MEMORY section of @dir's state (0), or an error if it has none. */
int snap_read_memsec(const char *dir, uint64_t ram_size, struct snap_memsec *m);

#endif
