/*
 * mxmoat-report.c - DMARC aggregate reports (RFC 9990) from the evaluations the daemons recorded
 * (dmarc_report_store = sqlite, or redis: copied into a SQLite store in memory first, and each
 * period emitted marked in Redis too), and a page for the postmaster.
 *
 *   --write DIR   one gzip-compressed XML report per policy domain and complete UTC day, named
 *                 receiver!policy-domain!begin!end!id.xml.gz; each is marked in the store and
 *                 never written again
 *   --json        the reports --write would write (or every one with --all), as JSON on stdout
 *   --send        each report not sent before mailed to the policy's rua= addresses (those
 *                 outside the policy domain only when they authorize it) through report_smtp;
 *                 each destination served and each period finished is marked in the store
 *                 (with Redis: each period claimed there first, so that runs on several
 *                 hosts never send it twice); then the failure reports the daemons stored
 *                 (RFC 9991), to their ruf= addresses under the same check, each deleted once
 *                 no address is left
 *   --html FILE   one self-contained HTML page of the last --days days
 * Exit status: 0 done, 1 an error (nothing marked that was not written), 2 usage or configuration.
 */
#include "config.h"

#include <errno.h>
#include <curl/curl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dns.h"
#include "dmarc.h"
#include "dmarc_failure.h"
#include "dmarc_report.h"
#include "report.h"

#define EXIT_ERROR 1
#define EXIT_USAGE 2
#define OVERRIDES_MAX 64

static const char usage_text[] =
    "usage: mxmoat-report [-c FILE] [-o KEY=VALUE]... [--db FILE] [--now SECONDS]\n"
    "                     [--write DIR] [--send] [--json [--all]] [--html FILE [--days N]]\n"
    "Writes DMARC aggregate reports (RFC 9990) of the complete UTC days recorded in the store.\n";

/* The store read: a SQLite file, or a copy in memory of the Redis store (redis set). */
struct store {
	sqlite3 *db;
	redisContext *redis;
	const char *prefix; /* of the Redis keys */
	char token[128]; /* this run's claims on periods being sent (Redis) */
};

#define CLAIM_TTL_S 3600 /* a claim outlives any send of one period (timeouts of 120 s each) */

/* store_mark - REP was emitted as KIND: marked in the store (and in Redis); -1 with err. */
static int
store_mark(const struct store *st, const struct report *rep, const char *kind, int64_t now,
    char *err, size_t errlen)
{
	if (report_mark(st->db, rep, kind, now, err, errlen) < 0)
		return -1;
	return st->redis == NULL ? 0
				 : moat_dmarc_report_redis_mark(st->redis, st->prefix, rep->domain,
				       rep->begin, kind, rep->report_id, err, errlen);
}

/* token_make - this run's name for its claims: host, process and start time. */
static void
token_make(char *out, size_t len)
{
	char host[64] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, len, "%s:%ld:%lld", host, (long)getpid(), (long long)time(NULL));
}

/* store_open - the SQLite file, or (dmarc_report_store = redis, no --db) Redis copied into
 * memory; -1 with err. */
static int
store_open(struct store *st, const struct moat_conf *conf, const char *db_path, bool readonly,
    char *err, size_t errlen)
{
	long n;

	if (db_path != NULL || conf->dmarc_report_store != MOAT_DREP_REDIS) {
		st->db = moat_dmarc_report_db_open(db_path ? db_path : conf->dmarc_report_db,
		    readonly, err, errlen);
		return st->db == NULL ? -1 : 0;
	}
	st->prefix = conf->dmarc_report_redis_prefix;
	token_make(st->token, sizeof(st->token));
	if ((st->redis = moat_dmarc_report_redis_connect(conf->ratelimit_redis,
		 conf->ratelimit_redis_timeout < 2000 ? 2000 : conf->ratelimit_redis_timeout, err,
		 errlen)) == NULL ||
	    (st->db = moat_dmarc_report_db_open(":memory:", false, err, errlen)) == NULL ||
	    (n = moat_dmarc_report_redis_import(st->redis, st->prefix, st->db, err, errlen)) < 0)
		return -1;
	fprintf(stderr, "mxmoat-report: %ld record%s read from redis %s\n", n, n == 1 ? "" : "s",
	    conf->ratelimit_redis);
	return 0;
}

static void
store_close(struct store *st)
{
	sqlite3_close(st->db);
	redisFree(st->redis);
}

struct write_ctx {
	const struct store *st;
	const char *dir;
	const struct report_meta *meta;
	int64_t now;
	char err[512];
};

