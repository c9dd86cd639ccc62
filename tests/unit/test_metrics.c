/*
 * test_metrics.c - the counters of both daemons: per-thread shards summed at scrape time, the
 * counts of a thread that exited kept, the exact exposition lines, bounded label sets, and what
 * the policy core counts for a session (sessions, messages, refusals by reason, TLS, reloads).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "policy.h"

/* scrape - the exposition text (freed by the caller). */
static char *
scrape(struct moat_metrics *m)
{
	size_t len;
	char *text = moat_metrics_render(m, &len);

	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len);
	return text;
}

/* has_line - does TEXT contain LINE as a whole line? */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define ASSERT_LINE(text, line) cr_assert(has_line(text, line), "missing line: %s\n%s", line, text)

static void *
count_thread(void *arg)
{
	struct moat_metrics *m = arg;

	for (int i = 0; i < 1000; i++) {
		moat_metrics_message(m, MOAT_ACCEPT);
		moat_metrics_refusal(m, "limit_recipients");
	}
	moat_metrics_session(m, +1);
	return NULL; /* the thread exits: its shard folds into the retired totals */
}

Test(metrics, threads_summed_after_exit)
{
	struct moat_metrics *m = moat_metrics_new();
	pthread_t t[4];
	char *text;

	cr_assert_not_null(m);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, count_thread, m), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	moat_metrics_message(m, MOAT_CONTINUE); /* this thread's live shard: accept too */
	moat_metrics_session(m, -1);
	text = scrape(m);
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"accept\"} 4001");
	ASSERT_LINE(text, "mxmoat_refusals_total{reason=\"limit_recipients\"} 4000");
	ASSERT_LINE(text, "mxmoat_sessions_total 4");
	ASSERT_LINE(text, "mxmoat_sessions_active 3");
	free(text);
	moat_metrics_free(m);
}

Test(metrics, exposition_lines)
{
	struct moat_metrics *m = moat_metrics_new();
	char *text;

	moat_metrics_message(m, MOAT_REJECT);
	moat_metrics_message(m, MOAT_TEMPFAIL);
	moat_metrics_message(m, MOAT_QUARANTINE);
	moat_metrics_auth(m, MOAT_METRICS_SPF, "pass");
	moat_metrics_auth(m, MOAT_METRICS_DMARC, "fail");
	moat_metrics_auth(m, MOAT_METRICS_DKIM, "something-new");
	moat_metrics_backend_reply(m, 250);
	moat_metrics_backend_reply(m, 354);
	moat_metrics_backend_reply(m, 451);
	moat_metrics_backend_reply(m, 554);
	moat_metrics_backend_reply(m, 999);
	moat_metrics_tls(m, "TLSv1.3");
	moat_metrics_tls(m, "SSLv3");
	moat_metrics_hold(m, 5000);
	moat_metrics_hold(m, -1000);
	moat_metrics_generation_next(m);
	moat_metrics_refusal(m, "we\"ird\\");
	moat_metrics_redis_error(m);
	text = scrape(m);
	cr_assert(strncmp(text, "# HELP mxmoat_sessions_active ", 30) == 0, "%s", text);
	ASSERT_LINE(text, "# TYPE mxmoat_sessions_active gauge");
	ASSERT_LINE(text, "# TYPE mxmoat_messages_total counter");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"accept\"} 0");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"reject\"} 1");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"tempfail\"} 1");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"quarantine\"} 1");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"discard\"} 0");
	ASSERT_LINE(text, "mxmoat_auth_results_total{method=\"spf\",result=\"pass\"} 1");
	ASSERT_LINE(text, "mxmoat_auth_results_total{method=\"dmarc\",result=\"fail\"} 1");
	ASSERT_LINE(text, "mxmoat_auth_results_total{method=\"dkim\",result=\"other\"} 1");
	cr_assert_null(strstr(text, "something-new"));
	ASSERT_LINE(text, "mxmoat_backend_replies_total{class=\"2xx\"} 1");
	ASSERT_LINE(text, "mxmoat_backend_replies_total{class=\"3xx\"} 1");
	ASSERT_LINE(text, "mxmoat_backend_replies_total{class=\"4xx\"} 1");
	ASSERT_LINE(text, "mxmoat_backend_replies_total{class=\"5xx\"} 1");
	ASSERT_LINE(text, "mxmoat_backend_replies_total{class=\"other\"} 1");
	ASSERT_LINE(text, "mxmoat_tls_handshakes_total{version=\"TLSv1.3\"} 1");
	ASSERT_LINE(text, "mxmoat_tls_handshakes_total{version=\"other\"} 1");
	ASSERT_LINE(text, "mxmoat_hold_bytes 4000");
	ASSERT_LINE(text, "mxmoat_config_generation 2");
	ASSERT_LINE(text, "mxmoat_redis_errors_total 1");
	ASSERT_LINE(text, "mxmoat_refusals_total{reason=\"we\\\"ird\\\\\"} 1");
	cr_assert_eq(text[strlen(text) - 1], '\n');
	free(text);
	moat_metrics_free(m);
}

Test(metrics, histogram_cumulative)
{
	struct moat_metrics *m = moat_metrics_new();
	char *text;

	moat_metrics_observe(m, MOAT_METRICS_DNS, 400000); /* 0.4 ms */
	moat_metrics_observe(m, MOAT_METRICS_DNS, 1000000); /* 1 ms: le="0.001" includes it */
	moat_metrics_observe(m, MOAT_METRICS_DNS, 30000000); /* 30 ms */
	moat_metrics_observe(m, MOAT_METRICS_DNS, 20000000000ULL); /* 20 s: only +Inf */
	moat_metrics_observe(m, MOAT_METRICS_REDIS, 2000000);
	text = scrape(m);
	ASSERT_LINE(text, "# TYPE mxmoat_dns_query_seconds histogram");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"0.0005\"} 1");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"0.001\"} 2");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"0.025\"} 2");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"0.05\"} 3");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"10\"} 3");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_bucket{le=\"+Inf\"} 4");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_sum 20.031400000");
	ASSERT_LINE(text, "mxmoat_dns_query_seconds_count 4");
	ASSERT_LINE(text, "mxmoat_redis_call_seconds_bucket{le=\"0.0025\"} 1");
	ASSERT_LINE(text, "mxmoat_redis_call_seconds_count 1");
	free(text);
	moat_metrics_free(m);
}

Test(metrics, reasons_bounded)
{
	static char names[80][16];
	struct moat_metrics *m = moat_metrics_new();
	char *text;

	for (int i = 0; i < 80; i++) {
		snprintf(names[i], sizeof(names[i]), "reason_%d", i);
		moat_metrics_refusal(m, names[i]);
	}
	moat_metrics_refusal(m, NULL);
	text = scrape(m);
	ASSERT_LINE(text, "mxmoat_refusals_total{reason=\"reason_63\"} 1");
	cr_assert_null(strstr(text, "reason_64\""));
	ASSERT_LINE(text, "mxmoat_refusals_total{reason=\"other\"} 17");
	free(text);
	moat_metrics_free(m);
}

Test(metrics, null_registry_counts_nothing)
{
	moat_metrics_message(NULL, MOAT_ACCEPT);
	moat_metrics_refusal(NULL, "x");
	moat_metrics_observe(NULL, MOAT_METRICS_DNS, 1);
	moat_metrics_generation_next(NULL);
	moat_metrics_free(NULL);
}

Test(metrics, policy_counts_sessions_refusals_tls_reloads)
{
	struct moat_conf_override ov[] = { { "limit_recipients", "1" }, { "auth_inbound", "no" } };
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, ov, 2, err, sizeof(err));
	struct moat_policy *pol;
	struct moat_client c = { .addr = "192.0.2.1", .port = 1, .name = "c.example" };
	struct moat_tls_info tls = { .active = true, .protocol = "TLSv1.2" };
	struct moat_session *s;
	struct moat_verdict v;
	char *text;

	cr_assert_not_null(conf, "%s", err);
	pol = moat_policy_new(conf, 0, err, sizeof(err));
	cr_assert_not_null(pol, "%s", err);
	s = moat_session_new(pol, &c);
	cr_assert_eq(moat_session_connect(s, &v), MOAT_EVENT_DONE);
	moat_session_tls(s, &tls);
	moat_session_tls(s, &tls); /* the same handshake reported again */
	moat_session_helo(s, "c.example", true, &v);
	moat_session_mail(s, "a@example.org", NULL, &v);
	moat_session_rcpt(s, "b@example.net", NULL, &v);
	moat_session_rcpt(s, "c@example.net", NULL, &v);
	cr_assert_eq(v.code, 452);
	moat_session_data(s, &v);
	moat_session_header(s, "Subject: x", 10, &v);
	moat_session_eoh(s, &v);
	moat_session_eom(s, &v);
	cr_assert(moat_policy_reload(pol, conf, err, sizeof(err)) == 0, "%s", err);
	text = scrape(moat_policy_metrics(pol));
	ASSERT_LINE(text, "mxmoat_sessions_total 1");
	ASSERT_LINE(text, "mxmoat_sessions_active 1");
	ASSERT_LINE(text, "mxmoat_refusals_total{reason=\"limit_recipients\"} 1");
	ASSERT_LINE(text, "mxmoat_messages_total{verdict=\"accept\"} 1");
	ASSERT_LINE(text, "mxmoat_tls_handshakes_total{version=\"TLSv1.2\"} 1");
	ASSERT_LINE(text, "mxmoat_config_generation 2");
	free(text);
	moat_session_free(s);
	text = scrape(moat_policy_metrics(pol));
	ASSERT_LINE(text, "mxmoat_sessions_active 0");
	free(text);
	moat_policy_free(pol);
	moat_conf_unref(conf);
}
