/*
 * dmarc_report.h - recording DMARC evaluations for RFC 9990 aggregate reports.
 *
 * struct moat_dmarc_report is one recorder per daemon (owned by the authentication engine): a
 * bounded in-memory queue and one writer thread that appends the queued records to the store in
 * batches: dmarc_report_store = sqlite, one SQLite file in WAL mode (dmarc_report_db), one
 * transaction per batch; redis, the day lists of the Redis server of the rate limits, shared by
 * every gateway that records there (dmarc_report_redis.c), one pipeline per batch. Recording
 * never waits on the store and never fails a message: when the queue is full a record is dropped,
 * counted and logged at most once per log interval; a store error loses the batch, is counted and
 * is logged once per outage (and the loss when the store works again).
 *
 * The same file also opens the store for mxmoat-report (moat_dmarc_report_db_open), so the schema
 * is written in one place. Records carry what RFC 9990's <record> and <policy_published> need:
 * time, source IP, header From and envelope-from domains, every DKIM result with its d= and s=,
 * the SPF domain, scope and result, the aligned DKIM and SPF outcomes, the disposition applied,
 * the override reason, the policy domain, and the published p, sp, np, adkim, aspf, t, psd, rua,
 * ruf and fo of the record that applied.
 */
#ifndef MOAT_DMARC_REPORT_H
#define MOAT_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct sqlite3;
struct moat_auth_results;
struct moat_metrics;

/* dmarc_report_store */
enum moat_dmarc_report_store {
	MOAT_DREP_NONE = 0,
	MOAT_DREP_SQLITE = 1,
	MOAT_DREP_REDIS = 2
};

#define MOAT_DREP_QUEUE_MAX 10000 /* records waiting for the writer; more are dropped */
#define MOAT_DREP_BATCH 1000 /* the writer waits for this many records ... */
#define MOAT_DREP_BATCH_WAIT_MS 200 /* ... or this long, then writes them in one transaction */
#define MOAT_DREP_LOG_INTERVAL_MS 60000 /* drops and store errors: one log line per interval */
#define MOAT_DREP_DKIM_MAX 16 /* DKIM results kept per message */
#define MOAT_DREP_REDIS_KEEP_DAYS 32 /* a day's records stay in Redis this long after its last */

/* One DKIM result of a message. */
struct moat_dmarc_report_dkim {
	const char *domain; /* d= */
	const char *selector; /* s= */
	const char
	    *result; /* "pass", "fail", "none", "policy", "neutral", "temperror", "permerror" */
};

/*
 * One evaluation, as handed to moat_dmarc_report_add. Every string is borrowed for the call only
 * (copied); NULL is stored as "". The policy fields are those of the record that applied
 * ("" when no record was found: such evaluations are recorded but reported in no aggregate).
 */
struct moat_dmarc_report_entry {
	int64_t time; /* seconds since the epoch, UTC */
	const char *source_ip;
	const char *header_from; /* RFC5322.From domain */
	const char *envelope_from; /* RFC5321.MailFrom domain ("" for the null sender) */
	const char *policy_domain; /* where the DMARC record was found */
	const char *dmarc; /* "pass", "fail", "none", "temperror", "permerror" */
	const char *dkim_aligned; /* "pass" or "fail": an aligned DKIM pass */
	const char *spf_aligned; /* "pass" or "fail": an aligned SPF pass */
	const char *disposition; /* applied: "none", "quarantine", "reject", "tempfail" */
	const char *override; /* RFC 9990 PolicyOverrideType, or "" */
	const char *override_comment;
	const char *spf_domain;
	const char *spf_scope; /* "mfrom" */
	const char *spf_result;
	const char *p, *sp, *np; /* published policies, "" when absent */
	const char *adkim, *aspf; /* "r" or "s" */
	const char *testing; /* "y" or "n" */
	const char *psd; /* "y", "n" or "u" */
	const char *rua, *ruf, *fo;
	struct moat_dmarc_report_dkim dkim[MOAT_DREP_DKIM_MAX];
	size_t ndkim;
};

struct moat_dmarc_report_opts {
	enum moat_dmarc_report_store store; /* MOAT_DREP_SQLITE or MOAT_DREP_REDIS */
	const char *db; /* the SQLite file */
	const char *redis; /* host:port of the Redis store */
	const char *redis_prefix; /* of its keys */
	unsigned redis_timeout_ms; /* connect and each call; 0: 200 */
	unsigned queue_max; /* 0: MOAT_DREP_QUEUE_MAX */
	unsigned log_interval_ms; /* 0: MOAT_DREP_LOG_INTERVAL_MS */
};

/* Counters since the recorder started. */
struct moat_dmarc_report_stats {
	uint64_t queued; /* accepted into the queue */
	uint64_t written; /* committed to the store */
	uint64_t dropped; /* queue full, or out of memory */
	uint64_t store_errors; /* records lost to a store error */
};

struct moat_dmarc_report;

/*
 * moat_dmarc_report_new - a recorder writing to OPTS' store, its writer thread started. The store
 * is opened by the writer (a store that cannot be opened or reached is an error per batch,
 * counted, and tried again with the next batch). NULL with a message in err when out of memory or the
 * thread cannot start.
 */
struct moat_dmarc_report *moat_dmarc_report_new(const struct moat_dmarc_report_opts *opts,
    char *err, size_t errlen);
/* moat_dmarc_report_new_conf - from dmarc_report_store, dmarc_report_db (sqlite), or
 * ratelimit_redis, ratelimit_redis_timeout and dmarc_report_redis_prefix (redis); NULL and
 * err[0] == '\0' when the store is none. */
