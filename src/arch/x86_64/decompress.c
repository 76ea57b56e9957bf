#include "arch/x86_64/decompress.h"

#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "core/le.h"

#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

const char *decompress_detect(const uint8_t *b, size_t len)
{
	if (len >= 2 && b[0] == 0x1f && (b[1] == 0x8b || b[1] == 0x9e))
		return "gzip";
	if (len >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6))
		return "xz";
	if (len >= 4 && le32(b) == 0xFD2FB528u)
		return "zstd";
	if (len >= 4 && le32(b) == LZ4_LEGACY_MAGIC)
		return "lz4";
	if (len >= 3 && !memcmp(b, "BZh", 3))
		return "bzip2";
	if (len >= 3 && b[0] == 0x5d && b[1] == 0 && b[2] == 0)
		return "lzma";
	if (len >= 4 && !memcmp(b, "\x89LZO", 4))
		return "lzo";
	return NULL;
}

/* A growable output buffer capped at @cap. */
struct outbuf {
	uint8_t *p;
	size_t len, size, cap;
};

static int out_grow(struct outbuf *o, size_t want)
{
	if (want > o->cap)
		return -EFBIG;
	if (want <= o->size)
		return 0;
	size_t n = o->size ? o->size : (1u << 20);
	while (n < want)
		n = n > o->cap / 2 ? o->cap : n * 2;
	uint8_t *p = realloc(o->p, n);
	if (!p)
		return -ENOMEM;
	o->p = p;
	o->size = n;
	return 0;
}

static int do_gzip(const uint8_t *in, size_t len, struct outbuf *o, char *err, size_t errlen)
{
	z_stream z = { 0 };
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
	int r;
	do {
		if (out_grow(o, o->len + (1u << 20)) && out_grow(o, o->len + 1)) {
			inflateEnd(&z);
			snprintf(err, errlen, "decompressed payload exceeds %zu bytes", o->cap);
			return -EFBIG;
		}
		z.next_out = o->p + o->len;
		size_t room = o->size - o->len;
		z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
		r = inflate(&z, Z_NO_FLUSH);
		o->len = (size_t)(z.next_out - o->p);
	} while (r == Z_OK && (z.avail_in || !z.avail_out));
	inflateEnd(&z);
	if (r != Z_STREAM_END) {
		snprintf(err, errlen, "gzip payload is corrupt or truncated (zlib %d)", r);
		return -EINVAL;
	}
	return 0;
}

static int do_xz(const uint8_t *in, size_t len, struct outbuf *o, char *err, size_t errlen)
{
	lzma_stream s = LZMA_STREAM_INIT;
	if (lzma_stream_decoder(&s, 256u << 20, 0) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = len;
	lzma_ret r;
	do {
		if (out_grow(o, o->len + (1u << 20)) && out_grow(o, o->len + 1)) {
			lzma_end(&s);
			snprintf(err, errlen, "decompressed payload exceeds %zu bytes", o->cap);
			return -EFBIG;
		}
		s.next_out = o->p + o->len;
		s.avail_out = o->size - o->len;
		r = lzma_code(&s, LZMA_FINISH);
		o->len = (size_t)(s.next_out - o->p);
	} while (r == LZMA_OK);
	lzma_end(&s);
	if (r != LZMA_STREAM_END) {
		snprintf(err, errlen, "xz payload is corrupt or truncated (liblzma %d)", (int)r);
		return -EINVAL;
	}
	return 0;
}

static int do_zstd(const uint8_t *in, size_t len, struct outbuf *o, char *err, size_t errlen)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	if (!ds)
		return -ENOMEM;
	ZSTD_initDStream(ds);
	ZSTD_inBuffer ib = { in, len, 0 };
	size_t r = 1;
	while (ib.pos < ib.size) {
		if (out_grow(o, o->len + (1u << 20)) && out_grow(o, o->len + 1)) {
			ZSTD_freeDStream(ds);
			snprintf(err, errlen, "decompressed payload exceeds %zu bytes", o->cap);
			return -EFBIG;
		}
		ZSTD_outBuffer ob = { o->p + o->len, o->size - o->len, 0 };
		r = ZSTD_decompressStream(ds, &ob, &ib);
		o->len += ob.pos;
		if (ZSTD_isError(r)) {
			ZSTD_freeDStream(ds);
			snprintf(err, errlen, "zstd payload is corrupt (%s)", ZSTD_getErrorName(r));
			return -EINVAL;
		}
		if (r == 0)
			break; /* frame complete; the kernel appends its size after it */
		if (ob.pos == 0 && ib.pos == ib.size)
			break;
	}
	ZSTD_freeDStream(ds);
	if (r != 0) {
		snprintf(err, errlen, "zstd payload is truncated");
		return -EINVAL;
	}
	return 0;
}

static int do_lz4(const uint8_t *in, size_t len, struct outbuf *o, char *err, size_t errlen)
{
	size_t pos = 4;
	while (pos + 4 <= len) {
		uint32_t n = le32(in + pos);
		if (n == LZ4_LEGACY_MAGIC) { /* a concatenated frame */
			pos += 4;
			continue;
		}
		pos += 4;
		if (n > len - pos || n > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK)) {
			/* The kernel appends 4 bytes of size: a short tail ends the stream. */
			if (len - pos + 4 <= 4)
				break;
			snprintf(err, errlen, "lz4 payload is corrupt or truncated (block of %u bytes)", n);
			return -EINVAL;
		}
		if (out_grow(o, o->len + LZ4_LEGACY_BLOCK) && out_grow(o, o->size)) {
			snprintf(err, errlen, "decompressed payload exceeds %zu bytes", o->cap);
			return -EFBIG;
		}
		size_t room = o->size - o->len;
		int got = LZ4_decompress_safe((const char *)in + pos, (char *)o->p + o->len, (int)n,
					      (int)(room > LZ4_LEGACY_BLOCK ? LZ4_LEGACY_BLOCK : room));
		if (got < 0) {
			snprintf(err, errlen, "lz4 payload is corrupt");
			return -EINVAL;
		}
		o->len += (size_t)got;
		pos += n;
	}
	if (o->len == 0) {
		snprintf(err, errlen, "lz4 payload is empty or truncated");
		return -EINVAL;
	}
	return 0;
}

int decompress(const uint8_t *in, size_t in_len, size_t cap, size_t hint, uint8_t **out,
	       size_t *out_len, char *err, size_t errlen)
{
	struct outbuf o = { .cap = cap };
	const char *fmt = decompress_detect(in, in_len);
	int r;

	if (!fmt) {
		snprintf(err, errlen, "payload compression not recognised");
		return -EINVAL;
	}
	if (hint && hint <= cap)
		(void)out_grow(&o, hint); /* a hint only: on failure, grow as we go */
	if (!strcmp(fmt, "gzip"))
		r = do_gzip(in, in_len, &o, err, errlen);
	else if (!strcmp(fmt, "xz"))
		r = do_xz(in, in_len, &o, err, errlen);
	else if (!strcmp(fmt, "zstd"))
		r = do_zstd(in, in_len, &o, err, errlen);
	else if (!strcmp(fmt, "lz4"))
		r = do_lz4(in, in_len, &o, err, errlen);
	else {
		snprintf(err, errlen, "%s-compressed kernels are not supported (use gzip, xz, zstd or "
			 "lz4, or boot the uncompressed vmlinux)", fmt);
		r = -ENOTSUP;
	}
	if (r) {
		free(o.p);
		return r;
	}
	*out = o.p;
	*out_len = o.len;
	return 0;
}
