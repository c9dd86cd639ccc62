/*
 * suite_format.c - reading the RFC 7208 suite as rfc7208-convert.py writes it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "suite_format.h"

long
suite_unhex(char *f)
{
	size_t n, i;

	if (f[0] != 'x')
		return -1;
	n = strlen(f + 1);
	if (n % 2)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(f + 1 + 2 * i, "%2x", &v) != 1)
			return -1;
		f[i] = (char)v;
	}
	f[n / 2] = '\0';
	return (long)(n / 2);
}

int
suite_rrtype(const char *name)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {
		{ "A", 1 },
		{ "AAAA", 28 },
		{ "MX", 15 },
		{ "PTR", 12 },
		{ "CNAME", 5 },
		{ "TXT", 16 },
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(name, types[i].name) == 0)
			return types[i].type;
	return -1;
}

int
suite_result_ok(const char *got, const char *want)
{
	size_t n = strlen(got);
	const char *p = want;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && strncmp(p, got, n) == 0)
			return 1;
		p += l + (e ? 1 : 0);
	}
	return 0;
}
