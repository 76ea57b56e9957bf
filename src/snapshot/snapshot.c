/*
 * Saving snapshots. See docs/snapshot-format.md for the format and
 * src/snapshot/plan.h for how a save chooses between a new directory, a
 * complete rewrite of the other memory file and an incremental one.
 */
#define _GNU_SOURCE
#include "snapshot/snap_int.h"

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "devices/uart.h"
#include "snapshot/plan.h"

/* --- host identity --- */

void snap_host_identity(struct vm *vm, struct snap_host *h)
{
	unsigned a, b, c, d;

	memset(h, 0, sizeof(*h));
	if (__get_cpuid(0, &a, &b, &c, &d)) {
		memcpy(h->cpu_vendor, &b, 4);
		memcpy(h->cpu_vendor + 4, &d, 4);
		memcpy(h->cpu_vendor + 8, &c, 4);
	}
	if (__get_cpuid(1, &a, &b, &c, &d))
		h->cpu_signature = a;
	if (vm && vm->nr_vcpus) {
		int khz = ioctl(vm->vcpu[0].fd, KVM_GET_TSC_KHZ, 0);
		h->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	}
}

/* --- the state file --- */

static int encode_state(struct vm *vm, struct enc *e, const struct snap_memsec *mem, char *err,
			size_t errlen)
{
	struct snap_host host;
	size_t mark;
	int r;

	snap_host_identity(vm, &host);
	enc_bytes(e, SNAP_MAGIC, 8);
	enc_u32(e, SNAP_VERSION);
	enc_u32(e, SNAP_ARCH_X86_64);
	enc_bytes(e, host.cpu_vendor, 12);
	enc_u32(e, host.cpu_signature);
	enc_u32(e, host.tsc_khz);
	enc_u64(e, vm->mem.ram_size);
	enc_u32(e, (uint32_t)vm->mem.nr_regions);
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		enc_u64(e, vm->mem.region[i].gpa);
		enc_u64(e, vm->mem.region[i].size);
		enc_u64(e, vm->mem.region[i].offset);
	}
	enc_u32(e, (uint32_t)vm->nr_vcpus);
	if (!e->err)
		enc_u32(e, crc32c(0, e->buf, e->len));

	snap_section_begin(e, SNAP_SEC_MACHINE, 1, SNAP_SEC_F_REQUIRED, &mark);
	enc_u64(e, vm->cfg.mem_size);
	enc_u32(e, (uint32_t)vm->cfg.cpus);
	enc_u8(e, vm->cfg.rng);
	snap_enc_str(e, vm->cfg.cmdline);
	enc_u32(e, (uint32_t)vm->cfg.nr_disks);
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		const struct disk_config *dc = &vm->cfg.disk[i];
		struct snap_disk_id id = { 0 };
		if ((r = snap_disk_identity(dc->path, &id))) {
			snprintf(err, errlen, "disk %s: %s", dc->path, strerror(-r));
			return r;
		}
		snap_enc_str(e, dc->path);
		enc_u8(e, dc->readonly);
		snap_enc_str(e, dc->serial);
		enc_u64(e, id.size);
		enc_u64(e, id.mtime_ns);
		enc_u64(e, id.ino);
	}
	snap_section_end(e, mark);
	/* Part of the machine description, written only when there is a balloon:
	 * snapshots without one stay byte-identical to format version 1's. */
	if (vm->cfg.balloon_enabled) {
		snap_section_begin(e, SNAP_SEC_BALLOON, 1, SNAP_SEC_F_REQUIRED, &mark);
		balloon_config_encode(e, &vm->cfg.balloon);
		snap_section_end(e, mark);
	}

	/* Which memory file holds RAM, and what the other one holds. */
	snap_section_begin(e, SNAP_SEC_MEMORY, 1, SNAP_SEC_F_REQUIRED, &mark);
	snap_memsec_encode(e, mem);
	snap_section_end(e, mark);

	struct x86_vm_state *vs = calloc(1, sizeof(*vs));
	struct x86_vcpu_state *cs = calloc(1, sizeof(*cs));
	if (!vs || !cs) {
		free(vs);
		free(cs);
		return -ENOMEM;
	}
	r = x86_vm_get(vm, vs);
	if (!r) {
		snap_section_begin(e, SNAP_SEC_VM, 1, SNAP_SEC_F_REQUIRED, &mark);
		x86_vm_encode(e, vs);
		snap_section_end(e, mark);
	}
	for (int i = 0; i < vm->nr_vcpus && !r; i++) {
		r = x86_vcpu_get(vm, &vm->vcpu[i], cs);
		if (r)
			break;
		snap_section_begin(e, SNAP_SEC_VCPU + (uint32_t)i, 1, SNAP_SEC_F_REQUIRED, &mark);
		x86_vcpu_encode(e, cs);
		snap_section_end(e, mark);
	}
	free(vs);
	free(cs);
	if (r) {
		snprintf(err, errlen, "reading CPU state from KVM: %s", strerror(-r));
		return r;
	}
	snap_section_begin(e, SNAP_SEC_UART, 1, SNAP_SEC_F_REQUIRED, &mark);
	uart_save(vm->uart, e);
	snap_section_end(e, mark);
	for (int i = 0; i < vm->nr_vdev; i++) {
		snap_section_begin(e, SNAP_SEC_VIRTIO + (uint32_t)i, 1, SNAP_SEC_F_REQUIRED, &mark);
		r = virtio_save(vm->vdev[i], e);
		if (r) {
			snprintf(err, errlen, "device %s cannot be saved", vm->vdev[i]->ops->name);
			return r;
		}
		snap_section_end(e, mark);
	}
	snap_section_begin(e, SNAP_SEC_END, 1, SNAP_SEC_F_REQUIRED, &mark);
	snap_section_end(e, mark);
	return e->err ? -ENOMEM : 0;
}