/* write_one - the report's file, then its mark: a crash in between writes the same file again. */
static int
write_one(struct report *rep, void *arg)
{
	struct write_ctx *w = arg;
	char name[1024], path[4096];
	int n;

	if (report_filename(rep, w->meta, name, sizeof(name)) < 0 ||
	    (n = snprintf(path, sizeof(path), "%s/%s", w->dir, name)) < 0 ||
	    (size_t)n >= sizeof(path)) {
		snprintf(w->err, sizeof(w->err), "file name too long for %s", rep->domain);
		return -1;
	}
	if (report_xml_write(rep, w->meta, path, w->err, sizeof(w->err)) < 0 ||
	    store_mark(w->st, rep, "write", w->now, w->err, sizeof(w->err)) < 0)
		return -1;
	printf("%s\n", path);
	return 0;
}

/* The state of --send. */
struct send_ctx {
	const struct store *st;
	const struct report_meta *meta;
	struct report_sender sender;
	struct moat_dns *dns;
	char dir[64]; /* where each report is written before it is read back to be sent */
	int64_t now;
	const struct report *rep; /* the report being sent, its file and name */
	unsigned char *gz;
	size_t gzlen;
	char name[1024];
	unsigned sent, later; /* messages sent; destinations to try again next run */
	char err[512];
};

/* send_dest - REP to one rua= destination, unless sent there before, not authorized or too big. */
static int
send_dest(const char *addr, uint64_t limit, void *arg)
{
	struct send_ctx *s = arg;
	char kind[400], err[512];
	int rc;

	snprintf(kind, sizeof(kind), "send:%s", addr);
	if ((rc = report_marked(s->st->db, s->rep, kind)) == 0 && s->st->redis != NULL)
		rc = moat_dmarc_report_redis_marked(s->st->redis, s->st->prefix, s->rep->domain,
		    s->rep->begin, kind, s->err, sizeof(s->err));
	if (rc != 0) {
		if (rc < 0 && s->err[0] == '\0')
			snprintf(s->err, sizeof(s->err), "reading the store: %s",
			    sqlite3_errmsg(s->st->db));
		return rc < 0 ? -1 : 0; /* sent by an earlier run */
	}
	if ((rc = report_rua_authorized(s->dns, s->rep->domain, addr)) <= 0) {
		if (rc < 0)
			s->later++;
		fprintf(stderr, "mxmoat-report: %s: not sent to %s: %s\n", s->name, addr,
		    rc < 0
			? "DNS failed checking that it takes our reports (next run)"
			: "an external destination that does not authorize the reports (RFC 9990 3)");
		return 0;
	}
	if (limit != 0 && s->gzlen > limit) {
		fprintf(stderr,
		    "mxmoat-report: %s: not sent to %s: %zu bytes, over its limit %" PRIu64 "\n",
		    s->name, addr, s->gzlen, limit);
		return 0;
	}
	rc = report_send_one(&s->sender, s->rep, addr, s->gz, s->gzlen, s->name, err, sizeof(err));
	if (rc != 0) {
		if (rc < 0)
			s->later++;
		fprintf(stderr, "mxmoat-report: %s: not sent to %s: %s%s\n", s->name, addr, err,
		    rc < 0 ? " (next run)" : "");
		return 0;
	}
	if (store_mark(s->st, s->rep, kind, s->now, s->err, sizeof(s->err)) < 0)
		return -1;
	s->sent++;
	printf("%s sent to %s\n", s->name, addr);
	return 0;
}

/* read_file - PATH's bytes into *out (malloc'd); -1 on error. */
static int
read_file(const char *path, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	*out = NULL;
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (*out = malloc((size_t)n + 1)) == NULL ||
	    fread(*out, 1, (size_t)n, f) != (size_t)n) {
		if (f != NULL)
			fclose(f);
		free(*out);
		*out = NULL;
		return -1;
	}
	fclose(f);
	*len = (size_t)n;
	return 0;
}

