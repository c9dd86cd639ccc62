/*
 * report_html.c - one self-contained HTML page for a postmaster (report.h).
 *
 * No script, no external font, style sheet or image: the CSS is inline and the charts are inline
 * SVG, so the page opens from a file or a mail attachment and fetches nothing. Sections: totals;
 * messages per UTC day by DMARC result (stacked bars); pass/fail per From domain; the top failing
 * sources with their SPF and DKIM results; what mxmoat rejected or quarantined; the policy
 * overrides. Every number has an id or a data- attribute, so a test can find it in the DOM.
 */
#include "config.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "report.h"

#define HTML_TOP 20 /* rows in each top list */
#define HTML_DAYS_MAX 400

/* The DMARC results charted, with their colours. */
static const struct {
	const char *name, *colour;
} results[] = {
	{ "pass", "#2e7d32" },
	{ "fail", "#c62828" },
	{ "none", "#9e9e9e" },
	{ "temperror", "#ef6c00" },
	{ "permerror", "#6a1b9a" },
};
#define NRESULTS (sizeof(results) / sizeof(results[0]))

/* esc - S escaped for HTML text and attribute values. */
static void
esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
			break;
		}
	}
}

/* row_start - a table row keyed by KEY: <tr data-ATTR="KEY"><td>KEY</td>, KEY escaped. */
static void
row_start(FILE *f, const char *attr, const char *key)
{
	fprintf(f, "<tr data-%s=\"", attr);
	esc(f, key);
	fputs("\"><td>", f);
	esc(f, key);
	fputs("</td>", f);
}

static const char *
col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

static int
prepare(sqlite3 *db, const char *sql, int64_t since, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(*st, 1, since);
	return 0;
}

/* table_begin - prepare SQL (bound to SINCE) and write HEAD, the heading and the table's start. */
static int
table_begin(FILE *f, sqlite3 *db, const char *sql, int64_t since, sqlite3_stmt **st,
    const char *head)
{
	if (prepare(db, sql, since, st) < 0)
		return -1;
	fputs(head, f);
	return 0;
}

/* day_label - "2026-12-07" for a day number. */
static void
day_label(int64_t day, char *out, size_t outlen)
{
	time_t t = (time_t)(day * REPORT_DAY);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%d", &tm);
}

/* totals - the summary line. */
static int
totals(FILE *f, sqlite3 *db, int64_t since)
{
	static const char sql[] =
	    "SELECT count(*), coalesce(sum(dmarc = 'pass'), 0), coalesce(sum(dmarc = 'fail'), 0),"
	    " coalesce(sum(disposition = 'reject'), 0), coalesce(sum(disposition = 'quarantine'), 0)"
	    " FROM records WHERE t >= ?1";
	static const char *const ids[] = { "total-messages", "total-pass", "total-fail",
		"total-rejected", "total-quarantined" };
	static const char *const labels[] = { "messages", "DMARC pass", "DMARC fail", "rejected",
		"quarantined" };
	sqlite3_stmt *st;

	if (prepare(db, sql, since, &st) < 0 || sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return -1;
	}
	fputs("<div class=\"totals\">\n", f);
	for (int i = 0; i < 5; i++)
		fprintf(f,
		    "<div class=\"total\"><span class=\"n\" id=\"%s\">%" PRId64
		    "</span> %s</div>\n",
		    ids[i], (int64_t)sqlite3_column_int64(st, i), labels[i]);
	fputs("</div>\n", f);
	sqlite3_finalize(st);
	return 0;
}

/* per_day - stacked bars: one per day from SINCE to NOW, one colour per DMARC result. */
static int
per_day(FILE *f, sqlite3 *db, int64_t since, int64_t now)
{
	static const char sql[] =
	    "SELECT t / 86400, dmarc, count(*) FROM records WHERE t >= ?1 GROUP BY 1, 2";
	static int64_t counts[HTML_DAYS_MAX][NRESULTS];
	int64_t first = since / REPORT_DAY, ndays = now / REPORT_DAY - first + 1, max = 1;
	const int w = 900, h = 260, left = 50, bottom = 40, top = 10;
	sqlite3_stmt *st;
	double bw;
	char label[16];
	int64_t d;

	if (ndays > HTML_DAYS_MAX)
		ndays = HTML_DAYS_MAX;
	memset(counts, 0, sizeof(counts));
	if (prepare(db, sql, since, &st) < 0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t day = sqlite3_column_int64(st, 0) - first;
		const char *res = col_text(st, 1);
		for (size_t r = 0; r < NRESULTS && day >= 0 && day < ndays; r++)
			if (strcmp(res, results[r].name) == 0)
				counts[day][r] += sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	for (d = 0; d < ndays; d++) {
		int64_t sum = 0;
		for (size_t r = 0; r < NRESULTS; r++)
			sum += counts[d][r];
		if (sum > max)
			max = sum;
	}
	bw = (double)(w - left - 10) / (double)ndays;
	fputs("<h2>Messages per day by DMARC result</h2>\n<p class=\"legend\">", f);
	for (size_t r = 0; r < NRESULTS; r++)
		fprintf(f,
		    "<span><svg width=\"12\" height=\"12\"><rect width=\"12\" height=\"12\" fill=\"%s\"/></svg> %s</span> ",
		    results[r].colour, results[r].name);
	fprintf(f,
	    "</p>\n<svg id=\"chart-days\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\""
	    " aria-label=\"messages per day\">\n",
	    w, h, w, h);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>\n", left,
	    h - bottom, w - 10, h - bottom);
	fprintf(f,
	    "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%" PRId64 "</text>\n",
	    left - 4, top + 10, max);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">0</text>\n",
	    left - 4, h - bottom);
	for (d = 0; d < ndays; d++) {
		double x = left + (double)d * bw, y = h - bottom;
		int64_t sum = 0;
		day_label(first + d, label, sizeof(label));
		for (size_t r = 0; r < NRESULTS; r++) {
			double bh = (double)counts[d][r] * (h - bottom - top) / (double)max;
			sum += counts[d][r];
			if (counts[d][r] == 0)
				continue;
			y -= bh;
			fprintf(f,
			    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\""
			    " data-day=\"%s\" data-result=\"%s\" data-count=\"%" PRId64
			    "\"><title>%s %s: %" PRId64 "</title></rect>\n",
			    x + 1, y, bw > 3 ? bw - 2 : bw, bh, results[r].colour, label,
			    results[r].name, counts[d][r], label, results[r].name, counts[d][r]);
		}
		if (ndays <= 14 || d % (ndays / 7 + 1) == 0)
			fprintf(f,
			    "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n",
			    x + bw / 2, h - bottom + 14, label + 5);
		(void)sum;
	}
	fputs("</svg>\n", f);
	return 0;
}

/* per_domain - pass and fail per From domain, most mail first, with a bar. */
static int
per_domain(FILE *f, sqlite3 *db, int64_t since)
{
	static const char sql[] =
	    "SELECT header_from, sum(dmarc = 'pass'), sum(dmarc = 'fail'), count(*)"
	    " FROM records WHERE t >= ?1 AND header_from <> '' GROUP BY 1 ORDER BY 4 DESC, 1 LIMIT 50";
	sqlite3_stmt *st;

	if (table_begin(f, db, sql, since, &st,
		"<h2>Pass and fail per From domain</h2>\n<table id=\"domains\">\n"
		"<tr><th>From domain</th><th>pass</th><th>fail</th><th>total</th><th></th></tr>\n") <
	    0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t pass = sqlite3_column_int64(st, 1), fail = sqlite3_column_int64(st, 2);
		int64_t total = sqlite3_column_int64(st, 3);
		double pw = total ? 200.0 * (double)pass / (double)total : 0,
		       fw = total ? 200.0 * (double)fail / (double)total : 0;
		row_start(f, "domain", col_text(st, 0));
		fprintf(f,
		    "<td class=\"pass\">%" PRId64 "</td><td class=\"fail\">%" PRId64
		    "</td><td>%" PRId64
		    "</td><td><svg width=\"200\" height=\"12\"><rect width=\"%.1f\" height=\"12\" fill=\"%s\"/>"
		    "<rect x=\"%.1f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/></svg></td></tr>\n",
		    pass, fail, total, pw, results[0].colour, pw, fw, results[1].colour);
	}
	fputs("</table>\n", f);
	sqlite3_finalize(st);
	return 0;
}

/* dkim_cell - one DKIM result of a failing source, in its table cell. */
static void
dkim_cell(const char *domain, const char *selector, const char *result, void *arg)
{
	FILE *f = arg;

	fputs("<div>", f);
	esc(f, domain);
	fputs(" (", f);
	esc(f, selector);
	fputs("): ", f);
	esc(f, result);
	fputs("</div>", f);
}

