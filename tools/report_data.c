/*
 * report_data.c - the aggregates of the recorded DMARC evaluations (see report.h).
 *
 * One GROUP BY over the records of the complete days not yet emitted, ordered by policy domain
 * and day, so one report is built at a time and handed out before the next starts: memory follows
 * the largest report, not the store. RFC 9990 2.1: rows are grouped by source IP, disposition,
 * the aligned DKIM and SPF results, the override, the identifiers and the authentication results.
 * Messages that were tempfailed are left out (the sender tries again and that try is counted), and
 * so are those whose client address was not known (a row needs a source_ip).
 */
#include "config.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* The grouped columns, in the order of enum report_col. */
#define ROW_COLUMNS "source_ip, disposition, dkim_aligned, spf_aligned, override, override_comment," \
	" header_from, envelope_from, spf_domain, spf_scope, spf_result, dkim"

static const char walk_sql[] =
    "SELECT policy_domain, t / 86400 AS day, " ROW_COLUMNS ", count(*), max(id) FROM records"
    " WHERE policy_domain <> '' AND source_ip <> '' AND disposition <> 'tempfail' AND t < ?1"
    " AND (?2 IS NULL OR NOT EXISTS (SELECT 1 FROM emitted e WHERE e.policy_domain = records.policy_domain"
    "  AND e.begin = (records.t / 86400) * 86400 AND e.kind = ?2))"
    " GROUP BY policy_domain, day, " ROW_COLUMNS
    " ORDER BY policy_domain, day";

static char *dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return strdup(s ? (const char *)s : "");
}

/* report_reset - free what the last report held, keep the row array. */
static void report_reset(struct report *rep)
{
	size_t i;

	for (i = 0; i < rep->nrows; i++)
		for (int c = 0; c < COL_COUNT; c++)
			free(rep->rows[i].f[c]);
	for (i = 0; i < POL_COUNT; i++) {
		free(rep->pol.f[i]);
		rep->pol.f[i] = NULL;
	}
	free(rep->domain);
	rep->domain = NULL;
	rep->nrows = 0;
	rep->messages = 0;
	rep->last_id = 0;
}

/* fnv64 - the report id: stable for one receiver, domain and day, so a rerun names the same file. */
static uint64_t fnv64(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* report_finish - the policy published (the day's latest record) and the id. */
static int report_finish(sqlite3 *db, struct report *rep, const struct report_meta *meta, char *err,
    size_t errlen)
{
	static const char sql[] = "SELECT p, sp, np, adkim, aspf, testing, psd, rua, ruf, fo FROM records WHERE id = ?";
	sqlite3_stmt *st = NULL;
	char day[32];
	uint64_t h;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, rep->last_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	for (int i = 0; i < POL_COUNT; i++)
		if ((rep->pol.f[i] = dup_col(st, i)) == NULL)
			goto fail;
	sqlite3_finalize(st);
	snprintf(day, sizeof(day), "|%" PRId64, rep->begin);
	h = fnv64(day, fnv64(rep->domain, fnv64(meta->receiver, 14695981039346656037ULL)));
	snprintf(rep->report_id, sizeof(rep->report_id), "%016" PRIx64, h);
	return 0;
fail:
	snprintf(err, errlen, "reading the policy of %s: %s", rep->domain, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return -1;
}

/* report_row_add - the current result row as a new row of REP. */
static int report_row_add(struct report *rep, sqlite3_stmt *st)
{
	struct report_row *r;

	if (rep->nrows == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 64;
		struct report_row *rows = realloc(rep->rows, cap * sizeof(*rows));
		if (rows == NULL)
			return -1;
		rep->rows = rows;
		rep->cap = cap;
	}
	r = &rep->rows[rep->nrows];
	memset(r, 0, sizeof(*r));
	rep->nrows++;
	for (int i = 0; i < COL_COUNT; i++)
		if ((r->f[i] = dup_col(st, 2 + i)) == NULL)
			return -1;
	r->count = (uint64_t)sqlite3_column_int64(st, 2 + COL_COUNT);
	rep->messages += r->count;
	if (sqlite3_column_int64(st, 3 + COL_COUNT) > rep->last_id)
		rep->last_id = sqlite3_column_int64(st, 3 + COL_COUNT);
	return 0;
}

long report_walk(sqlite3 *db, int64_t now, const char *kind, const struct report_meta *meta,
    report_fn fn, void *arg, char *err, size_t errlen)
{
	struct report rep = { 0 };
	sqlite3_stmt *st = NULL;
	long count = 0;
	int rc;

	if (sqlite3_prepare_v2(db, walk_sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_int64(st, 1, now - now % REPORT_DAY);   /* complete days only */
	if (kind != NULL)
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *domain = (const char *)sqlite3_column_text(st, 0);
		int64_t begin = sqlite3_column_int64(st, 1) * REPORT_DAY;

		if (rep.domain != NULL && (strcmp(rep.domain, domain) != 0 || rep.begin != begin)) {
			if (report_finish(db, &rep, meta, err, errlen) < 0 || fn(&rep, arg) != 0)
				goto fail;
			count++;
			report_reset(&rep);
		}
		if (rep.domain == NULL) {
			if ((rep.domain = strdup(domain)) == NULL)
				goto oom;
			rep.begin = begin;
			rep.end = begin + REPORT_DAY - 1;
		}
		if (report_row_add(&rep, st) < 0)
			goto oom;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	if (rep.domain != NULL) {
		if (report_finish(db, &rep, meta, err, errlen) < 0 || fn(&rep, arg) != 0)
			goto fail;
		count++;
	}
	sqlite3_finalize(st);
	report_reset(&rep);
	free(rep.rows);
	return count;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "stopped");
	sqlite3_finalize(st);
	report_reset(&rep);
	free(rep.rows);
	return -1;
}

int report_mark(sqlite3 *db, const struct report *rep, const char *kind, int64_t now, char *err,
    size_t errlen)
{
	static const char sql[] = "INSERT OR IGNORE INTO emitted (policy_domain, begin, kind, at, report_id)"
	    " VALUES (?, ?, ?, ?, ?)";
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(st, 1, rep->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rep->begin);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_text(st, 5, rep->report_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int report_filename(const struct report *rep, const struct report_meta *meta, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s!%s!%" PRId64 "!%" PRId64 "!%s.xml.gz", meta->receiver, rep->domain,
	    rep->begin, rep->end, rep->report_id);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int report_dkim_each(const char *lines, report_dkim_fn fn, void *arg)
{
	char *copy = strdup(lines), *save = NULL, *line;

	if (copy == NULL)
		return -1;
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sel = strchr(line, ' '), *res = sel ? strchr(sel + 1, ' ') : NULL;
		if (res == NULL)
			continue;
		*sel++ = '\0';
		*res++ = '\0';
		fn(line, sel, res, arg);
	}
	free(copy);
	return 0;
}
