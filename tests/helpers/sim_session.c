/*
 * sim_session.c - the proxy's session driven without sockets (see sim_session.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "log.h"
#include "sim_session.h"

/* sim_append - n bytes to a bounded buffer; what does not fit is dropped. */
static void
sim_append(char *buf, size_t cap, size_t *len, const char *p, size_t n)
{
	if (n > cap - *len)
		n = cap - *len;
	memcpy(buf + *len, p, n);
	*len += n;
}

static void
op_client_write(void *io, const char *p, size_t n)
{
	struct sim_session *sm = io;

	sim_append(sm->client, sizeof(sm->client), &sm->clen, p, n);
	if (sm->leg != NULL)
		sm->leg->write(sm->leg_arg, p, n);
}

static int
op_client_starttls(void *io)
{
	struct sim_session *sm = io;

	return sm->leg != NULL ? sm->leg->starttls(sm->leg_arg) : -1;
}

static void
op_client_close(void *io)
{
	((struct sim_session *)io)->closed = true;
}

static int
op_backend_open(void *io)
{
	struct sim_session *sm = io;

	sm->bopen = true;
	sm->bconnect_pending = true;
	sm->mta.in_data = false;
	sm->blen = 0;
	sm->last = '\n';
	sm->rlen = 0;
	return 0;
}

/* sim_owe - the backend owes reply R (len bytes): queued, or with a hostile backend the next
 * piece of its script instead. 1 when that piece is a failure of the leg (nothing queued). */
static int
sim_owe(struct sim_session *sm, const char *r, size_t len)
{
	if (sm->hostile != NULL && sm->hlen > 0) {
		const char *end = memchr(sm->hostile, SIM_HOSTILE_SEP, sm->hlen);
		size_t k = end != NULL ? (size_t)(end - sm->hostile) : sm->hlen;
		bool drop = k > 0 && sm->hostile[0] == SIM_HOSTILE_DROP;

		if (!drop)
			sim_append(sm->replies, sizeof(sm->replies), &sm->rlen, sm->hostile, k);
		if (end != NULL)
			k++;
		sm->hostile += k;
		sm->hlen -= k;
		return drop;
	}
	if (r != NULL)
		sim_append(sm->replies, sizeof(sm->replies), &sm->rlen, r, len);
	return 0;
}

/* sim_backend_line - a backend line is complete: answer it as an MTA would (one recipient class
 * is unknown) */
static void
sim_backend_line(struct sim_session *sm)
{
	const char *r;

	if (sm->mta.in_data && sm->blen == 3 && memcmp(sm->bline, ".\r\n", 3) == 0)
		sm->messages++;
	if (!sm->mta.in_data && strncmp(sm->bline, "RCPT TO:<r", 10) == 0)
		r = "550 5.1.1 no such user\r\n";
	else
		r = sim_mta_answer(&sm->mta, sm->bline, sm->blen);
	if (r != NULL)
		sm->drop |= sim_owe(sm, r, strlen(r));
}

static void
op_backend_write(void *io, const char *p, size_t n)
{
	struct sim_session *sm = io;

	if (!sm->bopen)
		abort(); /* writes only to an open leg */
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\0')
			abort();
		if (c == '\n' && sm->last != '\r')
			abort(); /* bare LF reached the backend */
		if (sm->last == '\r' && c != '\n')
			abort(); /* bare CR reached the backend */
		sm->last = c;
		if (sm->blen < sizeof(sm->bline) - 1)
			sm->bline[sm->blen++] = c;
		if (c == '\n') {
			sm->bline[sm->blen] = '\0';
			sim_backend_line(sm);
			sm->blen = 0;
		}
	}
}

static void
op_backend_close(void *io, bool graceful)
{
	struct sim_session *sm = io;

	(void)graceful;
	sm->bopen = false;
	sm->bconnect_pending = false;
	sm->drop = false;
	sm->rlen = 0;
}

static void
op_work(void *io)
{
	((struct sim_session *)io)->work_pending = true;
}

/* client_starttls only with a client leg (only then is STARTTLS offered); no backend_starttls:
 * the backend never is TLS; no ratelimit: the core charges the embedded store itself and never
 * leaves an event pending without Redis. */
static const struct px_ops sim_ops = {
	.client_write = op_client_write,
	.client_starttls = op_client_starttls,
	.client_close = op_client_close,
	.backend_open = op_backend_open,
	.backend_write = op_backend_write,
	.backend_close = op_backend_close,
	.work = op_work,
};

void
sim_session_hostile(struct sim_session *sm, const char *p, size_t n)
{
	sm->hostile = p;
	sm->hlen = n;
}

void
sim_session_settle(struct sim_session *sm)
{
	for (int round = 0; round < 64; round++) {
		if (sm->work_pending) {
			sm->work_pending = false;
			px_session_work_run(sm->s);
			px_session_work_done(sm->s);
		} else if (sm->drop && sm->bopen) {
			sm->drop = false;
			px_session_backend_error(sm->s, "eof");
		} else if (sm->bconnect_pending) {
			sm->bconnect_pending = false;
			px_session_backend_connected(sm->s);
			sm->drop |= sim_owe(sm, SIM_MTA_GREETING, strlen(SIM_MTA_GREETING));
		} else if (sm->rlen > 0 && sm->bopen) {
			char r[8192];
			size_t n = sm->rlen;

			memcpy(r, sm->replies, n);
			sm->rlen = 0;
			px_session_backend_input(sm->s, r, n);
		} else {
			return;
		}
	}
}

struct moat_policy *
sim_session_policy(const struct moat_conf_override *ov, size_t n)
{
	struct moat_conf_override all[64];
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf;
	struct moat_policy *pol;

	/*
	 * The policy charges its rate limits itself, and every simulated session comes from the
	 * same address, one after another, for as long as the fuzzer runs: without this the default
	 * ratelimit_conn_per_ip refuses every session after the 60th, and each run would depend on
	 * the ones before it.
	 */
	/*
	 * Nothing leaves the machine: a check that looks something up (SPF, DKIM, iprev, DNSBL)
	 * asks a loopback port where no server listens, not the resolvers of /etc/resolv.conf, so
	 * a run is the same with or without a network. The caller's overrides come after and win.
	 */
	static const struct moat_conf_override first[] = {
		{ "dns_resolver", "127.0.0.1@9" },
		{ "dns_timeout", "100ms" },
	};
	size_t nall = sizeof(first) / sizeof(first[0]);

	if (n > sizeof(all) / sizeof(all[0]) - nall - 1)
		abort();
	memcpy(all, first, sizeof(first));
	memcpy(all + nall, ov, n * sizeof(*ov));
	nall += n;
	all[nall++] = (struct moat_conf_override){ "ratelimit_allow", "0.0.0.0/0, ::/0" };
	if ((conf = moat_conf_load(NULL, all, nall, err, sizeof(err))) == NULL)
		abort();
	moat_log_open("fuzz", MOAT_LOG_STDERR, false);
	pol = moat_policy_new(conf, 0, err, sizeof(err));
	if (pol == NULL)
		abort();
	moat_conf_unref(conf);
	return pol;
}

int
sim_session_start_leg(struct sim_session *sm, struct moat_policy *pol, const struct sim_leg *leg,
    void *arg, bool implicit)
{
	struct moat_client mc = { "192.0.2.1", 4321, NULL, "127.0.0.1:25", "FUZZ" };

	memset(sm, 0, sizeof(*sm));
	sm->leg = leg;
	sm->leg_arg = arg;
	sm->s = px_session_new(pol, &mc, "127.0.0.1", 25, &sim_ops, sm);
	if (sm->s == NULL)
		return -1;
	if (leg != NULL && implicit) {
		px_session_tls_implicit(sm->s);
	} else {
		px_session_tls_offer(sm->s, leg != NULL);
		px_session_start(sm->s, true);
	}
	sim_session_settle(sm); /* proxy_backend_connect=accept: the backend's greeting and EHLO */
	return 0;
}

int
sim_session_start(struct sim_session *sm, struct moat_policy *pol)
{
	return sim_session_start_leg(sm, pol, NULL, NULL, false);
}

size_t
sim_session_client(struct sim_session *sm, const char *p, size_t n, size_t chunk)
{
	while (n > 0 && !sm->closed) {
		size_t avail, k = n < chunk ? n : chunk;
		char *rb = px_session_rbuf(sm->s, &avail);

		if (rb == NULL || avail == 0)
			break; /* the driver would stop reading: input is stuck */
		if (k > avail)
			k = avail;
		memcpy(rb, p, k);
		p += k;
		n -= k;
		px_session_rdone(sm->s, k);
		sim_session_settle(sm);
	}
	return n;
}

void
sim_session_end(struct sim_session *sm)
{
	if (!sm->closed)
		px_session_client_gone(sm->s);
	sim_session_settle(sm);
	px_session_free(sm->s);
}

/* occurrences - how many times p[0..n) holds WORD (LEN octets; in any case when NOCASE),
 * overlapping ones too. */
static size_t
occurrences(const char *p, size_t n, const char *word, size_t len, bool nocase)
{
	size_t k = 0;

	for (size_t i = 0; i + len <= n; i++)
		if (nocase ? strncasecmp(p + i, word, len) == 0 : memcmp(p + i, word, len) == 0)
			k++;
	return k;
}

void
sim_session_client_run(struct moat_policy *pol, const char *p, size_t n, size_t chunk)
{
	static struct sim_session sm;
	size_t ends;

	if (sim_session_start(&sm, pol) < 0)
		return;
	/* real ends of data; with chunking, also the "LAST" a BDAT message needs */
	ends = occurrences(p, n, "\r\n.\r\n", 5, false) +
	    (px_session_conf(sm.s)->proxy_chunking ? occurrences(p, n, "LAST", 4, true) : 0);
	sim_session_client(&sm, p, n, chunk);
	sim_session_end(&sm);
	if (sm.messages > ends)
		abort(); /* a message made of a fake end of data: smuggling */
}
