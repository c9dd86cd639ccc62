/*
 * report.h - mxmoat-report's pieces: the aggregates read from the store (report_data.c), and the
 * outputs made of them: RFC 9990 XML, gzip-compressed (report_xml.c), JSON (report_json.c) and
 * the postmaster's HTML page (report_html.c).
 *
 * A struct report is one aggregate report: one policy domain, one UTC day, the policy published
 * (from the latest record of that day), and its rows, each a distinct tuple of source IP,
 * disposition, aligned results, override, identifiers and authentication results with its count.
 */
#ifndef MOAT_REPORT_H
#define MOAT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sqlite3;

#define REPORT_DAY 86400

/* A row's grouped columns, in the store's names and this order. */
enum report_col {
	COL_SOURCE_IP,
	COL_DISPOSITION,
	COL_DKIM_ALIGNED,
	COL_SPF_ALIGNED,
	COL_OVERRIDE,
	COL_OVERRIDE_COMMENT,
	COL_HEADER_FROM,
	COL_ENVELOPE_FROM,
	COL_SPF_DOMAIN,
	COL_SPF_SCOPE,
	COL_SPF_RESULT,
	COL_DKIM, /* "domain selector result" lines */
	COL_COUNT
};

struct report_row {
	const char *f[COL_COUNT]; /* borrowed from the walk, valid during the callback */
	uint64_t count;
};

/* The policy published, in the store's names and this order. */
enum report_pol {
	POL_P,
	POL_SP,
	POL_NP,
	POL_ADKIM,
	POL_ASPF,
	POL_TESTING,
	POL_PSD,
	POL_RUA,
	POL_RUF,
	POL_FO,
	POL_COUNT
};

struct report_policy {
	char *f[POL_COUNT];
};

/* Who writes the reports: from the configuration. */
struct report_meta {
	const char *org_name;
	const char *email;
	const char *receiver; /* domain, for file names and report ids */
};

struct report {
	const char *domain; /* the policy domain (borrowed, as the rows) */
	int64_t begin, end; /* end: the day's last second */
	char report_id[17];
	struct report_policy pol;
	struct report_row *rows;
	size_t nrows, cap;
	uint64_t messages;
	int64_t last_id; /* the latest record, whose policy is the one published */
};

/* Called once per report, in policy-domain then day order; a non-zero return stops the walk. */
typedef int (*report_fn)(struct report *rep, void *arg);

/*
 * report_walk - every report of a complete UTC day before NOW not yet emitted as KIND ("write";
 * NULL: emitted or not), built and handed to FN one at a time. Returns the number of reports,
 * or -1 with err.
 */
long report_walk(struct sqlite3 *db, int64_t now, const char *kind, const struct report_meta *meta,
    report_fn fn, void *arg, char *err, size_t errlen);

/* report_marked - 1 when REP was emitted as KIND, 0 when not, -1 on a store error. */
int report_marked(struct sqlite3 *db, const struct report *rep, const char *kind);

/* report_mark - record that REP was emitted as KIND; -1 with err. */
int report_mark(struct sqlite3 *db, const struct report *rep, const char *kind, int64_t now,
    char *err, size_t errlen);

/* report_dkim_fn - one DKIM result of a row's "domain selector result" lines. */
typedef void (
    *report_dkim_fn)(const char *domain, const char *selector, const char *result, void *arg);
/* report_dkim_each - FN for each line of LINES; -1 when out of memory. */
int report_dkim_each(const char *lines, report_dkim_fn fn, void *arg);

/* report_filename - RFC 9990: receiver!policy-domain!begin!end!unique-id.xml.gz */
int report_filename(const struct report *rep, const struct report_meta *meta, char *out,
    size_t outlen);

/* report_xml_write - the XML of REP, gzip-compressed, into PATH (through a temporary file). */
int report_xml_write(const struct report *rep, const struct report_meta *meta, const char *path,
    char *err, size_t errlen);

/* JSON: report_json_begin, then report_json_add per report, then report_json_end prints it. */
struct report_json;
struct report_json *report_json_begin(void);
int report_json_add(struct report_json *j, const struct report *rep,
    const struct report_meta *meta);
int report_json_end(struct report_json *j, FILE *out);

/* report_html_write - the page of the DAYS days up to NOW into PATH; -1 with err. */
int report_html_write(struct sqlite3 *db, int64_t now, unsigned days,
    const struct report_meta *meta, const char *path, char *err, size_t errlen);

/* Mailing reports (report_send.c). */
struct moat_dns;

/*
 * report_rua_authorized - may POLICY_DOMAIN's reports go to ADDR (RFC 9990 3)? 1 when ADDR's
 * domain is the policy domain, a subdomain or a parent of it, or publishes
 * "<policy-domain>._report._dmarc.<domain>" TXT "v=DMARC1"; 0 when not; -1 when DNS failed
 * temporarily.
 */
int report_rua_authorized(struct moat_dns *dns, const char *policy_domain, const char *addr);

struct report_sender {
	const char *smtp; /* host:port or unix:/path */
	const struct report_meta *meta; /* the envelope sender and From is meta->email */
};
/*
 * report_send_one - mail REP's report file GZ (GZLEN bytes, attached as NAME) to TO through
 * S->smtp. 0 sent; 1 refused for good (a 5xx reply); -1 may work later; err says why.
 */
int report_send_one(const struct report_sender *s, const struct report *rep, const char *to,
    const unsigned char *gz, size_t gzlen, const char *name, char *err, size_t errlen);

/*
 * report_send_failure - mail the failure report REPORT (the multipart/report entity the daemon
 * stored, with its Content-Type) of POLICY_DOMAIN, stored as ID, to TO. As report_send_one.
 */
int report_send_failure(const struct report_sender *s, const char *policy_domain, long long id,
    const char *to, const char *report, char *err, size_t errlen);

#endif /* MOAT_REPORT_H */
