/*
 * kexec-sim: SHA-256 from FIPS 180-4, written for this project.
 *
 * Freestanding: no library calls (the compiler is told -fno-builtin, and every copy here is a
 * short explicit loop). Full 64-byte blocks are compressed straight from the caller's memory
 * with 32-bit big-endian loads; only a partial head or tail goes through ctx->buf.
 */
#include "sha256.h"

typedef uint32_t __attribute__((aligned(1), may_alias)) unaligned_u32;

static inline uint32_t load_be32(const uint8_t *p)
{
	return __builtin_bswap32(*(const unaligned_u32 *)p);
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* FIPS 180-4 section 4.2.2: first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes. */
static const uint32_t round_constants[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n)	(((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x)	(ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x)	(ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x)	(ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x)	(ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z)	((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z)	(((x) & (y)) | ((z) & ((x) | (y))))

/* One round; the caller rotates the roles of a..h instead of moving values. */
#define ROUND(a, b, c, d, e, f, g, h, i)					\
	do {								\
		uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + k[i] + w[i];	\
		(d) += t1_;						\
		(h) = t1_ + BSIG0(a) + MAJ(a, b, c);			\
	} while (0)

/* Next 16 schedule words in place: w[i] becomes W(t) for t = i + 16 * pass. */
#define SCHEDULE(i)								\
	(w[i] += SSIG1(w[((i) + 14) & 15]) + w[((i) + 9) & 15] + SSIG0(w[((i) + 1) & 15]))

static void sha256_blocks(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[16];

	while (nblocks--) {
		uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
		uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
		const uint32_t *k = round_constants;

		for (int i = 0; i < 16; i++)
			w[i] = load_be32(p + 4 * i);

		for (int pass = 0; pass < 4; pass++, k += 16) {
			if (pass) {
				SCHEDULE(0); SCHEDULE(1); SCHEDULE(2); SCHEDULE(3);
				SCHEDULE(4); SCHEDULE(5); SCHEDULE(6); SCHEDULE(7);
				SCHEDULE(8); SCHEDULE(9); SCHEDULE(10); SCHEDULE(11);
				SCHEDULE(12); SCHEDULE(13); SCHEDULE(14); SCHEDULE(15);
			}
			ROUND(a, b, c, d, e, f, g, h, 0);
			ROUND(h, a, b, c, d, e, f, g, 1);
			ROUND(g, h, a, b, c, d, e, f, 2);
			ROUND(f, g, h, a, b, c, d, e, 3);
			ROUND(e, f, g, h, a, b, c, d, 4);
			ROUND(d, e, f, g, h, a, b, c, 5);
			ROUND(c, d, e, f, g, h, a, b, 6);
			ROUND(b, c, d, e, f, g, h, a, 7);
			ROUND(a, b, c, d, e, f, g, h, 8);
			ROUND(h, a, b, c, d, e, f, g, 9);
			ROUND(g, h, a, b, c, d, e, f, 10);
			ROUND(f, g, h, a, b, c, d, e, 11);
			ROUND(e, f, g, h, a, b, c, d, 12);
			ROUND(d, e, f, g, h, a, b, c, 13);
			ROUND(c, d, e, f, g, h, a, b, 14);
			ROUND(b, c, d, e, f, g, h, a, 15);
		}

		state[0] += a; state[1] += b; state[2] += c; state[3] += d;
		state[4] += e; state[5] += f; state[6] += g; state[7] += h;
		p += SHA256_BLOCK_SIZE;
	}
}

void sha256_init(struct sha256_ctx *ctx)
{
	/* FIPS 180-4 section 5.3.3: fractional parts of the square roots of the first 8 primes. */
	ctx->state[0] = 0x6a09e667;
	ctx->state[1] = 0xbb67ae85;
	ctx->state[2] = 0x3c6ef372;
	ctx->state[3] = 0xa54ff53a;
	ctx->state[4] = 0x510e527f;
	ctx->state[5] = 0x9b05688c;
	ctx->state[6] = 0x1f83d9ab;
	ctx->state[7] = 0x5be0cd19;
	ctx->total = 0;
	ctx->buffered = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;

	ctx->total += len;

	if (ctx->buffered) {
		while (len && ctx->buffered < SHA256_BLOCK_SIZE) {
			ctx->buf[ctx->buffered++] = *p++;
			len--;
		}
		if (ctx->buffered < SHA256_BLOCK_SIZE)
			return;
		sha256_blocks(ctx->state, ctx->buf, 1);
		ctx->buffered = 0;
	}

	if (len >= SHA256_BLOCK_SIZE) {
		size_t nblocks = len / SHA256_BLOCK_SIZE;

		sha256_blocks(ctx->state, p, nblocks);
		p += nblocks * SHA256_BLOCK_SIZE;
		len -= nblocks * SHA256_BLOCK_SIZE;
	}

	while (len--)
		ctx->buf[ctx->buffered++] = *p++;
}

void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_SIZE])
{
	uint64_t bits = ctx->total * 8;
	uint32_t n = ctx->buffered;

	/* Padding (section 5.1.1): 0x80, zeros to 56 mod 64, then the 64-bit big-endian length. */
	ctx->buf[n++] = 0x80;
	if (n > SHA256_BLOCK_SIZE - 8) {
		while (n < SHA256_BLOCK_SIZE)
			ctx->buf[n++] = 0;
		sha256_blocks(ctx->state, ctx->buf, 1);
		n = 0;
	}
	while (n < SHA256_BLOCK_SIZE - 8)
		ctx->buf[n++] = 0;
	store_be32(ctx->buf + 56, (uint32_t)(bits >> 32));
	store_be32(ctx->buf + 60, (uint32_t)bits);
	sha256_blocks(ctx->state, ctx->buf, 1);

	for (int i = 0; i < 8; i++)
		store_be32(out + 4 * i, ctx->state[i]);
}
