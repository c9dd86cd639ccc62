/*
 * tls_ctx.c - build TLS contexts from the configuration: certificate sets, policy, ticket keys.
 *
 * Owns struct moat_tls_ctx and its SSL_CTXs. The policy is fixed here and only the keys named in
 * mxmoat.conf(5) change it: TLS 1.2 minimum (1.3 preferred, as OpenSSL negotiates the highest),
 * no compression, no renegotiation, forward-secret suites only with server preference, groups
 * X25519 and P-256, RSA and ECDSA certificates side by side, SNI choosing among certificate sets,
 * stateless session tickets under rotating keys, SSL_MODE_RELEASE_BUFFERS.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "tls_int.h"

#define TLS_LIST_MAX 8 /* certificate/key pairs in one set */
#define TLS_SNI_MAX 256 /* names in tls_sni_map */
#define TLS_PATH_MAX 4096

static const unsigned char tls_sid_ctx[] = "mxmoat";

/* A certificate set being built: paths borrowed from a copy of the config string. */
struct tls_pairs {
	const char *cert[TLS_LIST_MAX];
	const char *key[TLS_LIST_MAX];
	size_t n;
};

void
moat__tls_errstr(char *buf, size_t len)
{
	unsigned long e;
	size_t used = strlen(buf);

	while ((e = ERR_get_error()) != 0) {
		const char *reason = ERR_reason_error_string(e);
		int n;
		if (used + 3 >= len)
			continue; /* drain the queue anyway */
		n = snprintf(buf + used, len - used, "%s%s", used > 0 ? ": " : "",
		    reason != NULL ? reason : "unknown OpenSSL error");
		if (n > 0)
			used += (size_t)n < len - used ? (size_t)n : len - used - 1;
	}
}

/* tls_fail - "what: OpenSSL's reasons" into err. */
static void __attribute__((format(printf, 3, 4)))
tls_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	moat__tls_errstr(err, errlen);
}

static time_t
tls_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* keyring_fill - a fresh random key created NOW; -1 if the RNG fails. */
static int
keyring_fill(struct tls_ticket_key *k, time_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return -1;
	k->created = now;
	return 0;
}

static struct tls_keyring *
keyring_new(unsigned rotation)
{
	struct tls_keyring *kr = calloc(1, sizeof(*kr));
	if (kr == NULL)
		return NULL;
	atomic_init(&kr->refs, 1);
	pthread_mutex_init(&kr->lock, NULL);
	kr->rotation = rotation;
	if (keyring_fill(&kr->cur, tls_now()) < 0) {
		pthread_mutex_destroy(&kr->lock);
		free(kr);
		return NULL;
	}
	return kr;
}

static void
keyring_unref(struct tls_keyring *kr)
{
	if (kr == NULL || atomic_fetch_sub(&kr->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&kr->lock);
	OPENSSL_cleanse(kr, sizeof(*kr));
	free(kr);
}

/* keyring_rotate - with the lock held: replace keys that have served their time. */
static void
keyring_rotate(struct tls_keyring *kr, time_t now)
{
	time_t age = now - kr->cur.created;

	if (age < (time_t)kr->rotation)
		return;
	if (age < 2 * (time_t)kr->rotation) {
		kr->prev = kr->cur;
		kr->have_prev = true;
	} else {
		kr->have_prev = false; /* idle for two intervals: the old key has expired too */
	}
	if (keyring_fill(&kr->cur, now) < 0)
		kr->cur.created = now - (time_t)kr->rotation; /* RNG failed: try again next time */
	if (kr->have_prev && now - kr->prev.created >= 2 * (time_t)kr->rotation)
		kr->have_prev = false;
}

/* tls_ticket_cb - encrypt new tickets with the current key; decrypt with the current or previous. */
static int
tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	struct moat_tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct tls_keyring *kr = ctx->keys;
	struct tls_ticket_key key;
	OSSL_PARAM params[3];
	int ret = 1;

	pthread_mutex_lock(&kr->lock);
	keyring_rotate(kr, tls_now());
	if (enc || memcmp(key_name, kr->cur.name, 16) == 0) {
		key = kr->cur;
	} else if (kr->have_prev && memcmp(key_name, kr->prev.name, 16) == 0) {
		key = kr->prev;
		ret = 2; /* valid, but issue a ticket under the current key */
	} else {
		pthread_mutex_unlock(&kr->lock);
		return 0; /* unknown or expired key: full handshake */
	}
	pthread_mutex_unlock(&kr->lock);

	params[0] =
	    OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac, sizeof(key.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(key_name, key.name, 16);
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1)
			ret = -1;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1) {
		ret = -1;
	}
	if (ret > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		ret = -1;
	OPENSSL_cleanse(&key, sizeof(key));
	return ret;
}

