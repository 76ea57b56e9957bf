/*
 * Test-guest entry points.
 * _start: the BSP, entered by pocketvm in 64-bit mode (boot protocol entry),
 * RSI = boot_params. ap_trampoline: copied below 1 MiB; an AP starts there
 * in real mode after INIT/SIPI and climbs to long mode.
 */
#define AP_MAX 63	/* APs with a stack (APIC ids up to 63) */

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	lea	bsp_stack_top(%rip), %rsp
	mov	%rsi, %rdi
	call	rt_start
1:	hlt
	jmp	1b

/*
 * PVH entry (Xen's 32-bit direct boot, which QEMU's -kernel uses for ELF
 * files carrying this note): protected mode, paging off, EBX = start_info.
 * Build an identity map of 4 GiB, enter long mode, then continue as _start
 * with RDI = 0 and the start_info pointer in pvh_start_info.
 */
	.pushsection .note.pvh, "a"
	.align	4
	.long	4		/* name size */
	.long	4		/* desc size */
	.long	18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.long	pvh_start
	.popsection

	.code32
	.globl	pvh_start
pvh_start:
	cli
	mov	%ebx, pvh_start_info
	/* PML4 -> PDPT -> 4 PDs of 2 MiB pages */
	mov	$pvh_pml4, %edi
	mov	$pvh_pdpt, %eax
	or	$3, %eax
	mov	%eax, (%edi)
	mov	$pvh_pdpt, %edi
	mov	$pvh_pd, %eax
	or	$3, %eax
	mov	$4, %ecx
1:	mov	%eax, (%edi)
	add	$4096, %eax
	add	$8, %edi
	loop	1b
	mov	$pvh_pd, %edi
	xor	%eax, %eax
	mov	$2048, %ecx
2:	mov	%eax, %edx
	or	$0x83, %edx
	mov	%edx, (%edi)
	movl	$0, 4(%edi)
	add	$0x200000, %eax
	add	$8, %edi
	loop	2b
	mov	%cr4, %eax
	or	$0x20, %eax
	mov	%eax, %cr4
	mov	$pvh_pml4, %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx
	rdmsr
	or	$0x100, %eax
	wrmsr
	lgdt	pvh_gdtr
	mov	%cr0, %eax
	or	$0x80000001, %eax
	mov	%eax, %cr0
	ljmp	$0x08, $pvh_64
	.code64
pvh_64:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	xor	%esi, %esi
	jmp	_start

	.section .rodata
	.align	8
pvh_gdtr:
	.word	gdt_end - gdt - 1
	.long	gdt

	.bss
	.align	4096
pvh_pml4:	.skip	4096
pvh_pdpt:	.skip	4096
pvh_pd:		.skip	4 * 4096
	.data
	.globl	pvh_start_info
pvh_start_info:	.long	0

/*
 * Interrupt entry stubs, one per vector, 16 bytes apart from isr_stubs:
 * push a zero error code where the CPU pushes none, push the vector, then
 * save registers and call rt_interrupt.
 */
	.text
	.align	16
	.globl	isr_stubs
isr_stubs:
	.set	vec, 0
	.rept	256
	.align	16
	.if	(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	isr_common
	.set	vec, vec + 1
	.endr
isr_common:
	push	%rax
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	mov	%rsp, %rdi
	cld
	call	rt_interrupt
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$16, %rsp
	iretq

/* enter_user(rip, rsp): iretq to CPL 3 with IOPL 3 and interrupts on. */
	.globl	enter_user
enter_user:
	pushq	$0x1b		/* user data | RPL 3 */
	pushq	%rsi
	pushq	$0x3202		/* IOPL 3, IF */
	pushq	$0x23		/* user code | RPL 3 */
	pushq	%rdi
	iretq

/*
 * AP trampoline, position independent in real mode: CS = segment of the
 * page it was copied to. tramp_* fields are patched by the BSP.
 */
	.section .rodata
	.code16
	.globl	ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	mov	%cs, %ax
	mov	%ax, %ds
	lgdtl	tramp_gdtr - ap_trampoline
	mov	%cr0, %eax
	or	$1, %eax
	mov	%eax, %cr0
	ljmpl	*(tramp_pm32 - ap_trampoline)
	.align	8
tramp_gdtr:
	.word	gdt_end - gdt - 1
	.long	gdt
	.align	8
tramp_pm32:
	.long	ap_pm32		/* absolute: the guest is identity mapped */
	.word	0x30		/* 32-bit kernel code selector */
ap_trampoline_end:

	.text
	.code32
	.globl	ap_pm32
ap_pm32:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%cr4, %eax
	or	$0x20, %eax		/* PAE */
	mov	%eax, %cr4
	mov	ap_cr3, %eax
	mov	%eax, %cr3
	mov	$0xc0000080, %ecx	/* EFER */
	rdmsr
	or	$0x100, %eax		/* LME */
	wrmsr
	mov	%cr0, %eax
	or	$0x80000000, %eax	/* PG */
	mov	%eax, %cr0
	ljmp	$0x08, $ap_lm64
	.code64
ap_lm64:
	mov	$0x10, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$1, %eax
	lock xadd %eax, ap_stack_next(%rip)
	mov	%eax, %edi		/* AP number, 0.. in start order */
	cmp	$AP_MAX, %eax
	jae	2f			/* no stack left for this one */
	inc	%rax
	shl	$12, %rax
	lea	ap_stacks(%rip), %rsp
	add	%rax, %rsp		/* top of stack page n */
	call	rt_ap_entry
2:	cli
	hlt
	jmp	2b

	.data
	.align	16
	.globl	gdt
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08 kernel code 64 */
	.quad	0x00cf92000000ffff	/* 0x10 kernel data */
	.quad	0x00cff2000000ffff	/* 0x18 user data */
	.quad	0x00affa000000ffff	/* 0x20 user code 64 */
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x30 kernel code 32 (AP trampoline) */
	.quad	0, 0			/* 0x38 TSS, filled in by rt.c */
gdt_end:
	.globl	ap_cr3
ap_cr3:	.long	0
	.globl	ap_stack_next
ap_stack_next:	.long	0

	.bss
	.align	4096
	.globl	ap_stacks
ap_stacks:	.skip	4096 * AP_MAX
	.align	16
bsp_kstack:	.skip	16384
	.globl	bsp_stack_top
bsp_stack_top:
