/*
 * macros.h - the MTA macros mxmoat-milter reads, under their Postfix and Sendmail names.
 *
 * Each fact the core needs (client port and name, listener, AUTH login, TLS, queue id, host name,
 * message size) has a list of macro names to try in order; the first one the MTA sent wins.
 * The engine looks a name up (libmilter's smfi_getsymval, or the native engine's own table).
 */
#ifndef MOAT_MILTER_MACROS_H
#define MOAT_MILTER_MACROS_H


enum milter_macro {
	MILTER_M_CLIENT_ADDR, /* {client_addr} */
	MILTER_M_CLIENT_PORT, /* {client_port} */
	MILTER_M_CLIENT_NAME, /* {client_name}, Sendmail _ carries "name [addr]" and is not used */
	MILTER_M_DAEMON_NAME, /* {daemon_name}: which listener (Postfix service, Sendmail MTA/MSA) */
	MILTER_M_DAEMON_ADDR, /* {daemon_addr} */
	MILTER_M_AUTH_AUTHEN, /* {auth_authen}: SASL login; never logged */
	MILTER_M_TLS_VERSION, /* {tls_version} */
	MILTER_M_CIPHER, /* {cipher} */
	MILTER_M_CIPHER_BITS, /* {cipher_bits} */
	MILTER_M_QUEUE_ID, /* i */
	MILTER_M_HOSTNAME, /* j */
	MILTER_M_MSG_SIZE, /* {msg_size} */
	MILTER_M_COUNT
};

/* milter_symval_fn - the engine's value of the macro NAME for IO, or NULL. */
typedef const char *(*milter_symval_fn)(void *io, const char *name);

/* milter_macro_get - the value of one macro, or NULL; valid until the step returns. */
const char *milter_macro_get(milter_symval_fn get, void *io, enum milter_macro m);

/* milter_macro_uint - a decimal macro value in 0..max, or -1 when absent or malformed. */
long long milter_macro_uint(milter_symval_fn get, void *io, enum milter_macro m,
    unsigned long long max);

#endif /* MOAT_MILTER_MACROS_H */