/* tls_no_passphrase - encrypted keys are refused instead of prompting on the terminal. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* tls_accept_any - client certificates are requested for their fingerprint, never required. */
static int
tls_accept_any(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

/* tls_key_file_safe - refuse a key file group or others can read or write (or that is not a file). */
static int
tls_key_file_safe(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "tls_key_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "tls_key_file %s: not a regular file", path);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, errlen,
		    "tls_key_file %s: readable or writable by group or others (mode %04o); "
		    "refused, chmod 600 it",
		    path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* tls_load_key - read a private key from PATH; NULL with the reason in err. */
static EVP_PKEY *
tls_load_key(const char *path, char *err, size_t errlen)
{
	BIO *bio;
	EVP_PKEY *key;

	if (tls_key_file_safe(path, err, errlen) < 0)
		return NULL;
	ERR_clear_error();
	bio = BIO_new_file(path, "r");
	if (bio == NULL) {
		tls_fail(err, errlen, "tls_key_file %s: cannot open", path);
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	BIO_free(bio);
	if (key == NULL)
		tls_fail(err, errlen, "tls_key_file %s: no usable private key (PEM, unencrypted)",
		    path);
	return key;
}

/* tls_add_pair - load one certificate chain and its key into SSL; one pair per key type. */
static int
tls_add_pair(SSL_CTX *sc, const char *certfile, const char *keyfile, int *seen, size_t nseen,
    char *err, size_t errlen)
{
	EVP_PKEY *key = tls_load_key(keyfile, err, errlen);
	X509 *leaf;
	int type;

	if (key == NULL)
		return -1;
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(sc, certfile) != 1) {
		tls_fail(err, errlen, "tls_cert_file %s: cannot load the certificate chain",
		    certfile);
		EVP_PKEY_free(key);
		return -1;
	}
	leaf = SSL_CTX_get0_certificate(sc);
	type = EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
	for (size_t i = 0; i < nseen; i++) {
		if (seen[i] == type) {
			snprintf(err, errlen,
			    "tls_cert_file %s: a second %s certificate in the same set "
			    "(one RSA and one ECDSA pair per set)",
			    certfile, OBJ_nid2sn(type));
			EVP_PKEY_free(key);
			return -1;
		}
	}
	seen[nseen] = type;
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen,
		    "tls_cert_file %s and tls_key_file %s: the certificate does not "
		    "match the private key",
		    certfile, keyfile);
		EVP_PKEY_free(key);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey(sc, key) != 1 || SSL_CTX_check_private_key(sc) != 1) {
		tls_fail(err, errlen, "tls_key_file %s: refused", keyfile);
		EVP_PKEY_free(key);
		return -1;
	}
	EVP_PKEY_free(key);
	return 0;
}

/* tls_check_fs - every TLS 1.2 suite the list selects uses ECDHE and authenticates the server. */
static int
tls_check_fs(SSL_CTX *sc, char *err, size_t errlen)
{
	STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(sc);

	for (int i = 0; i < sk_SSL_CIPHER_num(list); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
		if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any)
			continue; /* TLS 1.3: always (EC)DHE */
		if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe ||
		    SSL_CIPHER_get_auth_nid(c) == NID_auth_null) {
			snprintf(err, errlen,
			    "tls_ciphers: %s has no forward secrecy or no server "
			    "authentication; refused (ECDHE suites only)",
			    SSL_CIPHER_get_name(c));
			return -1;
		}
	}
	return 0;
}

/* tls_policy - the settings every SSL_CTX shares, server or client. */
static int
tls_policy(SSL_CTX *sc, const struct moat_conf *conf, char *err, size_t errlen)
{
	int min = conf->tls_protocols_min == MOAT_TLS_MIN_13 ? TLS1_3_VERSION : TLS1_2_VERSION;

	ERR_clear_error();
	if (SSL_CTX_set_min_proto_version(sc, min) != 1) {
		tls_fail(err, errlen, "tls_protocols_min: %s", "cannot be set");
		return -1;
	}
	SSL_CTX_set_options(sc,
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_options(sc, SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_LEGACY_SERVER_CONNECT);
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(sc, tls_no_passphrase);
	if (SSL_CTX_set_cipher_list(sc, conf->tls_ciphers) != 1) {
		tls_fail(err, errlen, "tls_ciphers '%s'", conf->tls_ciphers);
		return -1;
	}
	if (tls_check_fs(sc, err, errlen) < 0)
		return -1;
	if (SSL_CTX_set1_groups_list(sc, conf->tls_groups) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "tls_groups '%s': unknown or unsupported group",
		    conf->tls_groups);
		return -1;
	}
	return 0;
}

/* tls_sni_select - the SSL_CTX for server name NAME, or NULL for the default set. */
static SSL_CTX *
tls_sni_select(const struct moat_tls_ctx *ctx, const char *name)
{
	const char *dot = strchr(name, '.');

	for (size_t i = 0; i < ctx->nsni; i++)
		if (strcasecmp(ctx->sni[i].name, name) == 0)
			return ctx->sni[i].ssl_ctx;
	if (dot == NULL || dot == name)
		return NULL;
	for (size_t i = 0; i < ctx->nsni; i++)
		if (ctx->sni[i].name[0] == '*' && strcasecmp(ctx->sni[i].name + 1, dot) == 0)
			return ctx->sni[i].ssl_ctx;
	return NULL;
}

/* tls_sni_cb - switch the session to the certificate set tls_sni_map names for its SNI. */
static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
	const struct moat_tls_ctx *ctx = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *sc;

	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	sc = tls_sni_select(ctx, name);
	if (sc != NULL && SSL_set_SSL_CTX(ssl, sc) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK; /* unknown names get the default set */
}

