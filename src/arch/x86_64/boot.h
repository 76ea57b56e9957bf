/*
 * x86-64 machine setup for the Linux boot protocol's 64-bit entry:
 * boot_params (zero page) with e820, command line, identity page tables,
 * GDT, MP table, CPUID per vCPU and the BSP's initial registers.
 */
#ifndef POCKETVM_X86_BOOT_H
#define POCKETVM_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/loader.h"
#include "core/vm.h"

/* Fixed low-memory layout (guest physical). */
#define BOOT_GDT_ADDR 0x500
#define BOOT_PARAMS_ADDR 0x7000
#define BOOT_PML4_ADDR 0x9000
#define BOOT_PDPT_ADDR 0xA000
#define BOOT_PD_ADDR 0xB000 /* four pages: 0xB000-0xEFFF, 4 GiB of 2 MiB pages */
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX 4096
#define BOOT_MPTABLE_ADDR 0x9fc00
#define BOOT_EBDA_START 0x9fc00
#define BOOT_HIMEM_START 0x100000

#define BOOT_CS 0x10
#define BOOT_DS 0x18

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX 128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/*
 * boot_e820_build - the guest's memory map for @gm: low RAM below the EBDA,
 * the EBDA/BIOS area reserved, RAM from 1 MiB to the PCI hole, the hole's
 * top part (IOAPIC/LAPIC) reserved, RAM above 4 GiB. Returns entry count.
 */
int boot_e820_build(const struct guest_mem *gm, struct e820_entry *e, int max);

/*
 * boot_params_build - write the zero page for @ki into @zp (4096 bytes):
 * setup header (from a bzImage, or synthesised for an ELF), loader type,
 * command line pointer, initrd, e820. Pure: unit-tested.
 */
void boot_params_build(uint8_t *zp, const struct kernel_info *ki, const struct guest_mem *gm,
		       uint64_t cmdline_gpa, uint32_t cmdline_len, uint64_t initrd_gpa,
		       uint64_t initrd_size);

/* boot_mptable_build - MP floating pointer + config table for @ncpus at @buf. */
size_t boot_mptable_build(uint8_t *buf, size_t max, uint64_t gpa, int ncpus);

/*
 * boot_setup - load kernel and initrd from vm->cfg, write every boot
 * structure into guest memory, and return the entry point in @entry.
 */
int boot_setup(struct vm *vm, uint64_t *entry, char *err, size_t errlen);

/* boot_vcpu_cpuid - this vCPU's CPUID (APIC ID, topology) from the cached table. */
int boot_vcpu_cpuid(struct vm *vm, struct vcpu *v);

/* boot_vcpu_init - CPUID, and long-mode registers at @entry for the BSP. */
int boot_vcpu_init(struct vm *vm, struct vcpu *v, uint64_t entry);

#endif
