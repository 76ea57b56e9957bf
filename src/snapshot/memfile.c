/*
 * Memory files: guest RAM at its memfd offsets, zero pages as holes, then a
 * one-page trailer naming the save that completed the file. Writing RAM out
 * (all of it, or the pages of an incremental plan), and the eager and lazy
 * ways of bringing it back.
 */
#define _GNU_SOURCE
#include "snapshot/snap_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

#define SNAP_MAX_RUN (8u << 20)	    /* bytes per pwrite */
#define EAGER_CHUNK (32u << 20)	    /* bytes per write of an eager restore */
#define EAGER_READ (8u << 20)	    /* bytes per read of one that is not cached */

const char *snap_memfile_name(int slot)
{
	return slot ? "memory.1" : "memory";
}

/* --- trailer --- */

void snap_trailer_encode(uint8_t *buf, const struct snap_trailer *t)
{
	struct enc e;
	enc_init(&e);
	enc_bytes(&e, SNAP_TRAILER_MAGIC, 8);
	enc_u32(&e, 1);
	enc_bytes(&e, t->uuid, 16);
	enc_u64(&e, t->gen);
	enc_u64(&e, t->ram_size);
	if (!e.err)
		enc_u32(&e, crc32c(0, e.buf, e.len));
	memset(buf, 0, SNAP_TRAILER_LEN);
	if (!e.err)
		memcpy(buf, e.buf, e.len);
	enc_free(&e);
}

int snap_trailer_decode(const uint8_t *buf, size_t len, struct snap_trailer *t)
{
	struct dec d;
	char magic[8];

	dec_init(&d, buf, len);
	dec_bytes(&d, magic, 8);
	uint32_t version = dec_u32(&d);
	dec_bytes(&d, t->uuid, 16);
	t->gen = dec_u64(&d);
	t->ram_size = dec_u64(&d);
	size_t n = d.pos;
	uint32_t crc = dec_u32(&d);
	if (d.err || memcmp(magic, SNAP_TRAILER_MAGIC, 8) || version != 1 ||
	    crc != crc32c(0, buf, n) || t->gen == 0)
		return -EINVAL;
	return 0;
}

int snap_trailer_read(int fd, uint64_t ram_size, struct snap_trailer *t)
{
	uint8_t buf[64];
	if (pread(fd, buf, sizeof(buf), (off_t)ram_size) != (ssize_t)sizeof(buf))
		return -EINVAL;
	int r = snap_trailer_decode(buf, sizeof(buf), t);
	return r ? r : t->ram_size == ram_size ? 0 : -EINVAL;
}

int snap_trailer_write(int fd, uint64_t ram_size, const struct snap_trailer *t)
{
	uint8_t *buf = calloc(1, SNAP_TRAILER_LEN);
	if (!buf)
		return -ENOMEM;
	snap_trailer_encode(buf, t);
	int r = snap_write_all(fd, buf, SNAP_TRAILER_LEN, (off_t)ram_size);
	free(buf);
	return r;
}

/* --- writing RAM --- */

bool snap_page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;
	for (int i = 0; i < SNAP_PAGE / 8; i++)
		acc |= w[i];
	return acc == 0;
}

int snap_write_all(int fd, const uint8_t *p, size_t n, off_t off)
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
		while (pg < last && snap_page_is_zero(base + pg * SNAP_PAGE))
			pg++;
		uint64_t run = pg;
		while (pg < last && pg - run < SNAP_MAX_RUN / SNAP_PAGE &&
		       !snap_page_is_zero(base + pg * SNAP_PAGE))
			pg++;
		if (pg == run)
			continue;
		int e = snap_write_all(fd, base + run * SNAP_PAGE, (pg - run) * SNAP_PAGE,
				       (off_t)(run * SNAP_PAGE));
		if (e)
			return e;
		*stored += (pg - run) * SNAP_PAGE;
	}
	return 0;
}

/*
 * vec[i] = 1 for each page of [addr, addr + pages * 4 KiB) that is mapped or
 * swapped out (/proc/self/pagemap): in a private mapping, every page anyone
 * wrote. (mincore() would miss a written page that was swapped out.)
 */
static int pages_touched(int pm, const uint8_t *addr, uint64_t pages, unsigned char *vec)
{
	uint64_t ent[512];
	for (uint64_t p = 0; p < pages; p += 512) {
		uint64_t n = pages - p < 512 ? pages - p : 512;
		uint64_t at = (uint64_t)(uintptr_t)addr / SNAP_PAGE + p;
		if (pread(pm, ent, n * 8, (off_t)(at * 8)) != (ssize_t)(n * 8))
			return -EIO;
		for (uint64_t i = 0; i < n; i++)
			vec[p + i] = (ent[i] >> 62 & 3) != 0; /* present or swapped */
	}
	return 0;
}

/*
 * After a lazy restore RAM is a private mapping of the old memory file: a
 * page can hold data if the file has data there or if the guest wrote it
 * (then it is a private copy, mapped or swapped out). Scan exactly those.
 */
static int save_memory_lazy(struct vm *vm, int fd, uint64_t *stored)
{
	const uint64_t chunk = 2ULL << 20, size = vm->mem.ram_size;
	unsigned char vec[(2u << 20) / SNAP_PAGE];
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;

	if (pm < 0)
		return -errno;
	for (uint64_t off = 0; off < size && !r; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;
		off_t data = lseek(vm->mem.file_fd, (off_t)off, SEEK_DATA);
		bool file_data = data >= 0 && (uint64_t)data < off + n;
		if (!file_data && (r = pages_touched(pm, vm->mem.base + off, n / SNAP_PAGE, vec)))
			break;
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
			r = save_range(vm, fd, off + run * SNAP_PAGE, off + p * SNAP_PAGE, stored);
			if (r)
				break;
		}
	}
	close(pm);
	return r;
}

/*
 * Write RAM at its memfd offsets; zero pages stay holes. Only the memfd's
 * data extents are scanned: reading a never-touched page of a shared memfd
 * would allocate it. @fd must be empty; it is sized to RAM plus the trailer.
 */
int snap_mem_write_full(struct vm *vm, int fd, uint64_t *stored)
{
	uint64_t size = vm->mem.ram_size;
	off_t pos = 0;

	*stored = 0;
	if (ftruncate(fd, (off_t)(size + SNAP_TRAILER_LEN)) < 0)
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

static int punch(int fd, uint64_t first, uint64_t n, uint64_t *punched)
{
	if (!n)
		return 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * SNAP_PAGE),
		      (off_t)(n * SNAP_PAGE)) < 0)
		return -errno;
	*punched += n * SNAP_PAGE;
	return 0;
}

/* Pages [first, first + n), all backed: runs of non-zero pages written,
 * runs of zero pages punched. */
static int write_pages(struct vm *vm, int fd, uint64_t first, uint64_t n, uint64_t *stored,
		       uint64_t *punched)
{
	const uint8_t *base = vm->mem.base;
	for (uint64_t i = 0; i < n;) {
		bool zero = snap_page_is_zero(base + (first + i) * SNAP_PAGE);
		uint64_t j = i + 1;
		while (j < n && j - i < SNAP_MAX_RUN / SNAP_PAGE &&
		       zero == snap_page_is_zero(base + (first + j) * SNAP_PAGE))
			j++;
		int r = zero ? punch(fd, first + i, j - i, punched) :
			       snap_write_all(fd, base + (first + i) * SNAP_PAGE, (j - i) * SNAP_PAGE,
					      (off_t)((first + i) * SNAP_PAGE));
		if (r)
			return r;
		if (!zero)
			*stored += (j - i) * SNAP_PAGE;
		i = j;
	}
	return 0;
}

/*
 * Pages [first, first + n) of the plan. In a memfd, a hole (never written,
 * or discarded) is zero and is punched without reading it: reading would
 * allocate it. SEEK_DATA counts a page swapped out as data, so it is read
 * back, never taken for zero.
 */
