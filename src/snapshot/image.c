/*
 * Reading a snapshot: the state file validated and decoded completely
 * (header, every section's bounds and CRC, every payload including the
 * devices' transport state), the memory file it names checked against it,
 * and the loading set opened if there is a usable one. Nothing here touches
 * a VM: snapshot_restore() installs what this decoded.
 */
#define _GNU_SOURCE
#include "snapshot/snap_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* --- encoding helpers shared with the saver --- */

void snap_enc_str(struct enc *e, const char *s)
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

void snap_section_begin(struct enc *e, uint32_t id, uint16_t version, uint16_t flags,
			size_t *mark)
{
	enc_u32(e, id);
	enc_u16(e, version);
	enc_u16(e, flags);
	*mark = e->len;
	enc_u32(e, 0); /* length, patched */
	enc_u32(e, 0); /* crc, patched */
}

void snap_section_end(struct enc *e, size_t mark)
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

int snap_disk_identity(const char *path, struct snap_disk_id *id)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	id->size = (uint64_t)st.st_size;
	id->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
	id->ino = (uint64_t)st.st_ino;
	return 0;
}

void snap_memsec_encode(struct enc *e, const struct snap_memsec *m)
{
	enc_bytes(e, m->uuid, 16);
	enc_u64(e, m->gen);
	enc_u8(e, m->cur);
	uint64_t other = m->other_gen;
	size_t mark = e->len;
	enc_u64(e, other);
	if (!other || pageset_encode(&m->diff, e, SNAP_MAX_DIFF_RUNS)) {
		/* no other file, or a diff too fragmented to keep: the next save
		 * rewrites the other file completely */
		if (!e->err) {
			e->len = mark;
			enc_u64(e, 0);
			enc_u32(e, 0);
		}
	}
}

/* --- decoding --- */

static void image_free_strings(struct snap_image *img)
{
	free(img->cmdline);
	img->cmdline = NULL;
	for (int i = 0; i < VM_MAX_DISKS; i++) {
		free(img->disk_path[i]);
		free(img->disk_serial[i]);
		img->disk_path[i] = img->disk_serial[i] = NULL;
	}
	pageset_free(&img->mem.diff);
}

const struct snap_section *snap_find_section(const struct snap_image *img, uint32_t id)
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
	if (d.err || dec_left(&d) || !img->cmdline) {
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

static int decode_memsec(struct snap_image *img, const struct snap_section *s, char *err,
			 size_t errlen)
{
	struct snap_memsec *m = &img->mem;
	struct dec d;

	dec_init(&d, s->payload, s->len);
	dec_bytes(&d, m->uuid, 16);
	m->gen = dec_u64(&d);
	m->cur = dec_u8(&d);
	m->other_gen = dec_u64(&d);
	if (pageset_init(&m->diff, img->ram_size / SNAP_PAGE)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int r = pageset_decode(&d, &m->diff, SNAP_MAX_DIFF_RUNS);
	if (r || d.err || dec_left(&d) || m->gen == 0 || m->cur > 1 || m->other_gen >= m->gen ||
	    (!m->other_gen && pageset_count(&m->diff))) {
		snprintf(err, errlen, "snapshot memory section is malformed");
		return -EINVAL;
	}
	m->present = true;
	return 0;
}

/* The region table must be the layout gm_init() gives this RAM size. */
static bool regions_ok(struct dec *d, uint32_t n, uint64_t ram)
{
	uint64_t low = ram < GM_PCI_HOLE_START ? ram : GM_PCI_HOLE_START;
	const uint64_t want[2][3] = { { 0, low, 0 }, { GM_HIGH_START, ram - low, low } };
	bool ok = n == (ram > low ? 2u : 1u);
	for (uint32_t i = 0; i < n; i++)
		for (int k = 0; k < 3; k++)
			if (dec_u64(d) != (i < 2 ? want[i][k] : 0))
				ok = false;
	return ok;
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
	bool layout_ok = regions_ok(&d, nr_regions, img->ram_size);
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
	    img->nr_vcpus < 1 || img->nr_vcpus > VM_MAX_VCPUS || !layout_ok) {
		snprintf(err, errlen, "snapshot header is corrupt (memory size, layout or vCPU count)");
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
			     id == SNAP_SEC_BALLOON || id == SNAP_SEC_MEMORY || id == SNAP_SEC_END ||
			     (id >= SNAP_SEC_VCPU && id < SNAP_SEC_VCPU + VM_MAX_VCPUS) ||
			     (id >= SNAP_SEC_VIRTIO && id < SNAP_SEC_VIRTIO + SNAP_MAX_VDEV);
		if (!known && (flags & SNAP_SEC_F_REQUIRED)) {
			snprintf(err, errlen, "snapshot needs section %#x, unknown to this pocketvm", id);
			return -EINVAL;
		}
		if (snap_find_section(img, id)) {
			snprintf(err, errlen, "snapshot repeats section %#x", id);
			return -EINVAL;
		}
		img->sec[img->nr_sec++] = (struct snap_section){ id, ver, flags, p, len };
		end = id == SNAP_SEC_END;
	}

	const struct snap_section *s = snap_find_section(img, SNAP_SEC_MACHINE);
	if (!s || !snap_find_section(img, SNAP_SEC_VM) || !snap_find_section(img, SNAP_SEC_UART)) {
		snprintf(err, errlen, "snapshot lacks a required section");
		return -EINVAL;
	}
	int r = decode_machine(img, s, err, errlen);
	if (r)
		return r;
	if ((s = snap_find_section(img, SNAP_SEC_BALLOON))) { /* absent: no balloon */
		struct dec bd;
		dec_init(&bd, s->payload, s->len);
		if (balloon_config_decode(&bd, &img->balloon_cfg) || dec_left(&bd)) {
			snprintf(err, errlen, "snapshot balloon section is malformed");
			return -EINVAL;
		}
		img->balloon = true;
	}
	if ((s = snap_find_section(img, SNAP_SEC_MEMORY)) &&
	    (r = decode_memsec(img, s, err, errlen)))
		return r;
	struct dec sd;
	s = snap_find_section(img, SNAP_SEC_VM);
	dec_init(&sd, s->payload, s->len);
	if (x86_vm_decode(&sd, &img->vm_state)) {
		snprintf(err, errlen, "snapshot VM state is malformed");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < img->nr_vcpus; i++) {
		s = snap_find_section(img, SNAP_SEC_VCPU + i);
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
	/* UART: 8 registers, a FIFO count and that many bytes (uart_load checks
	 * the count against the FIFO). */
	s = snap_find_section(img, SNAP_SEC_UART);
	if (s->len < 9 || s->len != 9u + s->payload[8]) {
		snprintf(err, errlen, "snapshot UART state is malformed");
		return -EINVAL;
	}
	img->uart.p = s->payload;
	img->uart.len = s->len;
	/* Devices: VIRTIO 0..n-1 without gaps, transport state decoded now. */
	for (int i = 0; i < SNAP_MAX_VDEV; i++) {
		s = snap_find_section(img, SNAP_SEC_VIRTIO + (uint32_t)i);
		if (!s)
			break;
		dec_init(&sd, s->payload, s->len);
		if (virtio_state_decode(&sd, &img->vdev[i])) {
			snprintf(err, errlen, "snapshot state of device %d is malformed", i);
			return -EINVAL;
		}
		img->nr_vdev = i + 1;
	}
	for (int i = img->nr_vdev; i < SNAP_MAX_VDEV; i++)
		if (snap_find_section(img, SNAP_SEC_VIRTIO + (uint32_t)i)) {
			snprintf(err, errlen, "snapshot lacks device %d but has device %d",
				 img->nr_vdev, i);
			return -EINVAL;
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
	img->mem_fd = img->loadset_fd = -1;
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

/* Open the memory file the state names and check that it belongs to it. */
static int open_memory(struct snap_image *img, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	struct stat st;
	struct snap_trailer t;
	const char *name = img->mem.present ? snap_memfile_name(img->mem.cur) : "memory";
	uint64_t want = img->ram_size + (img->mem.present ? SNAP_TRAILER_LEN : 0);

	snprintf(path, sizeof(path), "%s/%s", img->dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	if ((uint64_t)st.st_size != want) {
		snprintf(err, errlen, "%s is %lld bytes, the snapshot's RAM needs %llu", path,
			 (long long)st.st_size, (unsigned long long)want);
		close(fd);
		return -EINVAL;
	}
	if (img->mem.present &&
	    (snap_trailer_read(fd, img->ram_size, &t) || memcmp(t.uuid, img->mem.uuid, 16) ||
	     t.gen != img->mem.gen)) {
		snprintf(err, errlen, "%s does not hold the memory this state describes (its "
			 "trailer names another save)", path);
		close(fd);
		return -EINVAL;
	}
	img->mem_fd = fd;
	return 0;
}

/* The loading set, if the directory has one recorded against this memory. */
static void open_loadset(struct snap_image *img)
{
	char path[PATH_MAX + 16], why[160] = "";
	uint8_t hdr[LOADSET_HDR_LEN];
	uint64_t meta = 0;
	struct stat st;
	uint8_t *buf = NULL;
	int r = -EINVAL;

	snprintf(path, sizeof(path), "%s/loadset", img->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pr_info("snapshot: no loading set in %s yet; this restore records one", img->dir);
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		snprintf(why, sizeof(why), "unreadable or too short");
	} else if (!loadset_meta_len(hdr, sizeof(hdr), &meta, why, sizeof(why))) {
		if (meta > (uint64_t)st.st_size || meta > (32u << 20) || !(buf = malloc(meta)) ||
		    pread(fd, buf, meta, 0) != (ssize_t)meta) {
			snprintf(why, sizeof(why), "truncated");
		} else {
			struct loadset_bind want = { .gen = img->mem.gen, .ram_size = img->ram_size };
			memcpy(want.uuid, img->mem.uuid, 16);
			r = loadset_parse(buf, meta, (uint64_t)st.st_size, &want, &img->loadset, why,
					  sizeof(why));
		}
	}
	free(buf);
	if (r) {
		pr_warn("snapshot: loading set %s ignored (%s); this restore records a new one",
			path, why);
		close(fd);
		return;
	}
	img->have_loadset = true;
	img->loadset_fd = fd;
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
	img->mem_fd = img->loadset_fd = -1;
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
	if (parse_image(img, &host, err, errlen) || open_memory(img, err, errlen)) {
		snapshot_close(img);
		return NULL;
	}
	if ((cfg->restore_mode == RESTORE_LOADSET || cfg->restore_mode == RESTORE_LOADSET_UFFD) &&
	    img->mem.present)
		open_loadset(img);
	/* The machine comes from the snapshot; disk paths may be overridden. */
	struct vm_config base = *cfg;
	cfg->mem_size = img->mem_size;
	cfg->cpus = (int)img->cpus;
	cfg->rng = img->rng;
	cfg->balloon_enabled = img->balloon;
	cfg->balloon = img->balloon_cfg;
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
		if (snap_disk_identity(cfg->disk[i].path, &now)) {
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
	img->t_open = snap_now_ms() - (double)cfg->start_ns / 1e6;
	return img;
}

void snapshot_close(struct snap_image *img)
{
	if (!img)
		return;
	image_free_strings(img);
	loadset_free(&img->loadset);
	if (img->mem_fd >= 0)
		close(img->mem_fd);
	if (img->loadset_fd >= 0)
		close(img->loadset_fd);
	free(img->buf);
	free(img);
}

int snap_read_memsec(const char *dir, uint64_t ram_size, struct snap_memsec *m)
{
	char path[PATH_MAX + 16], err[160];
	struct snap_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->mem_fd = img->loadset_fd = -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	int r = read_file_capped(path, SNAP_MAX_STATE, &img->buf, &img->len);
	if (!r)
		r = parse_image(img, NULL, err, sizeof(err));
	if (!r && (!img->mem.present || img->ram_size != ram_size))
		r = -ENOENT;
	if (!r) {
		*m = img->mem;
		img->mem.diff = (struct pageset){ 0 };
	}
	image_free_strings(img);
	free(img->buf);
	free(img);
	return r;
}
