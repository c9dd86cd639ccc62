/*
 * px_transcript.c - golden transcripts of the proxy's SMTP session (proxy/smtp_session.c) without
 * sockets, in the spirit of Postfix's .in/.ref files: a scenario NAME.in says what the client
 * sends, what the backend answers and which driver events happen (work done, a rate-limit verdict,
 * a TLS handshake); the session runs through the same struct px_ops the libuv driver and the
 * fuzzer use, and everything it does (bytes for the client, bytes for the backend, handles opened
 * and closed) is written, in order, after the line that caused it. The result is compared with
 * NAME.ref. tests/transcripts/README describes the language.
 *
 *   px_transcript FILE.in...   one TAP case a file (MXMOAT_TRANSCRIPT_UPDATE=1: write FILE.ref)
 *   px_transcript -p FILE.in   print the transcript to stdout (no comparison)
 *
 * Nothing here touches the network: DNS questions of the authentication engine go to an
 * in-process fixture filled by the scenario's "dns" lines (the link wraps moat_auth_engine_new),
 * the rate limits use the embedded store with a clock that never moves.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "auth.h"
#include "conf.h"
#include "dns.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "sim_mta.h"
#include "smtp_session.h"

#define LINE_MAX_IN 8192
#define OV_MAX 64
#define RIG_SID "T1"
#define RIG_TIME ((time_t)1796000000) /* the auth engine's clock (DKIM t= and x=) */

/* A growing text buffer for the transcript. */
struct text {
	char *p;
	size_t len, cap;
};

struct rig {
	struct px_session *s;
	struct text out;
	bool quiet; /* after the end: cleaning up prints nothing */
	/* bytes of the current write direction not yet printed: 'c' client, 'b' backend */
	char pdir;
	struct text pend;
	/* the scenario's switches */
	bool tls, implicit, manual_work, manual_connect, ratelimit_pending, backend_refuse, mta;
	bool remember; /* "remember backend": the driver keeps the backend's extensions */
	bool show_writes; /* "show writes": where each write of the session ends */
	int exts; /* ... what it has learned (PX_EXT_*), -1: nothing */
	/* driver state */
	bool closed, bopen, connect_due, work_due, rl_due, started;
	struct moat_verdict rl_v;
	struct moat_ratelimit *rl; /* the policy's (borrowed) */
	/* the simulated MTA ("mta"): the line it is receiving and whether it is in DATA */
	struct sim_mta mta_state;
	char mline[LINE_MAX_IN];
	size_t mlen;
	struct text owed; /* its replies, delivered when the session waits */
	struct px_ops ops;
	/* one read being assembled from C:/C+ or B:/B+ lines: 'c', 'b' or 0 */
	char rdir;
	struct text rbuf;
};

static struct moat_dns *rig_dns; /* the current scenario's DNS fixture */

static void
text_add(struct text *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;

		while (cap < t->len + n + 1)
			cap *= 2;
		t->p = realloc(t->p, cap);
		if (t->p == NULL) {
			fputs("px_transcript: out of memory\n", stderr);
			exit(99);
		}
		t->cap = cap;
	}
	memcpy(t->p + t->len, p, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void
text_printf(struct text *t, const char *fmt, ...)
{
	char buf[LINE_MAX_IN + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		text_add(t, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
text_free(struct text *t)
{
	free(t->p);
	memset(t, 0, sizeof(*t));
}

/* ---- the transcript ---- */

/* is_date_line - the date line of our Received field (time-dependent: printed as <date>). */
static bool
is_date_line(const char *p, size_t n)
{
	return n > 20 && p[0] == '\t' && n >= 12 && memcmp(p + n - 12, " +0000 (UTC)", 12) == 0;
}

/* put_line - one line of written bytes, without its CRLF; others escaped so every byte shows. */
static void
put_line(struct rig *r, char dir, const char *p, size_t n, bool partial)
{
	text_printf(&r->out, "%c%c ", dir, partial ? '|' : '<');
	if (dir == 'b' && !partial && is_date_line(p, n)) {
		text_printf(&r->out, "\\t<date>\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\\')
			text_add(&r->out, "\\\\", 2);
		else if (c == '\r')
			text_add(&r->out, "\\r", 2);
		else if (c == '\n')
			text_add(&r->out, "\\n", 2);
		else if (c == '\t')
			text_add(&r->out, "\\t", 2);
		else if (c < 0x20 || c > 0x7e)
			text_printf(&r->out, "\\x%02x", c);
		else
			text_add(&r->out, (const char *)&p[i], 1);
	}
	text_add(&r->out, "\n", 1);
}

/* flush - print the pending bytes of one direction, a line for each CRLF. */
static void
flush(struct rig *r)
{
	const char *p = r->pend.p;
	size_t n = r->pend.len;

	while (n > 0) {
		const char *e = NULL;

		for (size_t i = 0; i + 1 < n; i++)
			if (p[i] == '\r' && p[i + 1] == '\n') {
				e = p + i;
				break;
			}
		if (e == NULL) {
			put_line(r, r->pdir, p, n, true);
			break;
		}
		put_line(r, r->pdir, p, (size_t)(e - p), false);
		n -= (size_t)(e - p) + 2;
		p = e + 2;
	}
	r->pend.len = 0;
	r->pdir = 0;
}

/* event - a driver-visible action of the session, as one "** ..." line. */
static void
event(struct rig *r, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (r->quiet)
		return;
	flush(r);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	text_printf(&r->out, "** %s\n", buf);
}

static void
written(struct rig *r, char dir, const char *p, size_t n)
{
	if (r->quiet)
		return;
	if (r->pdir != dir || r->show_writes)
		flush(r);
	r->pdir = dir;
	text_add(&r->pend, p, n);
	if (r->show_writes)
		event(r, "one write to the %s", dir == 'c' ? "client" : "backend");
}

/* mta_input - "mta": the simulated backend (sim_mta.c) reads what the session wrote. */
static void
mta_input(struct rig *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r->mlen < sizeof(r->mline))
			r->mline[r->mlen++] = p[i];
		if (p[i] == '\n') {
			const char *reply = sim_mta_answer(&r->mta_state, r->mline, r->mlen);

			if (reply != NULL)
				text_add(&r->owed, reply, strlen(reply));
			r->mlen = 0;
		}
	}
}

/* ---- struct px_ops ---- */

static void
op_client_write(void *io, const char *p, size_t n)
{
	written(io, 'c', p, n);
}

static void
op_client_close(void *io)
{
	struct rig *r = io;

	r->closed = true;
	event(r, "client closed");
}

static int
op_backend_open(void *io)
{
	struct rig *r = io;

	if (r->backend_refuse) {
		event(r, "backend connect refused");
		return -1;
	}
	r->bopen = true;
	r->connect_due = true;
	r->mlen = 0;
	r->mta_state.in_data = false;
	r->owed.len = 0;
	event(r, "backend connecting");
	return 0;
}

static void
op_backend_write(void *io, const char *p, size_t n)
{
	struct rig *r = io;

	if (!r->bopen)
		event(r, "BUG: write to a closed backend leg");
	written(r, 'b', p, n);
	if (r->mta)
		mta_input(r, p, n);
}

static void
op_backend_close(void *io, bool graceful)
{
	struct rig *r = io;

	if (!r->bopen)
		event(r, "BUG: close of a closed backend leg");
	r->bopen = false;
	r->connect_due = false;
	r->owed.len = 0;
	event(r, graceful ? "backend closed after the queued bytes" : "backend aborted");
}

static void
op_work(void *io)
{
	struct rig *r = io;

	r->work_due = true;
	if (r->manual_work)
		event(r, "work queued (%s)", px_session_work_blocks(r->s) ? "pool" : "loop");
}

static int
op_client_starttls(void *io)
{
	event(io, "client TLS handshake starts");
	return 0;
}

static int
op_backend_starttls(void *io)
{
	event(io, "backend TLS handshake starts");
	return 0;
}

static const char *const rl_names[] = {
	[MOAT_RL_EV_CONNECT] = "connect",
	[MOAT_RL_EV_TLS] = "tls",
	[MOAT_RL_EV_MAIL] = "mail",
	[MOAT_RL_EV_RCPT] = "rcpt",
	[MOAT_RL_EV_FIRST_RCPT] = "first-rcpt",
};

/*
 * op_ratelimit - the driver's store. With "ratelimit pending" the scenario runs with
 * ratelimit_store = redis, so the core leaves its rate-limit checks to the driver, as it does in
 * mxmoat-proxy; the plan is charged here in the limiter's embedded store at once and the verdict
 * held back until "ratelimit done", as a Redis round trip would (proxy/ratelimit_uv.c). Without
 * it the core charges the embedded store itself and this is never called.
 */
static int
op_ratelimit(void *io, const struct moat_rl_plan *plan, const char *sid, struct moat_verdict *v)
{
	struct rig *r = io;
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];

	moat_ratelimit_local(r->rl, plan, res);
	moat_ratelimit_decide(r->rl, plan, res, MOAT_RL_OK, sid, &r->rl_v);
	r->rl_due = true;
	event(r, "ratelimit %s: pending", rl_names[plan->ev]);
	(void)v;
	return 1;
}

/* op_backend_learned - "remember backend": a leg's EHLO reply taught the driver its extensions. */
static void
op_backend_learned(void *io, const struct moat_conf *conf, unsigned exts)
{
	struct rig *r = io;

	(void)conf; /* one configuration a scenario */
	r->exts = (int)exts;
	event(r, "backend extensions remembered:%s%s%s", exts & PX_EXT_SMTPUTF8 ? " SMTPUTF8" : "",
	    exts & PX_EXT_DSN ? " DSN" : "", exts == 0 ? " none" : "");
}

static int
op_backend_exts(void *io, const struct moat_conf *conf)
{
	struct rig *r = io;

	(void)conf;
	return r->exts;
}

/* No backend_queued: nothing is ever queued, so a held message goes out in one event. The TLS
 * operations are set only with "tls". */
static const struct px_ops ops_plain = {
	.client_write = op_client_write,
	.client_close = op_client_close,
	.backend_open = op_backend_open,
	.backend_write = op_backend_write,
	.backend_close = op_backend_close,
	.work = op_work,
	.ratelimit = op_ratelimit,
};

/* ---- driving ---- */

static void
client_bytes(struct rig *r, const char *p, size_t n)
{
	while (n > 0 && !r->closed) {
		size_t avail;
		char *rb = px_session_rbuf(r->s, &avail);

		if (rb == NULL || avail == 0) {
			event(r, "input buffer full: %zu bytes not read", n);
			return;
		}
		if (avail > n)
			avail = n;
		memcpy(rb, p, avail);
		px_session_rdone(r->s, avail);
		p += avail;
		n -= avail;
	}
}

static void
work_run(struct rig *r)
{
	r->work_due = false;
	px_session_work_run(r->s);
	px_session_work_done(r->s);
}

/* settle - what the loop would do next without the scenario's say: finish work, connect the
 * backend and, with "mta", deliver its replies; bounded. */
static void
settle(struct rig *r)
{
	for (int round = 0; round < 256; round++) {
		if (r->work_due && !r->manual_work) {
			work_run(r);
			continue;
		}
		if (r->connect_due && !r->manual_connect) {
			r->connect_due = false;
			px_session_backend_connected(r->s);
			if (r->mta)
				text_add(&r->owed, SIM_MTA_GREETING, strlen(SIM_MTA_GREETING));
			continue;
		}
		if (r->mta && r->bopen && r->owed.len > 0) {
			struct text t = r->owed;

			memset(&r->owed, 0, sizeof(r->owed));
			px_session_backend_input(r->s, t.p, t.len);
			text_free(&t);
			continue;
		}
		break;
	}
	flush(r);
}

/* read_end - deliver the read assembled from C:/C+ or B:/B+ lines. */
static void
read_end(struct rig *r)
{
	char d = r->rdir;

	if (d == 0)
		return;
	r->rdir = 0;
	if (d == 'c')
		client_bytes(r, r->rbuf.p, r->rbuf.len);
	else if (!r->bopen)
		event(r, "BUG in the scenario: backend bytes with no backend leg open");
	else
		px_session_backend_input(r->s, r->rbuf.p, r->rbuf.len);
	r->rbuf.len = 0;
	settle(r);
}

/* unescape - C escapes (\r \n \t \0 \\ \xHH) in place; the new length. */
static size_t
unescape(char *p)
{
	size_t o = 0;

	for (size_t i = 0; p[i] != '\0'; i++) {
		if (p[i] != '\\' || p[i + 1] == '\0') {
			p[o++] = p[i];
			continue;
		}
		i++;
		switch (p[i]) {
		case 'r':
			p[o++] = '\r';
			break;
		case 'n':
			p[o++] = '\n';
			break;
		case 't':
			p[o++] = '\t';
			break;
		case '0':
			p[o++] = '\0';
			break;
		case 'x': {
			unsigned v = 0;
			int k;

			for (k = 0; k < 2 && p[i + 1] != '\0' &&
			     strchr("0123456789abcdefABCDEF", p[i + 1]);
			     k++) {
				char c = p[++i];

				v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
			}
			p[o++] = (char)v;
			break;
		}
		default:
			p[o++] = p[i];
			break;
		}
	}
	return o;
}

/* ---- the scenario ---- */

struct scenario {
	struct moat_conf_override ov[OV_MAX];
	size_t nov;
	char *ovbuf[OV_MAX];
	char client_addr[64], client_name[256], listener[128];
};

static void
fake_tls(struct moat_tls_info *t)
{
	memset(t, 0, sizeof(*t));
	t->active = true;
	snprintf(t->protocol, sizeof(t->protocol), "TLSv1.3");
	snprintf(t->cipher, sizeof(t->cipher), "TLS_AES_256_GCM_SHA384");
	t->bits = t->alg_bits = 256;
}

static uint64_t
still_clock(void *arg)
{
	(void)arg;
	return (uint64_t)1000000 * 1000000;
}

/* dns_line - "NAME A ADDR", "NAME TXT text..." or "NAME PTR target": a record of the fixture;
 * -1 if malformed. */
static int
dns_line(char *arg)
{
	char *name = strtok(arg, " "), *type = strtok(NULL, " "), *val = strtok(NULL, "");
	unsigned char a[4];

	if (name == NULL || type == NULL || val == NULL)
		return -1;
	if (strcmp(type, "A") == 0)
		return inet_pton(AF_INET, val, a) == 1
		    ? moat_dns_fixture_add(rig_dns, name, MOAT_DNS_A, 0, a, 4)
		    : -1;
	if (strcmp(type, "TXT") == 0)
		return moat_dns_fixture_add(rig_dns, name, MOAT_DNS_TXT, 0, val, strlen(val));
	if (strcmp(type, "PTR") == 0)
		return moat_dns_fixture_add(rig_dns, name, MOAT_DNS_PTR, 0, val, strlen(val));
	return -1;
}

/* session_begin - "connect": the configuration, the policy, the session and its start. */
static int
session_begin(struct rig *r, struct scenario *sc, struct moat_policy **polp, char *err,
    size_t errlen)
{
	struct moat_conf *conf;
	struct moat_client mc = { sc->client_addr, 4321,
		sc->client_name[0] ? sc->client_name : NULL, sc->listener, RIG_SID };

	if (r->ratelimit_pending) {
		/* a shared store: the core leaves the charge to op_ratelimit (nothing connects) */
		if (sc->nov + 2 > OV_MAX) {
			snprintf(err, errlen, "too many set lines");
			return -1;
		}
		sc->ov[sc->nov++] = (struct moat_conf_override){ "ratelimit_store", "redis" };
		sc->ov[sc->nov++] = (struct moat_conf_override){ "ratelimit_redis", "127.0.0.1:1" };
	}
	conf = moat_conf_load(NULL, sc->ov, sc->nov, err, errlen);
	if (conf == NULL)
		return -1;
	*polp = moat_policy_new(conf, 0, err, errlen);
	moat_conf_unref(conf);
	if (*polp == NULL)
		return -1;
	r->rl = moat_policy_ratelimit(*polp);
	moat_ratelimit_set_clock(r->rl, still_clock, NULL);
	r->ops = ops_plain;
	if (r->tls) {
		r->ops.client_starttls = op_client_starttls;
		r->ops.backend_starttls = op_backend_starttls;
	}
	if (r->remember) {
		r->ops.backend_learned = op_backend_learned;
		r->ops.backend_exts = op_backend_exts;
	}
	r->s = px_session_new(*polp, &mc, "127.0.0.1", 25, &r->ops, r);
	if (r->s == NULL) {
		snprintf(err, errlen, "px_session_new failed");
		return -1;
	}
	if (r->implicit) {
		px_session_tls_implicit(r->s); /* the greeting comes after the handshake */
	} else {
		px_session_tls_offer(r->s, r->tls);
		px_session_start(r->s, true);
		r->started = true;
	}
	settle(r);
	return 0;
}

/* header_line - a line before "connect"; -1 with err if not one. */
static int
header_line(struct rig *r, struct scenario *sc, char *l, char *err, size_t errlen)
{
	if (strncmp(l, "set ", 4) == 0) {
		char *kv = strdup(l + 4), *eq = kv ? strchr(kv, '=') : NULL;

		if (eq == NULL || sc->nov == OV_MAX) {
			free(kv);
			snprintf(err, errlen, "bad set line: %s", l);
			return -1;
		}
		*eq = '\0';
		sc->ovbuf[sc->nov] = kv;
		sc->ov[sc->nov].key = kv;
		sc->ov[sc->nov].value = eq + 1;
		sc->nov++;
	} else if (strncmp(l, "client ", 7) == 0) {
		if (sscanf(l + 7, "%63s %255s", sc->client_addr, sc->client_name) < 1) {
			snprintf(err, errlen, "bad client line: %s", l);
			return -1;
		}
	} else if (strncmp(l, "listener ", 9) == 0) {
		if (sscanf(l + 9, "%127s", sc->listener) != 1) {
			snprintf(err, errlen, "bad listener line: %s", l);
			return -1;
		}
	} else if (strncmp(l, "dns ", 4) == 0) {
		if (dns_line(l + 4) < 0) {
			snprintf(err, errlen, "bad dns line");
			return -1;
		}
	} else if (strcmp(l, "tls") == 0) {
		r->tls = true;
	} else if (strcmp(l, "implicit tls") == 0) {
		r->tls = r->implicit = true;
	} else if (strcmp(l, "show writes") == 0) {
		r->show_writes = true;
	} else if (strcmp(l, "mta") == 0) {
		r->mta = true;
	} else if (strcmp(l, "manual work") == 0) {
		r->manual_work = true;
	} else if (strcmp(l, "manual connect") == 0) {
		r->manual_connect = true;
	} else if (strcmp(l, "ratelimit pending") == 0) {
		r->ratelimit_pending = true;
	} else if (strcmp(l, "backend refuses") == 0) {
		r->backend_refuse = true;
	} else if (strncmp(l, "remember backend", 16) == 0 && (l[16] == '\0' || l[16] == ' ')) {
		char *tok, *save;

		r->remember = true;
		r->exts = -1;
		for (tok = strtok_r(l + 16, " ", &save); tok != NULL;
		     tok = strtok_r(NULL, " ", &save)) {
			unsigned bit = strcmp(tok, "SMTPUTF8") == 0 ? PX_EXT_SMTPUTF8
			    : strcmp(tok, "DSN") == 0               ? PX_EXT_DSN
								    : 0;

			if (bit == 0) {
				snprintf(err, errlen, "unknown extension in: %s", l);
				return -1;
			}
			r->exts = (r->exts < 0 ? 0 : r->exts) | (int)bit;
		}
	} else {
		snprintf(err, errlen, "unknown line before connect: %s", l);
		return -1;
	}
	return 0;
}

/* event_line - a line after "connect"; -1 with err if not one. */
static int
event_line(struct rig *r, char *l, char *err, size_t errlen)
{
	struct moat_tls_info ti;
	char kind = 0;

	if ((l[0] == 'C' || l[0] == 'B') && (l[1] == ':' || l[1] == '+' || l[1] == '~')) {
		char d = l[0] == 'C' ? 'c' : 'b';
		size_t n;

		kind = l[1];
		if (kind == '+' && r->rdir != d) {
			snprintf(err, errlen, "%c+ without a %c: line before it", l[0], l[0]);
			return -1;
		}
		if (kind != '+')
			read_end(r);
		r->rdir = d;
		l += 2;
		if (*l == ' ')
			l++;
		if (kind == '~') {
			n = unescape(l);
			text_add(&r->rbuf, l, n);
		} else {
			text_add(&r->rbuf, l, strlen(l));
			text_add(&r->rbuf, "\r\n", 2);
		}
		return 0;
	}
	read_end(r);
	if (r->closed && strcmp(l, "client gone") != 0) {
		snprintf(err, errlen, "event after the client was closed: %s", l);
		return -1;
	}
	if (strcmp(l, "work done") == 0) {
		if (!r->work_due) {
			snprintf(err, errlen, "work done, but no work is queued");
			return -1;
		}
		work_run(r);
	} else if (strcmp(l, "ratelimit done") == 0) {
		if (!r->rl_due) {
			snprintf(err, errlen, "ratelimit done, but no check is pending");
			return -1;
		}
		r->rl_due = false;
		px_session_ratelimit_done(r->s, &r->rl_v);
	} else if (strcmp(l, "backend connected") == 0) {
		if (!r->connect_due) {
			snprintf(err, errlen, "backend connected, but it is not connecting");
			return -1;
		}
		r->connect_due = false;
		px_session_backend_connected(r->s);
	} else if (strncmp(l, "backend error ", 14) == 0) {
		px_session_backend_error(r->s, l + 14);
	} else if (strcmp(l, "backend tls done") == 0) {
		fake_tls(&ti);
		px_session_backend_tls_done(r->s, &ti);
	} else if (strcmp(l, "client tls done") == 0) {
		fake_tls(&ti);
		px_session_tls_started(r->s, &ti);
		if (!r->started) { /* implicit TLS: as the driver, greet now (RFC 8314) */
			r->started = true;
			px_session_start(r->s, true);
		}
	} else if (strcmp(l, "client gone") == 0) {
		px_session_client_gone(r->s);
	} else if (strncmp(l, "timeout ", 8) == 0) {
		px_session_timeout(r->s, l + 8);
	} else {
		snprintf(err, errlen, "unknown line: %s", l);
		return -1;
	}
	settle(r);
	return 0;
}

static const char *const phase_names[] = {
	[PX_PHASE_GREET] = "greet",
	[PX_PHASE_COMMAND] = "command",
	[PX_PHASE_DATA] = "data",
	[PX_PHASE_CLOSED] = "closed",
};

/* run_scenario - the transcript of PATH into *out (caller frees); 0, or -1 with err. */
static int
run_scenario(const char *path, struct text *out, char *err, size_t errlen)
{
	static const struct moat_conf_override defaults[] = {
		{ "authserv_id", "mx.test" },
		{ "log_target", "stderr" },
		{ "auth_inbound", "no" },
		{ "proxy_spool_dir", "/nonexistent" },
	};
	FILE *f = fopen(path, "r");
	struct rig r;
	struct scenario sc;
	struct moat_policy *pol = NULL;
	char line[LINE_MAX_IN];
	bool started = false;
	int rc = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&r, 0, sizeof(r));
	memset(&sc, 0, sizeof(sc));
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		sc.ov[sc.nov++] = defaults[i];
	snprintf(sc.client_addr, sizeof(sc.client_addr), "192.0.2.10");
	snprintf(sc.listener, sizeof(sc.listener), "127.0.0.1:25");
	rig_dns = moat_dns_new_fixture();
	if (rig_dns == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		/* the read that a following C+/B+ line would extend is delivered before this line shows */
		if (r.rdir != 0 && !((line[0] == 'C' || line[0] == 'B') && line[1] == '+'))
			read_end(&r);
		text_printf(&r.out, "%s\n", line);
		if (n == 0 || line[0] == '#')
			continue;
		if (!started) {
			if (strcmp(line, "connect") == 0) {
				rc = session_begin(&r, &sc, &pol, err, errlen);
				started = true;
			} else {
				rc = header_line(&r, &sc, line, err, errlen);
			}
			continue;
		}
		rc = event_line(&r, line, err, errlen);
	}
	fclose(f);
	if (rc == 0 && !started) {
		snprintf(err, errlen, "no connect line");
		rc = -1;
	}
	if (rc == 0) {
		read_end(&r);
		text_printf(&r.out, "== end: phase %s, backend %s%s\n",
		    phase_names[px_session_phase(r.s)], r.bopen ? "open" : "closed",
		    r.work_due ? ", work queued" : "");
	}
	/* tear down quietly, as the driver would after the client went */
	r.quiet = true;
	if (r.s != NULL) {
		if (!r.closed)
			px_session_client_gone(r.s);
		if (r.work_due) {
			r.work_due = false;
			px_session_work_run(r.s);
			px_session_work_done(r.s);
		}
		px_session_free(r.s);
	}
	moat_policy_free(pol);
	moat_dns_free(rig_dns);
	rig_dns = NULL;
	for (size_t i = 0; i < sc.nov; i++)
		free(sc.ovbuf[i]);
	text_free(&r.pend);
	text_free(&r.owed);
	text_free(&r.rbuf);
	*out = r.out;
	return rc;
}

/*
 * The authentication engine asks the scenario's DNS fixture, with a fixed clock: the link
 * (-Wl,--wrap=moat_auth_engine_new) sends the policy's call here.
 */
struct moat_auth_engine *__wrap_moat_auth_engine_new(const struct moat_conf *conf, char *err,
    size_t errlen);

struct moat_auth_engine *
__wrap_moat_auth_engine_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_auth_engine *e = moat_auth_engine_new_dns(rig_dns, conf, RIG_TIME);

	if (e == NULL)
		snprintf(err, errlen, "no auth engine for the transcript");
	return e;
}

/* ---- comparing ---- */

static int
read_file(const char *path, struct text *t)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t n;

	if (f == NULL)
		return -1;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		text_add(t, buf, n);
	fclose(f);
	if (t->p == NULL)
		text_add(t, "", 0);
	return 0;
}

/* diff_report - the first line that differs, as TAP diagnostics, then the rest of what came. */
static void
diff_report(const char *want, const char *got)
{
	unsigned lineno = 1;
	const char *w = want, *g = got;

	while (*w != '\0' && *g != '\0') {
		const char *we = strchr(w, '\n'), *ge = strchr(g, '\n');
		size_t wl = we ? (size_t)(we - w) : strlen(w),
		       gl = ge ? (size_t)(ge - g) : strlen(g);

		if (wl != gl || memcmp(w, g, wl) != 0)
			break;
		w += wl + (we != NULL);
		g += gl + (ge != NULL);
		lineno++;
	}
	printf("# first difference at line %u\n", lineno);
	printf("# expected: %.*s\n", (int)(strchr(w, '\n') ? strchr(w, '\n') - w : (long)strlen(w)),
	    w);
	printf("# got:      %.*s\n", (int)(strchr(g, '\n') ? strchr(g, '\n') - g : (long)strlen(g)),
	    g);
	printf("# the transcript from there:\n");
	for (int k = 0; k < 40 && *g != '\0'; k++) {
		const char *ge = strchr(g, '\n');
		size_t gl = ge ? (size_t)(ge - g) : strlen(g);

		printf("#   %.*s\n", (int)gl, g);
		g += gl + (ge != NULL);
	}
}

