/*
 * conf_check.c - the validators the key table names for string keys: host and port, listen
 * addresses, backends, resolvers, milter sockets, CIDR lists, file modes, the authserv-id. Each
 * takes the value as written and returns 0, or -1 with what was expected in err. Owns nothing.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "conf.h"
#include "text.h"

/* conf_check_port - decimal 1..65535. */
static int
conf_check_port(const char *s, size_t len)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535 ? 0 : -1;
}

/* conf_check_hostname - LDH labels separated by dots, at most 253 bytes. */
static int
conf_check_hostname(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

/* conf_check_host - an IP literal ([v6] allowed) or a host name. */
static int
conf_check_host(const char *s, size_t len)
{
	char buf[256];
	struct moat_addr addr;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len >= sizeof(buf))
			return -1;
		memcpy(buf, s, len);
		buf[len] = '\0';
		return moat_addr_parse(buf, &addr) == 0 && !addr.v4 ? 0 : -1;
	}
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (moat_addr_parse(buf, &addr) == 0)
		return addr.v4 ? 0
			       : -1; /* bare IPv6 needs brackets: host:port would be ambiguous */
	return conf_check_hostname(s, len);
}

/* conf_check_hostport_n - "host:port" over LEN bytes. */
static int
conf_check_hostport_n(const char *s, size_t len)
{
	const char *colon = NULL;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	if (colon == NULL)
		return -1;
	if (conf_check_host(s, (size_t)(colon - s)) < 0)
		return -1;
	return conf_check_port(colon + 1, len - (size_t)(colon + 1 - s));
}

int
moat_conf_check_hostport(const char *value, char *err, size_t errlen)
{
	if (conf_check_hostport_n(value, strlen(value)) < 0) {
		snprintf(err, errlen, "'%s' is not host:port ([addr]:port for IPv6)", value);
		return -1;
	}
	return 0;
}

int
moat_conf_check_listen_addr(const char *value, char *err, size_t errlen)
{
	struct moat_addr addr;
	char host[64];
	int port;

	if (value[0] == '\0')
		return 0;
	/* an IPv6 address only in brackets, an IPv4 address only without */
	if (moat_hostport_split(value, host, sizeof(host), &port) == 0 &&
	    moat_addr_parse(host, &addr) == 0 && addr.v4 == (value[0] != '['))
		return 0;
	snprintf(err, errlen, "'%s' is not address:port ([address]:port for IPv6, numeric)", value);
	return -1;
}

int
moat_conf_check_listen_list(const char *value, char *err, size_t errlen)
{
	const char *p = value;
	size_t n = 0;

	while (*p != '\0') {
		size_t len;
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, ", \t");
		if (conf_check_hostport_n(p, len) < 0) {
			snprintf(err, errlen, "'%.*s' is not host:port ([addr]:port for IPv6)",
			    (int)len, p);
			return -1;
		}
		n++;
		p += len;
	}
	return 0;
}

int
moat_conf_check_backend(const char *value, char *err, size_t errlen)
{
	if (strncmp(value, "unix:", 5) == 0) {
		if (value[5] != '/' || strlen(value + 5) >= 108) {
			snprintf(err, errlen,
			    "'%s': expected unix:/absolute/path (at most 107 bytes)", value);
			return -1;
		}
		return 0;
	}
	return moat_conf_check_hostport(value, err, errlen);
}

int
moat_conf_check_scanner(const char *value, char *err, size_t errlen)
{
	return value[0] == '\0' ? 0 : moat_conf_check_backend(value, err, errlen);
}

int
moat_conf_check_hostport_or_empty(const char *value, char *err, size_t errlen)
{
	return value[0] == '\0' ? 0 : moat_conf_check_hostport(value, err, errlen);
}

int
moat_conf_check_resolver(const char *value, char *err, size_t errlen)
{
	const char *at = strchr(value, '@');
	char buf[64];
	struct moat_addr addr;
	size_t alen;

	if (value[0] == '\0')
		return 0;
	alen = at ? (size_t)(at - value) : strlen(value);
	if (alen >= sizeof(buf))
		goto bad;
	memcpy(buf, value, alen);
	buf[alen] = '\0';
	if (moat_addr_parse(buf, &addr) < 0)
		goto bad;
	if (at != NULL && conf_check_port(at + 1, strlen(at + 1)) < 0)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not address[@port] (an IP address, not a name)", value);
	return -1;
}

int
moat_conf_check_milter_socket(const char *value, char *err, size_t errlen)
{
	const char *at;

	if (strncmp(value, "unix:", 5) == 0 || strncmp(value, "local:", 6) == 0) {
		const char *path = strchr(value, ':') + 1;
		if (path[0] == '/' && strlen(path) < 108)
			return 0;
	} else if (strncmp(value, "inet:", 5) == 0 || strncmp(value, "inet6:", 6) == 0) {
		const char *spec = strchr(value, ':') + 1;
		at = strchr(spec, '@');
		if (conf_check_port(spec, at ? (size_t)(at - spec) : strlen(spec)) == 0 &&
		    (at == NULL || conf_check_host(at + 1, strlen(at + 1)) == 0 ||
			moat_addr_parse(at + 1, &(struct moat_addr){ 0 }) == 0))
			return 0;
	}
	snprintf(err, errlen, "'%s': expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path",
	    value);
	return -1;
}

int
moat_conf_check_cidr_list(const char *value, char *err, size_t errlen)
{
	struct moat_cidr_set *set = moat_cidr_set_parse(value, err, errlen);

	if (set == NULL)
		return -1;
	moat_cidr_set_free(set);
	return 0;
}

/* moat_conf_check_file_mode - an octal permission mode, "0660" or "660", at most 0777. */
int
moat_conf_check_file_mode(const char *value, char *err, size_t errlen)
{
	size_t n = strlen(value);

	if (n >= 1 && n <= 4 && strspn(value, "01234567") == n && strtoul(value, NULL, 8) <= 0777)
		return 0;
	snprintf(err, errlen, "'%s': expected an octal mode such as 0660", value);
	return -1;
}

/* RFC 8601 2.5: authserv-id is a value (token or quoted-string); we accept a domain-like token. */
int
moat_conf_check_authserv_id(const char *value, char *err, size_t errlen)
{
	if (conf_check_hostname(value, strlen(value)) < 0) {
		snprintf(err, errlen, "'%s' is not a host name (letters, digits, '-', '.')", value);
		return -1;
	}
	return 0;
}
