/* Snapshot state files: codec, CRC, the golden file, and hostile variants. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/le.h"
#include "harness.h"
#include "snapshot/codec.h"
#include "snapshot/snapshot.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

static uint8_t *golden, *golden_mem;
static size_t golden_len, golden_mem_len;

static int load_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	*buf = malloc(1 << 20);
	*len = fread(*buf, 1, 1 << 20, f);
	fclose(f);
	return *len > 0 ? 0 : -1;
}

static int load_golden(void)
{
	/* v1 as first released, and v1 with a MEMORY section naming memory.1 as
	 * the other file with a one-run diff (three saves: complete, other
	 * file, incremental). */
	return load_file(GOLDEN_DIR "/v1-loop-2cpu-rng/state", &golden, &golden_len) ||
	       load_file(GOLDEN_DIR "/v1-memsec-incr-2cpu-rng/state", &golden_mem, &golden_mem_len);
}

/* Offset of section @id's header in @b, or 0. */
static size_t section_at(const uint8_t *b, size_t len, uint32_t id)
{
	uint32_t nreg = le32(b + 44);
	size_t pos = 48 + 24 * (size_t)nreg + 8;
	while (pos + 16 <= len) {
		uint32_t sid = le32(b + pos), slen = le32(b + pos + 8);
		if (sid == id)
			return pos;
		if (sid == 0xffff)
			break;
		pos += 16 + slen;
	}
	return 0;
}

/* Recompute section @at's CRC after its header or payload was changed. */
static void reseal(uint8_t *b, size_t at)
{
	uint32_t len = le32(b + at + 8);
	put32(b + at + 12, crc32c(crc32c(0, b + at, 12), b + at + 16, len));
}

TEST(codec_roundtrip)
{
	struct enc e;
	struct dec d;
	enc_init(&e);
	enc_u8(&e, 0x12);
	enc_u16(&e, 0x3456);
	enc_u32(&e, 0x789abcde);
	enc_u64(&e, 0x0123456789abcdefULL);
	enc_bytes(&e, "xyz", 3);
	CHECK(!e.err);
	CHECK_EQ(e.len, 1 + 2 + 4 + 8 + 3);
	CHECK_EQ(e.buf[1], 0x56); /* little-endian */
	dec_init(&d, e.buf, e.len);
	CHECK_EQ(dec_u8(&d), 0x12);
	CHECK_EQ(dec_u16(&d), 0x3456);
	CHECK_EQ(dec_u32(&d), 0x789abcde);
	CHECK(dec_u64(&d) == 0x0123456789abcdefULL);
	char s[3];
	dec_bytes(&d, s, 3);
	CHECK(!memcmp(s, "xyz", 3) && !d.err);
	CHECK_EQ(dec_u8(&d), 0); /* past the end: zero and a sticky error */
	CHECK(d.err);
	CHECK_EQ(dec_u32(&d), 0);
	enc_free(&e);
}

