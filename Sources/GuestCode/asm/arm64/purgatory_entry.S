/*
 * kexec-sim: arm64 purgatory entry, in the spirit of kexec-tools' purgatory/arch/arm64/entry.S
 * (written from scratch).
 *
 * Reached by `br` from the relocation routine with the MMU off, x0 = DTB. Sets up its own stack
 * (in .bss), verifies the segments (purgatory_main: a digest mismatch spins there forever), then
 * branches to purgatory_data.entry with x0 = purgatory_data.entry_arg (the DTB) and x1 = x2 = x3 = 0, as the
 * arm64 boot protocol asks. Position independent: PC-relative references only.
 */

#define PD_ENTRY	0
#define PD_DTB		8

#define STACK_SIZE	4096

	.text
	.balign	4

	.globl	purgatory_start
	.hidden	purgatory_start
	.type	purgatory_start, %function
purgatory_start:
	adr	x19, purgatory_stack_top
	mov	sp, x19
	bl	purgatory_main
	cbnz	w0, .Lstop

	adr	x19, purgatory_data
	ldr	x17, [x19, #PD_ENTRY]
	ldr	x0, [x19, #PD_DTB]
	mov	x1, xzr
	mov	x2, xzr
	mov	x3, xzr
	br	x17

	/* purgatory_main does not return non-zero today; never fall into the next kernel. */
.Lstop:
	b	.Lstop
	.size	purgatory_start, . - purgatory_start

	.section .bss, "aw", %nobits
	.balign	16
purgatory_stack:
	.skip	STACK_SIZE
	.globl	purgatory_stack_top
	.hidden	purgatory_stack_top
purgatory_stack_top:
