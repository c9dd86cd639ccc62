/*
 * scan.c - one message through clamd and rspamd at the same time, and what their answers mean
 * for the message (see scan.h). Owns the per-message state and the per-daemon back-off; the
 * protocols are in scan_clamd.c and scan_rspamd.c.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "scan.h"
#include "scan_clamd.h"
#include "scan_rspamd.h"

#define SCAN_BUF ((size_t)64 * 1024)
#define SCAN_BACKOFF_MIN_MS 1000
#define SCAN_BACKOFF_MAX_MS 60000
#define SCAN_LOG_INTERVAL_MS 60000

enum scanner {
	SC_CLAMD,
	SC_RSPAMD,
	SC_N
};
static const char *const scanner_name[SC_N] = { "clamd", "rspamd" };

/* The header fields whose meaning is ours once a scanner is on: any that arrive are removed. */
enum forged {
	F_VIRUS,
	F_SPAM_STATUS,
	F_SPAM_SCORE,
	F_SUBJECT,
	F_N
};
static const char *const forged_name[F_N] = { "X-Virus-Status", "X-Spam-Status", "X-Spam-Score",
	"Subject" };

struct scan_state {
	pthread_mutex_t lock;
	int64_t down_until; /* monotonic ms; 0: up */
	int64_t backoff;
	int64_t next_log;
};

struct moat_scan_health {
	struct scan_state st[SC_N];
};

struct moat_scan {
	struct moat_scan_health *health;
	const struct moat_conf *conf; /* borrowed: the session's snapshot */
	char sid[32];
	bool on[SC_N]; /* configured for this message */
	bool failed[SC_N];
	char why[SC_N][200];
	struct moat_clamd *clamd;
	struct moat_rspamd *rspamd;
	struct moat_clamd_result cres;
	struct moat_rspamd_result rres;
	bool ended;
	bool skipped; /* the verdict was final before the scanners were needed */
	unsigned forged[F_N];
	size_t blen;
	char buf[SCAN_BUF];
};

int64_t
moat__scan_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- back-off, per daemon ---- */

struct moat_scan_health *
moat_scan_health_new(void)
{
	struct moat_scan_health *h = calloc(1, sizeof(*h));

	if (h != NULL)
		for (int i = 0; i < SC_N; i++)
			pthread_mutex_init(&h->st[i].lock, NULL);
	return h;
}

void
moat_scan_health_free(struct moat_scan_health *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < SC_N; i++)
		pthread_mutex_destroy(&h->st[i].lock);
	free(h);
}

/* health_backing_off - is scanner I in its back-off period? Then it is not asked. */
static bool
health_backing_off(struct moat_scan_health *h, enum scanner i)
{
	bool off;

	pthread_mutex_lock(&h->st[i].lock);
	off = h->st[i].down_until != 0 && moat__scan_now_ms() < h->st[i].down_until;
	pthread_mutex_unlock(&h->st[i].lock);
	return off;
}

/* health_report - scanner I answered (WHY NULL) or failed: lengthen or end the back-off, and log
 * a failure at most once per SCAN_LOG_INTERVAL_MS, a recovery once. */
static void
health_report(struct moat_scan_health *h, enum scanner i, const char *why, const char *sid)
{
	struct scan_state *st = &h->st[i];
	int64_t now = moat__scan_now_ms(), backoff = 0;
	bool log_down = false, log_up = false;

	pthread_mutex_lock(&st->lock);
	if (why == NULL) {
		log_up = st->down_until != 0;
		st->down_until = st->backoff = 0;
	} else {
		st->backoff = st->backoff == 0              ? SCAN_BACKOFF_MIN_MS
		    : st->backoff * 2 > SCAN_BACKOFF_MAX_MS ? SCAN_BACKOFF_MAX_MS
							    : st->backoff * 2;
		st->down_until = now + st->backoff;
		backoff = st->backoff;
		if (now >= st->next_log) {
			st->next_log = now + SCAN_LOG_INTERVAL_MS;
			log_down = true;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (log_down)
		moat_log(LOG_WARNING, sid, "scan-down",
		    "scanner=%s why=\"%s\" retry_in=%lldms (logged once a minute)", scanner_name[i],
		    why, (long long)backoff);
	if (log_up)
		moat_log(LOG_NOTICE, sid, "scan-up", "scanner=%s", scanner_name[i]);
}

/* ---- one message ---- */

bool
moat_scan_wanted(const struct moat_conf *conf, bool outbound)
{
	return (conf->scan_clamd[0] != '\0' || conf->scan_rspamd[0] != '\0') &&
	    (!outbound || conf->scan_outbound);
}

/* scan_fail - scanner I is out for this message, for WHY; counts against its health unless it
 * was not asked (back-off). */
static void
scan_fail(struct moat_scan *sc, enum scanner i, const char *why, bool asked)
{
	if (sc->failed[i])
		return;
	sc->failed[i] = true;
	snprintf(sc->why[i], sizeof(sc->why[i]), "%s", why);
	if (i == SC_CLAMD) {
		moat_clamd_free(sc->clamd);
		sc->clamd = NULL;
	} else {
		moat_rspamd_free(sc->rspamd);
		sc->rspamd = NULL;
	}
	if (asked)
		health_report(sc->health, i, why, sc->sid);
}

struct moat_scan *
moat_scan_begin(struct moat_scan_health *h, const struct moat_conf *conf, const char *sid)
{
	struct moat_scan *sc = malloc(sizeof(*sc));
	char err[200] = "";

	if (sc == NULL)
		return NULL;
	memset(sc, 0, offsetof(struct moat_scan, buf));
	sc->health = h;
	sc->conf = conf;
	snprintf(sc->sid, sizeof(sc->sid), "%s", sid);
	sc->on[SC_CLAMD] = conf->scan_clamd[0] != '\0';
	sc->on[SC_RSPAMD] = conf->scan_rspamd[0] != '\0';
	if (!sc->on[SC_CLAMD])
		return sc;
	if (health_backing_off(h, SC_CLAMD))
		scan_fail(sc, SC_CLAMD, "down (backing off)", false);
	else if ((sc->clamd = moat_clamd_open(conf->scan_clamd, conf->scan_timeout, err,
		      sizeof(err))) == NULL)
		scan_fail(sc, SC_CLAMD, err, true);
	return sc;
}

/* scan_flush - hand the buffered bytes to clamd; LAST: they end the message. */
static void
scan_flush(struct moat_scan *sc, bool last)
{
	char err[200];

	if (sc->blen == 0 && !last)
		return;
	if (sc->clamd != NULL &&
	    moat_clamd_send(sc->clamd, sc->buf, sc->blen, last, err, sizeof(err)) < 0)
		scan_fail(sc, SC_CLAMD, err, true);
	sc->blen = 0;
}

/* scan_add - message bytes into the buffer, flushed to clamd whenever it is full. */
static void
scan_add(struct moat_scan *sc, const char *p, size_t n)
{
	while (n > 0 && sc->clamd != NULL) {
		size_t k = SCAN_BUF - sc->blen < n ? SCAN_BUF - sc->blen : n;

		memcpy(sc->buf + sc->blen, p, k);
		sc->blen += k;
		p += k;
		n -= k;
		if (sc->blen == SCAN_BUF)
			scan_flush(sc, false);
	}
}

void
moat_scan_header(struct moat_scan *sc, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);
	size_t nlen = colon ? (size_t)(colon - field) : 0;

	while (nlen > 0 && (field[nlen - 1] == ' ' || field[nlen - 1] == '\t'))
		nlen--;
	for (int i = 0; i < F_N; i++)
		if (nlen == strlen(forged_name[i]) && strncasecmp(field, forged_name[i], nlen) == 0)
			sc->forged[i]++;
	scan_add(sc, field, len);
	scan_add(sc, "\r\n", 2);
}

void
moat_scan_eoh(struct moat_scan *sc)
{
	scan_add(sc, "\r\n", 2);
}

void
moat_scan_body(struct moat_scan *sc, const char *p, size_t len)
{
	scan_add(sc, p, len);
}

void
moat_scan_end_data(struct moat_scan *sc)
{
	if (sc->ended)
		return;
	sc->ended = true;
	scan_flush(sc, true);
}

/* scan_rspamd_ask - rspamd's request: ENV as its headers, the message read back through READ
 * (ARG) as its body, in SCAN_BUF pieces; rspamd works on it while clamd may still scan. */
static void
scan_rspamd_ask(struct moat_scan *sc, const struct moat_rspamd_env *env, moat_msg_read_fn read,
    void *arg)
{
	char err[200] = "";
	uint64_t off = 0;
	ssize_t got;

	if (!sc->on[SC_RSPAMD])
		return;
	if (read == NULL) {
		scan_fail(sc, SC_RSPAMD, "no copy of the message to send", false);
		return;
	}
	if (health_backing_off(sc->health, SC_RSPAMD)) {
		scan_fail(sc, SC_RSPAMD, "down (backing off)", false);
		return;
	}
	if ((sc->rspamd = moat_rspamd_open(sc->conf->scan_rspamd, sc->conf->scan_timeout, env, err,
		 sizeof(err))) == NULL) {
		scan_fail(sc, SC_RSPAMD, err, true);
		return;
	}
	while ((got = read(arg, off, sc->buf, SCAN_BUF)) > 0) {
		if (moat_rspamd_send(sc->rspamd, sc->buf, (size_t)got, err, sizeof(err)) < 0) {
			scan_fail(sc, SC_RSPAMD, err, true);
			return;
		}
		off += (uint64_t)got;
	}
	if (got < 0) {
		snprintf(err, sizeof(err), "reading the message back: %s", strerror((int)-got));
		scan_fail(sc, SC_RSPAMD, err, false);
	} else if (moat_rspamd_send(sc->rspamd, "", 0, err, sizeof(err)) < 0) {
		scan_fail(sc, SC_RSPAMD, err, true);
	}
}

/* scan_clamd_step - read what clamd sent; true once its answer is in (or it failed). */
static bool
scan_clamd_step(struct moat_scan *sc)
{
	char err[200];
	int rc = moat_clamd_read(sc->clamd, &sc->cres, err, sizeof(err));

	if (rc < 0)
		scan_fail(sc, SC_CLAMD, err, true);
	return rc != 0;
}

/* scan_wait - both answers, at the same time, within scan_timeout from now. */
static void
scan_wait(struct moat_scan *sc)
{
	int64_t deadline = moat__scan_now_ms() + sc->conf->scan_timeout;
	bool cwait = sc->clamd != NULL, rwait = sc->rspamd != NULL;
	char err[200];

	while (cwait || rwait) {
		int64_t left = deadline - moat__scan_now_ms();
		bool ready = false;

		if (left <= 0) {
			if (cwait)
				scan_fail(sc, SC_CLAMD, "timed out waiting for the answer", true);
			if (rwait)
				scan_fail(sc, SC_RSPAMD, "timed out waiting for the answer", true);
			return;
		}
		if (rwait) {
			if (moat_rspamd_wait(sc->rspamd, cwait ? moat_clamd_fd(sc->clamd) : -1,
				(int)(left < 1000 ? left : 1000), &ready) == 1) {
				rwait = false;
				if (moat_rspamd_result(sc->rspamd, &sc->rres, err, sizeof(err)) < 0)
					scan_fail(sc, SC_RSPAMD, err, true);
			}
		} else {
			struct pollfd pfd = { .fd = moat_clamd_fd(sc->clamd), .events = POLLIN };

			ready = poll(&pfd, 1, (int)left) > 0;
		}
		if (cwait && ready)
			cwait = !scan_clamd_step(sc);
	}
}

/* scan_edit - one header edit into EDITS (the caller sized it for every edit a scan makes). */
static bool
scan_edit(struct moat_hdr_edit *edits, size_t *n, enum moat_hdr_op op, const char *name,
    unsigned index, const char *value)
{
	struct moat_hdr_edit *e = &edits[*n];

	e->op = op;
	e->index = index;
	e->name = strdup(name);
	e->value = value ? strdup(value) : NULL;
	if (e->name == NULL || (value && e->value == NULL)) {
		free(e->name);
		free(e->value);
		return false;
	}
	(*n)++;
	return true;
}

/* scan_delete_forged - delete every arrived field named forged_name[F], the last first. */
static bool
scan_delete_forged(const struct moat_scan *sc, enum forged f, struct moat_hdr_edit *edits,
    size_t *n)
{
	for (unsigned k = sc->forged[f]; k > 0; k--)
		if (!scan_edit(edits, n, MOAT_HDR_DELETE, forged_name[f], k, NULL))
			return false;
	return true;
}

/* scan_clamd_verdict - what clamd's answer means: scan_virus_action for a virus. */
static bool
scan_clamd_verdict(const struct moat_scan *sc, struct moat_verdict *v, struct moat_hdr_edit *edits,
    size_t *n)
{
	char value[MOAT_CLAMD_VIRUS_MAX + 16];

	moat_verdict_continue(v);
	if (!sc->on[SC_CLAMD] || sc->failed[SC_CLAMD] || !sc->cres.infected)
		return true;
	switch (sc->conf->scan_virus_action) {
	case MOAT_SCAN_VIRUS_REJECT:
		moat_verdict_set(v, MOAT_REJECT, 554, "5.7.1", "virus", "Virus found: %s",
		    sc->cres.virus);
		return true;
	case MOAT_SCAN_VIRUS_QUARANTINE:
		moat_verdict_set(v, MOAT_QUARANTINE, 0, "", "virus", "Virus found: %s",
		    sc->cres.virus);
		return true;
	default:
		snprintf(value, sizeof(value), "Infected (%s)", sc->cres.virus);
		return scan_edit(edits, n, MOAT_HDR_INSERT_TOP, "X-Virus-Status", 0, value);
	}
}

/* scan_rspamd_verdict - what rspamd's action means for the message. */
static bool
scan_rspamd_verdict(const struct moat_scan *sc, struct moat_verdict *v, struct moat_hdr_edit *edits,
    size_t *n)
{
	const struct moat_rspamd_result *r = &sc->rres;
	char status[80], score[32];

	moat_verdict_continue(v);
	if (!sc->on[SC_RSPAMD] || sc->failed[SC_RSPAMD])
		return true;
	switch (r->action) {
	case MOAT_RSPAMD_REJECT:
		moat_verdict_set(v, MOAT_REJECT, 550, "5.7.1", "spam", "Message rejected as spam");
		break;
	case MOAT_RSPAMD_SOFT_REJECT:
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.1", "spam_soft_reject",
		    "Try again later");
		break;
	case MOAT_RSPAMD_GREYLIST:
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.7.1", "spam_greylist",
		    "Greylisted, try again later");
		break;
	case MOAT_RSPAMD_ADD_HEADER:
		snprintf(status, sizeof(status), "Yes, score=%.2f required=%.2f", r->score,
		    r->required);
		snprintf(score, sizeof(score), "%.2f", r->score);
		return scan_edit(edits, n, MOAT_HDR_INSERT_TOP, "X-Spam-Status", 0, status) &&
		    scan_edit(edits, n, MOAT_HDR_INSERT_TOP, "X-Spam-Score", 0, score);
	case MOAT_RSPAMD_REWRITE_SUBJECT:
		return sc->forged[F_SUBJECT] <= MOAT_SCAN_FORGED_MAX &&
		    scan_delete_forged(sc, F_SUBJECT, edits, n) &&
		    scan_edit(edits, n, MOAT_HDR_INSERT_TOP, "Subject", 0, r->subject);
	case MOAT_RSPAMD_NO_ACTION:
		break;
	}
	return true;
}

static const char *
rspamd_action_name(enum moat_rspamd_action a)
{
	static const char *const names[] = { "no_action", "greylist", "add_header",
		"rewrite_subject", "soft_reject", "reject" };

	return names[a];
}

/* scan_log - the message's scan line: each scanner's answer, rspamd's score and symbols. */
static void
scan_log(const struct moat_scan *sc, const struct moat_verdict *v)
{
	char c[400], r[1200], why[sizeof(sc->why[0]) * 2], syms[MOAT_RSPAMD_SYMBOLS_MAX * 2];

	if (sc->skipped) {
		moat_log(LOG_INFO, sc->sid, "scan", "clamd=%s rspamd=%s verdict=%s reason=%s",
		    sc->on[SC_CLAMD] ? "skipped" : "off", sc->on[SC_RSPAMD] ? "skipped" : "off",
		    moat_action_name(v->action), v->reason && v->reason[0] ? v->reason : "-");
		return;
	}
	if (!sc->on[SC_CLAMD])
		snprintf(c, sizeof(c), "off");
	else if (sc->failed[SC_CLAMD])
		snprintf(c, sizeof(c), "failed clamd_why=\"%s\"",
		    moat_log_escape(sc->why[SC_CLAMD], strlen(sc->why[SC_CLAMD]), why,
			sizeof(why)));
	else if (sc->cres.infected)
		snprintf(c, sizeof(c), "infected virus=\"%s\"", sc->cres.virus);
	else
		snprintf(c, sizeof(c), "clean");
	if (!sc->on[SC_RSPAMD])
		snprintf(r, sizeof(r), "off");
	else if (sc->failed[SC_RSPAMD])
		snprintf(r, sizeof(r), "failed rspamd_why=\"%s\"",
		    moat_log_escape(sc->why[SC_RSPAMD], strlen(sc->why[SC_RSPAMD]), why,
			sizeof(why)));
	else
		snprintf(r, sizeof(r), "%s score=%.2f required=%.2f symbols=\"%s\"",
		    rspamd_action_name(sc->rres.action), sc->rres.score, sc->rres.required,
		    moat_log_escape(sc->rres.symbols, strlen(sc->rres.symbols), syms,
			sizeof(syms)));
	moat_log(LOG_INFO, sc->sid, "scan", "clamd=%s rspamd=%s verdict=%s reason=%s", c, r,
	    moat_action_name(v->action), v->reason && v->reason[0] ? v->reason : "-");
}

