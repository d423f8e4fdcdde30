/*
 * kexec-sim: x86_64 relocation routine, modelled on the behaviour of
 * arch/x86/kernel/relocate_kernel_64.S (written from scratch).
 *
 * Loaded at offset 0 of the 4 KiB control page:
 *   0x000..0x7ff  this code (at most KEXEC_CONTROL_CODE_MAX_SIZE = 2048 bytes)
 *   0x800..       page list: u64 { PA_CONTROL_PAGE, VA_CONTROL_PAGE, PA_TABLE_PAGE, PA_SWAP_PAGE }
 *   ..0x1000      stack (top at the end of the page)
 *
 * Entry (64-bit long mode, paging on, running at the VA_CONTROL_PAGE alias):
 *   rdi = head of the IND_* list, rsi = VA of the page list,
 *   rdx = start address (purgatory entry, physical), rcx = preserve_context.
 *
 * Two entries, one per kernel generation of swap_pages:
 *   relocate_kernel       v6.14+ (9e5683e2d0b5): one copy source -> destination per page; the
 *                         3-way swap only when preserve_context (rcx) is set.
 *   relocate_kernel_swap  before v6.14: the 3-way swap through the swap page for every page.
 * r12 carries the choice (non-zero: swap) down to swap_pages.
 *
 * Position independent: no relocations, only assemble-time label differences.
 */

#define PAGE_SIZE		0x1000
#define PAGE_MASK		0xfffffffffffff000

#define PL_PA_CONTROL_PAGE	0x00
#define PL_VA_CONTROL_PAGE	0x08
#define PL_PA_TABLE_PAGE	0x10
#define PL_PA_SWAP_PAGE		0x18

#define IND_DESTINATION		0x1
#define IND_INDIRECTION		0x2
#define IND_DONE		0x4
#define IND_SOURCE		0x8

#define CR0_PE			(1 << 0)
#define CR0_EM			(1 << 2)
#define CR0_TS			(1 << 3)
#define CR0_WP			(1 << 16)
#define CR0_AM			(1 << 18)
#define CR0_PG			(1 << 31)
#define CR4_PAE			(1 << 5)
#define CR4_LA57		(1 << 12)

	.text
	.code64

	.globl	relocate_kernel
	.type	relocate_kernel, @function
relocate_kernel:
	movq	%rcx, %r12		/* swap only for preserve_context */
	jmp	.Lentry

	.globl	relocate_kernel_swap
	.type	relocate_kernel_swap, @function
relocate_kernel_swap:
	movl	$1, %r12d		/* always swap */

.Lentry:
	cli
	cld

	/* r8 = PA_CONTROL_PAGE, r9 = PA_TABLE_PAGE, r10 = PA_SWAP_PAGE, r11 = preserve_context */
	movq	PL_PA_CONTROL_PAGE(%rsi), %r8
	movq	PL_PA_TABLE_PAGE(%rsi), %r9
	movq	PL_PA_SWAP_PAGE(%rsi), %r10
	movq	%rcx, %r11

	/* Switch to the identity tables; they also map this alias (transition mapping). */
	movq	%r9, %cr3

	/* Continue in the identity-mapped copy of this page. */
	leaq	(identity_mapped - relocate_kernel)(%r8), %rax
	jmpq	*%rax
	.size	relocate_kernel, . - relocate_kernel

	.globl	identity_mapped
	.type	identity_mapped, @function
identity_mapped:
	/* Stack at the end of the control page; the start address is the final return target. */
	leaq	PAGE_SIZE(%r8), %rsp
	pushq	%rdx

	/* CR0: no alignment checks, no write protection, no lazy FPU; paging and protection on. */
	movq	%cr0, %rax
	andq	$~(CR0_AM | CR0_WP | CR0_TS | CR0_EM), %rax
	orl	$(CR0_PG | CR0_PE), %eax
	movq	%rax, %cr0

	/* CR4: keep only PAE and LA57. */
	movq	%cr4, %rax
	andl	$(CR4_PAE | CR4_LA57), %eax
	movq	%rax, %cr4

	/* Flush the TLB. */
	movq	%r9, %cr3

	call	.Lswap_pages		/* local label: no relocation */

	/* Hand over with clean registers; ret pops the start address. */
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%esi, %esi
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	xorl	%r8d, %r8d
	xorl	%r9d, %r9d
	xorl	%r10d, %r10d
	xorl	%r11d, %r11d
	xorl	%r12d, %r12d
	xorl	%r13d, %r13d
	xorl	%r14d, %r14d
	xorl	%r15d, %r15d
	ret
	.size	identity_mapped, . - identity_mapped

/*
 * Walk the IND_* list whose head entry is in rdi.
 *   rcx = current entry, rbx = list pointer, rdi = current destination,
 *   r10 = swap page, r12 = swap (non-zero) or copy; rax, rdx, rsi scratch.
 */
	.globl	swap_pages
	.type	swap_pages, @function
swap_pages:
.Lswap_pages:
	movq	%rdi, %rcx		/* the head is the first entry */
	xorl	%ebx, %ebx
	xorl	%edi, %edi
	jmp	.Ldecode

.Lnext:
	movq	(%rbx), %rcx
	addq	$8, %rbx

.Ldecode:
	testb	$IND_DESTINATION, %cl
	jz	.Lnot_destination
	movq	%rcx, %rdi
	andq	$PAGE_MASK, %rdi
	jmp	.Lnext

.Lnot_destination:
	testb	$IND_INDIRECTION, %cl
	jz	.Lnot_indirection
	movq	%rcx, %rbx
	andq	$PAGE_MASK, %rbx
	jmp	.Lnext

.Lnot_indirection:
	testb	$IND_DONE, %cl
	jnz	.Ldone
	testb	$IND_SOURCE, %cl
	jz	.Lnext			/* no flag: skip */

	movq	%rcx, %rsi
	andq	$PAGE_MASK, %rsi
	movq	%rdi, %rdx		/* rdx = destination */
	movq	%rsi, %rax		/* rax = source */

	testq	%r12, %r12
	jz	.Lcopy			/* v6.14+ without preserve_context: one copy */

	/* 3-way swap: source -> swap, destination -> source, swap -> destination. */
	movq	%r10, %rdi
	movl	$512, %ecx
	rep movsq

	movq	%rax, %rdi
	movq	%rdx, %rsi
	movl	$512, %ecx
	rep movsq

	movq	%rdx, %rdi
	movq	%r10, %rsi
.Lcopy:
	movl	$512, %ecx
	rep movsq			/* leaves rdi = destination + PAGE_SIZE */
	jmp	.Lnext

.Ldone:
	ret
	.size	swap_pages, . - swap_pages

	.globl	relocate_kernel_end
relocate_kernel_end:
