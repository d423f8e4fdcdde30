/*
 * kexec-sim probes: tiny routines the host runs through the guest's own page tables, after the
 * jump to the next kernel's entry (or in engine tests), to see what a translation does.
 * Position independent, loaded at offset 0 of a page of their own; each ends in `hlt` at a
 * `*_done` label that the host uses as the stop address.
 */
	.text
	.code64

/* store_probe: one 8-byte store of %rax to the virtual address in %rbx. */
	.globl store_probe
store_probe:
	movq	%rax, (%rbx)
	.globl store_probe_done
store_probe_done:
	hlt

/*
 * touch_probe: read 8 bytes at each of %rcx virtual addresses listed (u64 each) at the virtual
 * address in %rsi, as an early kernel reads firmware tables and setup_data. %rax holds the last
 * value read; %rcx counts down, so on a fault it tells how many addresses were left.
 */
	.globl touch_probe
touch_probe:
	testq	%rcx, %rcx
	jz	2f
1:	movq	(%rsi), %rdx
	movq	(%rdx), %rax
	addq	$8, %rsi
	decq	%rcx
	jnz	1b
	.globl touch_probe_done
touch_probe_done:
2:
	hlt

/*
 * copy_probe: %rdx pages from %rsi to %rdi, one `rep movsq` of 512 quadwords per page (the copy
 * relocate_kernel does for each IND_SOURCE entry), without the list walk: `kexec-sim bench`
 * measures the engine's bare copy speed with it.
 */
	.globl copy_probe
copy_probe:
	cli				/* as relocate_kernel: interrupts off, string ops forward */
	cld
1:	movl	$512, %ecx
	rep movsq
	decq	%rdx
	jnz	1b
	.globl copy_probe_done
copy_probe_done:
	hlt
	.globl probe_end
probe_end:
