/*
 * Snapshot save and restore. See docs/snapshot-format.md for the format.
 */
#define _GNU_SOURCE
#include "snapshot/snapshot.h"

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include "core/log.h"
#include "devices/uart.h"
#include "snapshot/x86_state.h"
#include "virtio/virtio.h"

#define SNAP_PAGE 4096
#define SNAP_MAX_RUN (8u << 20) /* bytes per pwrite/pread */
#define SNAP_MAX_STR 4096

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

/* --- small helpers --- */

static void enc_str(struct enc *e, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	enc_u32(e, (uint32_t)n);
	enc_bytes(e, s, n);
}

/* Decode a string into freshly allocated storage (capped). */
static char *dec_str(struct dec *d)
{
	uint32_t n = dec_u32(d);
	if (n > SNAP_MAX_STR)
		d->err = true;
	const uint8_t *p = dec_take(d, n);
	if (!p)
		return NULL;
	if (memchr(p, 0, n)) {
		d->err = true;
		return NULL;
	}
	char *s = malloc(n + 1);
	if (!s) {
		d->err = true;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static void section_begin(struct enc *e, uint32_t id, uint16_t version, uint16_t flags,
			  size_t *mark)
{
	enc_u32(e, id);
	enc_u16(e, version);
	enc_u16(e, flags);
	*mark = e->len;
	enc_u32(e, 0); /* length, patched */
	enc_u32(e, 0); /* crc, patched */
}

static void section_end(struct enc *e, size_t mark)
{
	if (e->err)
		return;
	size_t payload = mark + 8;
	uint32_t len = (uint32_t)(e->len - payload);
	for (int i = 0; i < 4; i++)
		e->buf[mark + i] = (uint8_t)(len >> (8 * i));
	/* The CRC covers id, version, flags and length too, then the payload. */
	uint32_t crc = crc32c(crc32c(0, e->buf + mark - 8, 12), e->buf + payload, len);
	for (int i = 0; i < 4; i++)
		e->buf[mark + 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* --- machine configuration (MACHINE section) --- */

struct snap_disk_id {
	uint64_t size;
	uint64_t mtime_ns;
	uint64_t ino;
};

static int disk_identity(const char *path, struct snap_disk_id *id)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
	id->ino = (uint64_t)st.st_ino;
	return 0;
}

/* --- memory file --- */

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;
	for (int i = 0; i < SNAP_PAGE / 8; i++)
		acc |= w[i];
	return acc == 0;
}

static int write_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Write non-zero pages of memfd range [start, end) at the same file offsets. */
static int save_range(struct vm *vm, int fd, uint64_t start, uint64_t end, uint64_t *stored)
{
	const uint8_t *base = vm->mem.base;
	uint64_t pg = start / SNAP_PAGE, last = end / SNAP_PAGE;

	while (pg < last) {
		while (pg < last && page_is_zero(base + pg * SNAP_PAGE))
			pg++;
		uint64_t run = pg;
		while (pg < last && pg - run < SNAP_MAX_RUN / SNAP_PAGE &&
		       !page_is_zero(base + pg * SNAP_PAGE))
			pg++;
		if (pg == run)
			continue;
		int e = write_all(fd, base + run * SNAP_PAGE, (pg - run) * SNAP_PAGE,
				  (off_t)(run * SNAP_PAGE));
		if (e)
			return e;
		*stored += (pg - run) * SNAP_PAGE;
	}
	return 0;
}

/*
 * Write RAM at its memfd offsets; zero pages stay holes. Only the memfd's
 * data extents are scanned: reading a never-touched page of a shared memfd
 * would allocate it.
 */
/*
 * After a lazy restore RAM is a private mapping of the old memory file: a
 * page can hold data if the file has data there or if the guest wrote it
 * (then it is resident, copied on write). Scan exactly those pages.
 */
static int save_memory_lazy(struct vm *vm, int fd, uint64_t *stored)
{
	const uint64_t chunk = 2ULL << 20, size = vm->mem.ram_size;
	unsigned char vec[(2u << 20) / SNAP_PAGE];

	for (uint64_t off = 0; off < size; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;
		off_t data = lseek(vm->mem.file_fd, (off_t)off, SEEK_DATA);
		bool file_data = data >= 0 && (uint64_t)data < off + n;
		if (mincore(vm->mem.base + off, n, vec) < 0)
			return -errno;
		uint64_t pages = n / SNAP_PAGE;
		for (uint64_t p = 0; p < pages;) {
			/* skip holes nobody touched, then take a run of candidates */
			while (p < pages && !file_data && !(vec[p] & 1))
				p++;
			uint64_t run = p;
			while (p < pages && (file_data || (vec[p] & 1)))
				p++;
			if (p == run)
				continue;
			int e = save_range(vm, fd, off + run * SNAP_PAGE, off + p * SNAP_PAGE, stored);
			if (e)
				return e;
		}
	}
	return 0;
}

static int save_memory(struct vm *vm, int fd, uint64_t *stored)
{
	uint64_t size = vm->mem.ram_size;
	off_t pos = 0;

	*stored = 0;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	if (vm->mem.file_fd >= 0)
		return save_memory_lazy(vm, fd, stored);
	while ((uint64_t)pos < size) {
		off_t data = lseek(vm->mem.fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: only holes remain */
		off_t hole = lseek(vm->mem.fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		int e = save_range(vm, fd, (uint64_t)data & ~(uint64_t)(SNAP_PAGE - 1),
				   ((uint64_t)hole + SNAP_PAGE - 1) & ~(uint64_t)(SNAP_PAGE - 1),
				   stored);
		if (e)
			return e;
		pos = hole;
	}
	return 0;
}

/* --- save --- */

static int encode_state(struct vm *vm, struct enc *e, char *err, size_t errlen)
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

	section_begin(e, SNAP_SEC_MACHINE, 1, SNAP_SEC_F_REQUIRED, &mark);
	enc_u64(e, vm->cfg.mem_size);
	enc_u32(e, (uint32_t)vm->cfg.cpus);
	enc_u8(e, vm->cfg.rng);
	enc_str(e, vm->cfg.cmdline);
	enc_u32(e, (uint32_t)vm->cfg.nr_disks);
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		const struct disk_config *dc = &vm->cfg.disk[i];
		struct snap_disk_id id = { 0 };
		if ((r = disk_identity(dc->path, &id))) {
			snprintf(err, errlen, "disk %s: %s", dc->path, strerror(-r));
			return r;
		}
		enc_str(e, dc->path);
		enc_u8(e, dc->readonly);
		enc_str(e, dc->serial);
		enc_u64(e, id.size);
		enc_u64(e, id.mtime_ns);
		enc_u64(e, id.ino);
	}
	section_end(e, mark);

	struct x86_vm_state *vs = calloc(1, sizeof(*vs));
	struct x86_vcpu_state *cs = calloc(1, sizeof(*cs));
	if (!vs || !cs) {
		free(vs);
		free(cs);
		return -ENOMEM;
	}
	r = x86_vm_get(vm, vs);
	if (!r) {
		section_begin(e, SNAP_SEC_VM, 1, SNAP_SEC_F_REQUIRED, &mark);
		x86_vm_encode(e, vs);
		section_end(e, mark);
	}
	for (int i = 0; i < vm->nr_vcpus && !r; i++) {
		r = x86_vcpu_get(vm, &vm->vcpu[i], cs);
		if (r)
			break;
		section_begin(e, SNAP_SEC_VCPU + (uint32_t)i, 1, SNAP_SEC_F_REQUIRED, &mark);
		x86_vcpu_encode(e, cs);
		section_end(e, mark);
	}
	free(vs);
	free(cs);
	if (r) {
		snprintf(err, errlen, "reading CPU state from KVM: %s", strerror(-r));
		return r;
	}
	section_begin(e, SNAP_SEC_UART, 1, SNAP_SEC_F_REQUIRED, &mark);
	uart_save(vm->uart, e);
	section_end(e, mark);
	for (int i = 0; i < vm->nr_vdev; i++) {
		section_begin(e, SNAP_SEC_VIRTIO + (uint32_t)i, 1, SNAP_SEC_F_REQUIRED, &mark);
		r = virtio_save(vm->vdev[i], e);
		if (r) {
			snprintf(err, errlen, "device %s cannot be saved", vm->vdev[i]->ops->name);
			return r;
		}
		section_end(e, mark);
	}
	section_begin(e, SNAP_SEC_END, 1, SNAP_SEC_F_REQUIRED, &mark);
	section_end(e, mark);
	return e->err ? -ENOMEM : 0;
}

/* The only files a snapshot directory holds; nothing else is ever deleted. */
static const char *const snap_files[] = { "state", "memory", "loadset" };

static bool is_snap_file(const char *name)
{
	for (size_t i = 0; i < sizeof(snap_files) / sizeof(snap_files[0]); i++)
		if (!strcmp(name, snap_files[i]))
			return true;
	return false;
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

static void remove_tree(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	for (size_t i = 0; i < sizeof(snap_files) / sizeof(snap_files[0]); i++)
		unlinkat(dfd, snap_files[i], 0);
	close(dfd);
	rmdir(dir); /* fails, harmlessly, if anything else is there */
}

void snapshot_remove(const char *dir)
{
	remove_tree(dir);
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
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
		remove_tree(path);
	}
	closedir(d);
}

int snapshot_save(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX + 16], parent[PATH_MAX];
	struct enc e;
	uint64_t stored = 0;
	int r, fd = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", dir, (int)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "snapshot path too long");
		return -ENAMETOOLONG;
	}
	if (dir_has_foreign_files(dir)) {
		snprintf(err, errlen, "%s exists and is not a pocketvm snapshot directory", dir);
		return -EEXIST;
	}
	/* Disks first: what the snapshot's memory expects must be on disk. */
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		int dfd = open(vm->cfg.disk[i].path, O_RDONLY | O_CLOEXEC);
		if (dfd >= 0) {
			fdatasync(dfd);
			close(dfd);
		}
	}
	remove_tree(tmp);
	remove_stale_tmp(dir);
	if (mkdir(tmp, 0700) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return r;
	}
	enc_init(&e);
	r = encode_state(vm, &e, err, errlen);
	if (r)
		goto fail;

	snprintf(path, sizeof(path), "%s/memory", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (r = save_memory(vm, fd, &stored)) || fsync(fd) < 0) {
		r = r ? r : -errno;
		snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
		goto fail;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/state", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || (r = write_all(fd, e.buf, e.len, 0)) || fsync(fd) < 0) {
		r = r ? r : -errno;
		snprintf(err, errlen, "writing %s: %s", path, strerror(-r));
		goto fail;
	}
	close(fd);
	fd = -1;
	if ((r = fsync_path(tmp))) {
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(-r));
		goto fail;
	}
	/* Swap the new snapshot in: atomic whether or not one existed. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		remove_tree(tmp); /* the old snapshot, now at tmp */
	} else if (errno == ENOENT && rename(tmp, dir) == 0) {
		/* first snapshot at this path */
	} else {
		r = -errno;
		snprintf(err, errlen, "cannot move the snapshot into %s: %s", dir, strerror(errno));
		goto fail;
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	else
		snprintf(parent, sizeof(parent), slash ? "/" : ".");
	fsync_path(parent);
	pr_info("snapshot: saved %s (state %zu bytes, memory %llu MiB stored of %llu)", dir, e.len,
		(unsigned long long)(stored >> 20), (unsigned long long)(vm->mem.ram_size >> 20));
	enc_free(&e);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	enc_free(&e);
	remove_tree(tmp);
	if (r == -ENOSPC)
		snprintf(err, errlen, "no space left on the device while saving %s; the previous "
			 "snapshot is unchanged", dir);
	return r;
}

