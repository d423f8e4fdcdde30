/*
 * kexec-sim: not part of any blob. scripts/build-guest-code compiles this file for each
 * architecture with the purgatory's flags and reads purgatory_data_layout[] from the object's
 * .rodata.layout section, so that the host's PurgatoryDataLayout carries the offsets the compiler
 * actually gave struct purgatory_data (rather than numbers copied by hand).
 *
 * Order (all uint64_t, little-endian): entry, entry_arg, nr_regions, regions, sizeof(region),
 * region.start, region.len, max regions, digest, digest size, sizeof(struct purgatory_data).
 */
#include "purgatory.c"

__attribute__((used, section(".rodata.layout")))
const uint64_t purgatory_data_layout[] = {
	offsetof(struct purgatory_data, entry),
	offsetof(struct purgatory_data, entry_arg),
	offsetof(struct purgatory_data, nr_regions),
	offsetof(struct purgatory_data, regions),
	sizeof(struct purgatory_region),
	offsetof(struct purgatory_region, start),
	offsetof(struct purgatory_region, len),
	PURGATORY_MAX_REGIONS,
	offsetof(struct purgatory_data, digest),
	SHA256_DIGEST_SIZE,
	sizeof(struct purgatory_data),
};