/* check_one - TAP case N for PATH. */
static bool
check_one(unsigned n, const char *path, bool update)
{
	struct text got = { 0 }, want = { 0 };
	char err[512], ref[4096];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t pl = strlen(path);
	bool ok = false;

	if (pl < 3 || strcmp(path + pl - 3, ".in") != 0 || pl + 2 > sizeof(ref)) {
		printf("not ok %u - %s\n# not a .in file\n", n, base);
		return false;
	}
	snprintf(ref, sizeof(ref), "%.*s.ref", (int)(pl - 3), path);
	if (run_scenario(path, &got, err, sizeof(err)) < 0) {
		printf("not ok %u - %.*s\n# %s\n", n, (int)(strlen(base) - 3), base, err);
	} else if (update) {
		FILE *f = fopen(ref, "w");

		ok = f != NULL && fwrite(got.p, 1, got.len, f) == got.len;
		if (f != NULL && fclose(f) != 0)
			ok = false;
		printf("%s %u - %.*s # wrote %s\n", ok ? "ok" : "not ok", n,
		    (int)(strlen(base) - 3), base, ref);
	} else if (read_file(ref, &want) < 0) {
		printf("not ok %u - %.*s\n# %s: %s (MXMOAT_TRANSCRIPT_UPDATE=1 writes it)\n", n,
		    (int)(strlen(base) - 3), base, ref, strerror(errno));
	} else {
		ok = want.len == got.len && memcmp(want.p, got.p, got.len) == 0;
		printf("%s %u - %.*s\n", ok ? "ok" : "not ok", n, (int)(strlen(base) - 3), base);
		if (!ok)
			diff_report(want.p, got.p);
	}
	text_free(&got);
	text_free(&want);
	return ok;
}

int
main(int argc, char **argv)
{
	const char *upd = getenv("MXMOAT_TRANSCRIPT_UPDATE");
	bool update = upd != NULL && strcmp(upd, "1") == 0;
	unsigned failed = 0;

	setenv("TZ", "UTC", 1);
	tzset();
	moat_log_open("px_transcript", MOAT_LOG_STDERR, false);
	if (argc == 3 && strcmp(argv[1], "-p") == 0) {
		struct text got = { 0 };
		char err[512];
		int rc = run_scenario(argv[2], &got, err, sizeof(err));

		fwrite(got.p, 1, got.len, stdout);
		text_free(&got);
		if (rc < 0)
			fprintf(stderr, "px_transcript: %s: %s\n", argv[2], err);
		return rc < 0 ? 1 : 0;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: px_transcript FILE.in... | px_transcript -p FILE.in\n");
		return 2;
	}
	printf("1..%d\n", argc - 1);
	for (int i = 1; i < argc; i++)
		if (!check_one((unsigned)i, argv[i], update))
			failed++;
	return failed > 0 ? 1 : 0;
}