/* tls_server_ctx - one certificate set as a server SSL_CTX; NULL with the reason in err. */
static SSL_CTX *
tls_server_ctx(struct moat_tls_ctx *ctx, const struct moat_conf *conf, const struct tls_pairs *p,
    char *err, size_t errlen)
{
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method());
	int seen[TLS_LIST_MAX];

	if (sc == NULL) {
		tls_fail(err, errlen, "%s", "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_app_data(sc, ctx);
	if (tls_policy(sc, conf, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < p->n; i++)
		if (tls_add_pair(sc, p->cert[i], p->key[i], seen, i, err, errlen) < 0)
			goto fail;
	SSL_CTX_set_session_id_context(sc, tls_sid_ctx, sizeof(tls_sid_ctx) - 1);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF); /* stateless tickets only */
	if (conf->tls_ticket_rotation == 0) {
		SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(sc, 0);
	} else {
		SSL_CTX_set_num_tickets(sc, 1);
		SSL_CTX_set_timeout(sc, (long)ctx->keys->rotation * 2);
		SSL_CTX_set_tlsext_ticket_key_evp_cb(sc, tls_ticket_cb);
	}
	if (conf->tls_request_client_cert) {
		SSL_CTX_set_verify(sc, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, tls_accept_any);
		if (conf->tls_client_ca_file[0] != '\0') {
			STACK_OF(X509_NAME) *names =
			    SSL_load_client_CA_file(conf->tls_client_ca_file);
			if (names == NULL ||
			    SSL_CTX_load_verify_file(sc, conf->tls_client_ca_file) != 1) {
				sk_X509_NAME_pop_free(names, X509_NAME_free);
				tls_fail(err, errlen, "tls_client_ca_file %s: cannot load",
				    conf->tls_client_ca_file);
				goto fail;
			}
			SSL_CTX_set_client_CA_list(sc, names);
		}
	}
	return sc;
fail:
	SSL_CTX_free(sc);
	return NULL;
}

/* tls_split - split a comma list in place into at most MAX trimmed items; -1 if there are more. */
static int
tls_split(char *s, const char **item, size_t max, size_t *n)
{
	*n = 0;
	for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
		char *end;
		while (isspace((unsigned char)*tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*tok == '\0')
			continue;
		if (*n == max)
			return -1;
		item[(*n)++] = tok;
	}
	return 0;
}

/* tls_build_default - the default set from tls_cert_file / tls_key_file. */
static int
tls_build_default(struct moat_tls_ctx *ctx, const struct moat_conf *conf, char *err, size_t errlen)
{
	char *certs = strdup(conf->tls_cert_file), *keys = strdup(conf->tls_key_file);
	struct tls_pairs p;
	size_t nkeys;
	int rc = -1;

	if (certs == NULL || keys == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (tls_split(certs, p.cert, TLS_LIST_MAX, &p.n) < 0 ||
	    tls_split(keys, p.key, TLS_LIST_MAX, &nkeys) < 0) {
		snprintf(err, errlen, "tls_cert_file/tls_key_file: more than %d entries",
		    TLS_LIST_MAX);
		goto out;
	}
	if (p.n != nkeys) {
		snprintf(err, errlen,
		    "tls_cert_file has %zu entries but tls_key_file has %zu; they pair in order",
		    p.n, nkeys);
		goto out;
	}
	rc = 0;
	if (p.n == 0)
		goto out;
	ctx->server = tls_server_ctx(ctx, conf, &p, err, errlen);
	if (ctx->server == NULL)
		rc = -1;
out:
	free(certs);
	free(keys);
	return rc;
}

/* tls_build_sni - one certificate set per name of tls_sni_map ("name=cert:key", names may repeat). */
static int
tls_build_sni(struct moat_tls_ctx *ctx, const struct moat_conf *conf, char *err, size_t errlen)
{
	char *map = strdup(conf->tls_sni_map);
	const char *item[TLS_SNI_MAX];
	bool used[TLS_SNI_MAX] = { false };
	size_t n;
	int rc = -1;

	if (map == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (tls_split(map, item, TLS_SNI_MAX, &n) < 0) {
		snprintf(err, errlen, "tls_sni_map: more than %d entries", TLS_SNI_MAX);
		goto out;
	}
	if (n > 0 && ctx->server == NULL) {
		snprintf(err, errlen, "tls_sni_map needs a default certificate in tls_cert_file");
		goto out;
	}
	for (size_t i = 0; i < n; i++) { /* check and split every entry in place first */
		char *eq = strchr(item[i], '='), *colon;
		colon = eq != NULL ? strchr(eq + 1, ':') : NULL;
		if (eq == NULL || eq == item[i] || colon == NULL || colon == eq + 1 ||
		    colon[1] == '\0' || strchr(colon + 1, ':') != NULL) {
			snprintf(err, errlen, "tls_sni_map: '%s' is not name=certfile:keyfile",
			    item[i]);
			goto out;
		}
		*eq = '\0';
		*colon = '\0';
		for (char *c = (char *)item[i]; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	ctx->sni = calloc(n > 0 ? n : 1, sizeof(*ctx->sni));
	if (ctx->sni == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) { /* group the entries of one name into one set */
		struct tls_pairs p = { .n = 0 };
		struct tls_sni *s;
		if (used[i])
			continue;
		for (size_t j = i; j < n; j++) {
			if (used[j] || strcmp(item[i], item[j]) != 0)
				continue;
			if (p.n == TLS_LIST_MAX) {
				snprintf(err, errlen, "tls_sni_map: more than %d pairs for %s",
				    TLS_LIST_MAX, item[i]);
				goto out;
			}
			used[j] = true;
			p.cert[p.n] = item[j] + strlen(item[j]) + 1;
			p.key[p.n] = p.cert[p.n] + strlen(p.cert[p.n]) + 1;
			p.n++;
		}
		s = &ctx->sni[ctx->nsni];
		s->name = strdup(item[i]);
		if (s->name == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ctx->nsni++;
		s->ssl_ctx = tls_server_ctx(ctx, conf, &p, err, errlen);
		if (s->ssl_ctx == NULL)
			goto out;
	}
	if (ctx->nsni > 0) {
		SSL_CTX_set_tlsext_servername_callback(ctx->server, tls_sni_cb);
		SSL_CTX_set_tlsext_servername_arg(ctx->server, ctx);
	}
	rc = 0;
out:
	free(map);
	return rc;
}

/* tls_backend_host - the host part of proxy_backend ("[::1]:25" -> "::1"); NULL for unix:. */
static char *
tls_backend_host(const char *backend)
{
	const char *end;

	if (strncmp(backend, "unix:", 5) == 0)
		return NULL;
	if (backend[0] == '[') {
		end = strchr(backend, ']');
		return end != NULL ? strndup(backend + 1, (size_t)(end - backend - 1)) : NULL;
	}
	end = strrchr(backend, ':');
	return strndup(backend, end != NULL ? (size_t)(end - backend) : strlen(backend));
}

/* tls_build_client - the SSL_CTX for STARTTLS towards the backend, verifying its certificate. */
static int
tls_build_client(struct moat_tls_ctx *ctx, const struct moat_conf *conf, char *err, size_t errlen)
{
	if (conf->tls_backend == MOAT_TLS_BACKEND_NONE)
		return 0;
	ctx->backend_name = conf->tls_backend_verify_name[0] != '\0'
	    ? strdup(conf->tls_backend_verify_name)
	    : tls_backend_host(conf->proxy_backend);
	if (ctx->backend_name == NULL || ctx->backend_name[0] == '\0') {
		snprintf(err, errlen,
		    "tls_backend: set tls_backend_verify_name (no host name in proxy_backend '%s')",
		    conf->proxy_backend);
		return -1;
	}
	ctx->client = SSL_CTX_new(TLS_client_method());
	if (ctx->client == NULL) {
		tls_fail(err, errlen, "%s", "cannot create a TLS context");
		return -1;
	}
	if (tls_policy(ctx->client, conf, err, errlen) < 0)
		return -1;
	SSL_CTX_set_verify(ctx->client, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx->client, SSL_SESS_CACHE_OFF);
	ERR_clear_error();
	if (conf->tls_backend_ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_file(ctx->client, conf->tls_backend_ca_file) != 1) {
			tls_fail(err, errlen, "tls_backend_ca_file %s: cannot load",
			    conf->tls_backend_ca_file);
			return -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx->client) != 1) {
		tls_fail(err, errlen, "%s",
		    "tls_backend_ca_file is empty and the system CAs cannot be loaded");
		return -1;
	}
	return 0;
}

static struct moat_tls_ctx *
tls_ctx_build(struct tls_keyring *keys, const struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_tls_ctx *ctx = calloc(1, sizeof(*ctx));

	err[0] = '\0';
	if (ctx == NULL) {
		snprintf(err, errlen, "out of memory");
		keyring_unref(keys);
		return NULL;
	}
	atomic_init(&ctx->refs, 1);
	ctx->keys = keys;
	if (ctx->keys == NULL) {
		snprintf(err, errlen, "cannot create session-ticket keys");
		goto fail;
	}
	pthread_mutex_lock(&keys->lock);
	keys->rotation = conf->tls_ticket_rotation / 1000;
	if (conf->tls_ticket_rotation > 0 && keys->rotation == 0)
		keys->rotation = 1;
	pthread_mutex_unlock(&keys->lock);
	if (tls_build_default(ctx, conf, err, errlen) < 0 ||
	    tls_build_sni(ctx, conf, err, errlen) < 0 ||
	    tls_build_client(ctx, conf, err, errlen) < 0)
		goto fail;
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	moat_tls_ctx_unref(ctx);
	return NULL;
}

struct moat_tls_ctx *
moat_tls_ctx_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	return tls_ctx_build(keyring_new(conf->tls_ticket_rotation / 1000), conf, err, errlen);
}

struct moat_tls_ctx *
moat_tls_ctx_reload(struct moat_tls_ctx *old, const struct moat_conf *conf, char *err,
    size_t errlen)
{
	if (old == NULL)
		return moat_tls_ctx_new(conf, err, errlen);
	atomic_fetch_add(&old->keys->refs, 1);
	return tls_ctx_build(old->keys, conf, err, errlen);
}

struct moat_tls_ctx *
moat_tls_ctx_ref(struct moat_tls_ctx *ctx)
{
	atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

void
moat_tls_ctx_unref(struct moat_tls_ctx *ctx)
{
	if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	SSL_CTX_free(ctx->server);
	for (size_t i = 0; i < ctx->nsni; i++) {
		SSL_CTX_free(ctx->sni[i].ssl_ctx);
		free(ctx->sni[i].name);
	}
	free(ctx->sni);
	SSL_CTX_free(ctx->client);
	free(ctx->backend_name);
	keyring_unref(ctx->keys);
	free(ctx);
}

bool
moat_tls_ctx_server_ready(const struct moat_tls_ctx *ctx)
{
	return ctx != NULL && ctx->server != NULL;
}
