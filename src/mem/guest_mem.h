/*
 * Guest physical memory: a table of RAM regions backed by one memfd, and the
 * single checked door from guest physical addresses to host pointers.
 *
 * Device code never does arithmetic on guest addresses itself: it asks
 * gm_ptr(gpa, len) and gets NULL unless [gpa, gpa+len) lies entirely inside
 * one RAM region.
 */
#ifndef POCKETVM_GUEST_MEM_H
#define POCKETVM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GM_MAX_REGIONS 4

/* x86 layout: low RAM up to the PCI hole, the rest above 4 GiB. */
#define GM_PCI_HOLE_START 0xC0000000ULL /* 3 GiB */
#define GM_HIGH_START 0x100000000ULL	/* 4 GiB */

struct gm_region {
	uint64_t gpa;	 /* guest physical start */
	uint64_t size;	 /* bytes */
	uint8_t *hva;	 /* host mapping of the region */
	uint64_t offset; /* offset of the region in the backing memfd */
};

struct guest_mem {
	struct gm_region region[GM_MAX_REGIONS];
	int nr_regions;
	int fd;		     /* memfd backing all RAM, -1 for fake memory */
	int file_fd;	     /* >= 0: RAM is a MAP_PRIVATE mapping of this file
				(a lazy snapshot restore), not the memfd */
	uint8_t *base;	     /* mapping of the whole memfd */
	uint64_t ram_size;   /* total bytes of RAM */
	uint64_t *dirty;     /* pages the VMM wrote, one bit per 4 KiB in memfd
				order (NULL: not tracked); see gm_mark_dirty */
};

/*
 * gm_init - create guest RAM of @ram_size bytes (a multiple of 2 MiB) from a
 * memfd, lay it out around the PCI hole and advise huge pages.
 * Returns 0 or a negative errno.
 */
int gm_init(struct guest_mem *gm, uint64_t ram_size);

/*
 * gm_init_fake - describe a caller-owned buffer as guest RAM at @gpa, for
 * unit tests and fuzz harnesses. No memfd.
 */
void gm_init_fake(struct guest_mem *gm, void *buf, uint64_t gpa, uint64_t size);

void gm_destroy(struct guest_mem *gm);

/*
 * gm_ptr - translate [gpa, gpa+len) to a host pointer. Returns NULL when the
 * range wraps, is empty-but-outside, or is not wholly inside one RAM region.
 * len may be 0 (then gpa must still be inside or at the end of a region).
 */
static inline void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gm_region *r = &gm->region[i];

		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off > r->size || len > r->size - off)
			continue;
		return r->hva + off;
	}
	return NULL;
}

/* Copy helpers through gm_ptr(); return 0 or -EFAULT. */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

/* Highest guest physical address + 1 of RAM below the PCI hole. */
uint64_t gm_low_end(const struct guest_mem *gm);

/* Page size of discard/populate requests: the balloon's 4 KiB frames. */
#define GM_PAGE 4096ULL

/*
 * gm_hva_to_gpa - the reverse of gm_ptr(): the guest physical address of
 * host range [hva, hva+len), which must lie wholly inside one RAM region
 * (as every buffer a virtqueue chain holds does). Returns 0 with *@gpa, or
 * -EFAULT.
 */
int gm_hva_to_gpa(const struct guest_mem *gm, const void *hva, uint64_t len, uint64_t *gpa);

/*
 * gm_discard - give the pages of [gpa, gpa+len) back to the host; the guest
 * reads zeros there afterwards (after a lazy restore: the snapshot file's
 * contents). @gpa and @len must be GM_PAGE aligned and the range RAM. One
 * system call per region the range touches: fallocate(PUNCH_HOLE) on the
 * memfd, which also unmaps them from every mapping and from KVM, or
 * madvise(MADV_DONTNEED) when RAM is a private mapping of a snapshot file.
 * Returns 0, -EINVAL (unaligned), -EFAULT (not RAM), -EOPNOTSUPP (fake
 * memory) or the system call's -errno.
 */
int gm_discard(struct guest_mem *gm, uint64_t gpa, uint64_t len);

/*
 * gm_populate - fault the pages of [gpa, gpa+len) in, writable, ahead of
 * the guest's use: madvise(MADV_POPULATE_WRITE), or on kernels without it
 * an atomic no-op write to one byte per page (never loses a concurrent
 * guest write). Same alignment and range rules and returns as gm_discard.
 */
int gm_populate(struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* --- writes by the VMM, for incremental snapshots --- */

/*
 * KVM's dirty log sees what vCPUs write; what the VMM writes into guest RAM
 * itself (virtqueue used rings and device-writable buffers, gm_write, the
 * balloon's discards and populates) is recorded here so an incremental
 * snapshot saves it too. One bit per 4 KiB page, in memfd offset order.
 */

/* gm_dirty_enable - start recording (idempotent). 0 or -ENOMEM. */
int gm_dirty_enable(struct guest_mem *gm);

/*
 * gm_mark_dirty - the VMM wrote, discarded or populated [gpa, gpa+len).
 * Lock-free and thread-safe; a no-op while recording is off; the part of the
 * range that is not RAM is ignored.
 */
void gm_mark_dirty(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* gm_mark_dirty_hva - the same for a host range inside the RAM mapping (a
 * chain's iovec, a ring) */
void gm_mark_dirty_hva(const struct guest_mem *gm, const void *hva, uint64_t len);

/*
 * gm_dirty_take - OR the recorded bits into @dst (ram_size / 4096 bits, the
 * same layout) and clear them. Writers must be quiesced (vCPUs paused,
 * devices locked) for nothing to be lost. No-op while recording is off.
 */
void gm_dirty_take(struct guest_mem *gm, uint64_t *dst);

#endif
