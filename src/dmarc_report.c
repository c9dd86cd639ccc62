/*
 * dmarc_report.c - the DMARC evaluation recorder and its SQLite store (see dmarc_report.h).
 *
 * Owns the queue (a list of packed records, at most queue_max), the writer thread and the
 * writer's SQLite connection. A record is packed into one allocation on the caller's thread; the
 * writer takes the whole queue at once and inserts it in one transaction, so a burst costs one
 * commit. The store's columns are the record's fields in the order of enum rec_field; the table is
 * created here and read by mxmoat-report.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "dmarc_failure.h"
#include "dmarc_report.h"
#include "dmarc_report_int.h"
#include "log.h"
#include "metrics.h"

static const char *const rec_columns[F_COUNT] = {
	"source_ip",
	"header_from",
	"envelope_from",
	"policy_domain",
	"dmarc",
	"dkim_aligned",
	"spf_aligned",
	"disposition",
	"override",
	"override_comment",
	"spf_domain",
	"spf_scope",
	"spf_result",
	"dkim",
	"p",
	"sp",
	"np",
	"adkim",
	"aspf",
	"testing",
	"psd",
	"rua",
	"ruf",
	"fo",
};

struct moat_dmarc_report {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the writer: records queued, or stop */
	pthread_cond_t idle; /* flushers: the writer finished a batch */
	struct rec *head, **tail;
	unsigned n, max;
	bool stop;
	unsigned flushers; /* threads in moat_dmarc_report_flush */
	uint64_t taken, done; /* records taken by the writer / finished (written or lost) */
	struct moat_dmarc_report_stats st;
	uint64_t log_interval_ns;
	uint64_t drop_logged_at; /* monotonic ns; 0: never */
	uint64_t dropped_unlogged;
	uint64_t outage_lost; /* records lost since the store failed; logged when it is back */
	bool failing; /* the last batch failed: the outage has been logged once */
	struct moat_metrics *metrics; /* NULL: not counted */
	pthread_t thread;
	enum moat_dmarc_report_store store;
	char *path;
	sqlite3 *db; /* the writer's (sqlite) */
	sqlite3_stmt *ins, *ins_fail;
	struct moat__drep_redis *redis; /* the writer's (redis) */
	struct moat_dfr_limit *limits; /* failure reports per policy domain and destination */
	uint64_t failures; /* failure reports queued */
};

