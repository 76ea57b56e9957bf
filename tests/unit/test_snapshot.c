/* Snapshot state files: codec, CRC, the golden file, and hostile variants. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "snapshot/codec.h"
#include "snapshot/snapshot.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

static uint8_t *golden;
static size_t golden_len;

static int load_golden(void)
{
	FILE *f = fopen(GOLDEN_DIR "/v1-loop-2cpu-rng/state", "rb");
	if (!f)
		return -1;
	golden = malloc(1 << 20);
	golden_len = fread(golden, 1, 1 << 20, f);
	fclose(f);
	return golden_len > 0 ? 0 : -1;
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
	free(golden);
	TEST_MAIN_END();
}
