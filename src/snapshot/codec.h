/*
 * Snapshot codec: fixed-width little-endian fields written to and read from
 * bounded buffers, and CRC32C. Readers never run past their buffer: a short
 * read sets an error flag that sticks, and every later read returns zero,
 * so parsing code checks the flag once at the end of a section.
 */
#ifndef POCKETVM_SNAPSHOT_CODEC_H
#define POCKETVM_SNAPSHOT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct enc {
	uint8_t *buf;
	size_t len, cap;
	bool err; /* allocation failed */
};

struct dec {
	const uint8_t *buf;
	size_t len, pos;
	bool err; /* read past the end */
};

void enc_init(struct enc *e);
void enc_free(struct enc *e);
void enc_u8(struct enc *e, uint8_t v);
void enc_u16(struct enc *e, uint16_t v);
void enc_u32(struct enc *e, uint32_t v);
void enc_u64(struct enc *e, uint64_t v);
void enc_bytes(struct enc *e, const void *p, size_t n);

void dec_init(struct dec *d, const void *buf, size_t len);
uint8_t dec_u8(struct dec *d);
uint16_t dec_u16(struct dec *d);
uint32_t dec_u32(struct dec *d);
uint64_t dec_u64(struct dec *d);
void dec_bytes(struct dec *d, void *p, size_t n);
/* Pointer to the next @n bytes (NULL and err set when fewer remain). */
const uint8_t *dec_take(struct dec *d, size_t n);
static inline size_t dec_left(const struct dec *d) { return d->len - d->pos; }

/* CRC32C (Castagnoli), as used by iSCSI/ext4: crc32c(0, "123456789") = 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
