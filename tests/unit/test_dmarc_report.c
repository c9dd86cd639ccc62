/*
 * test_dmarc_report.c - the DMARC evaluation recorder (dmarc_report.c): records reach the SQLite
 * store whole; the engine's results become the disposition and override RFC 9990 wants; a full
 * queue drops and counts instead of waiting; a store that cannot be opened loses and counts,
 * and adding still never fails; dmarc_report_store = redis is refused; the parser keeps ruf and fo.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "auth.h"
#include "dmarc_report.h"

static char dir[64];
static char db[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_dmarc_report.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/store.db", dir);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static struct moat_dmarc_report *
open_recorder(const char *path, unsigned queue_max)
{
	struct moat_dmarc_report_opts o = { .db = path, .queue_max = queue_max };
	char err[256];
	struct moat_dmarc_report *r = moat_dmarc_report_new(&o, err, sizeof(err));

	cr_assert_not_null(r, "%s", err);
	return r;
}

/* query - the first column of the first row of SQL, as text ("" if none). */
static void
query(const char *sql, char *out, size_t outlen)
{
	sqlite3 *h;
	sqlite3_stmt *st;

	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
	out[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

static struct moat_dmarc_report_entry
sample(void)
{
	struct moat_dmarc_report_entry e = {
		.time = 1728000000,
		.source_ip = "192.0.2.1",
		.header_from = "example.org",
		.envelope_from = "bounce.example.org",
		.policy_domain = "example.org",
		.dmarc = "fail",
		.dkim_aligned = "fail",
		.spf_aligned = "fail",
		.disposition = "reject",
		.spf_domain = "bounce.example.org",
		.spf_scope = "mfrom",
		.spf_result = "softfail",
		.p = "reject",
		.adkim = "r",
		.aspf = "s",
		.testing = "n",
		.psd = "u",
		.rua = "mailto:agg@example.org",
		.ruf = "mailto:fail@example.org",
		.fo = "1",
		.dkim = { { "example.org", "sel1", "fail" }, { "esp.example", "k2", "pass" } },
		.ndkim = 2,
	};
	return e;
}

TestSuite(dmarc_report, .init = setup, .fini = teardown);

Test(dmarc_report, records_reach_the_store_whole)
{
	struct moat_dmarc_report *r = open_recorder(db, 0);
	struct moat_dmarc_report_entry e = sample();
	struct moat_dmarc_report_stats st;
	char v[256];

	for (int i = 0; i < 100; i++)
		cr_assert_eq(moat_dmarc_report_add(r, &e), 0);
	moat_dmarc_report_flush(r);
	moat_dmarc_report_stats(r, &st);
	cr_assert_eq(st.queued, 100);
	cr_assert_eq(st.written, 100);
	cr_assert_eq(st.dropped + st.store_errors, 0);
	moat_dmarc_report_free(r);
	query("SELECT count(*) FROM records", v, sizeof(v));
	cr_assert_str_eq(v, "100");
	query("SELECT dkim FROM records LIMIT 1", v, sizeof(v));
	cr_assert_str_eq(v, "example.org sel1 fail\nesp.example k2 pass");
	query("SELECT t || ' ' || source_ip || ' ' || envelope_from || ' ' || spf_result || ' ' || ruf || ' ' || fo"
	      " || ' ' || aspf || ' [' || sp || ']' FROM records LIMIT 1",
	    v, sizeof(v));
	cr_assert_str_eq(v,
	    "1728000000 192.0.2.1 bounce.example.org softfail mailto:fail@example.org 1 s []");
	query("PRAGMA journal_mode", v, sizeof(v));
	cr_assert_str_eq(v, "wal");
}

/* note - the engine's hook on hand-made results; returns the stored disposition|override|comment. */
static void
note(enum moat_dmarc_res res, enum moat_dmarc_policy applied, bool testing, enum moat_action act,
    const char *reason, char *out, size_t outlen)
{
	struct moat_dmarc_report *r = open_recorder(db, 0);
	struct moat_auth_results *a = calloc(1, sizeof(*a));

	cr_assert_not_null(a);
	a->dmarc.result = res;
	snprintf(a->dmarc.from_domain, sizeof(a->dmarc.from_domain), "example.org");
	snprintf(a->dmarc.policy_domain, sizeof(a->dmarc.policy_domain), "example.org");
	a->dmarc.rec.p = applied;
	a->dmarc.rec.testing = testing;
	a->dmarc.applied = applied;
	a->dmarc.disposition = testing
	    ? (applied == MOAT_DMARC_P_REJECT ? MOAT_DMARC_P_QUARANTINE : MOAT_DMARC_P_NONE)
	    : applied;
	a->verdict.action = act;
	a->verdict.reason = reason;
	a->ndkim = 1;
	a->dkim[0].result = MOAT_DKIM_FAIL;
	snprintf(a->dkim[0].domain, sizeof(a->dkim[0].domain), "example.org");
	snprintf(a->dkim[0].selector, sizeof(a->dkim[0].selector), "s1");
	moat_dmarc_report_note(r, "2001:db8::25", "user@bounce.example.org", a);
	moat_dmarc_report_free(r);
	free(a);
	query("SELECT disposition || '|' || override || '|' || override_comment || '|' || source_ip || '|' ||"
	      " envelope_from || '|' || dmarc || '|' || dkim FROM records ORDER BY id DESC LIMIT 1",
	    out, outlen);
}

struct note_case {
	const char *label;
	enum moat_dmarc_res res;
	enum moat_dmarc_policy applied;
	bool testing;
	enum moat_action act;
	const char *reason;
	const char *want;
};

static const struct note_case note_cases[] = {
	{ "fail under reject, rejected", MOAT_DMARC_FAIL, MOAT_DMARC_P_REJECT, false, MOAT_REJECT,
	    "dmarc_fail", "reject|||2001:db8::25|bounce.example.org|fail|example.org s1 fail" },
	{ "reject became quarantine by local policy", MOAT_DMARC_FAIL, MOAT_DMARC_P_REJECT, false,
	    MOAT_QUARANTINE, "dmarc_fail",
	    "quarantine|local_policy|dmarc_fail|2001:db8::25|bounce.example.org|fail|example.org s1 fail" },
	{ "reject tagged only", MOAT_DMARC_FAIL, MOAT_DMARC_P_REJECT, false, MOAT_CONTINUE, NULL,
	    "none|local_policy|dmarc action setting|2001:db8::25|bounce.example.org|fail|example.org s1 fail" },
	{ "t=y lowers reject to quarantine", MOAT_DMARC_FAIL, MOAT_DMARC_P_REJECT, true,
	    MOAT_QUARANTINE, "dmarc_fail",
	    "quarantine|policy_test_mode||2001:db8::25|bounce.example.org|fail|example.org s1 fail" },
	{ "pass, delivered", MOAT_DMARC_PASS, MOAT_DMARC_P_REJECT, false, MOAT_CONTINUE, NULL,
	    "none|||2001:db8::25|bounce.example.org|pass|example.org s1 fail" },
	{ "pass, but SPF fail rejected locally", MOAT_DMARC_PASS, MOAT_DMARC_P_REJECT, false,
	    MOAT_REJECT, "spf_fail",
	    "reject|local_policy|spf_fail|2001:db8::25|bounce.example.org|pass|example.org s1 fail" },
	{ "tempfail is kept as such", MOAT_DMARC_TEMPERROR, MOAT_DMARC_P_REJECT, false,
	    MOAT_TEMPFAIL, "dmarc_temperror",
	    "tempfail|||2001:db8::25|bounce.example.org|temperror|example.org s1 fail" },
};

Test(dmarc_report, engine_results_become_disposition_and_override)
{
	char got[512];

	for (size_t i = 0; i < sizeof(note_cases) / sizeof(note_cases[0]); i++) {
		const struct note_case *c = &note_cases[i];
		note(c->res, c->applied, c->testing, c->act, c->reason, got, sizeof(got));
		cr_expect_str_eq(got, c->want, "%s: got %s", c->label, got);
	}
}

Test(dmarc_report, a_full_queue_drops_and_counts_without_waiting)
{
	struct moat_dmarc_report *r = open_recorder(db, 4);
	struct moat_dmarc_report_entry e = sample();
	struct moat_dmarc_report_stats st;
	sqlite3 *h;
	int accepted = 0;

	/* the writer opens the store and then waits on this lock; the queue fills behind it */
	cr_assert_eq(moat_dmarc_report_add(r, &e), 0);
	moat_dmarc_report_flush(r);
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 50; i++)
		accepted += moat_dmarc_report_add(r, &e) == 0;
	cr_assert_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	moat_dmarc_report_flush(r);
	moat_dmarc_report_stats(r, &st);
	cr_assert_leq(accepted, 8, "at most the queue and the batch in the writer's hands: %d",
	    accepted);
	cr_assert_eq(st.dropped, 50 - (unsigned)accepted);
	cr_assert_eq(st.written, 1 + (unsigned)accepted);
	cr_assert_eq(st.store_errors, 0);
	moat_dmarc_report_free(r);
}

/* lose_ten - ten records added to R never fail, and all ten are counted lost; R freed. */
static void
lose_ten(struct moat_dmarc_report *r)
{
	struct moat_dmarc_report_entry e = sample();
	struct moat_dmarc_report_stats st;

	for (int i = 0; i < 10; i++)
		cr_assert_eq(moat_dmarc_report_add(r, &e), 0,
		    "adding never fails on a store error");
	moat_dmarc_report_flush(r);
	moat_dmarc_report_stats(r, &st);
	cr_assert_eq(st.queued, 10);
	cr_assert_eq(st.store_errors, 10);
	cr_assert_eq(st.written, 0);
	moat_dmarc_report_free(r);
}

Test(dmarc_report, a_store_that_cannot_open_loses_and_counts)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/no/such/dir/store.db", dir);
	lose_ten(open_recorder(path, 0));
}

