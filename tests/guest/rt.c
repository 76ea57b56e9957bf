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

unsigned e820_entries(void)
{
	unsigned n = boot_params ? boot_params[0x1e8] : 0;
	return n < 128 ? n : 128; /* the table's size in the zero page */
}

uint32_t e820_entry(unsigned i, uint64_t *addr, uint64_t *size)
{
	const uint8_t *e = boot_params + 0x2d0 + 20 * i;
	uint32_t type;
	memcpy(addr, e, 8);
	memcpy(size, e + 8, 8);
	memcpy(&type, e + 16, 4);
	return type;
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
/* In entry.S: 256 interrupt entry stubs, 16 bytes each. */
extern char isr_stubs[];

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
		uint64_t cr2;
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		serial_lock = 0; /* the fault may have hit inside printf_serial */
		printf_serial("TEST-FAIL exception: vector %u error %x at rip %x cs %x cr2 %x\n",
			      f->vec, f->err, f->rip, f->cs, cr2);
		reset();
	}
	irq_count[f->vec & 0xff]++;
	if (f->vec != 0xff) /* the LAPIC's spurious vector takes no EOI */
		lapic_eoi();
}

void lapic_eoi(void)
{
	mmio_w32(LAPIC + 0xb0, 0);
}

static struct { uint16_t lim; uint64_t base; } __attribute__((packed)) idtr;

static void tables_init(void)
{
	/* The TSS (bss, zero: an I/O bitmap that allows every port) needs
	 * only RSP0, the bitmap offset and the bitmap's terminating byte. */
	uint64_t t = (uint64_t)tss;
	uint64_t sp0 = (uint64_t)(kstack + sizeof(kstack));
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

	for (int v = 0; v < 256; v++)
		set_gate(v, isr_stubs + 16 * v);
	idtr.lim = sizeof(idt) - 1;
	idtr.base = (uint64_t)idt;
	__asm__ volatile("lidt %0" ::"m"(idtr));
}

/*
 * Our own identity map of the low 4 GiB in 2 MiB pages, user-accessible
 * (the boot map pocketvm builds is supervisor-only), the PCI hole
 * 0xC0000000-0xFFFFFFFF uncached. Bss is zero, so only the used entries
 * are written. The APs load the same CR3.
 */
static uint64_t pt_pml4[512] __attribute__((aligned(4096)));
static uint64_t pt_pdpt[512] __attribute__((aligned(4096)));
static uint64_t pt_pd[4 * 512] __attribute__((aligned(4096)));

static void paging_init(void)
{
	for (uint64_t i = 0; i < 4 * 512; i++)
		pt_pd[i] = i << 21 | 0x87 | (i >= 3 * 512 ? 0x18 : 0); /* P RW U PS (PWT PCD) */
	for (int i = 0; i < 4; i++)
		pt_pdpt[i] = (uint64_t)&pt_pd[512 * i] | 7;
	pt_pml4[0] = (uint64_t)pt_pdpt | 7;
	__asm__ volatile("mov %0, %%cr3" ::"r"((uint64_t)pt_pml4) : "memory");
}

__attribute__((weak)) void kernel_setup(void)
{
}

__attribute__((weak)) void ap_main(int n)
{
	(void)n;
}

/* An AP in long mode, on its own stack (entry.S): share the IDT, run ap_main. */
void rt_ap_entry(int n);
void rt_ap_entry(int n)
{
	__asm__ volatile("lidt %0" ::"m"(idtr));
	ap_main(n);
}

void enter_user(void (*fn)(void), void *sp);
void rt_start(const uint8_t *bp);
void rt_start(const uint8_t *bp)
{
	boot_params = bp;
	paging_init();
	tables_init();
	/* Mask the 8259s: legacy IRQs have no business in a test. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	/* LAPIC software enable (spurious vector register). */
	mmio_w32(LAPIC + 0xf0, 0x1ff);
	kernel_setup();
	enter_user(user_main, ustack + sizeof(ustack));
}
