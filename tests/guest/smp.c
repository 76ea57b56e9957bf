/* Bring up the APs with INIT/SIPI; each reports in. cmdline: cpus=N. */
#include "rt.h"

#define N "smp"
#define LAPIC 0xFEE00000ULL
#define TRAMPOLINE 0x10000

extern const char ap_trampoline[], ap_trampoline_end[];
extern uint32_t ap_cr3;
static volatile uint32_t online;

void ap_main(int n)
{
	uint32_t id = mmio_r32(LAPIC + 0x20) >> 24;
	printf_serial("CPU %u online (AP %u)\n", (unsigned long)id, (unsigned long)n);
	__atomic_add_fetch(&online, 1, __ATOMIC_SEQ_CST);
}

static void ipi(uint32_t apic, uint32_t icr)
{
	mmio_w32(LAPIC + 0x310, apic << 24);
	mmio_w32(LAPIC + 0x300, icr);
	while (mmio_r32(LAPIC + 0x300) & (1u << 12))
		;
}

static void delay(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		;
}

void kernel_setup(void)
{
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	ap_cr3 = (uint32_t)cr3;
	memcpy((void *)TRAMPOLINE, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	uint32_t cpus = (uint32_t)cmdline_num("cpus", 1);
	for (uint32_t a = 1; a < cpus; a++) {
		ipi(a, 0x4500);			    /* INIT */
		delay(1000);
		ipi(a, 0x4600 | (TRAMPOLINE >> 12)); /* SIPI */
	}
}

void user_main(void)
{
	uint32_t cpus = (uint32_t)cmdline_num("cpus", 1);
	for (uint64_t spin = 0; online < cpus - 1; spin++)
		if (spin > 4000000000ULL)
			test_fail(N, "not every AP came online");
	printf_serial("TEST-PASS smp cpus=%u\n", (unsigned long)(online + 1));
	outb(0x64, 0xfe);
	for (;;)
		;
}