/* --- load --- */

struct snap_section {
	uint32_t id;
	uint16_t version, flags;
	const uint8_t *payload;
	uint32_t len;
};

#define SNAP_MAX_SECTIONS 64

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
	struct x86_vm_state vm_state;
	struct x86_vcpu_state vcpu[VM_MAX_VCPUS];
};

static void image_free_strings(struct snap_image *img)
{
	free(img->cmdline);
	img->cmdline = NULL;
	for (int i = 0; i < VM_MAX_DISKS; i++) {
		free(img->disk_path[i]);
		free(img->disk_serial[i]);
		img->disk_path[i] = img->disk_serial[i] = NULL;
	}
}

static const struct snap_section *find_section(const struct snap_image *img, uint32_t id)
{
	for (int i = 0; i < img->nr_sec; i++)
		if (img->sec[i].id == id)
			return &img->sec[i];
	return NULL;
}

static int decode_machine(struct snap_image *img, const struct snap_section *s, char *err,
			  size_t errlen)
{
	struct dec d;
	dec_init(&d, s->payload, s->len);
	img->mem_size = dec_u64(&d);
	img->cpus = dec_u32(&d);
	img->rng = dec_u8(&d) != 0;
	img->cmdline = dec_str(&d);
	img->nr_disks = dec_u32(&d);
	if (img->nr_disks > VM_MAX_DISKS) {
		snprintf(err, errlen, "snapshot lists %u disks (at most %d)", img->nr_disks,
			 VM_MAX_DISKS);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < img->nr_disks; i++) {
		img->disk_path[i] = dec_str(&d);
		img->disk_ro[i] = dec_u8(&d) != 0;
		img->disk_serial[i] = dec_str(&d);
		img->disk_id[i].size = dec_u64(&d);
		img->disk_id[i].mtime_ns = dec_u64(&d);
		img->disk_id[i].ino = dec_u64(&d);
	}
	if (d.err || !img->cmdline) {
		snprintf(err, errlen, "machine section is malformed");
		return -EINVAL;
	}
	if (img->mem_size != img->ram_size || img->cpus != img->nr_vcpus || img->cpus < 1 ||
	    img->cpus > VM_MAX_VCPUS) {
		snprintf(err, errlen, "machine section disagrees with the header");
		return -EINVAL;
	}
	return 0;
}

/* Validate and decode a whole state file held in @img->buf. */
static int parse_image(struct snap_image *img, const struct snap_host *host, char *err,
		       size_t errlen)
{
	struct dec d;
	char magic[8], vendor[13] = { 0 };

	dec_init(&d, img->buf, img->len);
	dec_bytes(&d, magic, 8);
	if (d.err || memcmp(magic, SNAP_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a pocketvm snapshot (bad magic)");
		return -EINVAL;
	}
	uint32_t version = dec_u32(&d), arch = dec_u32(&d);
	if (version != SNAP_VERSION) {
		snprintf(err, errlen, "snapshot format version %u, this pocketvm reads version %u",
			 version, SNAP_VERSION);
		return -EINVAL;
	}
	if (arch != SNAP_ARCH_X86_64) {
		snprintf(err, errlen, "snapshot is for architecture %u, not x86-64", arch);
		return -EINVAL;
	}
	dec_bytes(&d, vendor, 12);
	img->host.cpu_signature = dec_u32(&d);
	img->host.tsc_khz = dec_u32(&d);
	memcpy(img->host.cpu_vendor, vendor, 13);
	img->ram_size = dec_u64(&d);
	uint32_t nr_regions = dec_u32(&d);
	if (nr_regions < 1 || nr_regions > GM_MAX_REGIONS) {
		snprintf(err, errlen, "snapshot header is corrupt (memory regions)");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < nr_regions; i++) {
		dec_u64(&d);
		dec_u64(&d);
		dec_u64(&d);
	}
	img->nr_vcpus = dec_u32(&d);
	size_t hdr_len = d.pos;
	uint32_t hcrc = dec_u32(&d);
	if (d.err || hcrc != crc32c(0, img->buf, hdr_len)) {
		snprintf(err, errlen, "snapshot header is truncated or corrupt (checksum)");
		return -EINVAL;
	}
	if (host && (strcmp(host->cpu_vendor, img->host.cpu_vendor) ||
		     host->cpu_signature != img->host.cpu_signature)) {
		snprintf(err, errlen, "snapshot was taken on another CPU (%s, signature %#x); this "
			 "host is %s, signature %#x", img->host.cpu_vendor, img->host.cpu_signature,
			 host->cpu_vendor, host->cpu_signature);
		return -EXDEV;
	}
	if (host && host->tsc_khz && img->host.tsc_khz != host->tsc_khz) {
		snprintf(err, errlen, "snapshot was taken with a TSC of %u kHz; this host's is %u kHz",
			 img->host.tsc_khz, host->tsc_khz);
		return -EXDEV;
	}
	if (img->ram_size == 0 || img->ram_size % (2ULL << 20) || img->ram_size > (1ULL << 40) ||
	    img->nr_vcpus < 1 || img->nr_vcpus > VM_MAX_VCPUS) {
		snprintf(err, errlen, "snapshot header is corrupt (memory size or vCPU count)");
		return -EINVAL;
	}

	bool end = false;
	while (!end) {
		uint32_t id = dec_u32(&d);
		uint16_t ver = dec_u16(&d), flags = dec_u16(&d);
		uint32_t len = dec_u32(&d), crc = dec_u32(&d);
		if (d.err || len > SNAP_MAX_SECTION || len > dec_left(&d)) {
			snprintf(err, errlen, "snapshot state is truncated");
			return -EINVAL;
		}
		const uint8_t *p = dec_take(&d, len);
		if (crc32c(crc32c(0, p - 16, 12), p, len) != crc) {
			snprintf(err, errlen, "snapshot section %#x is corrupt (checksum)", id);
			return -EINVAL;
		}
		if (ver != 1) {
			snprintf(err, errlen, "snapshot section %#x has version %u, expected 1", id, ver);
			return -EINVAL;
		}
		if (img->nr_sec == SNAP_MAX_SECTIONS) {
			snprintf(err, errlen, "snapshot has too many sections");
			return -EINVAL;
		}
		bool known = id == SNAP_SEC_MACHINE || id == SNAP_SEC_VM || id == SNAP_SEC_UART ||
			     id == SNAP_SEC_END ||
			     (id >= SNAP_SEC_VCPU && id < SNAP_SEC_VCPU + VM_MAX_VCPUS) ||
			     (id >= SNAP_SEC_VIRTIO && id < SNAP_SEC_VIRTIO + VM_MAX_DISKS + 4);
		if (!known && (flags & SNAP_SEC_F_REQUIRED)) {
			snprintf(err, errlen, "snapshot needs section %#x, unknown to this pocketvm", id);
			return -EINVAL;
		}
		if (find_section(img, id)) {
			snprintf(err, errlen, "snapshot repeats section %#x", id);
			return -EINVAL;
		}
		img->sec[img->nr_sec++] = (struct snap_section){ id, ver, flags, p, len };
		end = id == SNAP_SEC_END;
	}

	const struct snap_section *s = find_section(img, SNAP_SEC_MACHINE);
	if (!s || !find_section(img, SNAP_SEC_VM) || !find_section(img, SNAP_SEC_UART)) {
		snprintf(err, errlen, "snapshot lacks a required section");
		return -EINVAL;
	}
	int r = decode_machine(img, s, err, errlen);
	if (r)
		return r;
	struct dec sd;
	s = find_section(img, SNAP_SEC_VM);
	dec_init(&sd, s->payload, s->len);
	if (x86_vm_decode(&sd, &img->vm_state)) {
		snprintf(err, errlen, "snapshot VM state is malformed");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < img->nr_vcpus; i++) {
		s = find_section(img, SNAP_SEC_VCPU + i);
		if (!s) {
			snprintf(err, errlen, "snapshot lacks vCPU %u", i);
			return -EINVAL;
		}
		dec_init(&sd, s->payload, s->len);
		if (x86_vcpu_decode(&sd, &img->vcpu[i])) {
			snprintf(err, errlen, "snapshot state of vCPU %u is malformed", i);
			return -EINVAL;
		}
	}
	return 0;
}

int snapshot_parse(const uint8_t *buf, size_t len, const struct snap_host *host, char *err,
		   size_t errlen)
{
	struct snap_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->buf = (uint8_t *)buf;
	img->len = len;
	int r = parse_image(img, host, err, errlen);
	image_free_strings(img);
	free(img);
	return r;
}

static int read_file_capped(const char *path, size_t cap, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > cap) {
		close(fd);
		return -EFBIG;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (b && n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!b)
		return -ENOMEM;
	*out = b;
	*len = n;
	return 0;
}

struct snap_image *snapshot_open(const char *dir, struct vm_config *cfg, char *err,
				 size_t errlen)
{
	struct snap_image *img = calloc(1, sizeof(*img));
	char path[PATH_MAX + 16];
	struct snap_host host;

	if (!img) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(img->dir, sizeof(img->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/state", dir);
	int r = read_file_capped(path, SNAP_MAX_STATE, &img->buf, &img->len);
	if (r) {
		snprintf(err, errlen, "cannot read %s: %s", path,
			 r == -EFBIG ? "not a regular file or larger than the cap" : strerror(-r));
		free(img);
		return NULL;
	}
	snap_host_identity(NULL, &host); /* TSC frequency: checked after vCPUs exist */
	if (parse_image(img, &host, err, errlen)) {
		snapshot_close(img);
		return NULL;
	}
	/* The machine comes from the snapshot; disk paths may be overridden. */
	struct vm_config base = *cfg;
	cfg->mem_size = img->mem_size;
	cfg->cpus = (int)img->cpus;
	cfg->rng = img->rng;
	cfg->cmdline = img->cmdline;
	if (base.nr_disks && (uint32_t)base.nr_disks != img->nr_disks) {
		snprintf(err, errlen, "snapshot has %u disks; --disk given %d times", img->nr_disks,
			 base.nr_disks);
		snapshot_close(img);
		return NULL;
	}
	cfg->nr_disks = (int)img->nr_disks;
	for (uint32_t i = 0; i < img->nr_disks; i++) {
		struct snap_disk_id now = { 0 };
		bool overridden = base.nr_disks > 0;
		cfg->disk[i].path = overridden ? base.disk[i].path : img->disk_path[i];
		cfg->disk[i].readonly = img->disk_ro[i];
		cfg->disk[i].serial = img->disk_serial[i][0] ? img->disk_serial[i] : NULL;
		if (disk_identity(cfg->disk[i].path, &now)) {
			snprintf(err, errlen, "disk %s of the snapshot is missing", cfg->disk[i].path);
			snapshot_close(img);
			return NULL;
		}
		bool changed = now.size != img->disk_id[i].size ||
			       (!overridden && (now.mtime_ns != img->disk_id[i].mtime_ns ||
						now.ino != img->disk_id[i].ino));
		if (changed && !cfg->force_disks) {
			snprintf(err, errlen, "disk %s changed since the snapshot was taken (its "
				 "contents no longer match the guest's memory); use --force-disks to "
				 "restore anyway", cfg->disk[i].path);
			snapshot_close(img);
			return NULL;
		}
	}
	return img;
}

void snapshot_close(struct snap_image *img)
{
	if (!img)
		return;
	image_free_strings(img);
	free(img->buf);
	free(img);
}

/* Eager load: read the data extents of the memory file straight into RAM. */
static int load_memory(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof(path), "%s/memory", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	if ((uint64_t)st.st_size != vm->mem.ram_size) {
		snprintf(err, errlen, "%s is %lld bytes, the snapshot's RAM is %llu", path,
			 (long long)st.st_size, (unsigned long long)vm->mem.ram_size);
		close(fd);
		return -EINVAL;
	}
	if (vm->cfg.restore_mode == RESTORE_LAZY) {
		/* Replace the RAM mapping in place: KVM's slots keep their addresses,
		 * and each page comes from the file when the guest first touches it. */
		void *p = mmap(vm->mem.base, vm->mem.ram_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
		if (p == MAP_FAILED) {
			snprintf(err, errlen, "cannot map %s: %s", path, strerror(errno));
			close(fd);
			return -EIO;
		}
		/* Kept open: a later save finds the file's data through it. */
		vm->mem.file_fd = fd;
		return 0;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	off_t pos = 0, end = st.st_size;
	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* no more data: the rest is holes */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = end;
		/* memfd offset == file offset: base maps the whole memfd. */
		for (off_t o = data; o < hole;) {
			size_t n = (size_t)(hole - o) < SNAP_MAX_RUN ? (size_t)(hole - o) : SNAP_MAX_RUN;
			ssize_t r = pread(fd, vm->mem.base + o, n, o);
			if (r <= 0) {
				snprintf(err, errlen, "reading %s: %s", path,
					 r < 0 ? strerror(errno) : "unexpected end of file");
				close(fd);
				return -EIO;
			}
			o += r;
		}
		pos = hole;
	}
	close(fd);
	return 0;
}

int snapshot_restore(struct vm *vm, struct snap_image *img, char *err, size_t errlen)
{
	struct snap_host host;
	int r;

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
	r = load_memory(vm, img->dir, err, errlen);
	if (r)
		return r;
	/* Time passed while the VM was saved: the guest's clocks move on too. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (now > img->vm_state.realtime_ns && img->host.tsc_khz)
		x86_advance_time(&img->vm_state, img->vcpu, vm->nr_vcpus,
				 now - img->vm_state.realtime_ns, img->host.tsc_khz);
	r = x86_vm_set(vm, &img->vm_state);
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
	const struct snap_section *s = find_section(img, SNAP_SEC_UART);
	dec_init(&d, s->payload, s->len);
	if (uart_load(vm->uart, &d)) {
		snprintf(err, errlen, "snapshot UART state is malformed");
		return -EINVAL;
	}
	for (int i = 0; i < vm->nr_vdev; i++) {
		s = find_section(img, SNAP_SEC_VIRTIO + (uint32_t)i);
		if (!s) {
			snprintf(err, errlen, "snapshot lacks device %d (%s)", i, vm->vdev[i]->ops->name);
			return -EINVAL;
		}
		dec_init(&d, s->payload, s->len);
		if (virtio_load(vm->vdev[i], &d)) {
			snprintf(err, errlen, "snapshot state of %s is malformed or does not match",
				 vm->vdev[i]->ops->name);
			return -EINVAL;
		}
	}
	return 0;
}
