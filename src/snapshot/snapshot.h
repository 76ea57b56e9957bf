/*
 * Snapshots: save a paused VM to a directory and restore from one.
 * Format: docs/snapshot-format.md. A directory holds `state` (header plus
 * checksummed sections) and `memory` (guest RAM at fixed offsets, zero pages
 * left as holes). Saving writes beside the old snapshot and swaps it in
 * atomically; loading validates everything before installing anything.
 */
#ifndef POCKETVM_SNAPSHOT_H
#define POCKETVM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vm.h"
#include "snapshot/codec.h"

#define SNAP_MAGIC "PKVMSNAP"
#define SNAP_VERSION 1
#define SNAP_ARCH_X86_64 1
#define SNAP_MAX_STATE (64u << 20) /* a state file larger than this is refused */
#define SNAP_MAX_SECTION (16u << 20)

/* Section IDs: one registry, never reused. */
enum snap_section_id {
	SNAP_SEC_MACHINE = 0x0001,  /* configuration: memory, vCPUs, cmdline, disks */
	SNAP_SEC_VM = 0x0002,	    /* irqchip, PIT, clock */
	SNAP_SEC_BALLOON = 0x0003,  /* the machine has a virtio-balloon: its configuration */
	SNAP_SEC_MEMORY = 0x0004,   /* which memory file holds RAM; the other file's diff */
	SNAP_SEC_VCPU = 0x0100,	    /* + vCPU index */
	SNAP_SEC_UART = 0x0200,
	SNAP_SEC_VIRTIO = 0x0300,   /* + device index */
	SNAP_SEC_END = 0xffff,
};

#define SNAP_SEC_F_REQUIRED 1

/* Host identity recorded in the header and checked at restore. */
struct snap_host {
	char cpu_vendor[13];
	uint32_t cpu_signature; /* CPUID.1.EAX: family, model, stepping */
	uint32_t tsc_khz;
};

/* snap_host_identity - this host's CPU identity and the VM's TSC frequency. */
void snap_host_identity(struct vm *vm, struct snap_host *h);

/*
 * snapshot_save - save @vm, which the caller has paused (vm_pause and
 * devices quiesced), to directory @dir: incrementally when @dir holds the
 * snapshot RAM is known against and writes were tracked since, else
 * completely. @keep_running: the VM goes on afterwards (then writes are
 * tracked from now on, for the next save). Returns 0 or a negative errno
 * with a message in @err. On failure the previous snapshot at @dir is
 * untouched.
 */
int snapshot_save(struct vm *vm, const char *dir, bool keep_running, char *err, size_t errlen);

/*
 * snapshot_read_config - read and validate the snapshot at @dir far enough
 * to know the machine it describes; fill @cfg (strings point into storage
 * owned by the returned handle). Returns a handle or NULL with @err.
 */
struct snap_image;
struct snap_image *snapshot_open(const char *dir, struct vm_config *cfg, char *err,
				 size_t errlen);
void snapshot_close(struct snap_image *img);

/*
 * snapshot_restore_begin - start bringing RAM back from @img by the restore
 * mode (eager: readers in the background; lazy: the mapping; loading set:
 * the loader). vm_create() calls it as soon as RAM and its memory slots
 * exist, so that reading overlaps creating the irqchip, devices and vCPUs.
 * Returns 0 or a negative errno with @err.
 */
int snapshot_restore_begin(struct vm *vm, struct snap_image *img, char *err, size_t errlen);

/*
 * snapshot_restore - validate the devices' state against the devices as
 * created, wait for RAM (eager), then install CPU, irqchip and device
 * state from @img into @vm, which vm_create() built from the configuration
 * snapshot_open() returned (without booting). Returns 0 or a negative
 * errno with @err.
 */
int snapshot_restore(struct vm *vm, struct snap_image *img, char *err, size_t errlen);

/*
 * snapshot_vm_free - stop what a restore left running (the loading-set
 * loader and recorder) and free the VM's snapshot runtime. vm_destroy()
 * calls it after the vCPU and device threads are gone, before RAM is freed.
 */
void snapshot_vm_free(struct vm *vm);

/* snapshot_remove - delete the snapshot directory @dir (its files, then it). */
void snapshot_remove(const char *dir);

/*
 * snapshot_parse - validate a state file held in memory (header, every
 * section's bounds and CRC, every payload decodes). Pure: the fuzzer's entry.
 */
int snapshot_parse(const uint8_t *buf, size_t len, const struct snap_host *host,
		   char *err, size_t errlen);

#endif
