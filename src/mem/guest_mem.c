#define _GNU_SOURCE
#include "mem/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/log.h"

#define SZ_2M (2ULL << 20)

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
	return 0;
}

uint64_t gm_low_end(const struct guest_mem *gm)
{
	return gm->nr_regions ? gm->region[0].gpa + gm->region[0].size : 0;
}
