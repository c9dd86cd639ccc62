/*
 * macros.c - MTA macro names for Postfix and Sendmail, and reading them (see macros.h).
 *
 * Postfix sends the macros named in its milter_*_macros parameters plus those a milter asks for
 * in the option negotiation (SMFIF_SETSYMLIST, milter protocol 6; conn.c has the lists); Sendmail
 * sends its Milter.macros.* lists. Single-letter macros are tried with and without braces: both
 * spellings occur.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "macros.h"

static const char *const macro_names[MILTER_M_COUNT][3] = {
	[MILTER_M_CLIENT_ADDR] = { "{client_addr}", NULL },
	[MILTER_M_CLIENT_PORT] = { "{client_port}", NULL },
	[MILTER_M_CLIENT_NAME] = { "{client_name}", NULL },
	[MILTER_M_DAEMON_NAME] = { "{daemon_name}", NULL },
	[MILTER_M_DAEMON_ADDR] = { "{daemon_addr}", NULL },
	[MILTER_M_AUTH_AUTHEN] = { "{auth_authen}", NULL },
	[MILTER_M_TLS_VERSION] = { "{tls_version}", NULL },
	[MILTER_M_CIPHER] = { "{cipher}", NULL },
	[MILTER_M_CIPHER_BITS] = { "{cipher_bits}", NULL },
	[MILTER_M_QUEUE_ID] = { "i", "{i}", NULL },
	[MILTER_M_HOSTNAME] = { "j", "{j}", NULL },
	[MILTER_M_MSG_SIZE] = { "{msg_size}", NULL },
};

const char *
milter_macro_get(milter_symval_fn get, void *io, enum milter_macro m)
{
	if ((unsigned)m >= MILTER_M_COUNT)
		return NULL;
	for (size_t i = 0; i < 3 && macro_names[m][i] != NULL; i++) {
		const char *v = get(io, macro_names[m][i]);
		if (v != NULL && v[0] != '\0')
			return v;
	}
	return NULL;
}

long long
milter_macro_uint(milter_symval_fn get, void *io, enum milter_macro m, unsigned long long max)
{
	const char *v = milter_macro_get(get, io, m);
	unsigned long long n = 0;

	if (v == NULL || v[0] == '\0' || strlen(v) > 20)
		return -1;
	for (const char *p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (n > max / 10 || n * 10 > max - d)
			return -1;
		n = n * 10 + d;
	}
	return (long long)n;
}