/* --- the snapshot directory --- */

/* What a snapshot directory may hold; nothing else is ever deleted. */
static const char *const snap_files[] = { "state", "memory", "memory.1", "loadset" };

static bool is_snap_file(const char *name)
{
	for (size_t i = 0; i < sizeof(snap_files) / sizeof(snap_files[0]); i++)
		if (!strcmp(name, snap_files[i]))
			return true;
	/* temporaries of in-place saves and of loading-set recording */
	return !strncmp(name, "state.tmp-", 10) || !strncmp(name, "loadset.tmp-", 12);
}

/* Does @dir exist with something in it that is not ours? */
static bool dir_has_foreign_files(const char *dir)
{
	DIR *d = opendir(dir);
	bool foreign = false;
	if (!d)
		return errno != ENOENT; /* a file, or unreadable: not ours either */
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !is_snap_file(de->d_name))
			foreign = true;
	closedir(d);
	return foreign;
}

/* Unlink the snapshot files in @dir; with @rm_dir, then the directory. */
static void remove_files(const char *dir, bool rm_dir, bool only_tmp)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (is_snap_file(de->d_name) && (!only_tmp || strstr(de->d_name, ".tmp-")))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (rm_dir)
		rmdir(dir); /* fails, harmlessly, if anything else is there */
}

void snapshot_remove(const char *dir)
{
	remove_files(dir, true, false);
}

int snap_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static void parent_of(const char *dir, char *parent, size_t len)
{
	snprintf(parent, len, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	else
		snprintf(parent, len, slash ? "/" : ".");
}

/* Remove DIR.tmp-PID leftovers of saves whose process died (SIGKILL, crash). */
static void remove_stale_tmp(const char *dir)
{
	char parent[PATH_MAX], prefix[PATH_MAX + 8], path[PATH_MAX * 2 + 8];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	const char *base = slash ? slash + 1 : parent;
	snprintf(prefix, sizeof(prefix), "%s.tmp-", base);
	if (slash)
		*slash = 0;
	DIR *d = opendir(slash ? (parent[0] ? parent : "/") : ".");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		char *end;
		long pid = strtol(de->d_name + strlen(prefix), &end, 10);
		if (*end || pid <= 0 || pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", slash ? (parent[0] ? parent : "") : ".",
			 de->d_name);
		remove_files(path, true, false);
	}
	closedir(d);
}

/* Write @e to @path (created exclusively) and fsync it. */
static int write_file_synced(const char *path, const struct enc *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = snap_write_all(fd, e->buf, e->len, 0);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static void new_identity(struct snap_memsec *m)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(m->uuid, 16, GRND_NONBLOCK) != 16) {
		/* no entropy yet: time and pid still tell saves apart */
		uint64_t v[2] = { (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec,
				  (uint64_t)getpid() };
		memcpy(m->uuid, v, 16);
	}
}

/* A complete snapshot in DIR.tmp-PID, swapped in for @dir. */
static int save_new_dir(struct vm *vm, const char *dir, struct snap_memsec *mem, char *err,
			size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX + 16], parent[PATH_MAX];
	struct enc e;
	uint64_t stored = 0;
	int r, fd = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", dir, (int)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "snapshot path too long");
		return -ENAMETOOLONG;
	}
	remove_files(tmp, true, false);
	remove_stale_tmp(dir);
	if (mkdir(tmp, 0700) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return r;
	}
	new_identity(mem);
	mem->gen = 1;
	mem->cur = 0;
	mem->other_gen = 0;
	enc_init(&e);
	r = encode_state(vm, &e, mem, err, errlen);
	if (r)
		goto fail;

	snprintf(path, sizeof(path), "%s/memory", tmp);
	struct snap_trailer t = { .gen = mem->gen, .ram_size = vm->mem.ram_size };
	memcpy(t.uuid, mem->uuid, 16);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (r = snap_mem_write_full(vm, fd, &stored)) ||
	    (r = snap_trailer_write(fd, vm->mem.ram_size, &t)) || fsync(fd) < 0) {
		r = r ? r : -errno;
		snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
		goto fail;
	}
	close(fd);
	fd = -1;
	snprintf(path, sizeof(path), "%s/state", tmp);
	if ((r = write_file_synced(path, &e))) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
		goto fail;
	}
	if ((r = snap_fsync_dir(tmp))) {
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(-r));
		goto fail;
	}
	/* Swap the new snapshot in: atomic whether or not one existed. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		remove_files(tmp, true, false); /* the old snapshot, now at tmp */
	} else if (errno == ENOENT && rename(tmp, dir) == 0) {
		/* first snapshot at this path */
	} else {
		r = -errno;
		snprintf(err, errlen, "cannot move the snapshot into %s: %s", dir, strerror(errno));
		goto fail;
	}
	parent_of(dir, parent, sizeof(parent));
	snap_fsync_dir(parent);
	pr_info("snapshot: saved %s in a new directory (state %zu bytes, memory %llu MiB stored "
		"of %llu)", dir, e.len, (unsigned long long)(stored >> 20),
		(unsigned long long)(vm->mem.ram_size >> 20));
	enc_free(&e);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	enc_free(&e);
	remove_files(tmp, true, false);
	return r;
}

/*
 * Write the other memory file of @dir (completely, or the pages of @plan),
 * then rename a new state naming it into place. Until that rename the
 * current snapshot is untouched; the other file is marked invalid (trailer
 * generation 0, synced) before its first page changes, so a save killed
 * half-way is detected by the next one.
 */
static int save_in_place(struct vm *vm, const char *dir, enum snap_save_how how,
			 const struct pageset *plan, struct snap_memsec *mem, char *err,
			 size_t errlen)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
	struct snap_memsec next = *mem;
	uint64_t stored = 0, punched = 0;
	struct enc e;
	int r;
	int slot = 1 - mem->cur;

	snprintf(path, sizeof(path), "%s/%s", dir, snap_memfile_name(slot));
	snprintf(tmp, sizeof(tmp), "%s/state.tmp-%d", dir, (int)getpid());
	remove_files(dir, false, true);
	enc_init(&e);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	struct snap_trailer t = { .gen = 0, .ram_size = vm->mem.ram_size };
	memcpy(t.uuid, mem->uuid, 16);
	if ((r = snap_trailer_write(fd, vm->mem.ram_size, &t)) || (fdatasync(fd) < 0 && (r = -errno)))
		goto io_fail;
	if (how == SNAP_SAVE_FULL) {
		if (ftruncate(fd, 0) < 0) {
			r = -errno;
			goto io_fail;
		}
		r = snap_mem_write_full(vm, fd, &stored);
	} else {
		r = snap_mem_write_plan(vm, fd, plan, &stored, &punched);
	}
	if (r)
		goto io_fail;
	next.gen = mem->gen + 1;
	next.cur = (uint8_t)slot;
	next.other_gen = mem->gen;
	t.gen = next.gen;
	if ((r = snap_trailer_write(fd, vm->mem.ram_size, &t)) || (fsync(fd) < 0 && (r = -errno)))
		goto io_fail;
	close(fd);
	fd = -1;
	/* next.diff: the caller's pending set (pages changed since the current image) */
	r = encode_state(vm, &e, &next, err, errlen);
	if (r)
		goto out;
	if ((r = write_file_synced(tmp, &e))) {
		snprintf(err, errlen, "writing %s: %s", tmp, strerror(-r));
		goto out;
	}
	char state[PATH_MAX + 16];
	snprintf(state, sizeof(state), "%s/state", dir);
	if (rename(tmp, state) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot rename %s into place: %s", tmp, strerror(errno));
		goto out;
	}
	snap_fsync_dir(dir);
	/* The loading set was recorded against the old memory: its stored pages
	 * are stale now, its order is not. */
	struct loadset_bind was = { .gen = mem->gen, .ram_size = vm->mem.ram_size };
	memcpy(was.uuid, mem->uuid, 16);
	bool carried = snap_loadset_carry(dir, &was, next.gen) == 0;
	pr_info("snapshot: saved %s %s (state %zu bytes, memory: %llu KiB written, %llu KiB "
		"punched%s)", dir, how == SNAP_SAVE_FULL ? "rewriting the other memory file" :
		"incrementally", e.len, (unsigned long long)(stored >> 10),
		(unsigned long long)(punched >> 10), carried ? "; loading set order kept" : "");
	mem->gen = next.gen;
	mem->cur = next.cur;
	mem->other_gen = next.other_gen;
	r = 0;
	goto out;
io_fail:
	snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
	if (r == -ENOSPC)
		ftruncate(fd, 0); /* give the space back; the file is invalid anyway */
out:
	if (fd >= 0)
		close(fd);
	if (r)
		unlink(tmp);
	enc_free(&e);
	return r;
}

/* Does @dir's state still describe the snapshot @rt knows? */
static bool same_snapshot(struct snap_runtime *rt, const char *dir, uint64_t ram_size)
{
	char real[PATH_MAX];
	struct snap_memsec m = { 0 };
	if (!rt->known || !realpath(dir, real) || strcmp(real, rt->dir))
		return false;
	bool same = !snap_read_memsec(dir, ram_size, &m) && !memcmp(m.uuid, rt->mem.uuid, 16) &&
		    m.gen == rt->mem.gen && m.cur == rt->mem.cur;
	pageset_free(&m.diff);
	return same;
}

