/*
 * main.c - mxmoat-milter: command line, configuration, the milter socket, daemon start-up,
 * SIGHUP reload and SIGTERM shutdown.
 *
 * Owns the policy object (shared by every connection) and the reload thread. With milter_engine =
 * libmilter, libmilter owns the listening socket and one thread per MTA connection
 * (callbacks.c); SIGTERM and SIGINT stop libmilter (its own signal thread). With native, the
 * socket is bound here and served by native.c's loops; a thread of ours waits for SIGTERM and
 * SIGINT and drains them (messages in progress finish, for up to drain_timeout; a second signal
 * cuts them). SIGHUP is ours (see interpose.c): the configuration is read again and
 * installed with moat_policy_reload, connections in flight keep their snapshot.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <libmilter/mfapi.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "callbacks.h"
#include "cmdline.h"
#include "conf.h"
#include "daemon.h"
#include "hold.h"
#include "interpose.h"
#include "log.h"
#include "metrics_http.h"
#include "native.h"
#include "policy.h"

/*
 * Stack size of the threads started from here on: libmilter's (one per MTA connection, created
 * with default attributes) and the DNS layer's. glibc caches up to 40 MiB of freed thread stacks;
 * at RLIMIT_STACK's usual 8 MiB that is 5 stacks, so under load nearly every connection paid for
 * a fresh mmap, a guard-page mprotect, page faults on first touch and a munmap (with a TLB
 * shootdown on every core): 11 page faults per message, 0.8 with 1 MiB, which keeps 40 cached.
 * The ASan build passes the milter e2e tests (SPF, DKIM verification and signing, DMARC) with
 * 192 KiB stacks.
 */
#define MILTER_THREAD_STACK ((size_t)1024 * 1024)

static atomic_bool reload_stop;
static atomic_bool serve_done; /* the native engine's loops have ended: the stop thread goes */

struct reload_ctx {
	const struct moat_cmdline *cl;
	struct moat_policy *pol;
};

/*
 * check_spool - with rspamd on, can the milter's copies for rspamd spool to milter_spool_dir? Not
 * fatal: copies under milter_hold_memory are kept in memory, bigger ones fail rspamd for their
 * message (scan_failure); this line says why at start and at each reload.
 */
static void
check_spool(const struct moat_conf *conf, const char *phase)
{
	char err[512];

	if (conf->scan_rspamd[0] != '\0' &&
	    moat_hold_check_dir("milter_spool_dir", conf->milter_spool_dir, err, sizeof(err)) < 0)
		moat_log(LOG_ERR, NULL, phase,
		    "error=\"%s\" note=\"copies for rspamd past milter_hold_memory fail\"", err);
}

/* reload_thread - wait for SIGHUP; load the configuration again and install it. */
static void *
reload_thread(void *arg)
{
	struct reload_ctx *rc = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (atomic_load(&reload_stop))
			break;
		if (sig != SIGHUP)
			continue;
		struct moat_conf *conf = moat_cmdline_reload(rc->cl);
		if (conf != NULL) {
			/* Socket, user and pid file stay as started; everything else applies to new
			 * connections. */
			char err[MOAT_CONF_ERR_MAX];
			if (moat_policy_reload(rc->pol, conf, err, sizeof(err)) < 0)
				moat_log(LOG_ERR, NULL, "reload",
				    "refused: %s; keeping the running "
				    "configuration",
				    err);
			else {
				milter_interpose_tcp_tuning(conf->milter_tcp_tuning);
				check_spool(conf, "reload");
			}
			moat_conf_unref(conf);
		}
	}
	return NULL;
}

/* log_tcp_tuning - the first inet connection was tuned: the interposition works. */
static void
log_tcp_tuning(void)
{
	moat_log(LOG_INFO, NULL, "tcp-tuning",
	    "active: TCP_NODELAY and TCP_QUICKACK on inet milter "
	    "connections");
}

/*
 * malloc_arenas_per_core - at most one malloc arena per core instead of glibc's eight per core.
 * libmilter runs its callbacks in a pool of threads that grows with the load (13 to 99 threads
 * with 200 MTA connections in `bench/milter -M`); new threads took arenas of their own, and
 * memory freed in one arena is not reused by another: the milter's RSS grew by 74-108 KB per
 * connection in flight, 58-68 KB with two arenas on the bench's two cores. Only memory is at
 * stake, so a refusal (the sanitizers' malloc has no arenas) is not reported.
 */
static void
malloc_arenas_per_core(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (cores > 0)
		(void)mallopt(M_ARENA_MAX, (int)cores);
}

/* thread_stack_default - MILTER_THREAD_STACK for threads created with default attributes. */
static void
thread_stack_default(void)
{
	pthread_attr_t attr;

	if (pthread_attr_init(&attr) != 0)
		return;
	if (pthread_attr_setstacksize(&attr, MILTER_THREAD_STACK) != 0 ||
	    pthread_setattr_default_np(&attr) != 0)
		moat_log(LOG_WARNING, NULL, "start", "%s",
		    "cannot set the thread stack size, the default stays");
	pthread_attr_destroy(&attr);
}

/* socket_unix_path - the path of a unix:/local: socket spec, or NULL for inet. */
static const char *
socket_unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

/*
 * socket_unix_in_use - whether a server accepts on the unix socket at path. libmilter removes an
 * existing socket file before it binds (so a stale one left by a crash is no obstacle); without
 * this check a second mxmoat-milter would take the path from a running one, which would go on
 * running with no way for the MTA to reach it.
 */
static bool
socket_unix_in_use(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	bool listening;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path) ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false; /* libmilter reports what is wrong with the path */
	memcpy(sun.sun_path, path, strlen(path) + 1);
	listening = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN;
	close(fd);
	return listening;
}

/* socket_set_owner - chown a unix socket to "user[:group]". 0 or -1 with err set. */
static int
socket_set_owner(const char *path, const char *spec, char *err, size_t errlen)
{
	char user[256];
	const char *colon = strchr(spec, ':');
	size_t ul = colon ? (size_t)(colon - spec) : strlen(spec);
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (ul >= sizeof(user)) {
		snprintf(err, errlen, "milter_socket_owner: user name too long");
		return -1;
	}
	memcpy(user, spec, ul);
	user[ul] = '\0';
	if (ul > 0) {
		struct passwd *pw = getpwnam(user);
		if (pw == NULL) {
			snprintf(err, errlen, "milter_socket_owner: unknown user '%s'", user);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (colon != NULL && colon[1] != '\0') {
		struct group *gr = getgrnam(colon + 1);
		if (gr == NULL) {
			snprintf(err, errlen, "milter_socket_owner: unknown group '%s'", colon + 1);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (chown(path, uid, gid) < 0) {
		snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* socket_access - a unix socket's mode and owner from the configuration. 0 or -1 with err. */
static int
socket_access(const struct moat_conf *conf, char *err, size_t errlen)
{
	const char *path = socket_unix_path(conf->milter_socket);
	mode_t mode = (mode_t)strtoul(conf->milter_socket_mode, NULL, 8);

	if (path == NULL)
		return 0;
	if (chmod(path, mode) < 0) {
		snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (conf->milter_socket_owner[0] != '\0' &&
	    socket_set_owner(path, conf->milter_socket_owner, err, errlen) < 0)
		return -1;
	return 0;
}

static const char socket_in_use[] = ": already in use: another mxmoat-milter (reload a running "
				    "one with SIGHUP) or another server listens there";

/* milter_open - register with libmilter and bind the socket (still root). 0 or -1. */
static int
milter_open(const struct moat_conf *conf, struct moat_policy *pol, char *err, size_t errlen)
{
	static struct smfiDesc desc;
	const char *path = socket_unix_path(conf->milter_socket);
	mode_t old_umask;
	int rc;

	milter_callbacks_init(&desc, pol);
	if (smfi_register(desc) != MI_SUCCESS) {
		snprintf(err, errlen, "smfi_register failed");
		return -1;
	}
	if (smfi_setconn((char *)conf->milter_socket) != MI_SUCCESS ||
	    smfi_settimeout((int)(conf->milter_timeout / 1000)) != MI_SUCCESS ||
	    smfi_setbacklog((int)conf->milter_backlog) != MI_SUCCESS) {
		snprintf(err, errlen, "libmilter refused socket settings for %s",
		    conf->milter_socket);
		return -1;
	}
	if (path != NULL && socket_unix_in_use(path)) {
		snprintf(err, errlen, "cannot listen on %s%s", conf->milter_socket, socket_in_use);
		return -1;
	}
	/* The socket is created with no access for others; the mode is set right after. */
	old_umask = umask(0177);
	errno = 0;
	rc = smfi_opensocket(true);
	umask(old_umask);
	if (rc != MI_SUCCESS) {
		snprintf(err, errlen, "cannot listen on %s%s", conf->milter_socket,
		    errno == EADDRINUSE ? socket_in_use : "");
		return -1;
	}
	return socket_access(conf, err, errlen);
}

/* native_open - bind the native engine's socket (still root): its fd, or -1 with err. */
static int
native_open(const struct moat_conf *conf, char *err, size_t errlen)
{
	const char *path = socket_unix_path(conf->milter_socket);
	mode_t old_umask;
	int fd;

	if (path != NULL && socket_unix_in_use(path)) {
		snprintf(err, errlen, "cannot listen on %s%s", conf->milter_socket, socket_in_use);
		return -1;
	}
	old_umask = umask(0177);
	fd = milter_native_listen(conf->milter_socket, (int)conf->milter_backlog, err, errlen);
	umask(old_umask);
	if (fd >= 0 && socket_access(conf, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* stop_signal - wait for SIGTERM or SIGINT: 0, or -1 when native_serve is done (it wakes the
 * thread with a SIGINT of its own) */
static int
stop_signal(int *sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigwait(&set, sig) != 0 || atomic_load(&serve_done))
		return -1;
	return 0;
}

/* stop_thread - the native engine's SIGTERM and SIGINT: drain and stop the loops; a second
 * signal cuts what is left. */
static void *
stop_thread(void *arg)
{
	const unsigned *drain_ms = arg;
	int sig;

	if (stop_signal(&sig) < 0)
		return NULL;
	moat_log(LOG_INFO, NULL, "drain", "signal=%d timeout_ms=%u", sig, *drain_ms);
	milter_native_stop();
	if (stop_signal(&sig) < 0)
		return NULL;
	moat_log(LOG_INFO, NULL, "drain", "signal=%d note=\"second signal: cut\"", sig);
	milter_native_stop();
	return NULL;
}

/* native_serve - run the native engine until SIGTERM or SIGINT: 0, or 1 when it could not start */
static int
native_serve(int fd, struct moat_policy *pol, unsigned drain_ms)
{
	pthread_t stopper;
	char err[256] = "";
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	if (pthread_create(&stopper, NULL, stop_thread, &drain_ms) != 0) {
		moat_log(LOG_ERR, NULL, "start", "cannot start the signal thread");
		close(fd);
		return 1;
	}
	rc = milter_native_run(fd, pol, cores > 0 ? (unsigned)cores : 1, log_tcp_tuning, err,
	    sizeof(err));
	if (rc < 0)
		moat_log(LOG_ERR, NULL, "start", "error=\"%s\"", err);
	/* the stop thread may still wait for a (second) signal: woken, it sees serve_done (not a
	 * cancellation, which the sanitizers' thread teardown does not survive) */
	atomic_store(&serve_done, true);
	pthread_kill(stopper, SIGINT);
	pthread_join(stopper, NULL);
	return rc < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	struct moat_cmdline cl;
	struct moat_conf *conf;
	struct moat_policy *pol;
	struct reload_ctx rctx;
	struct metrics_http *metrics = NULL;
	pthread_t reloader;
	sigset_t set;
	char err[MOAT_CONF_ERR_MAX];
	int rc, metrics_fd, native_fd = -1;
	bool native;

	if ((rc = moat_cmdline_parse(&cl, "mxmoat-milter", MOAT_CK_MILTER, argc, argv)) >= 0)
		return rc;
	if ((conf = moat_cmdline_load(&cl)) == NULL)
		return 1;
	if ((rc = moat_cmdline_early_exit(&cl, conf)) >= 0) {
		moat_conf_unref(conf);
		return rc;
	}
	moat_cmdline_log_open(&cl, conf);
	native = conf->milter_engine == MOAT_MILTER_NATIVE;
	milter_interpose_tcp_tuning(conf->milter_tcp_tuning && !native);
	milter_interpose_on_first_tuned(log_tcp_tuning);
	/* the native engine's threadpool runs the steps that wait on DNS, Redis or signing; sized
	 * once, before its first use (an environment that sets it wins) */
	setenv("UV_THREADPOOL_SIZE", "16", 0);

	/* libmilter's worker threads: the core may wait on Redis in them; the native engine's loops
	 * never wait: a step that would pends, and runs on the threadpool */
	if ((pol = moat_policy_new(conf, native ? 0 : MOAT_POLICY_MAY_BLOCK, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "mxmoat-milter: %s\n", err);
		moat_conf_unref(conf);
		return 1;
	}
	thread_stack_default();
	malloc_arenas_per_core();
	if ((native ? (native_fd = native_open(conf, err, sizeof(err)))
		    : milter_open(conf, pol, err, sizeof(err))) < 0 ||
	    (metrics_fd = metrics_http_bind(conf, err, sizeof(err))) == -1 ||
	    moat_daemon_start(cl.foreground, conf->milter_pid_file, conf->daemon_user,
		conf->daemon_group, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxmoat-milter: %s\n", err);
		moat_log(LOG_ERR, NULL, "start", "%s", err);
		moat_policy_free(pol);
		moat_conf_unref(conf);
		return 1;
	}
	check_spool(conf, "start"); /* as the user we now run as */

	/* Blocked in every thread from here (threads inherit the mask): SIGHUP is taken by the reload
	 * thread alone, SIGTERM and SIGINT by libmilter's signal thread. Left unblocked here, the
	 * reload thread would be a target for SIGTERM and die of it. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rctx.cl = &cl;
	rctx.pol = pol;
	if (pthread_create(&reloader, NULL, reload_thread, &rctx) != 0) {
		moat_log(LOG_ERR, NULL, "start", "cannot start the reload thread");
		moat_policy_free(pol);
		moat_conf_unref(conf);
		return 1;
	}
	/* like the reload thread, after the detach and with the signals blocked */
	if (metrics_fd >= 0 &&
	    (metrics = metrics_http_start(metrics_fd, conf, moat_policy_metrics(pol), err,
		 sizeof(err))) == NULL) {
		moat_log(LOG_ERR, NULL, "start", "error=\"%s\"", err);
		return 1;
	}
	moat_log(LOG_INFO, NULL, "start", "listening on %s config=%s metrics=%s engine=%s",
	    conf->milter_socket, conf->source, metrics != NULL ? conf->metrics_listen : "-",
	    native ? "native" : "libmilter");

	if (native)
		rc = native_serve(native_fd, pol, conf->drain_timeout);
	else
		rc = smfi_main() == MI_SUCCESS ? 0 : 1;

	moat_log(LOG_INFO, NULL, "stop", "%s", rc == 0 ? "clean" : "engine error");
	atomic_store(&reload_stop, true);
	pthread_kill(reloader, SIGHUP);
	pthread_join(reloader, NULL);
	metrics_http_stop(metrics); /* before the counters it reads go */
	moat_daemon_pidfile_remove(conf->milter_pid_file);
	moat_policy_free(pol);
	moat_conf_unref(conf);
	return rc;
}
