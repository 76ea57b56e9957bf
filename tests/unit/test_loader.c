/* Kernel loader: synthetic ELF and bzImage files, valid and malformed. */
#include <elf.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "arch/x86_64/decompress.h"
#include "arch/x86_64/loader.h"
#include "core/le.h"
#include "harness.h"

#define RAM (64u << 20)
static uint8_t *ram;
static struct guest_mem gm;
static char err[512];
static struct kernel_info ki;

/* An ELF with one PT_LOAD: 64 bytes of code/data at 16 MiB, 4 KiB of bss. */
static size_t make_elf(uint8_t *out, uint64_t paddr, uint64_t vaddr)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph = { 0 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = vaddr;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	ph.p_type = PT_LOAD;
	ph.p_offset = 0x200;
	ph.p_vaddr = vaddr;
	ph.p_paddr = paddr;
	ph.p_filesz = 64;
	ph.p_memsz = 64 + 4096;
	memset(out, 0, 0x240);
	memcpy(out, &eh, sizeof(eh));
	memcpy(out + sizeof(eh), &ph, sizeof(ph));
	for (int i = 0; i < 64; i++)
		out[0x200 + i] = (uint8_t)(0xa0 + i);
	return 0x240;
}

static void reset_ram(void)
{
	memset(ram, 0xcc, RAM);
}

TEST(elf_loads_with_bss)
{
	uint8_t f[0x240];
	size_t n = make_elf(f, 0x1000000, 0x1000000);
	reset_ram();
	CHECK_EQ(kernel_load_buf(&gm, f, n, &ki, err, sizeof(err)), 0);
	CHECK_EQ(ki.entry, 0x1000000);
	CHECK_EQ(ki.load_end, 0x1000000 + 64 + 4096);
	CHECK_EQ(ram[0x1000000], 0xa0);
	CHECK_EQ(ram[0x1000000 + 63], 0xa0 + 63);
	CHECK_EQ(ram[0x1000000 + 64], 0);	 /* bss zeroed */
	CHECK_EQ(ram[0x1000000 + 64 + 4095], 0);
	CHECK_EQ(ram[0x1000000 + 64 + 4096], 0xcc); /* nothing beyond */
	CHECK(!ki.bzimage);
}

TEST(elf_virtual_entry_translated)
{
	uint8_t f[0x240];
	size_t n = make_elf(f, 0x1000000, 0xffffffff81000000ULL);
	CHECK_EQ(kernel_load_buf(&gm, f, n, &ki, err, sizeof(err)), 0);
	CHECK_EQ(ki.entry, 0x1000000);
}

TEST(elf_malformed)
{
	uint8_t f[0x240], g[0x240];
	size_t n = make_elf(f, 0x1000000, 0x1000000);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)g;
	Elf64_Phdr *ph = (Elf64_Phdr *)(g + sizeof(Elf64_Ehdr));
	struct { void (*mut)(void); const char *what; } cases[6];
	(void)cases;
#define CASE(stmt, needle)                                                     \
	do {                                                                   \
		memcpy(g, f, n);                                               \
		stmt;                                                          \
		int r_ = kernel_load_buf(&gm, g, n, &ki, err, sizeof(err));     \
		CHECK(r_ < 0);                                                 \
		if (r_ >= 0 || !strstr(err, needle))                           \
			fprintf(stderr, "  case %s: err=%s\n", #stmt, err);    \
		CHECK(strstr(err, needle) != NULL);                            \
	} while (0)
	CASE(eh->e_ident[EI_CLASS] = ELFCLASS32, "64-bit");
	CASE(eh->e_machine = EM_AARCH64, "x86-64");
	CASE(eh->e_phoff = 0x10000, "outside the file");
	CASE(eh->e_phnum = 0, "program header");
	CASE(ph->p_offset = 0x100000, "outside the file");
	CASE(ph->p_filesz = ph->p_memsz + 1, "file size exceeds");
	CASE(ph->p_paddr = RAM - 16, "does not fit");
	CASE(ph->p_paddr = ~0ULL - 8, "wraps");
	CASE(ph->p_paddr = 0x1000, "below 1 MiB");
	CASE(ph->p_type = PT_NOTE, "no loadable");
	CASE(eh->e_entry = 0x5000000, "entry point");
	CASE(memcpy(g, "\x7f" "ELX", 4), "neither");
#undef CASE
	/* Every truncation of a valid file is refused without crashing. */
	for (size_t len = 0; len < n; len++)
		CHECK(kernel_load_buf(&gm, f, len, &ki, err, sizeof(err)) < 0);
}

/* Compress @in with format @fmt the way the kernel build does. */
static size_t compress_as(const char *fmt, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	size_t len = 0;
	if (!strcmp(fmt, "gzip")) {
		z_stream z = { 0 };
		deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		deflate(&z, Z_FINISH);
		len = z.total_out;
		deflateEnd(&z);
	} else if (!strcmp(fmt, "xz")) {
		lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, n, out, &len, cap);
	} else if (!strcmp(fmt, "zstd")) {
		len = ZSTD_compress(out, cap, in, n, 19);
	} else if (!strcmp(fmt, "lz4")) {
		put32(out, 0x184C2102u);
		int c = LZ4_compress_default((const char *)in, (char *)out + 8, (int)n, (int)cap - 8);
		put32(out + 4, (uint32_t)c);
		len = 8 + (size_t)c;
	}
	put32(out + len, (uint32_t)n); /* the size the build appends */
	return len + 4;
}

