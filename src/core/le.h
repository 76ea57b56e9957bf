/*
 * Little-endian loads and stores of 1-8 bytes at any alignment: the one
 * implementation used for guest-visible structures, config spaces and
 * snapshot fields.
 */
#ifndef POCKETVM_LE_H
#define POCKETVM_LE_H

#include <stdint.h>

static inline uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void le_put(uint8_t *p, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)le_get(p, 2); }
static inline uint32_t le32(const uint8_t *p) { return (uint32_t)le_get(p, 4); }
static inline uint64_t le64(const uint8_t *p) { return le_get(p, 8); }
static inline void put16(uint8_t *p, uint16_t v) { le_put(p, 2, v); }
static inline void put32(uint8_t *p, uint32_t v) { le_put(p, 4, v); }
static inline void put64(uint8_t *p, uint64_t v) { le_put(p, 8, v); }

#endif