/* Is the other memory file the generation the state says? */
static bool other_known(const char *dir, const struct snap_memsec *m, uint64_t ram_size)
{
	char path[PATH_MAX + 16];
	struct snap_trailer t;
	if (!m->other_gen)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, snap_memfile_name(1 - m->cur));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == ram_size + SNAP_TRAILER_LEN &&
		  !snap_trailer_read(fd, ram_size, &t) && !memcmp(t.uuid, m->uuid, 16) &&
		  t.gen == m->other_gen;
	close(fd);
	return ok;
}

int snapshot_save(struct vm *vm, const char *dir, bool keep_running, char *err, size_t errlen)
{
	struct snap_runtime *rt = snap_runtime(vm);
	struct pageset plan = { 0 };
	const char *why;
	int r;

	if (!rt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (dir_has_foreign_files(dir)) {
		snprintf(err, errlen, "%s exists and is not a pocketvm snapshot directory", dir);
		return -EEXIST;
	}
	double t0 = snap_now_ms();
	/* A loading-set restore still filling RAM: finish (the save reads it all). */
	memload_finish(vm);
	/* Disks first: what the snapshot's memory expects must be on disk. */
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		int dfd = open(vm->cfg.disk[i].path, O_RDONLY | O_CLOEXEC);
		if (dfd >= 0) {
			fdatasync(dfd);
			close(dfd);
		}
	}
	/* What changed since the known image; kept until a save succeeds. */
	if (rt->tracking && snap_track_harvest(vm))
		rt->tracking = false;
	struct snap_save_facts f = {
		.same_snapshot = same_snapshot(rt, dir, vm->mem.ram_size),
		.tracking = rt->tracking,
		.other_mapped = rt->mapped_slot >= 0 && rt->mapped_slot == 1 - rt->mem.cur,
	};
	f.other_known = f.same_snapshot && other_known(dir, &rt->mem, vm->mem.ram_size);
	enum snap_save_how how = snap_save_decide(&f, &why);
	if (how == SNAP_SAVE_INCREMENTAL &&
	    (pageset_init(&plan, vm->mem.ram_size / SNAP_PAGE) ||
	     snap_save_plan(&plan, &rt->mem.diff, &rt->pending))) {
		how = SNAP_SAVE_FULL;
		why = "out of memory for the plan";
	}
	pr_info("snapshot: saving %s: %s (%s)", dir, how == SNAP_SAVE_NEW_DIR ? "complete" :
		how == SNAP_SAVE_FULL ? "complete, in place" : "incremental", why);
	struct snap_memsec mem = rt->mem;
	mem.diff = rt->pending; /* the new state's diff: what changed since the current image */
	if (how == SNAP_SAVE_NEW_DIR)
		r = save_new_dir(vm, dir, &mem, err, errlen);
	else
		r = save_in_place(vm, dir, how, &plan, &mem, err, errlen);
	pageset_free(&plan);
	if (r) {
		if (r == -ENOSPC)
			snprintf(err, errlen, "no space left on the device while saving %s; the "
				 "previous snapshot is unchanged", dir);
		return r;
	}
	/* RAM now matches what was just saved; the pending set becomes the diff. */
	rt->known = realpath(dir, rt->dir) != NULL;
	memcpy(rt->mem.uuid, mem.uuid, 16);
	rt->mem.gen = mem.gen;
	rt->mem.cur = mem.cur;
	rt->mem.other_gen = how == SNAP_SAVE_NEW_DIR ? 0 : mem.other_gen;
	struct pageset tmp = rt->mem.diff;
	rt->mem.diff = rt->pending;
	rt->pending = tmp;
	pageset_clear(&rt->pending);
	if (how == SNAP_SAVE_NEW_DIR) {
		pageset_clear(&rt->mem.diff);
		rt->mapped_slot = -1; /* the file RAM maps (if any) is no longer in @dir */
	}
	if (keep_running && !rt->tracking && snap_track_enable(vm) == 0)
		pr_info("snapshot: tracking writes from now on: the next save of %s is incremental",
			dir);
	pr_info("snapshot: save took %.1f ms", snap_now_ms() - t0);
	return 0;
}