/* A bzImage: 5 sectors of setup (setup_sects = 4), then the payload. */
static size_t make_bzimage(uint8_t *out, const uint8_t *payload, size_t plen, uint16_t version)
{
	size_t pm = 5 * 512;
	memset(out, 0, pm);
	out[0x1f1] = 4;
	put16(out + 0x1fe, 0xAA55);
	memcpy(out + 0x202, "HdrS", 4);
	put16(out + 0x206, version);
	put32(out + 0x22c, 0x7fffffff);
	put32(out + 0x248, 0x100); /* payload_offset from the protected-mode start */
	put32(out + 0x24c, (uint32_t)plen);
	memset(out + pm, 0, 0x100);
	memcpy(out + pm + 0x100, payload, plen);
	return pm + 0x100 + plen;
}

TEST(bzimage_each_compression)
{
	static const char *fmts[] = { "gzip", "xz", "zstd", "lz4" };
	uint8_t elf[0x240], comp[8192], bz[16384];
	size_t en = make_elf(elf, 0x1000000, 0xffffffff81000000ULL);
	for (size_t i = 0; i < 4; i++) {
		size_t cn = compress_as(fmts[i], elf, en, comp, sizeof(comp) - 8);
		size_t bn = make_bzimage(bz, comp, cn, 0x020f);
		reset_ram();
		int r = kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err));
		if (r)
			fprintf(stderr, "  %s: %s\n", fmts[i], err);
		CHECK_EQ(r, 0);
		CHECK(ki.bzimage);
		CHECK(!strcmp(ki.compression, fmts[i]));
		CHECK_EQ(ki.entry, 0x1000000);
		CHECK_EQ(ram[0x1000000 + 5], 0xa5);
		CHECK_EQ(ki.setup_hdr[0], 4);
		CHECK_EQ(ki.initrd_addr_max, 0x7fffffff);
		/* truncated streams are refused (cuts reach past the 4-byte size trailer) */
		for (size_t cut = 5; cut < cn; cut += 7) {
			size_t tn = make_bzimage(bz, comp, cn - cut, 0x020f);
			CHECK(kernel_load_buf(&gm, bz, tn, &ki, err, sizeof(err)) < 0);
		}
	}
}

TEST(bzimage_malformed)
{
	uint8_t elf[0x240], comp[8192], bz[16384];
	size_t en = make_elf(elf, 0x1000000, 0x1000000);
	size_t cn = compress_as("gzip", elf, en, comp, sizeof(comp) - 8);
	size_t bn = make_bzimage(bz, comp, cn, 0x0206);
	CHECK(kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err)) < 0);
	CHECK(strstr(err, "too old") != NULL);
	bn = make_bzimage(bz, comp, cn, 0x020f);
	put32(bz + 0x24c, 0x7fffffff); /* payload longer than the file */
	CHECK(kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err)) < 0);
	CHECK(strstr(err, "outside the file") != NULL);
	bn = make_bzimage(bz, (const uint8_t *)"BZh91AY&SYgarbage", 17, 0x020f);
	CHECK(kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err)) < 0);
	CHECK(strstr(err, "not supported") != NULL);
	memcpy(comp + 10, "garbage garbage garbage", 23); /* corrupt the deflate stream */
	bn = make_bzimage(bz, comp, cn, 0x020f);
	CHECK(kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err)) < 0);
	/* a payload that decompresses to something that is not an ELF */
	uint8_t junk[600];
	memset(junk, 'j', sizeof(junk));
	cn = compress_as("zstd", junk, sizeof(junk), comp, sizeof(comp) - 8);
	bn = make_bzimage(bz, comp, cn, 0x020f);
	CHECK(kernel_load_buf(&gm, bz, bn, &ki, err, sizeof(err)) < 0);
}

TEST(decompress_cap)
{
	/* 4 MiB of zeros compresses to almost nothing: the cap must hold. */
	size_t n = 4u << 20;
	uint8_t *zeros = calloc(1, n), *comp = malloc(1 << 20), *out = NULL;
	size_t cn = compress_as("gzip", zeros, n, comp, (1 << 20) - 8), on = 0;
	CHECK(decompress(comp, cn, 1u << 20, 0, &out, &on, err, sizeof(err)) < 0);
	CHECK(strstr(err, "exceeds") != NULL);
	CHECK_EQ(decompress(comp, cn, 8u << 20, n, &out, &on, err, sizeof(err)), 0);
	CHECK_EQ(on, n);
	free(out);
	free(zeros);
	free(comp);
}

int main(void)
{
	ram = malloc(RAM);
	gm_init_fake(&gm, ram, 0, RAM);
	RUN(elf_loads_with_bss);
	RUN(elf_virtual_entry_translated);
	RUN(elf_malformed);
	RUN(bzimage_each_compression);
	RUN(bzimage_malformed);
	RUN(decompress_cap);
	free(ram);
	TEST_MAIN_END();
}
