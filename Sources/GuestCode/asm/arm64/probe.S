/*
 * kexec-sim: arm64 probes, tiny routines the host runs through the guest's own translation
 * regime (after the jump to the next kernel's entry, or in engine tests) to see what a
 * translation does. Position independent, loaded at offset 0 of a page of their own; each ends
 * at a `*_done` label (a branch-to-self) that the host uses as the stop address.
 */
	.text
	.balign	4

/* store_probe: one 8-byte store of x1 to the virtual address in x0. */
	.globl	store_probe
store_probe:
	str	x1, [x0]
	.globl	store_probe_done
store_probe_done:
	b	.

/*
 * touch_probe: read 8 bytes at each of x1 virtual addresses listed (u64 each) at the virtual
 * address in x0, as an early kernel reads firmware tables. x2 holds the last value read; x1
 * counts down, so on a fault it tells how many addresses were left.
 */
	.globl	touch_probe
touch_probe:
	cbz	x1, 2f
1:	ldr	x3, [x0], #8
	ldr	x2, [x3]
	subs	x1, x1, #1
	b.ne	1b
	.globl	touch_probe_done
touch_probe_done:
2:	b	.
	.globl	probe_end
probe_end:
