/*
 * kexec-sim: x86_64 purgatory entry, in the spirit of arch/x86/purgatory/entry64.S
 * (written from scratch).
 *
 * Reached by `ret` from relocate_kernel with every general register zero. Sets up its own
 * stack (in .bss), verifies the segments (purgatory_main), then jumps to the next kernel with
 * rsi = purgatory_data.entry_arg and every other general register except rsp zero.
 * Position independent: RIP-relative references only.
 */

#define PD_ENTRY_RIP	0
#define PD_ENTRY_RSI	8

#define STACK_SIZE	4096

	.text
	.code64

	.globl	purgatory_start
	.hidden	purgatory_start
	.type	purgatory_start, @function
purgatory_start:
	leaq	purgatory_stack_top(%rip), %rsp
	call	purgatory_main
	testl	%eax, %eax
	jnz	.Lstop

	movq	(purgatory_data + PD_ENTRY_RSI)(%rip), %rsi
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
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
	jmpq	*(purgatory_data + PD_ENTRY_RIP)(%rip)

	/* purgatory_main does not return non-zero today; never fall into the next kernel. */
.Lstop:
	jmp	.Lstop
	.size	purgatory_start, . - purgatory_start

	.section .bss, "aw", @nobits
	.balign	16
purgatory_stack:
	.skip	STACK_SIZE
	.globl	purgatory_stack_top
	.hidden	purgatory_stack_top
purgatory_stack_top:
