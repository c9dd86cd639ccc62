/*
 * dmarc.h - DMARC (RFC 9989, "DMARCbis", which obsoletes RFC 7489): record parsing, policy
 * discovery and Organizational Domains by the DNS tree walk (RFC 9989 4.10), identifier
 * alignment, and the evaluation of one message.
 *
 * No Public Suffix List: the tree walk replaces it. Synchronous; every query goes through the
 * resolver handed in. At most MOAT_DMARC_WALK_MAX queries per walk (RFC 9989 4.10: at most 8).
 */
#ifndef MOAT_DMARC_H
#define MOAT_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

#define MOAT_DMARC_DOMAIN_MAX 253
#define MOAT_DMARC_WALK_MAX 8
#define MOAT_DMARC_RUA_MAX 512
#define MOAT_DMARC_MAX_IDS 8 /* DKIM identifiers considered for alignment */

enum moat_dmarc_policy {
	MOAT_DMARC_P_UNSET = 0,
	MOAT_DMARC_P_NONE,
	MOAT_DMARC_P_QUARANTINE,
	MOAT_DMARC_P_REJECT,
};

enum moat_dmarc_psd {
	MOAT_DMARC_PSD_U = 0,
	MOAT_DMARC_PSD_Y,
	MOAT_DMARC_PSD_N
};

/* One parsed record (RFC 9989 4.7). */
struct moat_dmarc_record {
	enum moat_dmarc_policy p, sp, np;
	enum moat_dmarc_psd psd;
	bool testing; /* t=y */
	bool adkim_strict, aspf_strict;
	char rua[MOAT_DMARC_RUA_MAX];
	char ruf[MOAT_DMARC_RUA_MAX];
	char fo[16]; /* RFC 9991 failure reporting options, as written */
};

/*
 * moat_dmarc_record_parse - RFC 9989 4.7: "v=DMARC1" first, then tag=value pairs separated by
 * ';'. Unknown tags are ignored; an invalid or missing p is p=none (RFC 9989 4.7: a record
 * with rua but no valid p is treated as p=none). Returns 0, or -1 when TEXT is not a DMARC
 * record at all (no v=DMARC1 first, or a syntax error in a known tag's value: adkim/aspf/t/psd).
 */
int moat_dmarc_record_parse(const char *text, size_t len, struct moat_dmarc_record *rec);

enum moat_dmarc_res {
	MOAT_DMARC_NONE = 0, /* no policy record: DMARC does not apply */
	MOAT_DMARC_PASS,
	MOAT_DMARC_FAIL,
	MOAT_DMARC_TEMPERROR,
	MOAT_DMARC_PERMERROR, /* no single valid RFC5322.From mailbox */
};

/*
 * The authenticated identifiers of one message, for alignment, and the identifiers whose SPF or
 * DKIM result a temporary error left open: one of those that could align would have made DMARC
 * pass had its DNS answered, so DMARC is then temperror, not fail.
 */
struct moat_dmarc_ids {
	const char *spf_domain; /* MAIL FROM (or HELO) domain SPF passed for, or NULL */
	const char *dkim_domains[MOAT_DMARC_MAX_IDS]; /* d= of each passing signature */
	size_t ndkim;
	const char *spf_open_domain; /* the domain whose SPF check gave temperror, or NULL */
	const char *dkim_open_domains[MOAT_DMARC_MAX_IDS]; /* d= of each temperror signature */
	size_t ndkim_open;
};

/* Everything decided for one message; also what dmarc_report.c records for RFC 9990 reports. */
struct moat_dmarc_eval {
	enum moat_dmarc_res result;
	char from_domain[MOAT_DMARC_DOMAIN_MAX + 1];
	char policy_domain[MOAT_DMARC_DOMAIN_MAX + 1]; /* where the record was found */
	char org_domain[MOAT_DMARC_DOMAIN_MAX + 1]; /* of the From domain */
	struct moat_dmarc_record rec;
	enum moat_dmarc_policy applied; /* p, sp or np as chosen, before t=y */
	enum moat_dmarc_policy disposition; /* after t=y (one level lower) */
	const char *policy_tag; /* "p", "sp" or "np" */
	bool nonexistent; /* the From domain does not exist (np) */
	bool spf_aligned, dkim_aligned;
	char dkim_aligned_domain[MOAT_DMARC_DOMAIN_MAX + 1];
	char reason[160]; /* why, for A-R reason= and --explain */
	unsigned queries; /* DNS queries made */
};

/*
 * moat_dmarc_org_domain - the Organizational Domain of DOMAIN (RFC 9989 4.10.2) into out.
 * Returns 0, or -1 on a DNS temporary error (out is then DOMAIN).
 */
int moat_dmarc_org_domain(struct moat_dns *dns, const char *domain, char *out, size_t outlen,
    unsigned *queries);

/*
 * moat_dmarc_evaluate - RFC 9989 4.10 policy discovery for FROM_DOMAIN (already lower case,
 * validated by the From parser; NULL or "" means there was no single valid From: permerror),
 * then alignment of IDS. Fills *ev and returns ev->result. A DNS error gives
 * MOAT_DMARC_TEMPERROR only where the missing answer could have changed the result: in policy
 * discovery, in the existence check when np would differ, or in a walk that could have made an
 * identifier align; an identifier that cannot align is never looked up.
 */
enum moat_dmarc_res moat_dmarc_evaluate(struct moat_dns *dns, const char *from_domain,
    const struct moat_dmarc_ids *ids, struct moat_dmarc_eval *ev);

const char *moat_dmarc_result_name(enum moat_dmarc_res r); /* "none", "pass", ... */
const char *moat_dmarc_policy_name(enum moat_dmarc_policy p); /* "none", "quarantine", "reject" */

#endif /* MOAT_DMARC_H */
