/*
 * dkim_verify_impl.h - what the files of the DKIM verifier share among themselves (not with ARC:
 * that is dkim_verify_int.h): the verifier with its key cache, the tag-list primitives the
 * signature and key-record parsers both use, and deciding a signature. Not for front-ends.
 */
#ifndef MOAT_DKIM_VERIFY_IMPL_H
#define MOAT_DKIM_VERIFY_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "dkim_verify.h"
#include "dkim_verify_int.h"

#define DEFAULT_MAX_SIGS 5
#define HDR_FIELDS_MAX 1024 /* header fields kept for the header hash */
#define HDR_BYTES_MAX ((size_t)1 << 20) /* and their bytes (1 MB); past either: permerror */
#define KEY_SHARDS 8
#define KEY_SLOTS 32 /* decoded keys kept: 256 */
#define KEY_B64_MAX 4096 /* p= of a 16384-bit RSA key is about 2.8 KB */
#define CLOCK_DRIFT 300 /* seconds t= may lie in the future */

struct key_slot {
	uint64_t hash; /* 0: empty */
	uint64_t used;
	char *rec; /* "k" "\n" "p" as it was decoded: the cache key */
	EVP_PKEY *pkey;
};

struct key_shard {
	pthread_mutex_t lock;
	uint64_t clock;
	struct key_slot slots[KEY_SLOTS];
};

struct moat_dkim_verifier {
	struct moat_dns *dns;
	struct moat_dkim_opts opts;
	EVP_MD *sha256;
	uint64_t seed;
	struct key_shard keys[KEY_SHARDS];
};

/* dkim_verify.c */
/* moat__vsig_decide - the signature's result and reason (printf-style), once. */
void moat__vsig_decide(struct moat__vsig *s, enum moat_dkim_res r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* dkim_verify_sig.c */
/* moat__dkim_is_fws - a folding-whitespace byte (RFC 6376 2.8). */
bool moat__dkim_is_fws(char c);
/* moat__dkim_tag_next - the next tag of the list at *p (up to end): name and value without
 * surrounding FWS. 1: a tag; 0: the end; -1: malformed. */
int moat__dkim_tag_next(const char **p, const char *end, const char **name, size_t *nlen,
    const char **val, size_t *vlen);
/* moat__dkim_tags_unique - false when a tag name occurs twice in the list at VALUE (RFC 6376
 * 3.2), or when memory runs out. */
bool moat__dkim_tags_unique(const char *value, size_t len);
/* moat__dkim_copy_value - tag value without folding whitespace, into out; false if it does not
 * fit. */
bool moat__dkim_copy_value(const char *s, const char *e, char *out, size_t outlen, bool truncate);
/* moat__dkim_b64_decode - base64 with FWS ignored (RFC 6376 2.4); -1 if not base64 or longer
 * than outmax. */
long moat__dkim_b64_decode(const char *s, size_t n, unsigned char *out, size_t outmax);
/* moat__dkim_list_has - does the ':'-separated LIST (blanks allowed) contain WORD, any case? */
bool moat__dkim_list_has(const char *list, size_t n, const char *word);
/* moat__vsig_parse - the rest of a signature's tags (v a b bh c h i q t x z) into S; decides
 * permerror for what RFC 6376 3.5 makes invalid, and fail for rsa-sha1 (RFC 8301). */
void moat__vsig_parse(struct moat__vsig *s, const char *value, size_t len);

#endif /* MOAT_DKIM_VERIFY_IMPL_H */
