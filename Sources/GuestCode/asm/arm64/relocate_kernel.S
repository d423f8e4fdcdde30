/*
 * kexec-sim: arm64 relocation routine, modelled on the behaviour of
 * arch/arm64/kernel/relocate_kernel.S (written from scratch). Two entry points in one blob, which
 * is loaded at offset 0 of the control code page and runs from there at EL1.
 *
 * arm64_relocate_new_kernel: MMU-off relocation (the kernel before v5.15). Entered through
 * cpu_soft_restart with the MMU and caches off (SCTLR_EL1.M = C = 0), at the control page's
 * physical address. Per IND_SOURCE entry: invalidate the destination's cache lines to the point of
 * coherency (dc ivac), then copy the page with ldp/stp; at the end dsb, ic iallu, isb.
 *
 * arm64_relocate_new_kernel_mmu_on: MMU-on relocation (v5.15 and later). Entered with the MMU and
 * caches on, executing through TTBR0_EL1 = an identity map of the control page
 * (trans_pgd_idmap_page), so that turning the MMU off later continues at the same address. The
 * data side runs through TTBR1_EL1 = the copy of the linear map (trans_pgd_create_copy over
 * PAGE_OFFSET..PAGE_END): the linear map lives in the upper VA half, so only TTBR1 can hold it.
 * The routine switches TTBR1 to that copy itself (break-before-make through a zero page, TLBI),
 * turns every list address into its linear-map VA by subtracting phys_offset, copies with the
 * MMU on, cleans and invalidates each destination to the point of coherency (dc civac), then
 * dsb, ic iallu, isb, turns the MMU and caches off (SCTLR_EL1.M, C, I = 0; isb) and jumps to the
 * physical entry.
 *
 * Register contract on entry (both entry points):
 *   x0 = kimage head: the first IND_* entry (physical address | flags)
 *   x1 = entry point, physical (the purgatory, or the kernel)
 *   x2 = DTB, physical
 *   x3 = phys_offset = PHYS_OFFSET - PAGE_OFFSET (mod 2^64), kimage->arch.phys_offset:
 *        linear-map VA = PA - x3                                   (mmu-on only)
 *   x4 = TTBR1 value: physical address of the linear-map copy's root; 0 keeps TTBR1 (mmu-on only)
 *   x5 = physical address of a zeroed page, for the break-before-make switch  (mmu-on only)
 *   x6 = kimage page size in bytes: 4096, 16384 or 65536 (the kernel's PAGE_SIZE); 0 = 4096
 * Entries hold IND_DESTINATION 0x1, IND_INDIRECTION 0x2, IND_DONE 0x4, IND_SOURCE 0x8 in their
 * low bits; an entry with no flag is skipped; the head itself is the first entry.
 *
 * On exit: MMU off, PC = entry, x0 = DTB, x1 = x2 = x3 = 0 (other registers are scratch).
 *
 * Position independent: no literal pools, no relocations.
 */

#define IND_DESTINATION_BIT	0
#define IND_INDIRECTION_BIT	1
#define IND_DONE_BIT		2
#define IND_SOURCE_BIT		3

#define SCTLR_M			(1 << 0)
#define SCTLR_C			(1 << 2)
#define SCTLR_I			(1 << 12)

/* \reg = the smallest data cache line in bytes: 4 << CTR_EL0.DminLine. */
.macro dcache_line_size reg, tmp
	mrs	\tmp, ctr_el0
	ubfx	\tmp, \tmp, #16, #4
	mov	\reg, #4
	lsl	\reg, \reg, \tmp
.endm

/*
 * Copy one page from \src to \dest (both page aligned), 64 bytes per iteration, until \src is
 * page aligned again (\mask = page size - 1). Leaves \src and \dest one page further.
 */
.macro copy_page dest, src, mask, t1, t2, t3, t4, t5, t6, t7, t8
9998:	ldp	\t1, \t2, [\src]
	ldp	\t3, \t4, [\src, #16]
	ldp	\t5, \t6, [\src, #32]
	ldp	\t7, \t8, [\src, #48]
	add	\src, \src, #64
	stp	\t1, \t2, [\dest]
	stp	\t3, \t4, [\dest, #16]
	stp	\t5, \t6, [\dest, #32]
	stp	\t7, \t8, [\dest, #48]
	add	\dest, \dest, #64
	tst	\src, \mask
	b.ne	9998b
.endm

	.text
	.balign	4

/*
 * MMU off. x16 = current entry, x14 = list pointer, x13 = destination, x12 = entry address,
 * x15 = cache line size, x19 = page mask, x17 = entry point, x18 = DTB.
 */
	.globl	arm64_relocate_new_kernel
	.type	arm64_relocate_new_kernel, %function
arm64_relocate_new_kernel:
	mov	x18, x2
	mov	x17, x1
	mov	x16, x0
	cbnz	x6, 1f
	mov	x6, #4096
1:	sub	x19, x6, #1
	dcache_line_size x15, x0
	mov	x14, xzr
	mov	x13, xzr
	tbnz	x16, #IND_DONE_BIT, .Loff_done

.Loff_loop:
	bic	x12, x16, x19
	tbz	x16, #IND_SOURCE_BIT, .Loff_test_indirection

	/* Invalidate the destination page to the point of coherency. */
	add	x20, x13, x6
	sub	x1, x15, #1
	bic	x0, x13, x1
2:	dc	ivac, x0
	add	x0, x0, x15
	cmp	x0, x20
	b.lo	2b
	dsb	sy

	copy_page x13, x12, x19, x0, x1, x2, x3, x4, x5, x7, x8	/* dest += page */
	b	.Loff_next

.Loff_test_indirection:
	tbz	x16, #IND_INDIRECTION_BIT, .Loff_test_destination
	mov	x14, x12
	b	.Loff_next

.Loff_test_destination:
	tbz	x16, #IND_DESTINATION_BIT, .Loff_next
	mov	x13, x12

.Loff_next:
	ldr	x16, [x14], #8
	tbz	x16, #IND_DONE_BIT, .Loff_loop

.Loff_done:
	dsb	nsh
	ic	iallu
	dsb	nsh
	isb

	mov	x0, x18
	mov	x1, xzr
	mov	x2, xzr
	mov	x3, xzr
	br	x17
	.size	arm64_relocate_new_kernel, . - arm64_relocate_new_kernel

/*
 * MMU on. As above, plus x22 = phys_offset, x17 = linear-map copy, x18 = zero page,
 * x28 = entry point, x26 = DTB; x12, x13, x14 hold linear-map VAs.
 */
	.globl	arm64_relocate_new_kernel_mmu_on
	.type	arm64_relocate_new_kernel_mmu_on, %function
arm64_relocate_new_kernel_mmu_on:
	mov	x28, x1
	mov	x26, x2
	mov	x22, x3
	mov	x17, x4
	mov	x18, x5
	mov	x16, x0
	cbnz	x6, 1f
	mov	x6, #4096
1:	sub	x19, x6, #1
	dcache_line_size x15, x1

	/* TTBR1 = the linear-map copy, break-before-make through the zero page. */
	cbz	x17, 2f
	msr	ttbr1_el1, x18
	isb
	tlbi	vmalle1
	dsb	nsh
	msr	ttbr1_el1, x17
	isb
2:	mov	x14, xzr
	mov	x13, xzr
	tbnz	x16, #IND_DONE_BIT, .Lon_done

.Lon_loop:
	bic	x12, x16, x19
	sub	x12, x12, x22		/* physical -> linear-map VA */
	tbz	x16, #IND_SOURCE_BIT, .Lon_test_indirection

	mov	x20, x13
	copy_page x13, x12, x19, x0, x1, x2, x3, x4, x5, x7, x8	/* dest += page */

	/* Clean and invalidate the destination page to the point of coherency. */
	sub	x1, x15, #1
	bic	x0, x20, x1
3:	dc	civac, x0
	add	x0, x0, x15
	cmp	x0, x13
	b.lo	3b
	dsb	sy
	b	.Lon_next

.Lon_test_indirection:
	tbz	x16, #IND_INDIRECTION_BIT, .Lon_test_destination
	mov	x14, x12
	b	.Lon_next

.Lon_test_destination:
	tbz	x16, #IND_DESTINATION_BIT, .Lon_next
	mov	x13, x12

.Lon_next:
	ldr	x16, [x14], #8
	tbz	x16, #IND_DONE_BIT, .Lon_loop

.Lon_done:
	dsb	nsh
	ic	iallu
	dsb	nsh
	isb

	/* MMU and caches off; the identity map makes the next fetch land on the same bytes. */
	mrs	x12, sctlr_el1
	mov	x13, #(SCTLR_M | SCTLR_C | SCTLR_I)
	bic	x12, x12, x13
	msr	sctlr_el1, x12
	isb
	.globl	arm64_relocate_mmu_off
arm64_relocate_mmu_off:

	mov	x0, x26
	mov	x1, xzr
	mov	x2, xzr
	mov	x3, xzr
	br	x28
	.size	arm64_relocate_new_kernel_mmu_on, . - arm64_relocate_new_kernel_mmu_on

	.globl	arm64_relocate_new_kernel_end
arm64_relocate_new_kernel_end:
