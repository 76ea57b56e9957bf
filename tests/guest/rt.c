/* Test-guest runtime (see rt.h). Runs at CPL 0 until it enters user_main. */
#include <stdarg.h>

#include "rt.h"

#define COM1 0x3f8
#define LAPIC 0xFEE00000ULL

const uint8_t *boot_params;
volatile uint32_t irq_count[256];

/* ---- strings and serial ---- */

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

static volatile int serial_lock;

void putc_serial(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

static void put_num(uint64_t v, unsigned base)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		putc_serial(buf[--n]);
}

void printf_serial(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	while (__atomic_exchange_n(&serial_lock, 1, __ATOMIC_ACQUIRE))
		;
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc_serial(*fmt);
			continue;
		}
		switch (*++fmt) {
		case 'd': {
			long v = va_arg(ap, long);
			if (v < 0) {
				putc_serial('-');
				v = -v;
			}
			put_num((uint64_t)v, 10);
			break;
		}
		case 'u': put_num(va_arg(ap, unsigned long), 10); break;
		case 'x': put_num(va_arg(ap, unsigned long), 16); break;
		case 's': puts_serial(va_arg(ap, const char *)); break;
		case 'c': putc_serial((char)va_arg(ap, int)); break;
		default: putc_serial(*fmt); break;
		}
	}
	__atomic_store_n(&serial_lock, 0, __ATOMIC_RELEASE);
	va_end(ap);
}

__attribute__((noreturn)) static void reset(void)
{
	outb(0x64, 0xfe); /* i8042 reset: pocketvm exits with status 0 */
	for (;;)
		;
}

void test_pass(const char *name)
{
	printf_serial("TEST-PASS %s\n", name);
	reset();
}

void test_fail(const char *name, const char *why)
{
	printf_serial("TEST-FAIL %s: %s\n", name, why);
	reset();
}

/* ---- PCI ---- */

static uint32_t pci_addr(int slot, int off)
{
	return 0x80000000u | (uint32_t)slot << 11 | (uint32_t)(off & 0xfc);
}

uint32_t pci_read32(int slot, int off)
{
	outl(0xcf8, pci_addr(slot, off));
	return inl(0xcfc);
}

void pci_write32(int slot, int off, uint32_t v)
{
	outl(0xcf8, pci_addr(slot, off));
	outl(0xcfc, v);
}

uint16_t pci_read16(int slot, int off)
{
	outl(0xcf8, pci_addr(slot, off));
	return inw((uint16_t)(0xcfc + (off & 2)));
}

void pci_write16(int slot, int off, uint16_t v)
{
	outl(0xcf8, pci_addr(slot, off));
	outw((uint16_t)(0xcfc + (off & 2)), v);
}

int pci_find(uint16_t vendor, uint16_t device)
{
	for (int s = 0; s < 32; s++)
		if (pci_read32(s, 0) == ((uint32_t)device << 16 | vendor))
			return s;
	return -1;
}

uint64_t pci_bar(int slot, int bar)
{
	uint32_t lo = pci_read32(slot, 0x10 + 4 * bar);
	uint64_t a = lo & ~0xfULL;
	if ((lo & 6) == 4)
		a |= (uint64_t)pci_read32(slot, 0x14 + 4 * bar) << 32;
	return a;
}

/* ---- command line ---- */

/* Set by the PVH entry (QEMU): struct hvm_start_info, cmdline_paddr at 24. */
extern uint32_t pvh_start_info;

const char *cmdline(void)
{
	if (!boot_params) {
		if (!pvh_start_info)
			return "";
		uint64_t p = *(const uint64_t *)(uintptr_t)(pvh_start_info + 24);
		return p ? (const char *)(uintptr_t)p : "";
	}
	uint32_t p = (uint32_t)boot_params[0x228] | (uint32_t)boot_params[0x229] << 8 |
		     (uint32_t)boot_params[0x22a] << 16 | (uint32_t)boot_params[0x22b] << 24;
	return p ? (const char *)(uintptr_t)p : "";
}

uint64_t cmdline_num(const char *key, uint64_t def)
{
	const char *s = cmdline();
	size_t k = 0;
	while (key[k])
		k++;
	for (; *s; s++) {
		if ((s == cmdline() || s[-1] == ' ') && !memcmp(s, key, k) && s[k] == '=') {
			uint64_t v = 0;
			for (s += k + 1; *s >= '0' && *s <= '9'; s++)
				v = v * 10 + (uint64_t)(*s - '0');
			return v;
		}
	}
	return def;
}

/* ---- descriptor tables ---- */

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
/* TSS with an I/O permission bitmap that allows every port (all zeros),
 * for hosts that check the bitmap rather than IOPL at CPL 3. */
