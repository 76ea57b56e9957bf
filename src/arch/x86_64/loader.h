/*
 * Kernel and initrd loading (Linux x86 boot protocol, 64-bit entry).
 *
 * kernel_load() accepts:
 *  - an ELF64 x86-64 executable (a vmlinux, or one of our test guests):
 *    PT_LOAD segments are copied to their physical addresses (p_paddr);
 *  - a bzImage: the setup header is kept and the protected-mode payload is
 *    decompressed on the host (gzip, xz, zstd, lz4 legacy frames; the payload
 *    is itself an ELF vmlinux), then loaded as above.
 * Every length and offset read from the file is checked; a bad file gives
 * -EINVAL (or -ENOENT/-EIO) and a message in @err naming the problem.
 */
#ifndef POCKETVM_LOADER_H
#define POCKETVM_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem/guest_mem.h"

#define KERNEL_MAX_FILE (512ULL << 20)	/* largest kernel file we read */
#define KERNEL_MAX_IMAGE (1ULL << 30)	/* largest decompressed payload */

/* Offset and size of the setup header within a bzImage's first sector. */
#define SETUP_HDR_OFFSET 0x1f1
#define SETUP_HDR_MAX 0x7f /* bytes we copy: up to 0x270 (end of 2.15 hdr) */

/* Decompression cap, KERNEL_MAX_IMAGE by default; fuzzers lower it. */
extern size_t loader_max_image;

struct kernel_info {
	uint64_t entry;		 /* 64-bit entry point, guest physical */
	uint64_t load_start;	 /* lowest byte loaded */
	uint64_t load_end;	 /* highest byte loaded + 1 */
	bool bzimage;		 /* came from a bzImage */
	const char *compression; /* "none", "gzip", "xz", "zstd", "lz4" */
	/* bzImage only: the setup header, bytes 0x1f1.. of the image. */
	uint8_t setup_hdr[SETUP_HDR_MAX];
	uint32_t initrd_addr_max; /* from the setup header, 0 if unknown */
};

/*
 * kernel_load_buf - load a kernel image held in memory (@buf, @len) into
 * @gm. Pure apart from writing guest memory: the fuzz target and unit tests
 * call this. Returns 0 or a negative errno with @err filled in.
 */
int kernel_load_buf(struct guest_mem *gm, const uint8_t *buf, size_t len,
		    struct kernel_info *ki, char *err, size_t errlen);

/* kernel_load - read @path (capped at KERNEL_MAX_FILE) and kernel_load_buf(). */
int kernel_load(struct guest_mem *gm, const char *path, struct kernel_info *ki,
		char *err, size_t errlen);

/*
 * initrd_load - place the file @path in guest RAM as high as possible below
 * min(@max_addr, end of low RAM), page aligned, above @min_addr (the end of
 * the kernel). Returns 0 and fills @gpa/@size, or a negative errno and @err.
 */
int initrd_load(struct guest_mem *gm, const char *path, uint64_t min_addr,
		uint64_t max_addr, uint64_t *gpa, uint64_t *size, char *err,
		size_t errlen);

#endif
