/*
 * main.c - mxmoat-proxy start-up and signals: command line, configuration, binding the listeners
 * (one SO_REUSEPORT socket per worker and address), daemon start, the worker threads, SIGHUP
 * reload (new sessions get the new snapshot) and SIGTERM/SIGINT drain (sessions in flight may
 * finish for up to drain_timeout).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <unistd.h>
#include <uv.h>

#include "cmdline.h"
#include "conf.h"
#include "daemon.h"
#include "hold.h"
#include "log.h"
#include "metrics_http.h"
#include "policy.h"
#include "smtp_session.h"
#include "tls.h"
#include "worker.h"

#define WORKERS_MAX 256

struct proxy_main {
	struct moat_cmdline cl;
	struct moat_policy *pol;
	struct px_worker *workers[WORKERS_MAX];
	unsigned nworkers;
	uv_loop_t loop;
	uv_signal_t sighup, sigterm, sigint;
	uv_timer_t drain;
	bool draining;
	uint64_t drain_start;
	unsigned drain_timeout;
};

/* The proxy's part of a generation: its TLS contexts, built by each reload from the new snapshot
 * (the running ones donate their session-ticket keys) and swapped with it by moat_policy_reload. */
static void *
tls_build(void *old, const struct moat_conf *conf, char *err, size_t errlen)
{
	return moat_tls_ctx_reload(old, conf, err, errlen);
}

static void *
tls_ref(void *ctx)
{
	return moat_tls_ctx_ref(ctx);
}

static void
tls_unref(void *ctx)
{
	moat_tls_ctx_unref(ctx);
}

static const struct moat_frontend_ops tls_frontend = { tls_build, tls_ref, tls_unref };

/* split_list - the comma-separated listen list into up to max trimmed entries. */
static size_t
split_list(char *list, char **out, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(list, ", "); tok != NULL && n < max; tok = strtok(NULL, ", "))
		out[n++] = tok;
	return n;
}

/*
 * check_spool - can holding mode (auth_inbound, a signing table, a scanner, BDAT) spool to
 * proxy_spool_dir? Not fatal: messages under proxy_hold_memory still pass, bigger ones get 451
 * 4.3.0 (nothing lost), and this line says why at start and at each reload.
 */
static void
check_spool(const struct moat_conf *conf, const char *phase)
{
	char err[512];

	if ((conf->auth_inbound || conf->signer != NULL || conf->scan_clamd[0] != '\0' ||
		conf->scan_rspamd[0] != '\0' || conf->proxy_chunking) &&
	    moat_hold_check_dir("proxy_spool_dir", conf->proxy_spool_dir, err, sizeof(err)) < 0)
		moat_log(LOG_ERR, NULL, phase,
		    "error=\"%s\" note=\"held messages past proxy_hold_memory "
		    "get 451 4.3.0\"",
		    err);
}

static void
on_sighup(uv_signal_t *h, int sig)
{
	struct proxy_main *m = h->data;
	struct moat_conf *conf;
	char err[MOAT_CONF_ERR_MAX];

	(void)sig;
	if ((conf = moat_cmdline_reload(&m->cl)) == NULL)
		return;
	/*
	 * One generation: the certificates, the rate-limit rules and the snapshot are built from the
	 * new file and installed together by moat_policy_reload, or the running ones are all kept.
	 */
	switch (moat_policy_reload(m->pol, conf, err, sizeof(err))) {
	case 0:
		break;
	case -2:
		moat_log(LOG_ERR, NULL, "reload",
		    "tls=kept error=%s; keeping the running configuration", err);
		moat_conf_unref(conf);
		return;
	default:
		moat_log(LOG_ERR, NULL, "reload", "refused: %s; keeping the running configuration",
		    err);
		moat_conf_unref(conf);
		return;
	}
	check_spool(conf, "reload");
	moat_conf_unref(conf);
	moat_log(LOG_INFO, NULL, "reload", "status=ok note=listeners-unchanged");
}

static void
on_drain_tick(uv_timer_t *t)
{
	struct proxy_main *m = t->data;
	unsigned busy = 0, left = 0;

	for (unsigned i = 0; i < m->nworkers; i++) {
		busy += px_worker_sessions(m->workers[i]);
		left += !px_worker_done(m->workers[i]);
	}
	if (left == 0 || busy == 0 || uv_now(&m->loop) - m->drain_start >= m->drain_timeout) {
		moat_log(LOG_INFO, NULL, "stop", "sessions_cut=%u", busy);
		uv_stop(&m->loop);
	}
}

static void
on_sigterm(uv_signal_t *h, int sig)
{
	struct proxy_main *m = h->data;

	if (m->draining) {
		uv_stop(&m->loop);
		return;
	}
	m->draining = true;
	moat_log(LOG_INFO, NULL, "drain", "signal=%d timeout_ms=%u", sig, m->drain_timeout);
	for (unsigned i = 0; i < m->nworkers; i++)
		px_worker_stop(m->workers[i]);
	m->drain_start = uv_now(&m->loop);
	uv_timer_start(&m->drain, on_drain_tick, 50, 50);
}

int
main(int argc, char **argv)
{
	static struct proxy_main m;
	struct moat_conf *conf;
	struct moat_tls_ctx *tls; /* the first generation's certificates, held by the policy */
	char err[512], buf[32], *addrs[PX_LISTEN_MAX], list[MOAT_CONF_LINE_MAX + 1],
	    slist[MOAT_CONF_LINE_MAX + 1];
	int rc, fds[PX_LISTEN_MAX], metrics_fd;
	size_t naddrs;
	long ncpu;

	if ((rc = moat_cmdline_parse(&m.cl, "mxmoat-proxy", MOAT_CK_PROXY, argc, argv)) >= 0)
		return rc;
	if ((conf = moat_cmdline_load(&m.cl)) == NULL)
		return 1;
	if ((rc = moat_cmdline_early_exit(&m.cl, conf)) >= 0) {
		moat_conf_unref(conf);
		return rc;
	}
	moat_cmdline_log_open(&m.cl, conf);
	/* the libuv threadpool is sized once, before its first use */
	snprintf(buf, sizeof(buf), "%u", conf->proxy_threadpool_size);
	setenv("UV_THREADPOOL_SIZE", buf, 1);
	m.drain_timeout = conf->drain_timeout;

	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	m.nworkers = conf->proxy_workers ? conf->proxy_workers : (ncpu > 0 ? (unsigned)ncpu : 1);
	if (m.nworkers > WORKERS_MAX)
		m.nworkers = WORKERS_MAX;
	snprintf(list, sizeof(list), "%s", conf->proxy_listen); /* a config line is never longer */
	naddrs = split_list(list, addrs, PX_LISTEN_MAX);
	/* submission listeners are plaintext ones too (STARTTLS, then AUTH: smtp_auth.c) */
	snprintf(slist, sizeof(slist), "%s", conf->proxy_submission_listen);
	naddrs += split_list(slist, addrs + naddrs, PX_LISTEN_MAX - naddrs);
	if (naddrs == 0) {
		fprintf(stderr, "mxmoat-proxy: proxy_listen is empty\n");
		return 1;
	}
	if ((m.pol = moat_policy_new(conf, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxmoat-proxy: %s\n", err);
		return 1;
	}
	/* certificates are read now, before privileges drop */
	if ((tls = moat_tls_ctx_new(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxmoat-proxy: %s\n", err);
		return 1;
	}
	moat_policy_set_frontend(m.pol, &tls_frontend, tls);
	if ((conf->proxy_listen_tls[0] != '\0' || conf->proxy_require_tls) &&
	    !moat_tls_ctx_server_ready(tls)) {
		fprintf(stderr,
		    "mxmoat-proxy: proxy_listen_tls and proxy_require_tls need tls_cert_file\n");
		return 1;
	}
	/* AUTH is offered only inside TLS: without a certificate a submission listener could never
	 * authenticate anyone, and must not run as an unauthenticated one. */
	if (conf->proxy_submission_listen[0] != '\0' && !moat_tls_ctx_server_ready(tls)) {
		fprintf(stderr,
		    "mxmoat-proxy: proxy_submission_listen needs tls_cert_file (AUTH is only "
		    "offered inside TLS; an unauthenticated submission listener is refused)\n");
		return 1;
	}
	for (unsigned i = 0; i < m.nworkers; i++) {
		for (size_t j = 0; j < naddrs; j++)
			if ((fds[j] = px_listen_bind(addrs[j], i == 0, err, sizeof(err))) < 0) {
				fprintf(stderr, "mxmoat-proxy: %s\n", err);
				return 1;
			}
		if ((m.workers[i] = px_worker_new(m.pol, fds, naddrs, err, sizeof(err))) == NULL ||
		    px_worker_set_redis(m.workers[i], conf, err, sizeof(err)) < 0) {
			fprintf(stderr, "mxmoat-proxy: %s\n", err);
			return 1;
		}
		/* implicit-TLS listeners, bound the same way */
		{
			char *tlist = strdup(conf->proxy_listen_tls), *taddrs[PX_LISTEN_MAX];
			int tfds[PX_LISTEN_MAX];
			size_t nt = tlist != NULL ? split_list(tlist, taddrs, PX_LISTEN_MAX) : 0;

			int trc = 0;

			for (size_t j = 0; j < nt && trc == 0; j++)
				if ((tfds[j] = px_listen_bind(taddrs[j], i == 0, err,
					 sizeof(err))) < 0)
					trc = -1;
			if (trc == 0)
				trc = px_worker_listen(m.workers[i], tfds, nt, true, err,
				    sizeof(err));
			free(tlist);
			if (trc < 0) {
				fprintf(stderr, "mxmoat-proxy: %s\n", err);
				return 1;
			}
		}
	}
	if ((metrics_fd = metrics_http_bind(conf, err, sizeof(err))) == -1) {
		fprintf(stderr, "mxmoat-proxy: %s\n", err);
		return 1;
	}
	if (moat_daemon_start(m.cl.foreground, conf->proxy_pid_file, conf->daemon_user,
		conf->daemon_group, err, sizeof(err)) != 0) {
		fprintf(stderr, "mxmoat-proxy: %s\n", err);
		return 1;
	}
	/* the server's thread belongs to the process that serves, after the detach */
	if (metrics_fd >= 0 &&
	    metrics_http_start(metrics_fd, conf, moat_policy_metrics(m.pol), err, sizeof(err)) ==
		NULL) {
		moat_log(LOG_ERR, NULL, "start", "error=\"%s\"", err);
		return 1;
	}
	check_spool(conf, "start"); /* as the user we now run as */
	uv_loop_init(&m.loop);
	uv_signal_init(&m.loop, &m.sighup);
	uv_signal_init(&m.loop, &m.sigterm);
	uv_signal_init(&m.loop, &m.sigint);
	uv_timer_init(&m.loop, &m.drain);
	m.sighup.data = m.sigterm.data = m.sigint.data = m.drain.data = &m;
	uv_signal_start(&m.sighup, on_sighup, SIGHUP);
	uv_signal_start(&m.sigterm, on_sigterm, SIGTERM);
	uv_signal_start(&m.sigint, on_sigterm, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < m.nworkers; i++)
		if (px_worker_start(m.workers[i]) != 0) {
			moat_log(LOG_ERR, NULL, "start", "error=thread");
			return 1;
		}
	moat_log(LOG_INFO, NULL, "start",
	    "listen=%s listen_tls=%s submission=%s tls=%s backend=%s workers=%u metrics=%s",
	    conf->proxy_listen, conf->proxy_listen_tls[0] != '\0' ? conf->proxy_listen_tls : "-",
	    conf->proxy_submission_listen[0] != '\0' ? conf->proxy_submission_listen : "-",
	    moat_tls_ctx_server_ready(tls) ? "yes" : "no", conf->proxy_backend, m.nworkers,
	    metrics_fd >= 0 ? conf->metrics_listen : "-");
	uv_run(&m.loop, UV_RUN_DEFAULT);
	moat_policy_flush(m.pol); /* the DMARC evaluations still queued */
	moat_daemon_pidfile_remove(conf->proxy_pid_file);
	moat_log(LOG_INFO, NULL, "exit", "status=0");
	/* workers may still hold sessions past drain_timeout: exit without joining them */
	_exit(0);
}