#define TSS_SIZE (104 + 8192 + 1)
static uint8_t tss[TSS_SIZE] __attribute__((aligned(16)));
static uint8_t kstack[16384] __attribute__((aligned(16)));
static uint8_t ustack[65536] __attribute__((aligned(16)));

/* In entry.S, where the AP trampoline's GDT pointer can name it. */
extern uint64_t gdt[9];

#define ISR(v) extern char isr_##v[];
ISR(0) ISR(1) ISR(2) ISR(3) ISR(4) ISR(5) ISR(6) ISR(7) ISR(8) ISR(9) ISR(10) ISR(11)
ISR(12) ISR(13) ISR(14) ISR(15) ISR(16) ISR(17) ISR(18) ISR(19) ISR(64) ISR(65)
#undef ISR

static void set_gate(int v, void *fn)
{
	uint64_t a = (uint64_t)fn;
	idt[v] = (struct idt_entry){ .off0 = (uint16_t)a, .sel = 0x08, .type = 0x8e,
				     .off1 = (uint16_t)(a >> 16), .off2 = (uint32_t)(a >> 32) };
}

struct frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax, vec, err, rip, cs, rflags, rsp, ss;
};

void rt_interrupt(struct frame *f);
void rt_interrupt(struct frame *f)
{
	if (f->vec < 32) {
		printf_serial("TEST-FAIL exception: vector %u error %x at rip %x cs %x\n",
			      f->vec, f->err, f->rip, f->cs);
		reset();
	}
	irq_count[f->vec & 0xff]++;
	lapic_eoi();
}

void lapic_eoi(void)
{
	mmio_w32(LAPIC + 0xb0, 0);
}

static void tables_init(void)
{
	uint64_t t = (uint64_t)tss;
	uint64_t sp0 = (uint64_t)(kstack + sizeof(kstack));
	memset(tss, 0, sizeof(tss));
	memcpy(tss + 4, &sp0, 8); /* RSP0 */
	tss[102] = 104;		  /* I/O bitmap right after the fixed part */
	tss[TSS_SIZE - 1] = 0xff; /* the bitmap's terminating byte */
	gdt[7] = 0x0000890000000000ULL | (sizeof(tss) - 1) | (t & 0xffffff) << 16 |
		 ((t >> 24) & 0xff) << 56;
	gdt[8] = t >> 32;
	struct { uint16_t lim; uint64_t base; } __attribute__((packed)) gd = { 9 * 8 - 1,
									   (uint64_t)gdt };
	__asm__ volatile("lgdt %0" ::"m"(gd));
	__asm__ volatile("mov $0x10, %%ax; mov %%ax, %%ds; mov %%ax, %%es; mov %%ax, %%ss;"
			 "pushq $0x08; lea 1f(%%rip), %%rax; pushq %%rax; lretq; 1:" ::: "rax", "memory");
	__asm__ volatile("ltr %w0" ::"r"(0x38));

	void *stubs[] = { isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7, isr_8, isr_9,
			  isr_10, isr_11, isr_12, isr_13, isr_14, isr_15, isr_16, isr_17, isr_18,
			  isr_19 };
	for (int v = 0; v < 20; v++)
		set_gate(v, stubs[v]);
	set_gate(64, isr_64);
	set_gate(65, isr_65);
	struct { uint16_t lim; uint64_t base; } __attribute__((packed)) id = { sizeof(idt) - 1,
									   (uint64_t)idt };
	__asm__ volatile("lidt %0" ::"m"(id));
}

/* Let CPL 3 use the VMM's identity map: set the user bit on every level. */
static void paging_user(void)
{
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	uint64_t *pml4 = (uint64_t *)(cr3 & ~0xfffULL);
	pml4[0] |= 4;
	uint64_t *pdpt = (uint64_t *)(pml4[0] & ~0xfffULL);
	for (int i = 0; i < 4; i++) {
		pdpt[i] |= 4;
		uint64_t *pd = (uint64_t *)(pdpt[i] & ~0xfffULL);
		for (int j = 0; j < 512; j++)
			pd[j] |= 4;
	}
	__asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
}

__attribute__((weak)) void kernel_setup(void)
{
}

__attribute__((weak)) void ap_main(int n)
{
	(void)n;
}

void enter_user(void (*fn)(void), void *sp);
void rt_start(const uint8_t *bp);
void rt_start(const uint8_t *bp)
{
	boot_params = bp;
	tables_init();
	paging_user();
	/* LAPIC software enable (spurious vector register). */
	mmio_w32(LAPIC + 0xf0, 0x1ff);
	kernel_setup();
	enter_user(user_main, ustack + sizeof(ustack));
}
