/*
 * dmarc_report_redis.c - the Redis store of DMARC evaluations (dmarc_report_store = redis).
 *
 * Several gateways recording into one Redis report as one. The recorder's writer thread appends
 * each batch to the lists of its UTC days in one pipeline (synchronous hiredis with the
 * ratelimit_redis_timeout: the thread is the recorder's own, never a mail path). mxmoat-report
 * copies the lists into a SQLite store in memory and marks the periods it emitted in Redis, so
 * reading and aggregating is the SQLite store's code. The key layout is in dmarc_report.h.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "dmarc_report.h"
#include "dmarc_report_int.h"
#include "ratelimit_redis.h"
#include "text.h"

#define DREP_DAY 86400
#define DREP_KEEP_S ((long long)MOAT_DREP_REDIS_KEEP_DAYS * DREP_DAY)
#define DREP_PREFIX_MAX 128
#define DREP_KEY_MAX (DREP_PREFIX_MAX + 32)
#define DREP_IMPORT_CHUNK 10000 /* list elements per LRANGE */

struct moat__drep_redis {
	redisContext *c; /* NULL: connect at the next batch */
	char host[256];
	int port;
	unsigned timeout_ms;
	char prefix[DREP_PREFIX_MAX];
};

/* drep_dial - a connection with TIMEOUT_MS for the connect and every call; NULL with err. */
static redisContext *
drep_dial(const char *host, int port, unsigned timeout_ms, char *err, size_t errlen)
{
	struct timeval tv = { (time_t)(timeout_ms / 1000),
		(suseconds_t)(timeout_ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(host, port, tv);

	if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK)
		return c;
	snprintf(err, errlen, "redis %s:%d: %s", host, port, c ? c->errstr : "out of memory");
	redisFree(c);
	return NULL;
}

/* ---- the writer's side ---- */

struct moat__drep_redis *
moat__drep_redis_new(const char *hostport, const char *prefix, unsigned timeout_ms)
{
	struct moat__drep_redis *r = calloc(1, sizeof(*r));

	if (r == NULL || hostport == NULL || prefix == NULL ||
	    moat_hostport_split(hostport, r->host, sizeof(r->host), &r->port) < 0 ||
	    strlen(prefix) >= sizeof(r->prefix)) {
		free(r);
		return NULL;
	}
	snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
	r->timeout_ms = timeout_ms ? timeout_ms : 200;
	return r;
}

void
moat__drep_redis_free(struct moat__drep_redis *r)
{
	if (r == NULL)
		return;
	redisFree(r->c);
	free(r);
}

/* drep_append_day - expire DAY's list with its last write, and list the day in "days". */
static void
drep_append_day(struct moat__drep_redis *r, int64_t day, unsigned *pending)
{
	char key[DREP_KEY_MAX], num[24];

	snprintf(key, sizeof(key), "%sr:%" PRId64, r->prefix, day);
	snprintf(num, sizeof(num), "%" PRId64, day);
	redisAppendCommand(r->c, "EXPIRE %s %lld", key, DREP_KEEP_S);
	snprintf(key, sizeof(key), "%sdays", r->prefix);
	redisAppendCommand(r->c, "SADD %s %s", key, num);
	redisAppendCommand(r->c, "EXPIRE %s %lld", key, DREP_KEEP_S);
	*pending += 3;
}

/* drep_append_failure - a failure report onto the "f" list, which expires with its last write. */
static int
drep_append_failure(struct moat__drep_redis *r, const struct rec *q, unsigned *pending)
{
	size_t len = moat__drep_rec_len(q);
	char key[DREP_KEY_MAX], *elem = malloc(24 + len);
	int tl;

	if (elem == NULL)
		return -1;
	tl = snprintf(elem, 24, "%" PRId64, q->time) + 1;
	memcpy(elem + tl, q->buf, len);
	snprintf(key, sizeof(key), "%sf", r->prefix);
	redisAppendCommand(r->c, "RPUSH %s %b", key, elem, (size_t)tl + len);
	redisAppendCommand(r->c, "EXPIRE %s %lld", key, DREP_KEEP_S);
	free(elem);
	*pending += 2;
	return 0;
}

int
moat__drep_redis_append(struct moat__drep_redis *r, const struct rec *list, char *err,
    size_t errlen)
{
	const struct rec *q;
	unsigned pending = 0;
	int64_t day = -1;
	bool failed = false;

	if (r->c == NULL &&
	    (r->c = drep_dial(r->host, r->port, r->timeout_ms, err, errlen)) == NULL)
		return -1;
	moat__rlredis_reader_bound(r->c->reader); /* every reply is an integer */
	for (q = list; q != NULL; q = q->next) {
		char key[DREP_KEY_MAX], *elem;
		size_t len = moat__drep_rec_len(q);
		int tl;

		if (q->failure) {
			if (drep_append_failure(r, q, &pending) < 0) {
				snprintf(err, errlen, "out of memory");
				failed = true;
				break;
			}
			continue;
		}
		if (q->time / DREP_DAY != day) {
			if (day >= 0)
				drep_append_day(r, day, &pending);
			day = q->time / DREP_DAY;
		}
		/* "TIME\0" then the fields as packed */
		if ((elem = malloc(24 + len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			failed = true;
			break;
		}
		tl = snprintf(elem, 24, "%" PRId64, q->time) + 1;
		memcpy(elem + tl, q->buf, len);
		snprintf(key, sizeof(key), "%sr:%" PRId64, r->prefix, day);
		redisAppendCommand(r->c, "RPUSH %s %b", key, elem, (size_t)tl + len);
		free(elem);
		pending++;
	}
	if (day >= 0)
		drep_append_day(r, day, &pending);
	while (pending > 0) {
		redisReply *rep = NULL;
		if (redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
			snprintf(err, errlen, "redis %s:%d: %s", r->host, r->port, r->c->errstr);
			redisFree(r->c);
			r->c = NULL;
			return -1;
		}
		if (rep->type == REDIS_REPLY_ERROR && !failed) {
			snprintf(err, errlen, "redis %s:%d: %s", r->host, r->port, rep->str);
			failed = true;
		}
		freeReplyObject(rep);
		pending--;
	}
	return failed ? -1 : 0;
}

/* ---- mxmoat-report's side ---- */

struct redisContext *
moat_dmarc_report_redis_connect(const char *hostport, unsigned timeout_ms, char *err, size_t errlen)
{
	char host[256];
	int port;

	if (moat_hostport_split(hostport, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "ratelimit_redis: not host:port: %s", hostport);
		return NULL;
	}
	return drep_dial(host, port, timeout_ms ? timeout_ms : 200, err, errlen);
}

/* reply_check - REP is of TYPE; else -1 with err (REP freed). */
static int
reply_check(redisContext *c, redisReply *rep, int type, char *err, size_t errlen)
{
	if (rep != NULL && (int)rep->type == type)
		return 0;
	snprintf(err, errlen, "redis: %s",
	    rep == NULL                          ? c->errstr
		: rep->type == REDIS_REPLY_ERROR ? rep->str
						 : "unexpected reply");
	freeReplyObject(rep);
	return -1;
}

/* elem_split - a list element "TIME\0" then NF NUL-terminated strings into *T and F (pointing
 * into S); -1 when it is not one. */
static int
elem_split(const char *s, size_t len, int64_t *t, const char *f[], unsigned nf)
{
	const char *end = s + len, *p;
	char *tend;

	p = memchr(s, '\0', len);
	if (p == NULL || p == s)
		return -1;
	errno = 0;
	*t = strtoll(s, &tend, 10);
	if (errno != 0 || tend != p || *t < 0)
		return -1;
	for (unsigned i = 0; i < nf; i++) {
		const char *nul;
		p++;
		if (p >= end || (nul = memchr(p, '\0', (size_t)(end - p))) == NULL)
			return -1;
		f[i] = p;
		p = nul;
	}
	return p + 1 == end ? 0 : -1;
}

/* import_one - one list element into INS; 0, or 1 when it is not a record (skipped). */
static int
import_one(sqlite3_stmt *ins, const char *s, size_t len, long *n)
{
	const char *f[F_COUNT];
	int64_t t;

	if (elem_split(s, len, &t, f, F_COUNT) < 0)
		return 1;
	if (moat__drep_insert(ins, t, f, F_COUNT) < 0)
		return -1;
	(*n)++;
	return 0;
}

/* import_day - DAY's records and emitted marks into the prepared statements; -1 with err. */
static int
import_day(redisContext *c, const char *prefix, long long day, sqlite3_stmt *ins,
    sqlite3_stmt *mark, long *n, char *err, size_t errlen)
{
	for (long long start = 0;; start += DREP_IMPORT_CHUNK) {
		redisReply *rep = redisCommand(c, "LRANGE %sr:%lld %lld %lld", prefix, day, start,
		    start + DREP_IMPORT_CHUNK - 1);
		size_t got;

		if (reply_check(c, rep, REDIS_REPLY_ARRAY, err, errlen) < 0)
			return -1;
		for (size_t i = 0; i < rep->elements; i++) {
			const redisReply *e = rep->element[i];
			if (e->type == REDIS_REPLY_STRING &&
			    import_one(ins, e->str, e->len, n) < 0) {
				snprintf(err, errlen, "out of memory");
				freeReplyObject(rep);
				return -1;
			}
		}
		got = rep->elements;
		freeReplyObject(rep);
		if (got < DREP_IMPORT_CHUNK)
			break;
	}
	redisReply *rep = redisCommand(c, "HGETALL %ssent:%lld", prefix, day);
	if (reply_check(c, rep, REDIS_REPLY_ARRAY, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *k = rep->element[i], *v = rep->element[i + 1];
		const char *sp;
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
		    (sp = memchr(k->str, ' ', k->len)) == NULL)
			continue;
		sqlite3_reset(mark);
		sqlite3_bind_text(mark, 1, sp + 1, (int)(k->str + k->len - sp - 1), SQLITE_STATIC);
		sqlite3_bind_int64(mark, 2, (sqlite3_int64)day * DREP_DAY);
		sqlite3_bind_text(mark, 3, k->str, (int)(sp - k->str), SQLITE_STATIC);
		sqlite3_bind_text(mark, 4, v->str, (int)v->len, SQLITE_STATIC);
		if (sqlite3_step(mark) != SQLITE_DONE) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(sqlite3_db_handle(mark)));
			freeReplyObject(rep);
			return -1;
		}
	}
	sqlite3_reset(mark);
	freeReplyObject(rep);
	return 0;
}

static int
day_cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

long
moat_dmarc_report_redis_import(struct redisContext *c, const char *prefix, sqlite3 *db, char *err,
    size_t errlen)
{
	static const char mark_sql[] =
	    "INSERT OR IGNORE INTO emitted (policy_domain, begin, kind, at, report_id)"
	    " VALUES (?1, ?2, ?3, 0, ?4)";
	sqlite3_stmt *ins = NULL, *mark = NULL;
	redisReply *days = redisCommand(c, "SMEMBERS %sdays", prefix);
	long long *list = NULL;
	size_t nlist = 0;
	long n = 0;
	int rc = -1;

	if (reply_check(c, days, REDIS_REPLY_ARRAY, err, errlen) < 0)
		return -1;
	if ((list = calloc(days->elements + 1, sizeof(*list))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < days->elements; i++) {
		char *end;
		const redisReply *d = days->element[i];
		if (d->type != REDIS_REPLY_STRING)
			continue;
		errno = 0;
		list[nlist] = strtoll(d->str, &end, 10);
		if (errno == 0 && *end == '\0' && list[nlist] >= 0)
			nlist++;
	}
	qsort(list, nlist, sizeof(*list), day_cmp);
	if (moat__drep_insert_prepare(db, &ins) < 0 ||
	    sqlite3_prepare_v2(db, mark_sql, -1, &mark, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < nlist && rc == 0; i++)
		rc = import_day(c, prefix, list[i], ins, mark, &n, err, errlen);
	if (sqlite3_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK &&
	    rc == 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		rc = -1;
	}
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(mark);
	free(list);
	freeReplyObject(days);
	return rc == 0 ? n : -1;
}

int
moat_dmarc_report_redis_mark(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *kind, const char *report_id, char *err, size_t errlen)
{
	long long day = (long long)(begin / DREP_DAY);
	char field[512];
	redisReply *rep;

	snprintf(field, sizeof(field), "%s %s", kind, domain); /* one argument */
	redisAppendCommand(c, "HSET %ssent:%lld %s %s", prefix, day, field, report_id);
	redisAppendCommand(c, "EXPIRE %ssent:%lld %lld", prefix, day, DREP_KEEP_S);
	for (int i = 0; i < 2; i++) {
		rep = NULL;
		if (redisGetReply(c, (void **)&rep) != REDIS_OK)
			rep = NULL;
		if (reply_check(c, rep, REDIS_REPLY_INTEGER, err, errlen) < 0)
			return -1;
		freeReplyObject(rep);
	}
	return 0;
}

long
moat_dmarc_report_redis_failures_take(struct redisContext *c, const char *prefix, sqlite3 *db,
    char *err, size_t errlen)
{
	sqlite3_stmt *ins = NULL;
	long n = 0;

	if (moat__drep_failure_prepare(db, &ins) < 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
	/* LPOP hands each element to one caller only: two runs never take the same report */
	for (;;) {
		redisReply *rep = redisCommand(c, "LPOP %sf", prefix);
		const char *f[FF_COUNT];
		int64_t t;

		if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
			freeReplyObject(rep);
			break;
		}
		if (reply_check(c, rep, REDIS_REPLY_STRING, err, errlen) < 0) {
			n = -1;
			break;
		}
		if (elem_split(rep->str, rep->len, &t, f, FF_COUNT) == 0) {
			if (moat__drep_insert(ins, t, f, FF_COUNT) < 0) {
				/* it is in our hands only: give it back before failing */
				redisReply *back =
				    redisCommand(c, "LPUSH %sf %b", prefix, rep->str, rep->len);
				freeReplyObject(back);
				snprintf(err, errlen, "%s", sqlite3_errmsg(db));
				freeReplyObject(rep);
				n = -1;
				break;
			}
			n++;
		}
		freeReplyObject(rep);
	}
	sqlite3_finalize(ins);
	return n;
}

int
moat_dmarc_report_redis_failures_return(struct redisContext *c, const char *prefix, sqlite3 *db,
    char *err, size_t errlen)
{
	static const char sql[] = "SELECT t, policy_domain, ruf, report FROM failures ORDER BY id";
	sqlite3_stmt *st = NULL;
	int rc = 0, step;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return -1;
	}
	while (rc == 0 && (step = sqlite3_step(st)) != SQLITE_DONE) {
		char *elem;
		size_t len = 24, o;
		redisReply *rep;

		if (step != SQLITE_ROW) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(db));
			rc = -1;
			break;
		}
		for (int i = 1; i <= FF_COUNT; i++)
			len += (size_t)sqlite3_column_bytes(st, i) + 1;
		if ((elem = malloc(len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		o = (size_t)snprintf(elem, 24, "%lld", (long long)sqlite3_column_int64(st, 0)) + 1;
		for (int i = 1; i <= FF_COUNT; i++) {
			size_t l = (size_t)sqlite3_column_bytes(st, i);
			memcpy(elem + o, sqlite3_column_text(st, i), l);
			elem[o + l] = '\0';
			o += l + 1;
		}
		rep = redisCommand(c, "RPUSH %sf %b", prefix, elem, o);
		free(elem);
		if (reply_check(c, rep, REDIS_REPLY_INTEGER, err, errlen) < 0)
			rc = -1;
		else
			freeReplyObject(rep);
	}
	sqlite3_finalize(st);
	return rc;
}

/* claim_key - the key of DOMAIN's period from BEGIN being sent. */
static void
claim_key(char *key, size_t len, const char *prefix, const char *domain, int64_t begin)
{
	snprintf(key, len, "%sclaim:%lld:%s", prefix, (long long)(begin / DREP_DAY), domain);
}

int
moat_dmarc_report_redis_claim(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *token, unsigned ttl_s, char *err, size_t errlen)
{
	char key[DREP_KEY_MAX + 256];
	redisReply *rep;
	int rc;

	claim_key(key, sizeof(key), prefix, domain, begin);
	rep = redisCommand(c, "SET %s %s NX EX %u", key, token, ttl_s);
	if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
		freeReplyObject(rep);
		return 0; /* another run holds it */
	}
	if (reply_check(c, rep, REDIS_REPLY_STATUS, err, errlen) < 0)
		return -1;
	rc = strcmp(rep->str, "OK") == 0 ? 1 : 0;
	freeReplyObject(rep);
	return rc;
}

int
moat_dmarc_report_redis_release(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *token, char *err, size_t errlen)
{
	/* only our own claim: one that expired and was taken by another run stays */
	static const char script[] =
	    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
	    "return 0";
	char key[DREP_KEY_MAX + 256];
	redisReply *rep;

	claim_key(key, sizeof(key), prefix, domain, begin);
	rep = redisCommand(c, "EVAL %s 1 %s %s", script, key, token);
	if (reply_check(c, rep, REDIS_REPLY_INTEGER, err, errlen) < 0)
		return -1;
	freeReplyObject(rep);
	return 0;
}

int
moat_dmarc_report_redis_marked(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *kind, char *err, size_t errlen)
{
	char field[512];
	redisReply *rep;
	int rc;

	snprintf(field, sizeof(field), "%s %s", kind, domain);
	rep =
	    redisCommand(c, "HEXISTS %ssent:%lld %s", prefix, (long long)(begin / DREP_DAY), field);
	if (reply_check(c, rep, REDIS_REPLY_INTEGER, err, errlen) < 0)
		return -1;
	rc = rep->integer != 0;
	freeReplyObject(rep);
	return rc;
}