static int write_plan_run(struct vm *vm, int fd, uint64_t first, uint64_t n, uint64_t *stored,
			  uint64_t *punched)
{
	if (vm->mem.file_fd >= 0 || vm->mem.fd < 0)
		return write_pages(vm, fd, first, n, stored, punched);
	uint64_t pos = first, end = first + n;
	while (pos < end) {
		off_t d = lseek(vm->mem.fd, (off_t)(pos * SNAP_PAGE), SEEK_DATA);
		uint64_t dp = d < 0 ? end : (uint64_t)d / SNAP_PAGE;
		if (dp > end)
			dp = end;
		int r = punch(fd, pos, dp - pos, punched);
		if (r || dp == end)
			return r;
		off_t h = lseek(vm->mem.fd, (off_t)(dp * SNAP_PAGE), SEEK_HOLE);
		uint64_t hp = h < 0 ? end : ((uint64_t)h + SNAP_PAGE - 1) / SNAP_PAGE;
		if (hp > end)
			hp = end;
		if (hp <= dp)
			hp = dp + 1;
		if ((r = write_pages(vm, fd, dp, hp - dp, stored, punched)))
			return r;
		pos = hp;
	}
	return 0;
}

int snap_mem_write_plan(struct vm *vm, int fd, const struct pageset *plan, uint64_t *stored,
			uint64_t *punched)
{
	uint64_t pos = 0, cnt;
	*stored = *punched = 0;
	while (pageset_next_run(plan, &pos, &cnt)) {
		int r = write_plan_run(vm, fd, pos, cnt, stored, punched);
		if (r)
			return r;
		pos += cnt;
	}
	return 0;
}

/* --- eager restore --- */

/*
 * Each reader takes one contiguous share of the data (by bytes) through its
 * own open file description and mapping of the memory file, so the kernel
 * sees one sequential stream per reader and reads each one ahead.
 */
struct eager_job {
	int fd;			  /* the memory file, this reader's own description */
	int memfd;		  /* RAM */
	uint8_t *ram;		  /* RAM's mapping */
	unsigned char *vec;	  /* mincore() of one chunk */
	uint64_t size;		  /* RAM bytes */
	const uint64_t (*ext)[2]; /* data extents [start, end) */
	int nr_ext;
	uint64_t lo, hi;	  /* this reader's share: data bytes [lo, hi) in extent order */
	int err;
};

static void *eager_reader(void *arg)
{
	struct eager_job *j = arg;
	uint64_t seen = 0; /* data bytes before the current extent */

	const uint8_t *src = mmap(NULL, j->size, PROT_READ, MAP_SHARED, j->fd, 0);
	if (src == MAP_FAILED) {
		j->err = errno;
		return NULL;
	}
	j->vec = malloc(EAGER_CHUNK / SNAP_PAGE);
	/* Read-ahead for the file, not MADV_SEQUENTIAL for the mapping: that
	 * made cold restores ~30% slower here. */
	posix_fadvise(j->fd, 0, (off_t)j->size, POSIX_FADV_SEQUENTIAL);
	for (int x = 0; x < j->nr_ext && !j->err && seen < j->hi; x++) {
		uint64_t a = j->ext[x][0], b = j->ext[x][1], len = b - a;
		uint64_t from = j->lo > seen ? a + (j->lo - seen) : a;
		uint64_t to = j->hi < seen + len ? a + (j->hi - seen) : b;
		seen += len;
		for (uint64_t o = from; o < to && !j->err; o += EAGER_CHUNK) {
			uint64_t end = o + EAGER_CHUNK < to ? o + EAGER_CHUNK : to;
			/* A chunk in the page cache is written into the memfd from the
			 * file's mapping: one copy, and no zeroing of fresh pages as
			 * faulting RAM's mapping would do. A chunk that is not is read
			 * into RAM: the read path reads ahead better than faults do. */
			bool cached = j->vec && mincore((void *)(src + o), end - o, j->vec) == 0;
			for (uint64_t k = 0; cached && k < (end - o + SNAP_PAGE - 1) / SNAP_PAGE; k++)
				cached = j->vec[k] & 1;
			for (uint64_t p = o; p < end;) {
				uint64_t len = cached || end - p < EAGER_READ ? end - p : EAGER_READ;
				ssize_t r = cached ? pwrite(j->memfd, src + p, len, (off_t)p) :
						     pread(j->fd, j->ram + p, len, (off_t)p);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0) {
					j->err = r < 0 ? errno : EIO;
					break;
				}
				p += (uint64_t)r;
			}
		}
	}
	munmap((void *)src, j->size);
	free(j->vec);
	return NULL;
}

/* Bytes of the data extents that are in the page cache (a one-call look). */
static uint64_t eager_cached(int fd, uint64_t size, const uint64_t (*ext)[2], int n)
{
	uint64_t pages = size / SNAP_PAGE, got = 0;
	unsigned char *vec = malloc(pages);
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (vec && map != MAP_FAILED && mincore(map, size, vec) == 0)
		for (int x = 0; x < n; x++)
			for (uint64_t p = ext[x][0] / SNAP_PAGE; p < ext[x][1] / SNAP_PAGE; p++)
				got += (vec[p] & 1) * SNAP_PAGE;
	if (map != MAP_FAILED)
		munmap(map, size);
	free(vec);
	return got;
}

int snap_mem_load_eager(struct vm *vm, int fd, int threads, char *err, size_t errlen)
{
	uint64_t size = vm->mem.ram_size, total = 0;
	uint64_t (*ext)[2] = NULL;
	int n = 0, cap = 0;

	/* The data extents: holes are never read (they stay holes in the memfd). */
	for (off_t pos = 0; (uint64_t)pos < size;) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0 || (uint64_t)data >= size)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			void *p = realloc(ext, (size_t)cap * sizeof(*ext));
			if (!p) {
				free(ext);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			ext = p;
		}
		ext[n][0] = (uint64_t)data;
		ext[n][1] = (uint64_t)hole;
		total += (uint64_t)(hole - data);
		n++;
		pos = hole;
	}
	if (threads < 1)
		threads = 1;
	if (threads > 4)
		threads = 4;
	/* Copying from the page cache is CPU-bound and gains from more readers;
	 * reading from the disk is not, and one stream reads ahead best
	 * (measured: docs/snapshot-format.md). */
	uint64_t cached = eager_cached(fd, size, ext, n);
	if (cached * 2 < total)
		threads = 1;
	pr_debug("snapshot: eager restore: %d reader(s), %llu of %llu MiB cached", threads,
		 (unsigned long long)(cached >> 20), (unsigned long long)(total >> 20));
	struct eager_job job[4];
	pthread_t tid[4];
	bool started[4] = { false };
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	uint64_t share = (total / (uint64_t)threads + EAGER_CHUNK - 1) / EAGER_CHUNK * EAGER_CHUNK;
	for (int i = 0; i < threads; i++) {
		uint64_t lo = share * (uint64_t)i, hi = lo + share;
		job[i] = (struct eager_job){ .fd = fd, .memfd = vm->mem.fd, .ram = vm->mem.base,
					     .size = size,
					     .ext = (const void *)ext, .nr_ext = n,
					     .lo = lo < total ? lo : total, .hi = hi < total ? hi : total };
		if (i > 0) {
			job[i].fd = open(path, O_RDONLY | O_CLOEXEC); /* its own read-ahead */
			if (job[i].fd < 0)
				job[i].fd = fd;
			else if (pthread_create(&tid[i], NULL, eager_reader, &job[i]) == 0)
				started[i] = true;
		}
	}
	eager_reader(&job[0]);
	int e = job[0].err;
	for (int i = 1; i < threads; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			eager_reader(&job[i]); /* could not start: read its share here */
		if (job[i].fd != fd)
			close(job[i].fd);
		if (!e)
			e = job[i].err;
	}
	free(ext);
	if (e) {
		snprintf(err, errlen, "reading the memory file: %s", strerror(e));
		return -EIO;
	}
	return 0;
}

/* --- lazy restore --- */

int snap_mem_map_lazy(struct vm *vm, int fd, char *err, size_t errlen)
{
	/* Replace the RAM mapping in place: KVM's slots keep their addresses,
	 * and each page comes from the file when the guest first touches it. */
	void *p = mmap(vm->mem.base, vm->mem.ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the memory file: %s", strerror(errno));
		return -EIO;
	}
	/* Kept open: a later save finds the file's data through it. */
	vm->mem.file_fd = fd;
	return 0;
}