/* send_period - REP to each destination; the period is marked sent when none is left for later. */
static int
send_period(struct report *rep, void *arg)
{
	struct send_ctx *s = arg;
	char path[1200];
	unsigned later = s->later;
	int rc;

	s->rep = rep;
	if (report_filename(rep, s->meta, s->name, sizeof(s->name)) < 0) {
		snprintf(s->err, sizeof(s->err), "file name too long for %s", rep->domain);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", s->dir, s->name);
	if (report_xml_write(rep, s->meta, path, s->err, sizeof(s->err)) < 0)
		return -1;
	rc = read_file(path, &s->gz, &s->gzlen);
	unlink(path);
	if (rc < 0) {
		snprintf(s->err, sizeof(s->err), "cannot read back the report of %s", rep->domain);
		return -1;
	}
	rc = moat_dmarc_uri_each(rep->pol.f[POL_RUA], send_dest, s);
	free(s->gz);
	s->gz = NULL;
	if (rc != 0)
		return -1;
	return s->later == later ? store_mark(s->st, rep, "send", s->now, s->err, sizeof(s->err))
				 : 0;
}

/*
 * send_one - with a Redis store, two runs on two hosts could read the same unsent period: the
 * period is claimed in Redis first (SET NX with an expiry), its marks read again from Redis,
 * sent, marked, and the claim given back (after the mark, so a run that claims it next sees the
 * mark). A period another run holds is left to it.
 */
static int
send_one(struct report *rep, void *arg)
{
	struct send_ctx *s = arg;
	const struct store *st = s->st;
	char err[512];
	int rc;

	if (st->redis == NULL)
		return send_period(rep, arg);
	rc = moat_dmarc_report_redis_claim(st->redis, st->prefix, rep->domain, rep->begin,
	    st->token, CLAIM_TTL_S, s->err, sizeof(s->err));
	if (rc <= 0) {
		if (rc == 0)
			fprintf(stderr,
			    "mxmoat-report: %s of %" PRId64
			    ": being sent by another run (claimed in Redis)\n",
			    rep->domain, rep->begin);
		return rc;
	}
	rc = moat_dmarc_report_redis_marked(st->redis, st->prefix, rep->domain, rep->begin, "send",
	    s->err, sizeof(s->err));
	if (rc == 0)
		rc = send_period(rep, arg);
	else if (rc > 0)
		rc = 0; /* another run sent it after we read Redis */
	if (moat_dmarc_report_redis_release(st->redis, st->prefix, rep->domain, rep->begin,
		st->token, err, sizeof(err)) < 0 &&
	    rc == 0) {
		snprintf(s->err, sizeof(s->err), "%s", err);
		rc = -1;
	}
	return rc;
}

/* One failure report being sent, and the destinations it keeps for the next run. */
struct fail_ctx {
	struct send_ctx *s;
	long long id;
	const char *domain, *report;
	size_t size;
	char left[MOAT_DMARC_RUA_MAX + 64];
	size_t leftlen;
};

/* fail_keep - ADDR stays in the report's list for the next run. */
static void
fail_keep(struct fail_ctx *f, const char *addr)
{
	int n = snprintf(f->left + f->leftlen, sizeof(f->left) - f->leftlen, "%smailto:%s",
	    f->leftlen ? "," : "", addr);

	if (n > 0 && (size_t)n < sizeof(f->left) - f->leftlen)
		f->leftlen += (size_t)n;
	f->s->later++;
}

/* fail_dest - one failure report to one ruf= destination, when it authorizes it (RFC 9991
 * uses RFC 9990 3's check) and it fits its size limit. */
static int
fail_dest(const char *addr, uint64_t limit, void *arg)
{
	struct fail_ctx *f = arg;
	char err[512];
	int rc;

	if ((rc = report_rua_authorized(f->s->dns, f->domain, addr)) <= 0) {
		fprintf(stderr, "mxmoat-report: failure report %lld of %s: not sent to %s: %s\n",
		    f->id, f->domain, addr,
		    rc < 0
			? "DNS failed checking that it takes our reports (next run)"
			: "an external destination that does not authorize the reports (RFC 9990 3)");
		if (rc < 0)
			fail_keep(f, addr);
		return 0;
	}
	if (limit != 0 && f->size > limit) {
		fprintf(stderr,
		    "mxmoat-report: failure report %lld of %s: not sent to %s: %zu bytes, over its limit %" PRIu64
		    "\n",
		    f->id, f->domain, addr, f->size, limit);
		return 0;
	}
	rc =
	    report_send_failure(&f->s->sender, f->domain, f->id, addr, f->report, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mxmoat-report: failure report %lld of %s: not sent to %s: %s%s\n",
		    f->id, f->domain, addr, err, rc < 0 ? " (next run)" : "");
		if (rc < 0)
			fail_keep(f, addr);
		return 0;
	}
	f->s->sent++;
	printf("failure report %lld of %s sent to %s\n", f->id, f->domain, addr);
	return 0;
}

/* send_failures - every stored failure report to its destinations; a report is deleted when
 * none is left for the next run, else it keeps those. -1 with s->err. */
