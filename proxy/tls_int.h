/*
 * tls_int.h - what tls_ctx.c (building contexts) and tls.c (sessions) share; not for the proxy.
 */
#ifndef MOAT_TLS_INT_H
#define MOAT_TLS_INT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "tls.h"

/* One session-ticket key: 16-byte name, AES-256-CBC key, HMAC-SHA256 key (RFC 5077 4 layout). */
struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	time_t created; /* CLOCK_MONOTONIC seconds */
};

/*
 * The ticket keys, shared by every SSL_CTX of a context and handed on across reloads. The current
 * key encrypts new tickets; the previous one still decrypts (and the ticket is renewed) until it is
 * two rotation intervals old.
 */
struct tls_keyring {
	atomic_int refs;
	pthread_mutex_t lock;
	unsigned rotation; /* seconds; 0 = tickets off */
	struct tls_ticket_key cur, prev;
	bool have_prev;
};

/* One name of tls_sni_map with its certificate set. */
struct tls_sni {
	char *name; /* lower case; "*.example.org" matches one label */
	SSL_CTX *ssl_ctx;
};

struct moat_tls_ctx {
	atomic_int refs;
	SSL_CTX *server; /* default certificate set; NULL when no certificate is configured */
	struct tls_sni *sni;
	size_t nsni;
	SSL_CTX *client; /* towards the backend; NULL when tls_backend = none */
	char *backend_name; /* verified name and SNI for client sessions */
	struct tls_keyring *keys;
};

/* moat__tls_errstr - append OpenSSL's queued reasons to BUF (from position USED), clear the queue. */
void moat__tls_errstr(char *buf, size_t len);

#endif /* MOAT_TLS_INT_H */
