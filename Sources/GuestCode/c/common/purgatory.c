/*
 * kexec-sim: the purgatory of both architectures, in the spirit of arch/x86/purgatory/purgatory.c
 * and kexec-tools' purgatory (written from scratch). Runs after the relocation routine (x86_64 on
 * the identity map, arm64 with the MMU off): hashes the listed physical regions and compares the
 * result with the digest the loader stored. A mismatch spins forever at sha256_mismatch_spin.
 * The entry stubs (asm/<arch>/purgatory_entry.S) call purgatory_main and then jump to
 * purgatory_data.entry with the architecture's hand-off register set from entry_arg.
 *
 * The host patches purgatory_data in its copy of the blob before loading it.
 */
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#define PURGATORY_MAX_REGIONS 16	/* KEXEC_SEGMENT_MAX */

struct purgatory_region {
	uint64_t start;
	uint64_t len;
};

struct purgatory_data {
	uint64_t entry;		/* next kernel's entry (physical) */
	uint64_t entry_arg;	/* x86_64: rsi = boot_params; arm64: x0 = the DTB */
	uint64_t nr_regions;	/* used entries of regions[], at most 16 */
	struct purgatory_region regions[PURGATORY_MAX_REGIONS];
	uint8_t digest[SHA256_DIGEST_SIZE];
};

_Static_assert(offsetof(struct purgatory_data, entry) == 0, "entry offset");
_Static_assert(offsetof(struct purgatory_data, entry_arg) == 8, "entry_arg offset");
_Static_assert(offsetof(struct purgatory_data, nr_regions) == 16, "nr_regions offset");
_Static_assert(offsetof(struct purgatory_data, regions) == 24, "regions offset");
_Static_assert(sizeof(struct purgatory_region) == 16, "region size");
_Static_assert(offsetof(struct purgatory_data, digest) == 280, "digest offset");
_Static_assert(sizeof(struct purgatory_data) == 312, "purgatory_data size");

/* In .data (not .bss) so its bytes are part of the blob for the host to patch. */
__attribute__((section(".data"), aligned(8), used))
struct purgatory_data purgatory_data;

/*
 * The digest purgatory_main computed, kept (in .bss) rather than on the stack so that the host
 * can read what the guest's sha256 produced after the run, whichever way the sha256 ran
 * (instruction by instruction, or natively at the sha256_init/update/final calls).
 */
__attribute__((aligned(8), used))
uint8_t purgatory_computed_digest[SHA256_DIGEST_SIZE];

int purgatory_main(void);

__attribute__((noinline, noreturn, used))
void sha256_mismatch_spin(void)
{
	for (;;) {
	}
}

int purgatory_main(void)
{
	struct sha256_ctx ctx;
	uint8_t *digest = purgatory_computed_digest;
	uint64_t nr = purgatory_data.nr_regions;
	uint8_t diff = 0;

	if (nr > PURGATORY_MAX_REGIONS)
		nr = PURGATORY_MAX_REGIONS;

	sha256_init(&ctx);
	for (uint64_t i = 0; i < nr; i++) {
		const struct purgatory_region *r = &purgatory_data.regions[i];

		sha256_update(&ctx, (const void *)(uintptr_t)r->start, (size_t)r->len);
	}
	sha256_final(&ctx, digest);

	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		diff |= digest[i] ^ purgatory_data.digest[i];
	if (diff)
		sha256_mismatch_spin();
	return 0;
}
