#include "snapshot/codec.h"

#include "core/le.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void enc_init(struct enc *e)
{
	memset(e, 0, sizeof(*e));
}

void enc_free(struct enc *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

static uint8_t *enc_room(struct enc *e, size_t n)
{
	if (e->err)
		return NULL;
	if (n > SIZE_MAX / 2 - e->len) {
		e->err = true;
		return NULL;
	}
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		while (cap < e->len + n)
			cap *= 2;
		uint8_t *nb = realloc(e->buf, cap);
		if (!nb) {
			e->err = true;
			return NULL;
		}
		e->buf = nb;
		e->cap = cap;
	}
	uint8_t *p = e->buf + e->len;
	e->len += n;
	return p;
}

#define ENC(name, type, n)                                                     \
	void name(struct enc *e, type v)                                       \
	{                                                                      \
		uint8_t *p = enc_room(e, n);                                   \
		if (p)                                                         \
			le_put(p, n, v);                                       \
	}
ENC(enc_u8, uint8_t, 1)
ENC(enc_u16, uint16_t, 2)
ENC(enc_u32, uint32_t, 4)
ENC(enc_u64, uint64_t, 8)

void enc_bytes(struct enc *e, const void *src, size_t n)
{
	uint8_t *p = enc_room(e, n);
	if (p && n)
		memcpy(p, src, n);
}

void dec_init(struct dec *d, const void *buf, size_t len)
{
	d->buf = buf;
	d->len = len;
	d->pos = 0;
	d->err = false;
}

const uint8_t *dec_take(struct dec *d, size_t n)
{
	if (d->err || n > d->len - d->pos) {
		d->err = true;
		return NULL;
	}
	const uint8_t *p = d->buf + d->pos;
	d->pos += n;
	return p;
}

#define DEC(name, type, n)                                                     \
	type name(struct dec *d)                                               \
	{                                                                      \
		const uint8_t *p = dec_take(d, n);                             \
		return p ? (type)le_get(p, n) : 0;                             \
	}
DEC(dec_u8, uint8_t, 1)
DEC(dec_u16, uint16_t, 2)
DEC(dec_u32, uint32_t, 4)
DEC(dec_u64, uint64_t, 8)

void dec_bytes(struct dec *d, void *dst, size_t n)
{
	const uint8_t *p = dec_take(d, n);
	if (p)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

static uint32_t crc_table[8][256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__)
/* The SSE4.2 CRC32 instruction computes exactly CRC32C: 8 bytes at a time,
 * about 10x the table version (loading sets and memory are CRC'd in bulk). */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							     size_t len)
{
	uint64_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	for (; len >= 32; p += 32, len -= 32) {
		uint64_t w[4];
		memcpy(w, p, 32);
		c = __builtin_ia32_crc32di(c, w[0]);
		c = __builtin_ia32_crc32di(c, w[1]);
		c = __builtin_ia32_crc32di(c, w[2]);
		c = __builtin_ia32_crc32di(c, w[3]);
	}
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

static bool have_hw;

static void crc_setup(void)
{
	crc_init();
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const uint8_t *p = buf;

	pthread_once(&once, crc_setup);
#if defined(__x86_64__)
	if (have_hw)
		return crc32c_hw(crc, p, len);
#endif
	crc = ~crc;
	/* slicing-by-8 */
	while (len >= 8) {
		uint64_t w = le64(p) ^ crc;
		crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		      crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		      crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		      crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}
