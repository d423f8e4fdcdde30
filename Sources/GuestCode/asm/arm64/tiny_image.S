/*
 * A small arm64 kernel Image for the shipped scenarios (Fixtures/images/arm64-tiny.Image):
 * the 64-byte header of Documentation/arch/arm64/booting.rst, then a stand-in kernel body.
 *
 * It is a real Image as kexec_file_load's Image loader sees one: "ARM\x64" at 0x38, text_offset
 * 0x80000 (what kernels before v5.8 used, so the loader's base + text_offset placement is
 * exercised), image_size 2 MiB (more than the file: the rest is the kernel's bss, which the
 * segment's memsz covers and relocation zeroes), flags LE / 4K pages / physical base anywhere.
 *
 * The body is never executed by a run (the run stops at the entry and checks x0..x3 there);
 * should it run, it parks the CPU: a kernel that finds no DTB in x0 has nothing to boot from.
 * The rest of the file is a pattern, so that a byte landing in the wrong place shows.
 */
	.section .text, "ax"
	.global	_head
_head:
	b	stext				/* code0: branch past the header */
	.long	0				/* code1 */
	.quad	0x80000				/* text_offset */
	.quad	0x200000			/* image_size */
	.quad	0xa				/* flags: LE, 4K pages, phys base anywhere */
	.quad	0				/* res2 */
	.quad	0				/* res3 */
	.quad	0				/* res4 */
	.ascii	"ARM\x64"			/* magic */
	.long	0				/* res5: no PE header */

stext:
	cbz	x0, 2f				/* no DTB: park */
	ldr	w1, [x0]			/* FDT magic, big endian */
	movz	w2, #0x0dd0
	movk	w2, #0xedfe, lsl #16		/* 0xd00dfeed as a little-endian load sees it */
	cmp	w1, w2
	b.ne	2f
1:	wfe					/* the DTB looks right: a real kernel would start here */
	b	1b
2:	wfi
	b	2b

	.balign	64
	/* 64 KiB of pattern: byte i of the block is (i * 37 + 11) mod 256. */
	.set	i, 0
	.rept	0x10000
	.byte	(i * 37 + 11) & 0xff
	.set	i, i + 1
	.endr
	.global	_end
_end:
