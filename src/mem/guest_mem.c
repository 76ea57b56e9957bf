#define _GNU_SOURCE
#include "mem/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

#define SZ_2M (2ULL << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int gm_init(struct guest_mem *gm, uint64_t ram_size)
{
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	gm->file_fd = -1;
	if (ram_size == 0 || ram_size % SZ_2M) {
		pr_err("mem: gm_init: size %llu is not a non-zero multiple of 2 MiB",
		       (unsigned long long)ram_size);
		return -EINVAL;
	}
	int fd = memfd_create("pocketvm-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)ram_size) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	/* Reserve 2 MiB extra so the mapping can be 2 MiB aligned. */
	uint8_t *resv = mmap(NULL, ram_size + SZ_2M, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED) {
		int e = -errno;
		close(fd);
		return e;
	}
	uint8_t *aligned = (uint8_t *)(((uintptr_t)resv + SZ_2M - 1) & ~(SZ_2M - 1));
	if (aligned > resv)
		munmap(resv, (size_t)(aligned - resv));
	munmap(aligned + ram_size, (size_t)(resv + SZ_2M - aligned));
	uint8_t *base = mmap(aligned, ram_size, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0);
	if (base == MAP_FAILED) {
		int e = -errno;
		munmap(aligned, ram_size);
		close(fd);
		return e;
	}
	madvise(base, ram_size, MADV_HUGEPAGE); /* best effort (shmem THP) */

	gm->fd = fd;
	gm->base = base;
	gm->ram_size = ram_size;
	uint64_t low = ram_size < GM_PCI_HOLE_START ? ram_size : GM_PCI_HOLE_START;
	gm->region[0] = (struct gm_region){ .gpa = 0, .size = low, .hva = base, .offset = 0 };
	gm->nr_regions = 1;
	if (ram_size > low) {
		gm->region[1] = (struct gm_region){ .gpa = GM_HIGH_START,
						    .size = ram_size - low,
						    .hva = base + low,
						    .offset = low };
		gm->nr_regions = 2;
	}
	return 0;
}

void gm_init_fake(struct guest_mem *gm, void *buf, uint64_t gpa, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	gm->file_fd = -1;
	gm->base = buf;
	gm->ram_size = size;
	gm->region[0] = (struct gm_region){ .gpa = gpa, .size = size, .hva = buf };
	gm->nr_regions = 1;
}

void gm_destroy(struct guest_mem *gm)
{
	if (gm->fd >= 0) {
		munmap(gm->base, gm->ram_size);
		close(gm->fd);
	}
	if (gm->file_fd >= 0)
		close(gm->file_fd);
	free(gm->dirty);
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	gm->file_fd = -1;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	gm_mark_dirty_hva(gm, p, len);
	return 0;
}

uint64_t gm_low_end(const struct guest_mem *gm)
{
	return gm->nr_regions ? gm->region[0].gpa + gm->region[0].size : 0;
}

int gm_hva_to_gpa(const struct guest_mem *gm, const void *hva, uint64_t len, uint64_t *gpa)
{
	uintptr_t p = (uintptr_t)hva;

	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->region[i];
		uintptr_t start = (uintptr_t)r->hva;

		if (p < start)
			continue;
		uint64_t off = (uint64_t)(p - start);
		if (off > r->size || len > r->size - off)
			continue;
		*gpa = r->gpa + off;
		return 0;
	}
	return -EFAULT;
}

/* The region holding @gpa with at least one byte left, or NULL. */
static const struct gm_region *gm_region_of(const struct guest_mem *gm, uint64_t gpa)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->region[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

enum gm_effect { GM_DISCARD, GM_POPULATE };

/* Touch one byte of each page with an atomic OR of 0: a write fault that
 * cannot overwrite what a vCPU stores at the same time. */
static void gm_touch_pages(uint8_t *p, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += GM_PAGE)
		__atomic_fetch_or((volatile uint8_t *)(p + off), 0, __ATOMIC_RELAXED);
}

static int gm_apply(struct guest_mem *gm, uint64_t gpa, uint64_t len, enum gm_effect what)
{
	if ((gpa | len) & (GM_PAGE - 1))
		return -EINVAL;
	if (!gm_ptr(gm, gpa, 0) || gpa + len < gpa)
		return -EFAULT;
	if (gm->fd < 0 && gm->file_fd < 0)
		return -EOPNOTSUPP;
	/* Validate the whole range first: nothing happens unless all is RAM. */
	for (uint64_t a = gpa, left = len; left;) {
		const struct gm_region *r = gm_region_of(gm, a);
		if (!r)
			return -EFAULT;
		uint64_t n = r->size - (a - r->gpa);
		n = n < left ? n : left;
		a += n;
		left -= n;
	}
	while (len) {
		const struct gm_region *r = gm_region_of(gm, gpa);
		uint64_t off = gpa - r->gpa, n = r->size - off;
		n = n < len ? n : len;
		uint8_t *hva = r->hva + off;
		int ret = 0;
		if (what == GM_POPULATE) {
			if (madvise(hva, n, MADV_POPULATE_WRITE) < 0) {
				if (errno == EINVAL)
					gm_touch_pages(hva, n);
				else
					ret = -errno;
			}
		} else if (gm->file_fd >= 0) {
			/* RAM is a private mapping of a snapshot's memory file. */
			if (madvise(hva, n, MADV_DONTNEED) < 0)
				ret = -errno;
		} else if (fallocate(gm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     (off_t)(r->offset + off), (off_t)n) < 0) {
			ret = -errno;
		}
		if (ret)
			return ret;
		gm_mark_dirty(gm, gpa, n); /* incremental snapshots: the content changed */
		gpa += n;
		len -= n;
	}
	return 0;
}

int gm_discard(struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	return gm_apply(gm, gpa, len, GM_DISCARD);
}

int gm_populate(struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	return gm_apply(gm, gpa, len, GM_POPULATE);
}

/* --- writes by the VMM, for incremental snapshots --- */

int gm_dirty_enable(struct guest_mem *gm)
{
	if (gm->dirty)
		return 0;
	uint64_t words = (gm->ram_size / 4096 + 63) / 64;
	gm->dirty = calloc(words ? words : 1, sizeof(uint64_t));
	return gm->dirty ? 0 : -ENOMEM;
}

void gm_mark_dirty_hva(const struct guest_mem *gm, const void *hva, uint64_t len)
{
	uint64_t *bits = __atomic_load_n(&gm->dirty, __ATOMIC_ACQUIRE);
	uintptr_t p = (uintptr_t)hva, base = (uintptr_t)gm->base;

	if (!bits || !len || p < base || p - base >= gm->ram_size)
		return;
	uint64_t off = p - base;
	if (len > gm->ram_size - off)
		len = gm->ram_size - off;
	for (uint64_t pg = off / 4096, last = (off + len - 1) / 4096; pg <= last; pg++)
		__atomic_fetch_or(&bits[pg / 64], 1ULL << (pg % 64), __ATOMIC_RELAXED);
}

void gm_mark_dirty(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (len > UINT64_MAX - gpa)
		len = UINT64_MAX - gpa;
	for (int i = 0; i < gm->nr_regions && len; i++) {
		const struct gm_region *r = &gm->region[i];
		if (gpa + len <= r->gpa || gpa >= r->gpa + r->size)
			continue;
		uint64_t a = gpa > r->gpa ? gpa : r->gpa;
		uint64_t e = gpa + len < r->gpa + r->size ? gpa + len : r->gpa + r->size;
		gm_mark_dirty_hva(gm, r->hva + (a - r->gpa), e - a);
	}
}

void gm_dirty_take(struct guest_mem *gm, uint64_t *dst)
{
	if (!gm->dirty)
		return;
	uint64_t words = (gm->ram_size / 4096 + 63) / 64;
	for (uint64_t i = 0; i < words; i++)
		dst[i] |= __atomic_exchange_n(&gm->dirty[i], 0, __ATOMIC_RELAXED);
}
