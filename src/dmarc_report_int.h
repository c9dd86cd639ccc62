/*
 * dmarc_report_int.h - what the recorder (dmarc_report.c) shares with its Redis store
 * (dmarc_report_redis.c): the packed record and the insert into a SQLite store.
 */
#ifndef MOAT_DMARC_REPORT_INT_H
#define MOAT_DMARC_REPORT_INT_H

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

/* One queued record: the time, then F_COUNT NUL-terminated strings packed in buf. */
struct rec {
	struct rec *next;
	int64_t time;
	uint32_t off[F_COUNT];
	char buf[];
};


/* moat__drep_rec_len - the bytes of R's strings in buf, the last NUL included. */
size_t moat__drep_rec_len(const struct rec *r);

/* moat__drep_insert_prepare - the insert of one record into DB's records table; -1 on error. */
int moat__drep_insert_prepare(struct sqlite3 *db, struct sqlite3_stmt **st);

/* moat__drep_insert - one record (time T, F_COUNT strings, borrowed) through INS; -1 on error. */
int moat__drep_insert(struct sqlite3_stmt *ins, int64_t t, const char *const f[F_COUNT]);

/* The Redis store (dmarc_report_redis.c), used by the writer thread only. */
struct moat__drep_redis;
struct moat__drep_redis *moat__drep_redis_new(const char *hostport, const char *prefix,
    unsigned timeout_ms);
void moat__drep_redis_free(struct moat__drep_redis *r);
/* moat__drep_redis_append - append LIST to the day lists; -1 with err (some may have landed). */
int moat__drep_redis_append(struct moat__drep_redis *r, const struct rec *list, char *err,
    size_t errlen);

#endif /* MOAT_DMARC_REPORT_INT_H */
