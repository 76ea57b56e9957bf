/*
 * The test-guest runtime: serial output, port and MMIO access, PCI
 * configuration, a GDT/TSS/IDT, the switch to CPL 3 with IOPL 3, LAPIC
 * helpers, and the pass/fail protocol the integration tests read
 * ("TEST-PASS name" or "TEST-FAIL name: why", then an i8042 reset).
 */
#ifndef TG_RT_H
#define TG_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outw(uint16_t p, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(uint16_t p, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline uint8_t inb(uint16_t p) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint16_t inw(uint16_t p) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint32_t inl(uint16_t p) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }

static inline uint8_t mmio_r8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_r16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_r32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_w8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_w16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_w32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_w64(uint64_t a, uint64_t v) { mmio_w32(a, (uint32_t)v); mmio_w32(a + 4, (uint32_t)(v >> 32)); }

static inline int cpl(void) { uint16_t cs; __asm__ volatile("mov %%cs, %0" : "=r"(cs)); return cs & 3; }
#define barrier() __asm__ volatile("mfence" ::: "memory")

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}
/* Give-up time for waits, in TSC ticks: 5-20 s at 1-4 GHz. A TSC deadline
 * rather than a spin count, as a spin that reads MMIO exits each time. */
#define TSC_TIMEOUT 20000000000ULL

void putc_serial(char c);
void puts_serial(const char *s);
void printf_serial(const char *fmt, ...);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* End the test: print the verdict and reset the machine (never returns). */
__attribute__((noreturn)) void test_pass(const char *name);
__attribute__((noreturn)) void test_fail(const char *name, const char *why);
#define CHECK_OR_FAIL(cond, name)                                              \
	do {                                                                   \
		if (!(cond))                                                   \
			test_fail(name, #cond);                                \
	} while (0)

/* PCI configuration mechanism #1, bus 0. */
uint32_t pci_read32(int slot, int off);
void pci_write32(int slot, int off, uint32_t v);
uint16_t pci_read16(int slot, int off);
void pci_write16(int slot, int off, uint16_t v);
/* First slot with vendor:device, or -1. */
int pci_find(uint16_t vendor, uint16_t device);
/* Address of memory BAR @bar (32- or 64-bit). */
uint64_t pci_bar(int slot, int bar);

/* Interrupts: counts per vector, updated by the CPL 0 handler. */
extern volatile uint32_t irq_count[256];
void lapic_eoi(void);

/* Boot parameters (the zero page) and the command line. */
extern const uint8_t *boot_params;
const char *cmdline(void);
/* Value of "key=N" on the command line, or @def. */
uint64_t cmdline_num(const char *key, uint64_t def);
/* The zero page's e820 table (empty under PVH): the number of entries, and
 * entry @i's range and type (1: RAM). */
unsigned e820_entries(void);
uint32_t e820_entry(unsigned i, uint64_t *addr, uint64_t *size);

/* Each test program provides this; it runs at CPL 3 with IOPL 3. */
void user_main(void);
/* Optional: runs at CPL 0 before the switch (default: nothing). */
void kernel_setup(void);
/* APs call this in CPL 0 after reaching long mode (smp test). */
void ap_main(int n);

#endif
