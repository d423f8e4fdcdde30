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
 * copy_probe: one `rep movsq` of %rcx quadwords from %rsi to %rdi, the instruction relocate_kernel
 * copies pages with, alone: `kexec-sim bench` measures the engine's bare copy speed with it.
 */
	.globl copy_probe
copy_probe:
	rep movsq
	.globl copy_probe_done
copy_probe_done:
	hlt
	.globl probe_end
probe_end:
