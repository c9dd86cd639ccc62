/*
 * report_data.c - the aggregates of the recorded DMARC evaluations (see report.h).
 *
 * One sequential scan of the records of complete days; each record's policy domain, day and
 * grouped columns form a key, counted in a hash table (RFC 9990 2.1: rows are grouped by source
 * IP, disposition, the aligned DKIM and SPF results, the override, the identifiers and the
 * authentication results). The distinct rows are then sorted by policy domain and day and handed
 * out one report at a time. A scan and a hash table cost a fraction of SQLite's GROUP BY over
 * fourteen text columns (an external sort): a million records take a few CPU seconds.
 * Periods already emitted as the kind asked for are skipped; messages that were tempfailed are
 * left out (the sender tries again and that try is counted), and so are those whose client
 * address was not known (a row needs a source_ip).
 */
#include "config.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* The grouped columns, in the order of enum report_col. */
#define ROW_COLUMNS \
	"source_ip, disposition, dkim_aligned, spf_aligned, override, override_comment," \
	" header_from, envelope_from, spf_domain, spf_scope, spf_result, dkim"

static const char scan_sql[] =
    "SELECT policy_domain, t / 86400, " ROW_COLUMNS ", id FROM records NOT INDEXED"
    " WHERE policy_domain <> '' AND source_ip <> '' AND disposition <> 'tempfail' AND t < ?1";
static const char emitted_sql[] =
    "SELECT policy_domain, begin / 86400 FROM emitted WHERE kind = ?1";

/* One distinct row, or (emitted set) one period: the key is the policy domain, the day and the
 * grouped columns, each NUL-terminated, back to back. */
struct agg {
	char *key;
	size_t len;
	uint64_t hash;
	int64_t day;
	uint64_t count;
	int64_t last_id;
};

struct table {
	struct agg **slot;
	size_t cap, n; /* cap: a power of two, at most half full */
};

/* fnv64 - FNV-1a; also the report id: stable for one receiver, domain and day. */
static uint64_t
fnv64_mem(const char *s, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

#define FNV_BASIS 14695981039346656037ULL

static uint64_t
fnv64(const char *s, uint64_t h)
{
	return fnv64_mem(s, strlen(s), h);
}

/* table_find - the slot of KEY (its entry, or the empty slot where it belongs). */
static struct agg **
table_find(struct table *t, const char *key, size_t len, uint64_t hash)
{
	size_t i = (size_t)hash & (t->cap - 1);

	while (t->slot[i] != NULL &&
	    !(t->slot[i]->hash == hash && t->slot[i]->len == len &&
		memcmp(t->slot[i]->key, key, len) == 0))
		i = (i + 1) & (t->cap - 1);
	return &t->slot[i];
}

/* table_grow - double the table; -1 when out of memory. */
static int
table_grow(struct table *t)
{
	struct table bigger = { NULL, t->cap ? t->cap * 2 : 1024, t->n };

	if ((bigger.slot = calloc(bigger.cap, sizeof(struct agg *))) == NULL)
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i] != NULL)
			*table_find(&bigger, t->slot[i]->key, t->slot[i]->len, t->slot[i]->hash) =
			    t->slot[i];
	free(t->slot);
	*t = bigger;
	return 0;
}

/* table_add - the entry of KEY, made (count 0) if new; NULL when out of memory. */
static struct agg *
table_add(struct table *t, const char *key, size_t len, uint64_t hash, int64_t day)
{
	struct agg **slot, *a;

	if ((t->n + 1) * 2 > t->cap && table_grow(t) < 0)
		return NULL;
	slot = table_find(t, key, len, hash);
	if (*slot != NULL)
		return *slot;
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->key = malloc(len)) == NULL) {
		free(a);
		return NULL;
	}
	memcpy(a->key, key, len);
	a->len = len;
	a->hash = hash;
	a->day = day;
	*slot = a;
	t->n++;
	return a;
}

static void
table_free(struct table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i] != NULL) {
			free(t->slot[i]->key);
			free(t->slot[i]);
		}
	free(t->slot);
}

/* key_build - columns FIRST..LAST of the current row, each with its NUL, into *buf; the length. */
static size_t
key_build(sqlite3_stmt *st, int first, int last, char **buf, size_t *cap)
{
	size_t o = 0;

	for (int c = first; c <= last; c++) {
		const unsigned char *s = sqlite3_column_text(st, c);
		size_t n = (size_t)sqlite3_column_bytes(st, c);
		if (o + n + 1 > *cap) {
			size_t ncap = (o + n + 1) * 2;
			char *nb = realloc(*buf, ncap);
			if (nb == NULL)
				return 0;
			*buf = nb;
			*cap = ncap;
		}
		if (n)
			memcpy(*buf + o, s, n);
		(*buf)[o + n] = '\0';
		o += n + 1;
	}
	return o;
}

/* period_key_len - the length of the domain and day part of a row key (two strings). */
static size_t
period_key_len(const char *key)
{
	size_t d = strlen(key) + 1;

	return d + strlen(key + d) + 1;
}

/* load_emitted - the periods emitted as KIND, as keys "domain\0day\0". */
static int
load_emitted(sqlite3 *db, const char *kind, struct table *done, char **buf, size_t *cap)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, emitted_sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len = key_build(st, 0, 1, buf, cap);
		if (len == 0 ||
		    table_add(done, *buf, len, fnv64_mem(*buf, len, FNV_BASIS), 0) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* scan - count every reportable record into ROWS, skipping the periods in DONE. */
static int
scan(sqlite3 *db, int64_t before, struct table *rows, struct table *done, char **buf, size_t *cap)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, scan_sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, before);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len = key_build(st, 0, 1 + COL_COUNT, buf, cap), plen;
		int64_t id = sqlite3_column_int64(st, 2 + COL_COUNT);
		struct agg *a;

		if (len == 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		plen = period_key_len(*buf);
		if (done->n > 0 &&
		    *table_find(done, *buf, plen, fnv64_mem(*buf, plen, FNV_BASIS)) != NULL)
			continue;
		a = table_add(rows, *buf, len, fnv64_mem(*buf, len, FNV_BASIS),
		    sqlite3_column_int64(st, 1));
		if (a == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		a->count++;
		if (id > a->last_id)
			a->last_id = id;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* agg_cmp - by policy domain, then day, then the rest of the key (a stable order). */
static int
agg_cmp(const void *pa, const void *pb)
{
	const struct agg *a = *(const struct agg *const *)pa, *b = *(const struct agg *const *)pb;
	int c = strcmp(a->key, b->key);

	if (c != 0)
		return c;
	if (a->day != b->day)
		return a->day < b->day ? -1 : 1;
	c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
	return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

static char *
dup_col(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return strdup(s ? (const char *)s : "");
}

/* report_reset - free the last report's policy, keep the row array. */
static void
report_reset(struct report *rep)
{
	for (int i = 0; i < POL_COUNT; i++) {
		free(rep->pol.f[i]);
		rep->pol.f[i] = NULL;
	}
	rep->domain = NULL;
	rep->nrows = 0;
	rep->messages = 0;
	rep->last_id = 0;
}

/* report_finish - the policy published (the day's latest record) and the id. */
static int
report_finish(sqlite3 *db, struct report *rep, const struct report_meta *meta, char *err,
    size_t errlen)
{
	static const char sql[] =
	    "SELECT p, sp, np, adkim, aspf, testing, psd, rua, ruf, fo FROM records WHERE id = ?";
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
	h = fnv64(day, fnv64(rep->domain, fnv64(meta->receiver, FNV_BASIS)));
	snprintf(rep->report_id, sizeof(rep->report_id), "%016" PRIx64, h);
	return 0;
fail:
	snprintf(err, errlen, "reading the policy of %s: %s", rep->domain, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return -1;
}

/* report_row_add - A as a new row of REP; its fields point into A's key. */
static int
report_row_add(struct report *rep, const struct agg *a)
{
	struct report_row *r;
	const char *p = a->key;

	if (rep->nrows == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 64;
		struct report_row *rows = realloc(rep->rows, cap * sizeof(*rows));
		if (rows == NULL)
			return -1;
		rep->rows = rows;
		rep->cap = cap;
	}
	r = &rep->rows[rep->nrows++];
	p += strlen(p) + 1; /* the policy domain */
	p += strlen(p) + 1; /* the day */
	for (int i = 0; i < COL_COUNT; i++) {
		r->f[i] = p;
		p += strlen(p) + 1;
	}
	r->count = a->count;
	rep->messages += a->count;
	if (a->last_id > rep->last_id)
		rep->last_id = a->last_id;
	return 0;
}

/* emit - the sorted rows, one report per policy domain and day, each handed to FN. */
static long
emit(sqlite3 *db, struct agg **all, size_t n, const struct report_meta *meta, report_fn fn,
    void *arg, char *err, size_t errlen)
{
	struct report rep = { 0 };
	long count = 0;
	bool failed = false;

	for (size_t i = 0; i <= n && !failed; i++) {
		if (rep.domain != NULL &&
		    (i == n || strcmp(rep.domain, all[i]->key) != 0 ||
			rep.begin != all[i]->day * REPORT_DAY)) {
			failed =
			    report_finish(db, &rep, meta, err, errlen) < 0 || fn(&rep, arg) != 0;
			if (failed)
				break;
			count++;
			report_reset(&rep);
		}
		if (i == n)
			break;
		if (rep.domain == NULL) {
			rep.domain = all[i]->key;
			rep.begin = all[i]->day * REPORT_DAY;
			rep.end = rep.begin + REPORT_DAY - 1;
		}
		if (report_row_add(&rep, all[i]) < 0) {
			snprintf(err, errlen, "out of memory");
			failed = true;
		}
	}
	report_reset(&rep);
	free(rep.rows);
	if (failed) {
		if (err[0] == '\0')
			snprintf(err, errlen, "stopped");
		return -1;
	}
	return count;
}

long
report_walk(sqlite3 *db, int64_t now, const char *kind, const struct report_meta *meta,
    report_fn fn, void *arg, char *err, size_t errlen)
{
	struct table rows = { 0 }, done = { 0 };
	struct agg **all = NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	long count = -1;

	err[0] = '\0';
	if (table_grow(&rows) < 0 || table_grow(&done) < 0 ||
	    (kind != NULL && load_emitted(db, kind, &done, &buf, &cap) < 0) ||
	    scan(db, now - now % REPORT_DAY, &rows, &done, &buf, &cap) <
		0) { /* complete days only */
		snprintf(err, errlen, "reading the store: %s", sqlite3_errmsg(db));
		goto out;
	}
	if ((all = malloc((rows.n + 1) * sizeof(struct agg *))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < rows.cap; i++)
		if (rows.slot[i] != NULL)
			all[n++] = rows.slot[i];
	if (n > 0)
		qsort(all, n, sizeof(struct agg *), agg_cmp);
	count = emit(db, all, n, meta, fn, arg, err, errlen);
out:
	free(all);
	free(buf);
	table_free(&rows);
	table_free(&done);
	return count;
}

int
report_mark(sqlite3 *db, const struct report *rep, const char *kind, int64_t now, char *err,
    size_t errlen)
{
	static const char sql[] =
	    "INSERT OR IGNORE INTO emitted (policy_domain, begin, kind, at, report_id)"
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

int
report_marked(sqlite3 *db, const struct report *rep, const char *kind)
{
	static const char sql[] =
	    "SELECT 1 FROM emitted WHERE policy_domain = ? AND begin = ? AND kind = ?";
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, rep->domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rep->begin);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int
report_filename(const struct report *rep, const struct report_meta *meta, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s!%s!%" PRId64 "!%" PRId64 "!%s.xml.gz", meta->receiver,
	    rep->domain, rep->begin, rep->end, rep->report_id);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int
report_dkim_each(const char *lines, report_dkim_fn fn, void *arg)
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