static const char *
store_name(enum moat_dmarc_report_store s)
{
	return s == MOAT_DREP_REDIS ? "redis" : "sqlite";
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* due - is a log line of this kind due (never logged, or the interval has passed)? */
static bool
due(const struct moat_dmarc_report *r, uint64_t last, uint64_t now)
{
	return last == 0 || now - last >= r->log_interval_ns;
}

/* ---- the store ---- */

struct sqlite3 *
moat_dmarc_report_db_open(const char *path, bool readonly, char *err, size_t errlen)
{
	static const char schema[] =
	    "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;"
	    "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, t INTEGER NOT NULL,"
	    " source_ip TEXT, header_from TEXT, envelope_from TEXT, policy_domain TEXT, dmarc TEXT,"
	    " dkim_aligned TEXT, spf_aligned TEXT, disposition TEXT, override TEXT, override_comment TEXT,"
	    " spf_domain TEXT, spf_scope TEXT, spf_result TEXT, dkim TEXT, p TEXT, sp TEXT, np TEXT,"
	    " adkim TEXT, aspf TEXT, testing TEXT, psd TEXT, rua TEXT, ruf TEXT, fo TEXT);"
	    /* by time for the page (--html); --write scans the table in one pass, so an index by
	     * policy domain would only cost every insert (about 6 us a record, measured) */
	    "DROP INDEX IF EXISTS records_domain_t;"
	    "CREATE INDEX IF NOT EXISTS records_t ON records (t);"
	    /* a period written or sent (kind) is never emitted again */
	    "CREATE TABLE IF NOT EXISTS emitted (policy_domain TEXT NOT NULL, begin INTEGER NOT NULL,"
	    " kind TEXT NOT NULL, at INTEGER NOT NULL, report_id TEXT NOT NULL,"
	    " PRIMARY KEY (policy_domain, begin, kind));"
	    /* failure reports waiting for mxmoat-report --send, deleted once sent */
	    "CREATE TABLE IF NOT EXISTS failures (id INTEGER PRIMARY KEY, t INTEGER NOT NULL,"
	    " policy_domain TEXT NOT NULL, ruf TEXT NOT NULL, report TEXT NOT NULL);";
	sqlite3 *db = NULL;
	char *msg = NULL;
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	if (!readonly && sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

int
moat__drep_insert_prepare(sqlite3 *db, sqlite3_stmt **st)
{
	char sql[1024];
	size_t o, i;

	o = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO records (t");
	for (i = 0; i < F_COUNT; i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, ",%s", rec_columns[i]);
	o += (size_t)snprintf(sql + o, sizeof(sql) - o, ") VALUES (?");
	for (i = 0; i < F_COUNT; i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, ",?");
	snprintf(sql + o, sizeof(sql) - o, ")");
	return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -1;
}

int
moat__drep_insert(sqlite3_stmt *ins, int64_t t, const char *const f[], unsigned nf)
{
	int rc;

	sqlite3_reset(ins);
	sqlite3_bind_int64(ins, 1, t);
	for (unsigned i = 0; i < nf; i++)
		sqlite3_bind_text(ins, (int)i + 2, f[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(ins);
	sqlite3_reset(ins);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
moat__drep_failure_prepare(sqlite3 *db, sqlite3_stmt **st)
{
	static const char sql[] =
	    "INSERT INTO failures (t, policy_domain, ruf, report) VALUES (?, ?, ?, ?)";

	return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -1;
}

size_t
moat__drep_rec_len(const struct rec *r)
{
	return r->off[r->nf - 1] + strlen(r->buf + r->off[r->nf - 1]) + 1;
}

/* store_open - the writer's connection and insert statement; -1 with err. */
static int
store_open(struct moat_dmarc_report *r, char *err, size_t errlen)
{
	if (r->ins != NULL)
		return 0;
	if (r->db == NULL &&
	    (r->db = moat_dmarc_report_db_open(r->path, false, err, errlen)) == NULL)
		return -1;
	if (moat__drep_insert_prepare(r->db, &r->ins) < 0 ||
	    moat__drep_failure_prepare(r->db, &r->ins_fail) < 0) {
		sqlite3_finalize(r->ins);
		r->ins = NULL;
		snprintf(err, errlen, "%s: %s", r->path, sqlite3_errmsg(r->db));
		sqlite3_close(r->db);
		r->db = NULL;
		return -1;
	}
	return 0;
}

/* store_close - after an error: the next batch opens the store again. */
static void
store_close(struct moat_dmarc_report *r)
{
	sqlite3_finalize(r->ins);
	sqlite3_finalize(r->ins_fail);
	r->ins = r->ins_fail = NULL;
	sqlite3_close(r->db);
	r->db = NULL;
}

/* store_batch - insert a list in one transaction; -1 with err (nothing committed). */
static int
store_batch(struct moat_dmarc_report *r, const struct rec *list, char *err, size_t errlen)
{
	const struct rec *q;

	if (store_open(r, err, errlen) < 0)
		return -1;
	if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (q = list; q != NULL; q = q->next) {
		const char *f[F_COUNT] = { NULL };
		for (unsigned i = 0; i < q->nf; i++)
			f[i] = q->buf + q->off[i];
		if (moat__drep_insert(q->failure ? r->ins_fail : r->ins, q->time, f, q->nf) < 0)
			goto rollback;
	}
	if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
rollback:
	snprintf(err, errlen, "%s: %s", r->path, sqlite3_errmsg(r->db));
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	store_close(r);
	return -1;
fail:
	snprintf(err, errlen, "%s: %s", r->path, sqlite3_errmsg(r->db));
	store_close(r);
	return -1;
}

/* ---- the writer ---- */

static void
rec_list_free(struct rec *q)
{
	while (q != NULL) {
		struct rec *next = q->next;
		free(q);
		q = next;
	}
}

/*
 * batch_wait - with the lock held and records queued: let a batch grow to MOAT_DREP_BATCH or for
 * MOAT_DREP_BATCH_WAIT_MS, whichever comes first, unless stopping or flushed. Fewer, larger
 * transactions: one commit per record would cap the store at a few thousand records a second.
 */
static void
batch_wait(struct moat_dmarc_report *r)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += MOAT_DREP_BATCH_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (r->n < MOAT_DREP_BATCH && r->n < r->max && !r->stop && r->flushers == 0)
		if (pthread_cond_timedwait(&r->wake, &r->lock, &until) != 0)
			break;
}

/*
 * outage_note - after a batch (with the lock held): a store error is logged once when the store
 * fails, not per batch (a Redis restart would otherwise log every 200 ms), and the records lost
 * are logged when it works again.
 */
static void
outage_note(struct moat_dmarc_report *r, bool ok, unsigned n, const char *err)
{
	if (!ok) {
		if (!r->failing)
			moat_log(LOG_ERR, NULL, "dmarc-report",
			    "store=%s status=error why=\"%s\" (records are lost until it works again)",
			    store_name(r->store), err);
		r->failing = true;
		r->outage_lost += n;
	} else if (r->failing) {
		moat_log(LOG_NOTICE, NULL, "dmarc-report",
		    "store=%s status=recovered lost=%" PRIu64, store_name(r->store),
		    r->outage_lost);
		r->failing = false;
		r->outage_lost = 0;
	}
}

/* writer - take the whole queue, write it in one transaction, until stopped and drained. */
static void *
writer(void *arg)
{
	struct moat_dmarc_report *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct rec *list;
		unsigned n;
		char err[512];
		int rc;

		while (r->n == 0 && !r->stop)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->n == 0)
			break;
		batch_wait(r);
		list = r->head;
		n = r->n;
		r->head = NULL;
		r->tail = &r->head;
		r->n = 0;
		r->taken += n;
		pthread_mutex_unlock(&r->lock);

		rc = r->store == MOAT_DREP_REDIS
		    ? moat__drep_redis_append(r->redis, list, err, sizeof(err))
		    : store_batch(r, list, err, sizeof(err));
		rec_list_free(list);

		pthread_mutex_lock(&r->lock);
		r->done += n;
		if (rc == 0)
			r->st.written += n;
		else
			r->st.store_errors += n;
		moat_metrics_dmarc_report(r->metrics,
		    rc == 0 ? MOAT_METRICS_DREP_WRITTEN : MOAT_METRICS_DREP_LOST, n);
		outage_note(r, rc == 0, n, err);
		pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->lock);
	store_close(r);
	moat__drep_redis_free(r->redis);
	r->redis = NULL;
	return NULL;
}

struct moat_dmarc_report *
moat_dmarc_report_new(const struct moat_dmarc_report_opts *opts, char *err, size_t errlen)
{
	struct moat_dmarc_report *r = calloc(1, sizeof(*r));

	err[0] = '\0';
	if (r == NULL || (r->path = strdup(opts->db ? opts->db : "")) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->store = opts->store == MOAT_DREP_REDIS ? MOAT_DREP_REDIS : MOAT_DREP_SQLITE;
	if (r->store == MOAT_DREP_REDIS &&
	    (r->redis = moat__drep_redis_new(opts->redis, opts->redis_prefix,
		 opts->redis_timeout_ms)) == NULL) {
		snprintf(err, errlen, "dmarc_report_store = redis: bad address %s or prefix",
		    opts->redis ? opts->redis : "(none)");
		free(r->path);
		free(r);
		return NULL;
	}
	if ((r->limits = moat_dfr_limit_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		moat__drep_redis_free(r->redis);
		free(r->path);
		free(r);
		return NULL;
	}
	r->max = opts->queue_max ? opts->queue_max : MOAT_DREP_QUEUE_MAX;
	r->log_interval_ns =
	    (uint64_t)(opts->log_interval_ms ? opts->log_interval_ms : MOAT_DREP_LOG_INTERVAL_MS) *
	    1000000u;
	r->tail = &r->head;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	pthread_cond_init(&r->idle, NULL);
	if (pthread_create(&r->thread, NULL, writer, r) != 0) {
		snprintf(err, errlen, "cannot start the DMARC report writer thread");
		pthread_cond_destroy(&r->idle);
		pthread_cond_destroy(&r->wake);
		pthread_mutex_destroy(&r->lock);
		moat__drep_redis_free(r->redis);
		moat_dfr_limit_free(r->limits);
		free(r->path);
		free(r);
		return NULL;
	}
	return r;
}

struct moat_dmarc_report *
moat_dmarc_report_new_conf(const struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_dmarc_report_opts o = {
		.store = (enum moat_dmarc_report_store)conf->dmarc_report_store,
		.db = conf->dmarc_report_db,
		.redis = conf->ratelimit_redis,
		.redis_prefix = conf->dmarc_report_redis_prefix,
		.redis_timeout_ms = conf->ratelimit_redis_timeout,
	};

	err[0] = '\0';
	if (conf->dmarc_report_store == MOAT_DREP_NONE)
		return NULL;
	return moat_dmarc_report_new(&o, err, errlen);
}

void
moat_dmarc_report_free(struct moat_dmarc_report *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	moat_log(LOG_INFO, NULL, "dmarc-report",
	    "store=%s written=%" PRIu64 " dropped=%" PRIu64 " lost=%" PRIu64
	    " failure_reports=%" PRIu64,
	    store_name(r->store), r->st.written, r->st.dropped, r->st.store_errors, r->failures);
	moat_dfr_limit_free(r->limits);
	pthread_cond_destroy(&r->idle);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r->path);
	free(r);
}

void
moat_dmarc_report_flush(struct moat_dmarc_report *r)
{
	uint64_t target;

	pthread_mutex_lock(&r->lock);
	target = r->taken + r->n;
	r->flushers++;
	pthread_cond_signal(&r->wake);
	while (r->done < target)
		pthread_cond_wait(&r->idle, &r->lock);
	r->flushers--;
	pthread_mutex_unlock(&r->lock);
}

void
moat_dmarc_report_set_metrics(struct moat_dmarc_report *r, struct moat_metrics *m)
{
	pthread_mutex_lock(&r->lock);
	r->metrics = m;
	pthread_mutex_unlock(&r->lock);
}

void
moat_dmarc_report_stats(struct moat_dmarc_report *r, struct moat_dmarc_report_stats *out)
{
	pthread_mutex_lock(&r->lock);
	*out = r->st;
	pthread_mutex_unlock(&r->lock);
}

/* ---- recording ---- */

/* dkim_text - the DKIM results as "domain selector result" lines (the store's dkim column). */
static void
dkim_text(const struct moat_dmarc_report_entry *e, char *out, size_t outlen)
{
	size_t o = 0, i;

	out[0] = '\0';
	for (i = 0; i < e->ndkim && i < MOAT_DREP_DKIM_MAX; i++) {
		int n = snprintf(out + o, outlen - o, "%s%s %s %s", i ? "\n" : "",
		    e->dkim[i].domain ? e->dkim[i].domain : "",
		    e->dkim[i].selector ? e->dkim[i].selector : "",
		    e->dkim[i].result ? e->dkim[i].result : "none");
		if (n < 0 || (size_t)n >= outlen - o) {
			out[o] = '\0'; /* a whole entry or none */
			return;
		}
		o += (size_t)n;
	}
}

/* strings_pack - one allocation holding the NF strings F (NULL as ""); NULL when out of memory. */
static struct rec *
strings_pack(int64_t time, bool failure, const char *const f[], unsigned nf)
{
	size_t len[F_COUNT], total = 0, i;
	struct rec *q;

	for (i = 0; i < nf; i++) {
		len[i] = f[i] ? strlen(f[i]) : 0;
		total += len[i] + 1;
	}
	if ((q = malloc(sizeof(*q) + total)) == NULL)
		return NULL;
	q->next = NULL;
	q->time = time;
	q->failure = failure;
	q->nf = nf;
	total = 0;
	for (i = 0; i < nf; i++) {
		q->off[i] = (uint32_t)total;
		if (len[i])
			memcpy(q->buf + total, f[i], len[i]);
		q->buf[total + len[i]] = '\0';
		total += len[i] + 1;
	}
	return q;
}

/* rec_queue - Q (owned; NULL: out of memory) onto the queue, or dropped and counted: -1. */
static int
rec_queue(struct moat_dmarc_report *r, struct rec *q)
{
	uint64_t now, dropped = 0;

	pthread_mutex_lock(&r->lock);
	if (q != NULL && r->n < r->max) {
		*r->tail = q;
		r->tail = &q->next;
		if (++r->n == 1 || r->n == MOAT_DREP_BATCH)
			pthread_cond_signal(&r->wake);
		r->st.queued++;
		r->failures += q->failure;
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	r->st.dropped++;
	r->dropped_unlogged++;
	moat_metrics_dmarc_report(r->metrics, MOAT_METRICS_DREP_DROPPED, 1);
	now = now_ns();
	if (due(r, r->drop_logged_at, now)) {
		dropped = r->dropped_unlogged;
		r->drop_logged_at = now;
		r->dropped_unlogged = 0;
	}
	pthread_mutex_unlock(&r->lock);
	free(q);
	if (dropped)
		moat_log(LOG_WARNING, NULL, "dmarc-report",
		    "status=queue_full dropped=%" PRIu64 " queue_max=%u", dropped, r->max);
	return -1;
}

/* rec_pack - one allocation holding every field of E; NULL when out of memory. */
static struct rec *
rec_pack(const struct moat_dmarc_report_entry *e)
{
	char dkim[MOAT_DREP_DKIM_MAX * 340];
	const char *f[F_COUNT] = {
		[F_SOURCE_IP] = e->source_ip,
		[F_HEADER_FROM] = e->header_from,
		[F_ENVELOPE_FROM] = e->envelope_from,
		[F_POLICY_DOMAIN] = e->policy_domain,
		[F_DMARC] = e->dmarc,
		[F_DKIM_ALIGNED] = e->dkim_aligned,
		[F_SPF_ALIGNED] = e->spf_aligned,
		[F_DISPOSITION] = e->disposition,
		[F_OVERRIDE] = e->override,
		[F_OVERRIDE_COMMENT] = e->override_comment,
		[F_SPF_DOMAIN] = e->spf_domain,
		[F_SPF_SCOPE] = e->spf_scope,
		[F_SPF_RESULT] = e->spf_result,
		[F_DKIM] = dkim,
		[F_P] = e->p,
		[F_SP] = e->sp,
		[F_NP] = e->np,
		[F_ADKIM] = e->adkim,
		[F_ASPF] = e->aspf,
		[F_TESTING] = e->testing,
		[F_PSD] = e->psd,
		[F_RUA] = e->rua,
		[F_RUF] = e->ruf,
		[F_FO] = e->fo,
	};

	dkim_text(e, dkim, sizeof(dkim));
	return strings_pack(e->time, false, f, F_COUNT);
}

int
moat_dmarc_report_add(struct moat_dmarc_report *r, const struct moat_dmarc_report_entry *e)
{
	return rec_queue(r, rec_pack(e));
}

/* disposition_name - what was applied to the message, from the engine's verdict. */
static const char *
disposition_name(enum moat_action a)
{
	switch (a) {
	case MOAT_REJECT:
		return "reject";
	case MOAT_QUARANTINE:
	case MOAT_DISCARD:
		return "quarantine";
	case MOAT_TEMPFAIL:
		return "tempfail";
	default:
		return "none";
	}
}

/* policy_level - none 0, quarantine 1, reject 2; the verdict's the same way. */
static int
policy_level(enum moat_dmarc_policy p)
{
	return p == MOAT_DMARC_P_REJECT ? 2 : p == MOAT_DMARC_P_QUARANTINE ? 1 : 0;
}

static int
action_level(enum moat_action a)
{
	return a == MOAT_REJECT ? 2 : a == MOAT_QUARANTINE || a == MOAT_DISCARD ? 1 : 0;
}

/* policy_tag_value - "" for an absent sp/np, else the policy's name. */
static const char *
policy_tag_value(enum moat_dmarc_policy p)
{
	return p == MOAT_DMARC_P_UNSET ? "" : moat_dmarc_policy_name(p);
}

void
moat_dmarc_report_note(struct moat_dmarc_report *r, const char *client_addr, const char *mail_from,
    const struct moat_auth_results *res)
{
	static const char *const psd_names[] = { "u", "y", "n" };
	const struct moat_dmarc_eval *d = &res->dmarc;
	const struct moat_dmarc_record *rec = &d->rec;
	const char *at = mail_from ? strrchr(mail_from, '@') : NULL;
	bool found = d->policy_domain[0] != '\0';
	struct moat_dmarc_report_entry e = { 0 };
	char comment[300];
	int want = d->result == MOAT_DMARC_FAIL ? policy_level(d->disposition) : 0;
	size_t i;

	if (r == NULL)
		return;
	e.time = (int64_t)time(NULL);
	e.source_ip = client_addr;
	e.header_from = d->from_domain;
	e.envelope_from = at ? at + 1 : "";
	e.policy_domain = d->policy_domain;
	e.dmarc = moat_dmarc_result_name(d->result);
	e.dkim_aligned = d->dkim_aligned ? "pass" : "fail";
	e.spf_aligned = d->spf_aligned ? "pass" : "fail";
	e.disposition = disposition_name(res->verdict.action);
	/* RFC 9990 policy override: the disposition differs from what the policy asked for */
	if (res->arc_override > 0) {
		snprintf(comment, sizeof(comment), "arc sealed by %s",
		    res->arc->hop[res->arc_override - 1].sealer);
		e.override = "trusted_forwarder";
		e.override_comment = comment;
	} else if (res->verdict.action != MOAT_TEMPFAIL &&
	    action_level(res->verdict.action) != want) {
		e.override = "local_policy";
		e.override_comment = res->verdict.reason && res->verdict.reason[0]
		    ? res->verdict.reason
		    : "dmarc action setting";
	} else if (d->result == MOAT_DMARC_FAIL && rec->testing && d->applied != d->disposition) {
		e.override = "policy_test_mode";
	}
	e.spf_domain = res->spf_mailfrom.domain;
	e.spf_scope = "mfrom";
	e.spf_result = moat_spf_result_name(res->spf_mailfrom.result);
	if (found) {
		e.p = moat_dmarc_policy_name(rec->p);
		e.sp = policy_tag_value(rec->sp);
		e.np = policy_tag_value(rec->np);
		e.adkim = rec->adkim_strict ? "s" : "r";
		e.aspf = rec->aspf_strict ? "s" : "r";
		e.testing = rec->testing ? "y" : "n";
		e.psd = psd_names[rec->psd];
		e.rua = rec->rua;
		e.ruf = rec->ruf;
		e.fo = rec->fo;
	}
	for (i = 0; i < res->ndkim && e.ndkim < MOAT_DREP_DKIM_MAX; i++) {
		e.dkim[e.ndkim].domain = res->dkim[i].domain;
		e.dkim[e.ndkim].selector = res->dkim[i].selector;
		e.dkim[e.ndkim].result = moat_dkim_result_name(res->dkim[i].result);
		e.ndkim++;
	}
	(void)moat_dmarc_report_add(r, &e);
}

/* Choosing the destinations of one failure report under the per-destination limit. */
struct fail_dests {
	struct moat_dmarc_report *r;
	unsigned max;
	int64_t now;
	char list[MOAT_DMARC_RUA_MAX + 16]; /* the destinations kept, as a ruf= list */
	size_t len;
};

/* fail_dest - keep ADDR when it has reports left this hour and fits the list. */
static int
fail_dest(const char *addr, uint64_t limit, void *arg)
{
	struct fail_dests *d = arg;
	char uri[MOAT_DFR_ADDR_MAX + 40];
	int n = limit
	    ? snprintf(uri, sizeof(uri), "%smailto:%s!%" PRIu64, d->len ? "," : "", addr, limit)
	    : snprintf(uri, sizeof(uri), "%smailto:%s", d->len ? "," : "", addr);

	if (n < 0 || (size_t)n >= sizeof(d->list) - d->len ||
	    !moat_dfr_limit_take(d->r->limits, "to", addr, d->max, d->now))
		return 0;
	memcpy(d->list + d->len, uri, (size_t)n + 1);
	d->len += (size_t)n;
	return 0;
}

void
moat_dmarc_report_failure(struct moat_dmarc_report *r, const struct moat_conf *conf,
    const struct moat_dfr_input *in)
{
	const struct moat_dmarc_eval *d = &in->res->dmarc;
	struct fail_dests dests = { .r = r,
		.max = conf->dmarc_failure_report_dest_limit,
		.now = in->time };
	const char *f[FF_COUNT];
	char *report;

	if (r == NULL ||
	    !moat_dfr_limit_take(r->limits, "domain", d->policy_domain,
		conf->dmarc_failure_report_domain_limit, in->time))
		return;
	moat_dmarc_uri_each(d->rec.ruf, fail_dest, &dests);
	if (dests.len == 0 || (report = moat_dfr_build(in)) == NULL)
		return;
	f[FF_POLICY_DOMAIN] = d->policy_domain;
	f[FF_RUF] = dests.list;
	f[FF_REPORT] = report;
	(void)rec_queue(r, strings_pack(in->time, true, f, FF_COUNT));
	free(report);
}
