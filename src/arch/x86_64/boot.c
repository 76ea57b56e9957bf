/*
 * x86-64 boot: the structures the Linux boot protocol's 64-bit entry expects
 * (Documentation/arch/x86/boot.rst), built in guest memory by the VMM so the
 * guest never runs real-mode setup code or its own decompressor.
 */
#include "arch/x86_64/boot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/le.h"
#include "core/log.h"

/* boot_params offsets */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0

#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80

int boot_e820_build(const struct guest_mem *gm, struct e820_entry *e, int max)
{
	int n = 0;
	uint64_t low_end = gm_low_end(gm);

	if (max < 5 || low_end <= BOOT_HIMEM_START)
		return 0;
	e[n++] = (struct e820_entry){ 0, BOOT_EBDA_START, E820_RAM };
	e[n++] = (struct e820_entry){ BOOT_EBDA_START, BOOT_HIMEM_START - BOOT_EBDA_START,
				      E820_RESERVED };
	e[n++] = (struct e820_entry){ BOOT_HIMEM_START, low_end - BOOT_HIMEM_START, E820_RAM };
	/* IOAPIC, LAPIC and the old BIOS area at the top of the hole. */
	e[n++] = (struct e820_entry){ 0xFEC00000ULL, GM_HIGH_START - 0xFEC00000ULL,
				      E820_RESERVED };
	for (int i = 1; i < gm->nr_regions && n < max; i++)
		e[n++] = (struct e820_entry){ gm->region[i].gpa, gm->region[i].size, E820_RAM };
	return n;
}

void boot_params_build(uint8_t *zp, const struct kernel_info *ki, const struct guest_mem *gm,
		       uint64_t cmdline_gpa, uint32_t cmdline_len, uint64_t initrd_gpa,
		       uint64_t initrd_size)
{
	struct e820_entry e820[E820_MAX];

	memset(zp, 0, 4096);
	if (ki->bzimage) {
		/* Keep the kernel's own setup header, as a boot loader does. */
		memcpy(zp + BP_HDR, ki->setup_hdr, SETUP_HDR_MAX);
	} else {
		put16(zp + BP_BOOT_FLAG, 0xAA55);
		memcpy(zp + BP_HEADER, "HdrS", 4);
		put16(zp + BP_VERSION, 0x020f);
		put32(zp + BP_KERNEL_ALIGNMENT, 0x1000000);
		put32(zp + BP_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
	}
	zp[BP_TYPE_OF_LOADER] = 0xff; /* undefined loader */
	zp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	put16(zp + BP_HEAP_END_PTR, 0xfe00);
	put32(zp + BP_CMD_LINE_PTR, (uint32_t)cmdline_gpa);
	zp[BP_EXT_CMD_LINE_PTR] = (uint8_t)(cmdline_gpa >> 32);
	(void)cmdline_len;
	put32(zp + BP_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
	put32(zp + BP_RAMDISK_SIZE, (uint32_t)initrd_size);
	put32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_gpa >> 32));
	put32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(initrd_size >> 32));

	int n = boot_e820_build(gm, e820, E820_MAX);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		uint8_t *p = zp + BP_E820_TABLE + 20 * i;
		put64(p, e820[i].addr);
		put64(p + 8, e820[i].size);
		put32(p + 16, e820[i].type);
	}
}

static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

#define MP_IOAPIC_ADDR 0xFEC00000U
#define MP_LAPIC_ADDR 0xFEE00000U

size_t boot_mptable_build(uint8_t *buf, size_t max, uint64_t gpa, int ncpus)
{
	/* floating pointer 16 + header 44 + cpus 20n + 2 buses 16 + ioapic 8 +
	 * 16 irqs 8 each + 2 local ints 16 */
	size_t need = 16 + 44 + 20 * (size_t)ncpus + 16 + 8 + 16 * 8 + 16;
	if (need > max || ncpus < 1 || ncpus > 254)
		return 0;
	memset(buf, 0, need);

	uint8_t *fp = buf, *hdr = buf + 16, *p = hdr + 44;
	uint16_t count = 0;
	uint8_t ioapic_id = (uint8_t)ncpus;

	for (int i = 0; i < ncpus; i++, count++) {
		p[0] = 0;		  /* processor */
		p[1] = (uint8_t)i;	  /* local APIC id */
		p[2] = 0x14;		  /* local APIC version */
		p[3] = 0x01 | (i == 0 ? 0x02 : 0); /* enabled, bootstrap */
		put32(p + 4, 0x600);	  /* family 6 */
		put32(p + 8, 0x201);	  /* FPU, APIC */
		p += 20;
	}
	p[0] = 1; p[1] = 0; memcpy(p + 2, "PCI   ", 6); p += 8; count++;
	p[0] = 1; p[1] = 1; memcpy(p + 2, "ISA   ", 6); p += 8; count++;
	p[0] = 2; p[1] = ioapic_id; p[2] = 0x11; p[3] = 1; put32(p + 4, MP_IOAPIC_ADDR);
	p += 8; count++;
	for (int irq = 0; irq < 16; irq++, count++) {
		p[0] = 3;	/* I/O interrupt */
		p[1] = 0;	/* INT */
		put16(p + 2, 0); /* conforms to bus */
		p[4] = 1;	/* ISA */
		p[5] = (uint8_t)irq;
		p[6] = ioapic_id;
		p[7] = (uint8_t)irq;
		p += 8;
	}
	p[0] = 4; p[1] = 3; p[4] = 1; p[5] = 0; p[6] = 0xff; p[7] = 0; /* ExtINT -> LINT0 */
	p += 8; count++;
	p[0] = 4; p[1] = 1; p[4] = 1; p[5] = 0; p[6] = 0xff; p[7] = 1; /* NMI -> LINT1 */
	p += 8; count++;

	memcpy(hdr, "PCMP", 4);
	put16(hdr + 4, (uint16_t)(p - hdr));
	hdr[6] = 4; /* spec 1.4 */
	memcpy(hdr + 8, "POCKETVM", 8);
	memcpy(hdr + 16, "PVM-X86     ", 12);
	put16(hdr + 34, count);
	put32(hdr + 36, MP_LAPIC_ADDR);
	hdr[7] = mp_checksum(hdr, (size_t)(p - hdr));

	memcpy(fp, "_MP_", 4);
	put32(fp + 4, (uint32_t)(gpa + 16));
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = 4; /* spec 1.4 */
	fp[10] = mp_checksum(fp, 16);
	return (size_t)(p - buf);
}

static void boot_page_tables(struct guest_mem *gm)
{
	uint8_t *pml4 = gm_ptr(gm, BOOT_PML4_ADDR, 4096);
	uint8_t *pdpt = gm_ptr(gm, BOOT_PDPT_ADDR, 4096);
	uint8_t *pd = gm_ptr(gm, BOOT_PD_ADDR, 4 * 4096);

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	put64(pml4, BOOT_PDPT_ADDR | 0x3);
	for (int i = 0; i < 4; i++)
		put64(pdpt + 8 * i, (BOOT_PD_ADDR + 4096ULL * i) | 0x3);
	for (uint64_t i = 0; i < 4 * 512; i++)
		put64(pd + 8 * i, (i << 21) | 0x83); /* present, writable, 2 MiB */
}

static void boot_gdt(struct guest_mem *gm)
{
	uint8_t *gdt = gm_ptr(gm, BOOT_GDT_ADDR, 5 * 8);

	put64(gdt + 0, 0);
	put64(gdt + 8, 0);
	put64(gdt + 16, 0x00af9b000000ffffULL); /* 0x10: 64-bit code */
	put64(gdt + 24, 0x00cf93000000ffffULL); /* 0x18: data */
	put64(gdt + 32, 0x00808b0000000067ULL); /* 0x20: TSS (busy) */
}

