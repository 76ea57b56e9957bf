/*
 * Kernel and initrd loading for the 64-bit boot protocol entry.
 * See loader.h for what is accepted; every value read from the file is
 * checked against the file's size and guest RAM before use.
 */
#include "arch/x86_64/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86_64/decompress.h"
#include "core/le.h"

#define ELF_MAX_PHDRS 64

size_t loader_max_image = KERNEL_MAX_IMAGE;

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

static int load_elf(struct guest_mem *gm, const uint8_t *buf, size_t len,
		    struct kernel_info *ki, char *err, size_t errlen)
{
	if (len < sizeof(Elf64_Ehdr))
		return fail(err, errlen, -EINVAL, "truncated ELF header (%zu bytes)", len);
	Elf64_Ehdr eh;
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(err, errlen, -EINVAL, "not a 64-bit little-endian ELF file");
	if (eh.e_machine != EM_X86_64)
		return fail(err, errlen, -EINVAL, "ELF machine %u is not x86-64", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return fail(err, errlen, -EINVAL, "ELF file is not an executable (type %u)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS)
		return fail(err, errlen, -EINVAL, "bad ELF program header table (%u entries of %u bytes)",
			    eh.e_phnum, eh.e_phentsize);
	if (eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return fail(err, errlen, -EINVAL, "ELF program headers lie outside the file");

	Elf64_Phdr ph[ELF_MAX_PHDRS];
	memcpy(ph, buf + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));
	/* Validate every segment before writing any. */
	int loads = 0;
	uint64_t lo = UINT64_MAX, hi = 0, entry = 0;
	for (int i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD)
			continue;
		loads++;
		if (p->p_filesz > p->p_memsz)
			return fail(err, errlen, -EINVAL, "segment %d: file size exceeds memory size", i);
		if (p->p_offset > len || p->p_filesz > len - p->p_offset)
			return fail(err, errlen, -EINVAL, "segment %d lies outside the file (truncated?)", i);
		if (p->p_paddr + p->p_memsz < p->p_paddr)
			return fail(err, errlen, -EINVAL, "segment %d wraps the address space", i);
		if (!gm_ptr(gm, p->p_paddr, p->p_memsz))
			return fail(err, errlen, -EINVAL,
				    "segment %d (%#llx+%#llx) does not fit in guest RAM (%llu MiB)", i,
				    (unsigned long long)p->p_paddr, (unsigned long long)p->p_memsz,
				    (unsigned long long)(gm->ram_size >> 20));
		if (p->p_paddr < 0x100000)
			return fail(err, errlen, -EINVAL,
				    "segment %d loads below 1 MiB, over the boot structures", i);
		if (p->p_paddr < lo)
			lo = p->p_paddr;
		if (p->p_paddr + p->p_memsz > hi)
			hi = p->p_paddr + p->p_memsz;
		/* The entry may be virtual (a vmlinux): translate through its segment. */
		if (eh.e_entry >= p->p_vaddr && eh.e_entry - p->p_vaddr < p->p_memsz)
			entry = eh.e_entry - p->p_vaddr + p->p_paddr;
	}
	if (!loads)
		return fail(err, errlen, -EINVAL, "ELF file has no loadable segment");
	if (!entry) {
		if (eh.e_entry >= lo && eh.e_entry < hi)
			entry = eh.e_entry;
		else
			return fail(err, errlen, -EINVAL, "ELF entry point %#llx is in no segment",
				    (unsigned long long)eh.e_entry);
	}
	for (int i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD)
			continue;
		uint8_t *dst = gm_ptr(gm, p->p_paddr, p->p_memsz);
		memcpy(dst, buf + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}
	ki->entry = entry;
	ki->load_start = lo;
	ki->load_end = hi;
	return 0;
}

/* bzImage offsets (Documentation/arch/x86/boot.rst) */
#define BZ_SETUP_SECTS 0x1f1
#define BZ_HEADER 0x202
#define BZ_VERSION 0x206
#define BZ_INITRD_ADDR_MAX 0x22c
#define BZ_PAYLOAD_OFFSET 0x248
#define BZ_PAYLOAD_LENGTH 0x24c

static int load_bzimage(struct guest_mem *gm, const uint8_t *buf, size_t len,
			struct kernel_info *ki, char *err, size_t errlen)
{
	if (len < 0x270)
		return fail(err, errlen, -EINVAL, "truncated bzImage header");
	uint16_t version = le16(buf + BZ_VERSION);
	if (version < 0x0208)
		return fail(err, errlen, -EINVAL,
			    "boot protocol %u.%02u is too old (2.08 or later needed for the payload)",
			    version >> 8, version & 0xff);
	unsigned setup_sects = buf[BZ_SETUP_SECTS] ? buf[BZ_SETUP_SECTS] : 4;
	uint64_t pm_start = (uint64_t)(setup_sects + 1) * 512;
	uint64_t off = pm_start + le32(buf + BZ_PAYLOAD_OFFSET);
	uint64_t plen = le32(buf + BZ_PAYLOAD_LENGTH);
	if (off > len || plen > len - off || plen < 4)
		return fail(err, errlen, -EINVAL, "bzImage payload lies outside the file (truncated?)");
	const uint8_t *payload = buf + off;
	memcpy(ki->setup_hdr, buf + SETUP_HDR_OFFSET, SETUP_HDR_MAX);
	ki->initrd_addr_max = le32(buf + BZ_INITRD_ADDR_MAX);
	ki->bzimage = true;