struct moat_dmarc_report *moat_dmarc_report_new_conf(const struct moat_conf *conf, char *err,
    size_t errlen);

/* moat_dmarc_report_free - write what is queued, stop the writer, log the totals. NULL: no-op. */
void moat_dmarc_report_free(struct moat_dmarc_report *r);

/*
 * moat_dmarc_report_add - queue one evaluation (copied). Never blocks on the store: returns 0, or
 * -1 when the record was dropped (queue full or out of memory; counted). Thread-safe.
 */
int moat_dmarc_report_add(struct moat_dmarc_report *r, const struct moat_dmarc_report_entry *e);

/*
 * moat_dmarc_report_note - the authentication engine's hook: turn the results of one message
 * (DMARC evaluated, verdict decided) into an entry and queue it. R NULL: no-op.
 */
void moat_dmarc_report_note(struct moat_dmarc_report *r, const char *client_addr,
    const char *mail_from, const struct moat_auth_results *res);

/*
 * moat_dmarc_report_failure - a failure report (RFC 9991) for IN, whose results moat_dfr_due
 * found due: unless the policy domain has had dmarc_failure_report_domain_limit reports this
 * hour, built and queued to the destinations of its ruf= that have had fewer than
 * dmarc_failure_report_dest_limit; the writer stores it for mxmoat-report --send. Never blocks on
 * the store or the network. R NULL: no-op.
 */
struct moat_dfr_input;
void moat_dmarc_report_failure(struct moat_dmarc_report *r, const struct moat_conf *conf,
    const struct moat_dfr_input *in);

/* moat_dmarc_report_flush - wait until everything queued so far has been written or counted lost. */
void moat_dmarc_report_flush(struct moat_dmarc_report *r);

void moat_dmarc_report_stats(struct moat_dmarc_report *r, struct moat_dmarc_report_stats *out);

/* moat_dmarc_report_set_metrics - count records written, dropped and lost into M (borrowed). */
void moat_dmarc_report_set_metrics(struct moat_dmarc_report *r, struct moat_metrics *m);

/*
 * moat_dmarc_report_db_open - open (creating if needed) the store at PATH: WAL journal, the
 * schema, a busy timeout. NULL with a message in err.
 */
struct sqlite3 *moat_dmarc_report_db_open(const char *path, bool readonly, char *err,
    size_t errlen);

/*
 * The Redis store as mxmoat-report reads it. Keys under PREFIX: "r:DAY" (DAY: days since the
 * epoch, UTC) a list of records, each "TIME\0" then the record's fields NUL-terminated in the
 * store's column order; "days" the set of days that have records; "sent:DAY" a hash of the
 * periods emitted, field "KIND DOMAIN", value the report id. Every key expires
 * MOAT_DREP_REDIS_KEEP_DAYS days after its last write.
 */
struct redisContext;
/* moat_dmarc_report_redis_connect - a connection to HOSTPORT; NULL with err. */
struct redisContext *moat_dmarc_report_redis_connect(const char *hostport, unsigned timeout_ms,
    char *err, size_t errlen);
/*
 * moat_dmarc_report_redis_import - copy every record kept in Redis, and the periods marked
 * emitted, into DB (a store from moat_dmarc_report_db_open, ":memory:" will do), in list order.
 * The number of records, or -1 with err.
 */
long moat_dmarc_report_redis_import(struct redisContext *c, const char *prefix, struct sqlite3 *db,
    char *err, size_t errlen);
/* moat_dmarc_report_redis_mark - record in Redis that DOMAIN's period from BEGIN was emitted as
 * KIND with REPORT_ID; -1 with err. */
int moat_dmarc_report_redis_mark(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *kind, const char *report_id, char *err, size_t errlen);

/*
 * moat_dmarc_report_redis_failures_take - move every failure report waiting in Redis (the list
 * "f") into DB's failures table; each is taken by one caller only (LPOP). The number taken, or
 * -1 with err (those taken so far are in DB).
 */
long moat_dmarc_report_redis_failures_take(struct redisContext *c, const char *prefix,
    struct sqlite3 *db, char *err, size_t errlen);
/* moat_dmarc_report_redis_failures_return - put the failure reports still in DB back onto the
 * Redis list, for the next run; -1 with err. */
int moat_dmarc_report_redis_failures_return(struct redisContext *c, const char *prefix,
    struct sqlite3 *db, char *err, size_t errlen);

/*
 * moat_dmarc_report_redis_claim - claim DOMAIN's period from BEGIN for sending, atomically across
 * every mxmoat-report run on every host: SET "claim:DAY:DOMAIN" TOKEN NX with an expiry of TTL_S
 * (so a run that dies does not hold it for ever). 1 claimed, 0 held by another run, -1 with err.
 */
int moat_dmarc_report_redis_claim(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *token, unsigned ttl_s, char *err, size_t errlen);
/* moat_dmarc_report_redis_release - give the claim back if it is still TOKEN's; -1 with err. */
int moat_dmarc_report_redis_release(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *token, char *err, size_t errlen);
/* moat_dmarc_report_redis_marked - 1 when Redis has DOMAIN's period from BEGIN marked as KIND,
 * 0 when not, -1 with err: read after a claim, since the copy in memory may be older. */
int moat_dmarc_report_redis_marked(struct redisContext *c, const char *prefix, const char *domain,
    int64_t begin, const char *kind, char *err, size_t errlen);

#endif /* MOAT_DMARC_REPORT_H */