TEST(crc32c_vectors)
{
	CHECK_EQ(crc32c(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(crc32c(0, "", 0), 0);
	uint8_t z[32] = { 0 };
	CHECK_EQ(crc32c(0, z, 32), 0x8a9136aau); /* RFC 3720 B.4: 32 bytes of zeros */
	char buf[100];
	for (int i = 0; i < 100; i++)
		buf[i] = (char)i;
	CHECK_EQ(crc32c(crc32c(0, buf, 41), buf + 41, 59), crc32c(0, buf, 100));
}

TEST(golden_v1_parses)
{
	char err[256] = "";
	int r = snapshot_parse(golden, golden_len, NULL, err, sizeof(err));
	if (r)
		fprintf(stderr, "  golden: %s\n", err);
	CHECK_EQ(r, 0);
}

TEST(every_truncation_refused)
{
	char err[256];
	for (size_t n = 0; n < golden_len; n++)
		if (snapshot_parse(golden, n, NULL, err, sizeof(err)) == 0) {
			fprintf(stderr, "  truncated to %zu bytes was accepted\n", n);
			CHECK(0);
			break;
		}
}

TEST(every_byte_flip_refused)
{
	char err[256];
	uint8_t *b = malloc(golden_len);
	memcpy(b, golden, golden_len);
	for (size_t i = 0; i < golden_len; i++) {
		b[i] ^= 0x5a;
		if (snapshot_parse(b, golden_len, NULL, err, sizeof(err)) == 0) {
			fprintf(stderr, "  flip at %zu accepted\n", i);
			CHECK(0);
			break;
		}
		b[i] ^= 0x5a;
	}
	free(b);
}

TEST(foreign_version_and_host)
{
	char err[256];
	uint8_t *b = malloc(golden_len);
	memcpy(b, golden, golden_len);
	b[8] = 2; /* format version 2 */
	CHECK(snapshot_parse(b, golden_len, NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "version 2") != NULL);
	memcpy(b, golden, golden_len);
	memcpy(b, "NOTASNAP", 8);
	CHECK(snapshot_parse(b, golden_len, NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "magic") != NULL);

	struct snap_host other = { .cpu_vendor = "OtherVendorX", .cpu_signature = 1 };
	CHECK_EQ(snapshot_parse(golden, golden_len, &other, err, sizeof(err)), -EXDEV);
	CHECK(strstr(err, "another CPU") != NULL);
	free(b);
}

TEST(golden_v1_memory_section)
{
	char err[256] = "";
	int r = snapshot_parse(golden_mem, golden_mem_len, NULL, err, sizeof(err));
	if (r)
		fprintf(stderr, "  golden: %s\n", err);
	CHECK_EQ(r, 0);
	for (size_t n = 0; n < golden_mem_len; n++)
		if (snapshot_parse(golden_mem, n, NULL, err, sizeof(err)) == 0) {
			fprintf(stderr, "  truncated to %zu bytes was accepted\n", n);
			CHECK(0);
			break;
		}
	uint8_t *b = malloc(golden_mem_len);
	memcpy(b, golden_mem, golden_mem_len);
	for (size_t i = 0; i < golden_mem_len; i++) {
		b[i] ^= 0x21;
		if (snapshot_parse(b, golden_mem_len, NULL, err, sizeof(err)) == 0) {
			fprintf(stderr, "  flip at %zu accepted\n", i);
			CHECK(0);
			break;
		}
		b[i] ^= 0x21;
	}
	free(b);
}

/* Payloads that are checksummed correctly but make no sense are refused. */
TEST(inconsistent_sections_refused)
{
	static const struct {
		const char *what;
		uint32_t id;
		size_t off; /* in the payload */
		uint8_t val;
		const char *err;
	} t[] = {
		{ "current file 2", 0x0004, 24, 2, "memory section" },
		{ "other generation = current", 0x0004, 25, 3, "memory section" },
		{ "generation 0", 0x0004, 16, 0, "memory section" },
		{ "diff run outside RAM", 0x0004, 37 + 7, 0x40, "memory section" },
		{ "9 queues", 0x0300, 2, 9, "device 0" },
		{ "64 MSI-X vectors", 0x0300, 35 + 37, 64, "device 0" }, /* after one queue */
		{ "UART FIFO count", 0x0200, 8, 200, "UART" },
	};
	char err[256];
	uint8_t *b = malloc(golden_mem_len);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memcpy(b, golden_mem, golden_mem_len);
		size_t at = section_at(b, golden_mem_len, t[i].id);
		CHECK(at != 0);
		if (!at)
			continue;
		b[at + 16 + t[i].off] = t[i].val;
		reseal(b, at);
		err[0] = 0;
		int r = snapshot_parse(b, golden_mem_len, NULL, err, sizeof(err));
		if (r == 0 || !strstr(err, t[i].err))
			fprintf(stderr, "  %s: %d \"%s\"\n", t[i].what, r, err);
		CHECK(r < 0 && strstr(err, t[i].err));
	}
	/* devices numbered with a gap: VIRTIO 0 renamed VIRTIO 5 */
	memcpy(b, golden_mem, golden_mem_len);
	size_t at = section_at(b, golden_mem_len, 0x0300);
	put32(b + at, 0x0305);
	reseal(b, at);
	CHECK(snapshot_parse(b, golden_mem_len, NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "lacks device 0") != NULL);
	free(b);
}

int main(void)
{
	if (load_golden()) {
		fprintf(stderr, "cannot read the golden snapshot under %s\n", GOLDEN_DIR);
		return 1;
	}
	RUN(codec_roundtrip);
	RUN(crc32c_vectors);
	RUN(golden_v1_parses);
	RUN(every_truncation_refused);
	RUN(every_byte_flip_refused);
	RUN(foreign_version_and_host);
	RUN(golden_v1_memory_section);
	RUN(inconsistent_sections_refused);
	free(golden);
	free(golden_mem);
	TEST_MAIN_END();
}