static int
send_failures(struct send_ctx *s)
{
	sqlite3 *db = s->st->db;
	sqlite3_stmt *sel = NULL, *del = NULL, *upd = NULL;
	int rc = 0, step;

	if (sqlite3_prepare_v2(db,
		"SELECT id, policy_domain, ruf, report FROM failures ORDER BY id", -1, &sel,
		NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "DELETE FROM failures WHERE id = ?", -1, &del, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE failures SET ruf = ? WHERE id = ?", -1, &upd, NULL) !=
		SQLITE_OK) {
		rc = -1;
		goto out;
	}
	while ((step = sqlite3_step(sel)) != SQLITE_DONE) {
		struct fail_ctx f = { .s = s, .id = sqlite3_column_int64(sel, 0) };
		sqlite3_stmt *done;
		char *domain, *ruf, *report;

		if (step != SQLITE_ROW) {
			rc = -1;
			break;
		}
		/* copies: the statements below may move the row's memory */
		domain = strdup((const char *)sqlite3_column_text(sel, 1));
		ruf = strdup((const char *)sqlite3_column_text(sel, 2));
		report = strdup((const char *)sqlite3_column_text(sel, 3));
		if (domain == NULL || ruf == NULL || report == NULL) {
			free(domain);
			free(ruf);
			free(report);
			rc = -1;
			break;
		}
		f.domain = domain;
		f.report = report;
		f.size = strlen(report);
		moat_dmarc_uri_each(ruf, fail_dest, &f);
		done = f.leftlen ? upd : del;
		sqlite3_reset(done);
		if (f.leftlen)
			sqlite3_bind_text(done, 1, f.left, -1, SQLITE_STATIC);
		sqlite3_bind_int64(done, f.leftlen ? 2 : 1, f.id);
		step = sqlite3_step(done);
		sqlite3_reset(done);
		free(domain);
		free(ruf);
		free(report);
		if (step != SQLITE_DONE) {
			rc = -1;
			break;
		}
	}
out:
	if (rc < 0)
		snprintf(s->err, sizeof(s->err), "failure reports: %s", sqlite3_errmsg(db));
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	sqlite3_finalize(upd);
	return rc;
}

/* send_all - --send; 0, or -1 with a message printed (what was sent stays marked). */
static int
send_all(const struct store *st, const struct moat_conf *conf, const struct report_meta *meta,
    int64_t now)
{
	struct send_ctx s = { .st = st, .meta = meta, .now = now };
	const char *tmp = getenv("TMPDIR");
	char err[512];
	long n;

	s.sender.smtp = conf->report_smtp[0] ? conf->report_smtp : conf->proxy_backend;
	s.sender.meta = meta;
	snprintf(s.dir, sizeof(s.dir), "%s/mxmoat-report.XXXXXX",
	    tmp != NULL && tmp[0] == '/' && strlen(tmp) < 40 ? tmp : "/tmp");
	if ((s.dns = moat_dns_new(conf->dns_resolver, conf->dns_timeout,
		 conf->dns_dnssec_trust_anchor, err, sizeof(err))) == NULL ||
	    mkdtemp(s.dir) == NULL) {
		fprintf(stderr, "mxmoat-report: %s\n",
		    s.dns ? "cannot make a temporary directory" : err);
		moat_dns_free(s.dns);
		return -1;
	}
	n = report_walk(st->db, now, "send", meta, send_one, &s, err, sizeof(err));
	rmdir(s.dir);
	if (n >= 0 && st->redis != NULL &&
	    moat_dmarc_report_redis_failures_take(st->redis, st->prefix, st->db, s.err,
		sizeof(s.err)) < 0)
		n = -1;
	if (n >= 0 && send_failures(&s) < 0)
		n = -1;
	/* with Redis, what is left goes back for the next run, even after an error */
	if (st->redis != NULL &&
	    moat_dmarc_report_redis_failures_return(st->redis, st->prefix, st->db, err,
		sizeof(err)) < 0) {
		snprintf(s.err, sizeof(s.err), "%s", err);
		n = -1;
	}
	moat_dns_free(s.dns);
	if (n < 0) {
		fprintf(stderr, "mxmoat-report: %s\n", s.err[0] ? s.err : err);
		return -1;
	}
	fprintf(stderr,
	    "mxmoat-report: %u message%s sent through %s; %u destination%s left for the next run\n",
	    s.sent, s.sent == 1 ? "" : "s", s.sender.smtp, s.later, s.later == 1 ? "" : "s");
	return s.later ? -1 : 0;
}

static int
json_one(struct report *rep, void *arg)
{
	void **a = arg;

	return report_json_add(a[0], rep, a[1]);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'D' },
		{ "now", required_argument, NULL, 'N' },
		{ "write", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "html", required_argument, NULL, 'H' },
		{ "days", required_argument, NULL, 'd' },
		{ "send", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_conf_override ov[OVERRIDES_MAX];
	size_t nov = 0;
	const char *conf_file = NULL, *db_path = NULL, *dir = NULL, *html = NULL;
	bool json = false, all = false, send = false;
	unsigned days = 30;
	int64_t now = (int64_t)time(NULL);
	char err[MOAT_CONF_ERR_MAX], org[256], email[320];
	const char *receiver;
	struct report_meta meta;
	struct moat_conf *conf;
	struct store st = { 0 };
	sqlite3 *db;
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c':
			conf_file = optarg;
			break;
		case 'o':
			if (nov == OVERRIDES_MAX ||
			    moat_conf_parse_override(optarg, &ov[nov]) < 0) {
				fprintf(stderr, "mxmoat-report: -o wants KEY=VALUE\n");
				return EXIT_USAGE;
			}
			nov++;
			break;
		case 'D':
			db_path = optarg;
			break;
		case 'N':
			errno = 0;
			now = strtoll(optarg, &end, 10);
			if (errno || *end || now < 0) {
				fprintf(stderr,
				    "mxmoat-report: --now wants seconds since the epoch\n");
				return EXIT_USAGE;
			}
			break;
		case 'w':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'a':
			all = true;
			break;
		case 'H':
			html = optarg;
			break;
		case 'd':
			days = (unsigned)strtoul(optarg, &end, 10);
			if (*end || days < 1 || days > 366) {
				fprintf(stderr, "mxmoat-report: --days wants 1 to 366\n");
				return EXIT_USAGE;
			}
			break;
		case 's':
			send = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc || (dir == NULL && !send && !json && html == NULL)) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if ((conf = moat_conf_load(conf_file, ov, nov, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxmoat-report: %s\n", err);
		return EXIT_USAGE;
	}
	snprintf(org, sizeof(org), "%s",
	    conf->report_org_name[0] ? conf->report_org_name : conf->authserv_id);
	if (conf->report_from[0])
		snprintf(email, sizeof(email), "%s", conf->report_from);
	else
		snprintf(email, sizeof(email), "postmaster@%s", conf->authserv_id);
	receiver = strrchr(email, '@') ? strrchr(email, '@') + 1 : email;
	meta = (struct report_meta){ org, email, receiver };
	if (store_open(&st, conf, db_path, dir == NULL && !send, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxmoat-report: %s\n", err);
		store_close(&st);
		moat_conf_unref(conf);
		return EXIT_ERROR;
	}
	db = st.db;
	if (json) {
		struct report_json *j = report_json_begin();
		void *arg[2] = { j, &meta };
		if (j == NULL ||
		    report_walk(db, now, all ? NULL : "write", &meta, json_one, arg, err,
			sizeof(err)) < 0) {
			fprintf(stderr, "mxmoat-report: %s\n", j ? err : "out of memory");
			status = EXIT_ERROR;
		}
		if (report_json_end(j, status ? NULL : stdout) < 0)
			status = EXIT_ERROR;
	}
	if (dir != NULL && status == 0) {
		struct write_ctx w = { &st, dir, &meta, now, "" };
		long n;
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		n = report_walk(db, now, "write", &meta, write_one, &w, err, sizeof(err));
		/* what was written stays marked, even when a later report failed */
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK && n >= 0) {
			snprintf(err, sizeof(err), "%s", sqlite3_errmsg(db));
			n = -1;
		}
		if (n < 0) {
			fprintf(stderr, "mxmoat-report: %s\n", w.err[0] ? w.err : err);
			status = EXIT_ERROR;
		} else {
			fprintf(stderr, "mxmoat-report: %ld report%s written to %s\n", n,
			    n == 1 ? "" : "s", dir);
		}
	}
	if (send && status == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (send_all(&st, conf, &meta, now) < 0)
			status = EXIT_ERROR;
		curl_global_cleanup();
	}
	if (html != NULL && status == 0 &&
	    report_html_write(db, now, days, &meta, html, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxmoat-report: %s\n", err);
		status = EXIT_ERROR;
	}
	store_close(&st);
	moat_conf_unref(conf);
	return status;
}