Test(dmarc_report, a_redis_store_that_refuses_loses_and_counts)
{
	/* port 1 on loopback: refused at once */
	struct moat_dmarc_report_opts o = { .store = MOAT_DREP_REDIS,
		.redis = "127.0.0.1:1",
		.redis_prefix = "t:",
		.redis_timeout_ms = 1000 };
	char err[256];
	struct moat_dmarc_report *r = moat_dmarc_report_new(&o, err, sizeof(err));

	cr_assert_not_null(r, "%s", err);
	lose_ten(r);
	o.redis = "no port";
	cr_assert_null(moat_dmarc_report_new(&o, err, sizeof(err)));
	cr_assert_str_eq(err, "dmarc_report_store = redis: bad address no port or prefix");
}

Test(dmarc_report, redis_and_sqlite_taken)
{
	struct moat_conf_override ov[] = { { "dmarc_report_store", "redis" },
		{ "ratelimit_redis", "127.0.0.1:1" } };
	struct moat_conf_override ok[] = { { "dmarc_report_store", "sqlite" },
		{ "dmarc_report_db", db } };
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, ov, 2, err, sizeof(err));
	struct moat_dmarc_report *r;
	struct moat_dmarc_report_stats st;

	/* redis: the recorder starts without the server; the writer connects per batch */
	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(conf->dmarc_report_store, MOAT_DREP_REDIS);
	cr_assert_str_eq(conf->dmarc_report_redis_prefix, "mxmoat:dmarc:");
	r = moat_dmarc_report_new_conf(conf, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	moat_dmarc_report_stats(r, &st);
	cr_assert_eq(st.store_errors, 0);
	moat_dmarc_report_free(r);
	moat_conf_unref(conf);
	conf = moat_conf_load(NULL, ok, 2, err, sizeof(err));
	cr_assert_not_null(conf, "%s", err);
	cr_assert_eq(conf->dmarc_report_store, MOAT_DREP_SQLITE);
	r = moat_dmarc_report_new_conf(conf, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	moat_dmarc_report_free(r);
	moat_conf_unref(conf);
	conf = moat_conf_load(NULL, NULL, 0, err, sizeof(err));
	cr_assert_null(moat_dmarc_report_new_conf(conf, err, sizeof(err)), "none: no recorder");
	cr_assert_str_eq(err, "");
	moat_conf_unref(conf);
}

Test(dmarc_report, parser_keeps_ruf_and_fo)
{
	static const char rec[] =
	    "v=DMARC1; p=reject; rua=mailto:a@example.org; ruf=mailto:f@example.org; fo=1:d";
	struct moat_dmarc_record r;

	cr_assert_eq(moat_dmarc_record_parse(rec, strlen(rec), &r), 0);
	cr_assert_str_eq(r.rua, "mailto:a@example.org");
	cr_assert_str_eq(r.ruf, "mailto:f@example.org");
	cr_assert_str_eq(r.fo, "1:d");
}
