/*
 * dmarc_report_int.h - what the recorder (dmarc_report.c) shares with its Redis store
 * (dmarc_report_redis.c): the packed record and the insert into a SQLite store.
 */
#ifndef MOAT_DMARC_REPORT_INT_H
#define MOAT_DMARC_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;

/* The text columns of a record, in the store's column order (after id and t). */
enum rec_field {
	F_SOURCE_IP,
	F_HEADER_FROM,
	F_ENVELOPE_FROM,
	F_POLICY_DOMAIN,
	F_DMARC,
	F_DKIM_ALIGNED,
	F_SPF_ALIGNED,
	F_DISPOSITION,
	F_OVERRIDE,
	F_OVERRIDE_COMMENT,
	F_SPF_DOMAIN,
	F_SPF_SCOPE,
	F_SPF_RESULT,
	F_DKIM,
	F_P,
	F_SP,
	F_NP,
	F_ADKIM,
	F_ASPF,
	F_TESTING,
	F_PSD,
	F_RUA,
	F_RUF,
	F_FO,
	F_COUNT
};

/* The columns of a queued failure report (dmarc_failure.h), in the store's order. */
enum fail_field {
	FF_POLICY_DOMAIN,
	FF_RUF,
	FF_REPORT,
	FF_COUNT
};

/* One queued record: the time, then NF NUL-terminated strings packed in buf: an evaluation
 * (F_COUNT strings, enum rec_field) or a failure report (FF_COUNT, enum fail_field). */
struct rec {
	struct rec *next;
	int64_t time;
	bool failure;
	unsigned nf;
	uint32_t off[F_COUNT];
	char buf[];
};


/* moat__drep_rec_len - the bytes of R's strings in buf, the last NUL included. */
size_t moat__drep_rec_len(const struct rec *r);

/* moat__drep_insert_prepare - the insert of one record into DB's records table; -1 on error. */
int moat__drep_insert_prepare(struct sqlite3 *db, struct sqlite3_stmt **st);

/* moat__drep_insert - one row (time T, then NF strings, borrowed) through INS, an insert of
 * moat__drep_insert_prepare (F_COUNT strings) or moat__drep_failure_prepare (FF_COUNT); -1 on
 * error. */
int moat__drep_insert(struct sqlite3_stmt *ins, int64_t t, const char *const f[], unsigned nf);

/* moat__drep_failure_prepare - the insert of one failure report into DB; -1 on error. */
int moat__drep_failure_prepare(struct sqlite3 *db, struct sqlite3_stmt **st);
/* moat__drep_failure_insert - one failure report (FF_COUNT strings) through INS; -1 on error. */
int moat__drep_failure_insert(struct sqlite3_stmt *ins, int64_t t, const char *const f[FF_COUNT]);

/* The Redis store (dmarc_report_redis.c), used by the writer thread only. */
struct moat__drep_redis;
struct moat__drep_redis *moat__drep_redis_new(const char *hostport, const char *prefix,
    unsigned timeout_ms);
void moat__drep_redis_free(struct moat__drep_redis *r);
/* moat__drep_redis_append - append LIST to the day lists; -1 with err (some may have landed). */
int moat__drep_redis_append(struct moat__drep_redis *r, const struct rec *list, char *err,
    size_t errlen);

#endif /* MOAT_DMARC_REPORT_INT_H */
