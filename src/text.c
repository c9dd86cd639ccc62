/*
 * text.c - DNS-name checks, strict base64 and host:port splitting for the core and the front-ends
 * (see text.h).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

bool
moat_ldh_name(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

int
moat_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* base64_run - decode S into OUT (NULL: only check it); the decoded length, or -1. */
static long
base64_run(const char *s, size_t n, unsigned char *out, size_t outmax)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w = 0;
		size_t pad = 0, bytes;

		for (size_t k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)s[i + k];
			int v;

			if (c == '=') {
				/* "xx==" or "xxx=", and only in the last group */
				if (i + 4 != n || k < 2)
					return -1;
				pad++;
				v = 0;
			} else if (pad > 0 || (v = moat_base64_value(c)) < 0) {
				return -1;
			}
			w = w << 6 | (uint32_t)v;
		}
		bytes = 3 - pad;
		if (bytes > outmax - o)
			return -1;
		if (out != NULL) {
			out[o] = (unsigned char)(w >> 16);
			if (bytes > 1)
				out[o + 1] = (unsigned char)(w >> 8);
			if (bytes > 2)
				out[o + 2] = (unsigned char)w;
		}
		o += bytes;
	}
	return (long)o;
}

long
moat_base64_decode(const char *s, size_t n, unsigned char *out, size_t outmax)
{
	return base64_run(s, n, out, outmax);
}

bool
moat_base64_valid(const char *s, size_t n)
{
	return base64_run(s, n, NULL, n) >= 0;
}

int
moat_hostport_split(const char *hostport, char *host, size_t hostlen, int *port)
{
	const char *colon, *start = hostport, *end;
	char *stop;
	long p;

	if (*hostport == '[') {
		start = hostport + 1;
		if ((end = strchr(start, ']')) == NULL || end[1] != ':')
			return -1;
		colon = end + 1;
	} else {
		if ((colon = strrchr(hostport, ':')) == NULL)
			return -1;
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &stop, 10);
	if (errno != 0 || *stop != '\0' || p < 1 || p > 65535)
		return -1;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = (int)p;
	return 0;
}
