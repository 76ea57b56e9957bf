/*
 * Host-side decompression of kernel payloads: gzip, xz, zstd and the lz4
 * legacy frame the kernel build emits. Output is capped; corrupt input is an
 * error with a message, never a crash.
 */
#ifndef POCKETVM_DECOMPRESS_H
#define POCKETVM_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* Name of the format @buf starts with ("gzip", "xz", ...), or NULL if unknown. */
const char *decompress_detect(const uint8_t *buf, size_t len);

/*
 * decompress - inflate @in (@in_len bytes) into a malloc'd buffer of at most
 * @cap bytes. @hint, if non-zero, is the expected size (a hint only).
 * Returns 0 with *out and *out_len set, or a negative errno with @err filled in.
 */
int decompress(const uint8_t *in, size_t in_len, size_t cap, size_t hint, uint8_t **out,
	       size_t *out_len, char *err, size_t errlen);

#endif