/* Read the default or configured command line and place it in guest RAM. */
int boot_setup(struct vm *vm, uint64_t *entry, char *err, size_t errlen)
{
	struct guest_mem *gm = &vm->mem;
	struct kernel_info ki;
	uint64_t initrd_gpa = 0, initrd_size = 0;
	int r;

	if (gm_low_end(gm) < 16ULL << 20) {
		snprintf(err, errlen, "guest memory must be at least 16 MiB");
		return -EINVAL;
	}
	r = kernel_load(gm, vm->cfg.kernel, &ki, err, errlen);
	if (r)
		return r;
	if (vm->cfg.initrd) {
		uint64_t max = ki.initrd_addr_max ? ki.initrd_addr_max : 0xffffffffULL;
		r = initrd_load(gm, vm->cfg.initrd, ki.load_end, max, &initrd_gpa, &initrd_size,
				err, errlen);
		if (r)
			return r;
	}
	const char *cmdline = vm->cfg.cmdline ? vm->cfg.cmdline : "";
	size_t len = strlen(cmdline);
	if (len >= BOOT_CMDLINE_MAX) {
		snprintf(err, errlen, "command line is %zu bytes, the limit is %d", len,
			 BOOT_CMDLINE_MAX - 1);
		return -EINVAL;
	}
	gm_write(gm, BOOT_CMDLINE_ADDR, cmdline, len + 1);

	boot_params_build(gm_ptr(gm, BOOT_PARAMS_ADDR, 4096), &ki, gm, BOOT_CMDLINE_ADDR,
			  (uint32_t)len, initrd_gpa, initrd_size);
	if (!boot_mptable_build(gm_ptr(gm, BOOT_MPTABLE_ADDR, 1024), 1024, BOOT_MPTABLE_ADDR,
				vm->cfg.cpus)) {
		snprintf(err, errlen, "cannot build an MP table for %d vCPUs", vm->cfg.cpus);
		return -EINVAL;
	}
	boot_page_tables(gm);
	boot_gdt(gm);
	*entry = ki.entry;
	pr_info("boot: %s kernel (%s), entry %#llx, image %#llx-%#llx, initrd %#llx+%#llx",
		ki.bzimage ? "bzImage" : "ELF", ki.compression, (unsigned long long)ki.entry,
		(unsigned long long)ki.load_start, (unsigned long long)ki.load_end,
		(unsigned long long)initrd_gpa, (unsigned long long)initrd_size);
	return 0;
}

static void boot_cpuid_for_vcpu(struct kvm_cpuid2 *c, int id, int ncpus)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)id << 24) |
				 ((uint32_t)ncpus << 16);
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count field is valid */
			e->ecx |= 1u << 31;	    /* running under a hypervisor */
			break;
		case 0xb:
		case 0x1f:
			e->edx = (uint32_t)id;
			break;
		default:
			break;
		}
	}
}

int boot_vcpu_cpuid(struct vm *vm, struct vcpu *v)
{
	size_t sz = sizeof(struct kvm_cpuid2) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);

	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, sz);
	boot_cpuid_for_vcpu(c, v->id, vm->cfg.cpus);
	int r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	if (r)
		pr_err("boot: vcpu%d: KVM_SET_CPUID2: %s", v->id, strerror(-r));
	return r;
}

int boot_vcpu_init(struct vm *vm, struct vcpu *v, uint64_t entry)
{
	int r = boot_vcpu_cpuid(vm, v);
	if (r)
		return r;
	if (v->id != 0)
		return 0; /* APs wait for INIT/SIPI in the in-kernel LAPIC */

	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = BOOT_CS,
				    .type = 11, .present = 1, .dpl = 0, .db = 0, .s = 1,
				    .l = 1, .g = 1 };
	struct kvm_segment data = code;
	data.selector = BOOT_DS;
	data.type = 3;
	data.l = 0;
	data.db = 1;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .selector = 0x20, .type = 11,
					 .present = 1, .s = 0 };
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80050033; /* PG, AM, WP, NE, ET, MP, PE */
	sregs.cr3 = BOOT_PML4_ADDR;
	sregs.cr4 = 0x20;	/* PAE */
	sregs.efer = 0x500;	/* LME, LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	struct kvm_regs regs = { 0 };
	regs.rip = entry;
	regs.rsi = BOOT_PARAMS_ADDR;
	regs.rsp = 0x8ff0;
	regs.rflags = 0x2;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}
