/*
 * dnsbl.c - DNS block and allow lists: the dnsbl_sites parser (postscreen's syntax), the query
 * names, and the score of one client (see dnsbl.h).
 *
 * Owns the parsed sites: for each, the zone, a filter as one 256-bit set per octet of the A
 * record, and the weight. The score asks the DNS layer (dns.h) for every site at once.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "dnsbl.h"
#include "text.h"

#define WEIGHT_MAX 100000

struct dnsbl_site {
	char zone[MOAT_DNS_NAME_MAX + 1];
	bool filtered; /* false: any A record counts */
	uint8_t octet[4][32]; /* bit v of octet[i]: the i-th byte may be v */
	int weight;
};

struct moat_dnsbl {
	size_t n;
	struct dnsbl_site site[MOAT_DNSBL_SITES_MAX];
};

/* dnsbl_number - a decimal number of at most 3 digits at *p, up to 255; -1 if none. */
static int
dnsbl_number(const char **p)
{
	int v = 0, digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 4) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	return digits == 0 || digits > 3 || v > 255 ? -1 : v;
}

/* dnsbl_set - allow V..HI in one octet's set. */
static void
dnsbl_set(uint8_t set[32], int v, int hi)
{
	for (; v <= hi; v++)
		set[v >> 3] |= (uint8_t)(1u << (v & 7));
}

/*
 * dnsbl_octet - one octet pattern at *p: "N" or "[ITEM;ITEM...]" with ITEM "N" or "N..M".
 * NULL, or what is wrong.
 */
static const char *
dnsbl_octet(const char **p, uint8_t set[32])
{
	int lo, hi;

	if (**p != '[') {
		if ((lo = dnsbl_number(p)) < 0)
			return "an octet is not a number from 0 to 255";
		dnsbl_set(set, lo, lo);
		return NULL;
	}
	(*p)++;
	for (;;) {
		if ((lo = dnsbl_number(p)) < 0)
			return "a bracket item is not a number from 0 to 255";
		hi = lo;
		if ((*p)[0] == '.' && (*p)[1] == '.') {
			*p += 2;
			if ((hi = dnsbl_number(p)) < 0 || hi < lo)
				return "a range is not N..M with N <= M <= 255";
		}
		dnsbl_set(set, lo, hi);
		if (**p == ']') {
			(*p)++;
			return NULL;
		}
		if (**p != ';')
			return "a bracket list is not items separated by ';' and closed by ']'";
		(*p)++;
	}
}

/* dnsbl_site - one "zone[=FILTER][*WEIGHT]" of LEN bytes into SITE; NULL, or what is wrong. */
static const char *
dnsbl_site(const char *text, size_t len, struct dnsbl_site *site)
{
	char buf[512];
	const char *p;
	size_t zlen;

	if (len >= sizeof(buf))
		return "too long";
	memcpy(buf, text, len);
	buf[len] = '\0';
	zlen = strcspn(buf, "=*");
	if (zlen == 0 || zlen >= sizeof(site->zone))
		return "no zone, or a zone too long";
	memcpy(site->zone, buf, zlen);
	site->zone[zlen] = '\0';
	if (site->zone[zlen - 1] == '.')
		site->zone[zlen - 1] = '\0';
	if (!moat_ldh_name(site->zone, strlen(site->zone)))
		return "the zone is no DNS name of letters, digits, '-' and '_'";
	p = buf + zlen;
	site->weight = 1;
	if (*p == '=') {
		p++;
		site->filtered = true;
		for (int i = 0; i < 4; i++) {
			const char *why = dnsbl_octet(&p, site->octet[i]);

			if (why != NULL)
				return why;
			if (i < 3 && *p++ != '.')
				return "the filter is not four octets separated by dots";
		}
	}
	if (*p == '*') {
		bool neg = *++p == '-';
		long w = 0;

		p += neg;
		if (*p < '0' || *p > '9')
			return "the weight is not a whole number";
		while (*p >= '0' && *p <= '9' && w <= WEIGHT_MAX)
			w = w * 10 + (*p++ - '0');
		if (w > WEIGHT_MAX)
			return "the weight is out of range (-100000 to 100000)";
		site->weight = (int)(neg ? -w : w);
	}
	if (*p != '\0')
		return "unexpected text after the site";
	return NULL;
}

struct moat_dnsbl *
moat_dnsbl_parse(const char *spec, char *err, size_t errlen)
{
	struct moat_dnsbl *bl;
	const char *p = spec != NULL ? spec : "";

	err[0] = '\0';
	p += strspn(p, ", \t");
	if (*p == '\0')
		return NULL;
	if ((bl = calloc(1, sizeof(*bl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (*p != '\0') {
		size_t len = strcspn(p, ", \t");
		const char *why;

		if (bl->n == MOAT_DNSBL_SITES_MAX) {
			snprintf(err, errlen, "more than %d sites", MOAT_DNSBL_SITES_MAX);
			moat_dnsbl_free(bl);
			return NULL;
		}
		if ((why = dnsbl_site(p, len, &bl->site[bl->n])) != NULL) {
			snprintf(err, errlen, "'%.*s': %s", (int)(len > 200 ? 200 : len), p, why);
			moat_dnsbl_free(bl);
			return NULL;
		}
		bl->n++;
		p += len;
		p += strspn(p, ", \t");
	}
	return bl;
}

void
moat_dnsbl_free(struct moat_dnsbl *bl)
{
	free(bl);
}

size_t
moat_dnsbl_count(const struct moat_dnsbl *bl)
{
	return bl != NULL ? bl->n : 0;
}

int
moat_dnsbl_check(const char *spec, char *err, size_t errlen)
{
	struct moat_dnsbl *bl = moat_dnsbl_parse(spec, err, errlen);

	if (bl == NULL && err[0] != '\0')
		return -1;
	moat_dnsbl_free(bl);
	return 0;
}

int
moat_dnsbl_query_name(const struct moat_dnsbl *bl, size_t i, const struct moat_addr *addr,
    char *out, size_t len)
{
	return moat_dns_reverse_name(addr, bl->site[i].zone, out, len);
}

bool
moat_dnsbl_hit(const struct moat_dnsbl *bl, size_t i, const unsigned char a[4])
{
	const struct dnsbl_site *site = &bl->site[i];

	if (!site->filtered)
		return true;
	for (int k = 0; k < 4; k++)
		if (!(site->octet[k][a[k] >> 3] & (1u << (a[k] & 7))))
			return false;
	return true;
}

int
moat_dnsbl_weight(const struct moat_dnsbl *bl, size_t i)
{
	return bl->site[i].weight;
}

const char *
moat_dnsbl_zone(const struct moat_dnsbl *bl, size_t i)
{
	return bl->site[i].zone;
}

/* dnsbl_note - add ZONE to the comma-separated list of hits (cut at a zone boundary if full). */
static void
dnsbl_note(struct moat_dnsbl_score *out, const char *zone)
{
	size_t used = strlen(out->hits);
	int n = snprintf(out->hits + used, sizeof(out->hits) - used, "%s%s", used ? "," : "", zone);

	if (n < 0 || (size_t)n >= sizeof(out->hits) - used)
		out->hits[used] = '\0';
}

/* One client's questions to every site: the names asked and their answers. */
struct dnsbl_ask {
	char names[MOAT_DNSBL_SITES_MAX][MOAT_DNS_NAME_MAX + 2];
	struct moat_dns_q q[MOAT_DNSBL_SITES_MAX];
};

/* dnsbl_questions - the question to every site about ADDR into ASK. */
static void
dnsbl_questions(const struct moat_dnsbl *bl, const struct moat_addr *addr, struct dnsbl_ask *ask)
{
	for (size_t i = 0; i < moat_dnsbl_count(bl); i++) {
		ask->q[i] = (struct moat_dns_q){ .name = ask->names[i], .type = MOAT_DNS_A };
		if (moat_dnsbl_query_name(bl, i, addr, ask->names[i], sizeof(ask->names[i])) < 0)
			ask->names[i][0] =
			    '\0'; /* no valid name: a permanent failure, never a hit */
	}
}

/* dnsbl_tally - the answers in ASK summed into *out, and released. */
static void
dnsbl_tally(const struct moat_dnsbl *bl, struct dnsbl_ask *ask, struct moat_dnsbl_score *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < moat_dnsbl_count(bl); i++) {
		struct moat_dns_answer *a = &ask->q[i].answer;
		bool hit = false;

		if (a->status == MOAT_DNS_TEMPFAIL || a->status == MOAT_DNS_PERMFAIL)
			out->nfailed++;
		for (size_t r = 0; a->status == MOAT_DNS_OK && r < a->n && !hit; r++)
			hit = a->rr[r].len == 4 &&
			    moat_dnsbl_hit(bl, i, (const unsigned char *)a->rr[r].data);
		if (hit) {
			out->score += bl->site[i].weight;
			out->nhits++;
			dnsbl_note(out, bl->site[i].zone);
		}
		moat_dns_answer_clear(a);
	}
}

void
moat_dnsbl_score(const struct moat_dnsbl *bl, struct moat_dns *dns, const struct moat_addr *addr,
    unsigned timeout_ms, struct moat_dnsbl_score *out)
{
	struct dnsbl_ask ask;

	dnsbl_questions(bl, addr, &ask);
	moat_dns_query_batch(dns, ask.q, moat_dnsbl_count(bl), timeout_ms);
	dnsbl_tally(bl, &ask, out);
}

bool
moat_dnsbl_score_cached(const struct moat_dnsbl *bl, struct moat_dns *dns,
    const struct moat_addr *addr, struct moat_dnsbl_score *out)
{
	struct dnsbl_ask ask;

	dnsbl_questions(bl, addr, &ask);
	if (!moat_dns_query_cached(dns, ask.q, moat_dnsbl_count(bl)))
		return false;
	dnsbl_tally(bl, &ask, out);
	return true;
}