void
moat_scan_finish(struct moat_scan *sc, const struct moat_rspamd_env *env, moat_msg_read_fn read,
    void *arg, struct moat_verdict *v, struct moat_hdr_edit *edits, size_t *n)
{
	struct moat_verdict part;
	bool room = true;

	*n = 0;
	moat_verdict_continue(v);
	moat_scan_end_data(sc);
	scan_rspamd_ask(sc, env, read, arg);
	scan_wait(sc);
	for (int i = 0; i < SC_N; i++) {
		if (sc->on[i] && !sc->failed[i])
			health_report(sc->health, (enum scanner)i, NULL, sc->sid);
		if (sc->on[i] && sc->failed[i] &&
		    sc->conf->scan_failure == MOAT_SCAN_FAIL_TEMPFAIL) {
			moat_verdict_set(&part, MOAT_TEMPFAIL, 451, "4.3.0", "scan_failed",
			    "Content scanner unavailable, try again later");
			moat_verdict_combine(v, &part);
		}
	}
	/* forged fields first (last index first), then ours; the array has room for all of them */
	for (int f = F_VIRUS; f < F_SUBJECT; f++)
		if (sc->forged[f] > MOAT_SCAN_FORGED_MAX)
			room = false;
	if (room && sc->on[SC_CLAMD])
		room = scan_delete_forged(sc, F_VIRUS, edits, n);
	if (room && sc->on[SC_RSPAMD])
		room = scan_delete_forged(sc, F_SPAM_STATUS, edits, n) &&
		    scan_delete_forged(sc, F_SPAM_SCORE, edits, n);
	if (!scan_clamd_verdict(sc, &part, edits, n))
		room = false;
	moat_verdict_combine(v, &part);
	if (!scan_rspamd_verdict(sc, &part, edits, n))
		room = false;
	moat_verdict_combine(v, &part);
	if (!room) {
		moat_verdict_set(&part, MOAT_TEMPFAIL, 451, "4.3.0", "too_many_edits",
		    "Local error, try again later");
		moat_verdict_combine(v, &part);
	}
	scan_log(sc, v);
}

void
moat_scan_skip(struct moat_scan *sc, const struct moat_verdict *v)
{
	sc->skipped = true;
	moat_clamd_free(sc->clamd);
	sc->clamd = NULL;
	scan_log(sc, v);
}

void
moat_scan_free(struct moat_scan *sc)
{
	if (sc == NULL)
		return;
	moat_clamd_free(sc->clamd);
	moat_rspamd_free(sc->rspamd);
	free(sc);
}