	const char *fmt = decompress_detect(payload, plen);
	ki->compression = fmt ? fmt : "unknown";
	uint8_t *img = NULL;
	size_t img_len = 0;
	size_t hint = le32(payload + plen - 4); /* the build appends the size */
	char derr[200];
	int r = decompress(payload, plen, loader_max_image, hint, &img, &img_len, derr, sizeof(derr));
	if (r)
		return fail(err, errlen, r, "bzImage payload: %s", derr);
	r = load_elf(gm, img, img_len, ki, derr, sizeof(derr));
	free(img);
	if (r)
		return fail(err, errlen, r, "bzImage payload (%s): %s", ki->compression, derr);
	return 0;
}

int kernel_load_buf(struct guest_mem *gm, const uint8_t *buf, size_t len,
		    struct kernel_info *ki, char *err, size_t errlen)
{
	memset(ki, 0, sizeof(*ki));
	ki->compression = "none";
	if (len >= 4 && !memcmp(buf, ELFMAG, SELFMAG))
		return load_elf(gm, buf, len, ki, err, errlen);
	if (len >= 0x206 && !memcmp(buf + BZ_HEADER, "HdrS", 4))
		return load_bzimage(gm, buf, len, ki, err, errlen);
	return fail(err, errlen, -EINVAL, "neither an ELF kernel nor a bzImage (%zu bytes)", len);
}

/* Read a whole regular file of at most @cap bytes. */
static int read_file(const char *path, size_t cap, uint8_t **out, size_t *len, char *err,
		     size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return fail(err, errlen, -EFBIG, "%s: %lld bytes, more than the %zu MiB limit", path,
			    (long long)st.st_size, cap >> 20);
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (b && n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!b)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", path);
	*out = b;
	*len = n;
	return 0;
}

int kernel_load(struct guest_mem *gm, const char *path, struct kernel_info *ki, char *err,
		size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char e2[300];
	int r = read_file(path, KERNEL_MAX_FILE, &buf, &len, err, errlen);
	if (r)
		return r;
	r = kernel_load_buf(gm, buf, len, ki, e2, sizeof(e2));
	free(buf);
	if (r)
		return fail(err, errlen, r, "kernel %s: %s", path, e2);
	return 0;
}

int initrd_load(struct guest_mem *gm, const char *path, uint64_t min_addr, uint64_t max_addr,
		uint64_t *gpa, uint64_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "initrd %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL, "initrd %s: not a regular file", path);
	}
	uint64_t n = (uint64_t)st.st_size;
	uint64_t top = gm_low_end(gm);
	if (max_addr && max_addr + 1 < top)
		top = max_addr + 1;
	min_addr = (min_addr + 4095) & ~4095ULL;
	if (n == 0 || n > top || ((top - n) & ~4095ULL) < min_addr) {
		close(fd);
		return fail(err, errlen, -ENOSPC,
			    "initrd %s (%llu MiB) does not fit in guest RAM below %#llx; use more --mem",
			    path, (unsigned long long)(n >> 20), (unsigned long long)top);
	}
	uint64_t at = (top - n) & ~4095ULL;
	uint8_t *dst = gm_ptr(gm, at, n);
	uint64_t done = 0;
	while (dst && done < n) {
		ssize_t r = pread(fd, dst + done, n - done, (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (uint64_t)r;
	}
	close(fd);
	if (done != n)
		return fail(err, errlen, -EIO, "initrd %s: short read", path);
	*gpa = at;
	*size = n;
	return 0;
}