/* failing_sources - the addresses sending the most DMARC failures, with what they presented. */
static int
failing_sources(FILE *f, sqlite3 *db, int64_t since)
{
	static const char sql[] =
	    "SELECT source_ip, header_from, spf_domain, spf_result, dkim, count(*)"
	    " FROM records WHERE t >= ?1 AND dmarc = 'fail' GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC, 1 LIMIT "
	    "20";
	sqlite3_stmt *st;

	if (table_begin(f, db, sql, since, &st,
		"<h2>Top failing sources</h2>\n<table id=\"failing\">\n"
		"<tr><th>source IP</th><th>From domain</th><th>SPF</th><th>DKIM</th><th>messages</th></tr>\n") <
	    0)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		row_start(f, "ip", col_text(st, 0));
		fputs("<td>", f);
		esc(f, col_text(st, 1));
		fputs("</td><td>", f);
		esc(f, col_text(st, 3));
		fputs(" (", f);
		esc(f, col_text(st, 2));
		fputs(")</td><td>", f);
		if (col_text(st, 4)[0] == '\0')
			fputs("none", f);
		else
			(void)report_dkim_each(col_text(st, 4), dkim_cell, f);
		fprintf(f, "</td><td class=\"n\">%" PRId64 "</td></tr>\n",
		    (int64_t)sqlite3_column_int64(st, 5));
	}
	fputs("</table>\n", f);
	sqlite3_finalize(st);
	return 0;
}

/* grouped_table - a table of (a, b, count) rows: what mxmoat refused, and the overrides. */
static int
grouped_table(FILE *f, sqlite3 *db, int64_t since, const char *sql, const char *id,
    const char *title, const char *h1, const char *h2)
{
	sqlite3_stmt *st;

	if (prepare(db, sql, since, &st) < 0)
		return -1;
	fprintf(f,
	    "<h2>%s</h2>\n<table id=\"%s\">\n<tr><th>%s</th><th>%s</th><th>messages</th></tr>\n",
	    title, id, h1, h2);
	while (sqlite3_step(st) == SQLITE_ROW) {
		row_start(f, "key", col_text(st, 0));
		fputs("<td>", f);
		esc(f, col_text(st, 1));
		fprintf(f, "</td><td class=\"n\">%" PRId64 "</td></tr>\n",
		    (int64_t)sqlite3_column_int64(st, 2));
	}
	fputs("</table>\n", f);
	sqlite3_finalize(st);
	return 0;
}

int
report_html_write(sqlite3 *db, int64_t now, unsigned days, const struct report_meta *meta,
    const char *path, char *err, size_t errlen)
{
	static const char refused_sql[] =
	    "SELECT disposition, header_from, count(*) FROM records"
	    " WHERE t >= ?1 AND disposition IN ('reject', 'quarantine') GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 50";
	static const char override_sql[] =
	    "SELECT override, override_comment, count(*) FROM records"
	    " WHERE t >= ?1 AND override <> '' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50";
	int64_t since = (now / REPORT_DAY - (int64_t)(days ? days - 1 : 0)) * REPORT_DAY;
	char first[16], last[16];
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL) {
		snprintf(err, errlen, "cannot create %s", path);
		return -1;
	}
	day_label(since / REPORT_DAY, first, sizeof(first));
	day_label(now / REPORT_DAY, last, sizeof(last));
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<link rel=\"icon\" href=\"data:,\">\n<title>DMARC report - ",
	    f);
	esc(f, meta->org_name);
	fputs("</title>\n<style>\nbody{font-family:sans-serif;margin:2em;color:#222}\n"
	      "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;"
	      "text-align:left}\ntd.n,td.pass,td.fail{text-align:right}\n.totals{display:flex;gap:2em}"
	      ".total .n{font-size:1.6em;font-weight:bold}\n.legend span{margin-right:1em}\n</style>\n</head>\n<body>\n"
	      "<h1>DMARC report of ",
	    f);
	esc(f, meta->org_name);
	fprintf(f, "</h1>\n<p id=\"period\">%s to %s (UTC)</p>\n", first, last);
	rc = totals(f, db, since) | per_day(f, db, since, now) | per_domain(f, db, since) |
	    failing_sources(f, db, since) |
	    grouped_table(f, db, since, refused_sql, "refused", "Rejected or quarantined by mxmoat",
		"disposition", "From domain") |
	    grouped_table(f, db, since, override_sql, "overrides", "Policy overrides", "reason",
		"comment");
	fputs("</body>\n</html>\n", f);
	if (fclose(f) != 0 || rc != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path,
		    rc ? sqlite3_errmsg(db) : "write error");
		return -1;
	}
	return 0;
}
