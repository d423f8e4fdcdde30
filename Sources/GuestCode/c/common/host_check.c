/*
 * kexec-sim: host-side check of sha256.c against the FIPS 180-2 / NIST example vectors.
 * Built and run by scripts/build-guest-code; never part of a guest blob.
 */
#include <stdio.h>
#include <string.h>

#include "sha256.h"

static int check(const char *name, const void *data, size_t len, size_t chunk, const char *want)
{
	struct sha256_ctx ctx;
	uint8_t out[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	const unsigned char *p = data;

	sha256_init(&ctx);
	while (len) {
		size_t n = len < chunk ? len : chunk;

		sha256_update(&ctx, p, n);
		p += n;
		len -= n;
	}
	sha256_final(&ctx, out);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", out[i]);
	if (strcmp(hex, want) != 0) {
		fprintf(stderr, "sha256 %s (chunk %zu): got %s, want %s\n", name, chunk, hex, want);
		return 1;
	}
	return 0;
}

static char million_a[1000000];

int main(void)
{
	static const char abc448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const size_t chunks[] = { 1, 3, 63, 64, 65, 1000, 1000000 };
	int bad = 0;

	memset(million_a, 'a', sizeof(million_a));
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		bad |= check("\"\"", "", 0, chunks[c],
			     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
		bad |= check("\"abc\"", "abc", 3, chunks[c],
			     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		bad |= check("448-bit", abc448, strlen(abc448), chunks[c],
			     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
		bad |= check("1e6 x 'a'", million_a, sizeof(million_a), chunks[c],
			     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	}
	/* Unaligned source (full blocks are read straight from memory): 999,999 x 'a'. */
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
		bad |= check("999999 x 'a' at an odd address", million_a + 1, sizeof(million_a) - 1,
			     chunks[c], "6c7aaf9baa56d59e3651f608e2fb587688382cbc78c8b39abbdb916a00a52098");
	return bad;
}
