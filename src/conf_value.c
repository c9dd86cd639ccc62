/*
 * conf_value.c - the typed values of the key table: numbers with their units (sizes, times),
 * enums, booleans and strings, parsed from the file's notation into struct moat_conf with the
 * table's range and checks, and written back for --dump-config. Owns nothing.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"

/* conf_parse_uint64 - unsigned decimal with no sign or blanks; -1 on junk or overflow. */
static int
conf_parse_uint64(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return 0;
}

/* conf_scale - multiply with overflow check. */
static int
conf_scale(uint64_t *v, uint64_t factor)
{
	if (factor != 0 && *v > UINT64_MAX / factor)
		return -1;
	*v *= factor;
	return 0;
}

/* conf_parse_number - a value of a numeric key type, in its stored unit; the message on error. */
static const char *
conf_parse_number(enum moat_conf_type type, const char *s, uint64_t *out)
{
	const char *end;
	uint64_t factor = 1;

	if (conf_parse_uint64(s, &end, out) < 0)
		return type == MOAT_CT_UINT ? "expected a whole number"
		    : type == MOAT_CT_SIZE  ? "expected a size such as 512k, 50m or 1g"
					    : "expected a time such as 500ms, 30s, 5m or 1h";
	if (type == MOAT_CT_UINT)
		return *end == '\0' ? NULL : "expected a whole number";
	if (type == MOAT_CT_SIZE) {
		if (*end != '\0' && end[1] != '\0')
			return "expected a size such as 512k, 50m or 1g";
		switch (tolower((unsigned char)*end)) {
		case '\0':
			factor = 1;
			break;
		case 'k':
			factor = 1024;
			break;
		case 'm':
			factor = 1024ULL * 1024;
			break;
		case 'g':
			factor = 1024ULL * 1024 * 1024;
			break;
		default:
			return "expected a size such as 512k, 50m or 1g";
		}
	} else {
		if (strcmp(end, "ms") == 0)
			factor = 1;
		else if (*end == '\0' || strcmp(end, "s") == 0)
			factor = 1000;
		else if (strcmp(end, "m") == 0)
			factor = 60ULL * 1000;
		else if (strcmp(end, "h") == 0)
			factor = 3600ULL * 1000;
		else if (strcmp(end, "d") == 0)
			factor = 86400 * 1000ULL;
		else
			return "expected a time such as 500ms, 30s, 5m or 1h";
	}
	if (conf_scale(out, factor) < 0)
		return "number too large";
	return NULL;
}

/* conf_format_number - write a stored number back in the file's notation. */
static void
conf_format_number(enum moat_conf_type type, uint64_t v, char *buf, size_t len)
{
	if (type == MOAT_CT_SIZE) {
		if (v != 0 && v % (1024ULL * 1024 * 1024) == 0)
			snprintf(buf, len, "%llug", (unsigned long long)(v >> 30));
		else if (v != 0 && v % (1024ULL * 1024) == 0)
			snprintf(buf, len, "%llum", (unsigned long long)(v >> 20));
		else if (v != 0 && v % 1024 == 0)
			snprintf(buf, len, "%lluk", (unsigned long long)(v >> 10));
		else
			snprintf(buf, len, "%llu", (unsigned long long)v);
	} else if (type == MOAT_CT_TIME) {
		if (v != 0 && v % 86400000 == 0)
			snprintf(buf, len, "%llud", (unsigned long long)(v / 86400000));
		else if (v != 0 && v % 3600000 == 0)
			snprintf(buf, len, "%lluh", (unsigned long long)(v / 3600000));
		else if (v != 0 && v % 60000 == 0)
			snprintf(buf, len, "%llum", (unsigned long long)(v / 60000));
		else if (v % 1000 == 0)
			snprintf(buf, len, "%llus", (unsigned long long)(v / 1000));
		else
			snprintf(buf, len, "%llums", (unsigned long long)v);
	} else {
		snprintf(buf, len, "%llu", (unsigned long long)v);
	}
}

/* conf_enum_index - position of VALUE in "a|b|c", or -1. */
static int
conf_enum_index(const char *allowed, const char *value)
{
	size_t vlen = strlen(value);
	int i = 0;

	for (const char *p = allowed; *p != '\0'; i++) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == vlen && strncmp(p, value, len) == 0)
			return i;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return -1;
}

/* conf_enum_name - the allowed value an MOAT_CT_ENUM index stands for. */
static const char *
conf_enum_name(const struct moat_conf_key *key, int index, char *buf, size_t len)
{
	const char *p = key->allowed;

	for (int i = 0; i < index && p != NULL; i++) {
		p = strchr(p, '|');
		if (p != NULL)
			p++;
	}
	if (p == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%.*s", (int)strcspn(p, "|"), p);
	return buf;
}

/* conf_parse_bool - the spellings a postmaster would try. */
static int
conf_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/*
 * conf_comment_inside - would VALUE read differently in a file? libinih ends a value at a ';'
 * that follows a blank, so "k =;x" is ";x" but "k = ;x" (as -d prints it) is empty, and -o k="a ;b"
 * could not be written in a file at all. Such values are refused, wherever they come from.
 */
static bool
conf_comment_inside(const char *value)
{
	const char *p;

	if (value[0] == ';')
		return true;
	for (p = strchr(value, ';'); p != NULL; p = strchr(p + 1, ';'))
		if (p > value && (p[-1] == ' ' || p[-1] == '\t'))
			return true;
	return false;
}

/* moat__conf_set - parse VALUE for KEY into CONF (conf_int.h). */
int
moat__conf_set(struct moat_conf *conf, const struct moat_conf_key *key, const char *value,
    char *err, size_t errlen)
{
	char *field = (char *)conf + key->offset;
	char lo[32], hi[32];
	const char *msg;
	uint64_t v;
	int idx;

	switch (key->type) {
	case MOAT_CT_STRING: {
		char *copy;
		if (conf_comment_inside(value)) {
			snprintf(err, errlen,
			    "';' at the start of a value or after a blank: a "
			    "configuration file reads it as the start of a comment");
			return -1;
		}
		if (key->check != NULL && key->check(value, err, errlen) < 0)
			return -1;
		if ((copy = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case MOAT_CT_BOOL:
		if (conf_parse_bool(value, (bool *)field) < 0) {
			snprintf(err, errlen, "'%s' is not yes or no", value);
			return -1;
		}
		return 0;
	case MOAT_CT_ENUM:
		if (key->check != NULL && key->check(value, err, errlen) < 0)
			return -1;
		if ((idx = conf_enum_index(key->allowed, value)) < 0) {
			snprintf(err, errlen, "'%s' is not one of %s", value, key->allowed);
			return -1;
		}
		*(int *)field = idx;
		return 0;
	case MOAT_CT_INT: {
		const char *end;
		bool neg = value[0] == '-';
		int64_t iv;

		if (conf_parse_uint64(value + neg, &end, &v) < 0 || *end != '\0' ||
		    v > (uint64_t)INT32_MAX) {
			snprintf(err, errlen, "'%s': expected a whole number", value);
			return -1;
		}
		iv = neg ? -(int64_t)v : (int64_t)v;
		if (iv < (int64_t)key->min || iv > (int64_t)key->max) {
			snprintf(err, errlen, "'%s' is out of range (%lld to %lld)", value,
			    (long long)(int64_t)key->min, (long long)(int64_t)key->max);
			return -1;
		}
		*(int *)field = (int)iv;
		return 0;
	}
	case MOAT_CT_UINT:
	case MOAT_CT_SIZE:
	case MOAT_CT_TIME:
		if ((msg = conf_parse_number(key->type, value, &v)) != NULL) {
			snprintf(err, errlen, "'%s': %s", value, msg);
			return -1;
		}
		if (v < key->min || v > key->max) {
			conf_format_number(key->type, key->min, lo, sizeof(lo));
			conf_format_number(key->type, key->max, hi, sizeof(hi));
			snprintf(err, errlen, "'%s' is out of range (%s to %s)", value, lo, hi);
			return -1;
		}
		if (key->type == MOAT_CT_SIZE)
			*(uint64_t *)field = v;
		else
			*(unsigned *)field = (unsigned)v;
		return 0;
	}
	snprintf(err, errlen, "internal error: bad key type");
	return -1;
}

/* moat__conf_value_text - a key's current value in the file's notation. */
const char *
moat__conf_value_text(const struct moat_conf *conf, const struct moat_conf_key *key, char *buf,
    size_t len)
{
	const char *field = (const char *)conf + key->offset;

	switch (key->type) {
	case MOAT_CT_STRING:
		return *(char *const *)field;
	case MOAT_CT_BOOL:
		return *(const bool *)field ? "yes" : "no";
	case MOAT_CT_ENUM:
		return conf_enum_name(key, *(const int *)field, buf, len);
	case MOAT_CT_SIZE:
		conf_format_number(key->type, *(const uint64_t *)field, buf, len);
		return buf;
	case MOAT_CT_UINT:
	case MOAT_CT_TIME:
		conf_format_number(key->type, *(const unsigned *)field, buf, len);
		return buf;
	case MOAT_CT_INT:
		snprintf(buf, len, "%d", *(const int *)field);
		return buf;
	}
	return "";
}
