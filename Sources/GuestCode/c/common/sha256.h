/* kexec-sim: SHA-256 (FIPS 180-4), freestanding; shared by the purgatory and a host check. */
#ifndef KEXEC_SIM_SHA256_H
#define KEXEC_SIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64

struct sha256_ctx {
	uint32_t state[8];
	uint64_t total;		/* bytes hashed so far */
	uint32_t buffered;	/* bytes waiting in buf (< 64) */
	uint8_t buf[SHA256_BLOCK_SIZE];
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_SIZE]);

#endif
