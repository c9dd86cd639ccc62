/*
 * dns.c - the resolver layer: libunbound with a per-query timeout, or an in-process fixture.
 *
 * Owns the unbound context (its cache is shared by every thread using this resolver) and the
 * answers it hands out (freed by moat_dns_answer_clear). Queries are synchronous for the caller
 * but asynchronous inside: each waits for its own result until its deadline, then cancels it, so
 * a dead server costs dns_timeout and never more. Callbacks are only delivered inside
 * ub_process(), which runs under `proc_lock`; a thread that times out takes that lock before it
 * cancels, so no callback can touch a query after its owner has given up on it. Answers are
 * remembered for their TTL in dns_cache.c, so a repeated question never reaches libunbound's
 * thread (the fixture is not cached: its tests count queries). The fixture is dns_fixture.c;
 * answers and names are built in dns_answer.c.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <unbound.h>

#include "cidr.h"
#include "dns.h"
#include "dns_int.h"
#include "metrics.h"
#include "dns_cache.h"

/* One query in flight; lives in its caller's frame. */
struct pending {
	struct moat_dns *dns;
	bool sent; /* handed to libunbound under id */
	bool done;
	int id;
	int err;
	struct ub_result *result;
};

/* --- unbound backend --- */

static const char *const nodefault_zones[] = {
	"test. transparent",
	"2.0.192.in-addr.arpa. transparent",
	"100.51.198.in-addr.arpa. transparent",
	"113.0.203.in-addr.arpa. transparent",
	"8.b.d.0.1.0.0.2.ip6.arpa. transparent",
	"127.in-addr.arpa. transparent",
};

/* resolver_ok - "ADDR" or "ADDR@PORT" with an IPv4/IPv6 literal and a port 1..65535. */
static bool
resolver_ok(const char *spec)
{
	char buf[64];
	const char *at = strrchr(spec, '@');
	size_t alen = at ? (size_t)(at - spec) : strlen(spec);
	struct moat_addr addr;

	if (alen == 0 || alen >= sizeof(buf))
		return false;
	memcpy(buf, spec, alen);
	buf[alen] = '\0';
	if (moat_addr_parse(buf, &addr) != 0)
		return false;
	if (at != NULL) {
		char *end;
		unsigned long port;
		if (at[1] < '0' || at[1] > '9')
			return false;
		port = strtoul(at + 1, &end, 10);
		if (*end != '\0' || port == 0 || port > 65535)
			return false;
	}
	return true;
}

struct moat_dns *
moat_dns_new(const char *resolver, unsigned timeout_ms, const char *trust_anchor, char *err,
    size_t errlen)
{
	struct moat_dns *dns;
	int rc;

	dns = calloc(1, sizeof(*dns));
	if (dns == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&dns->nqueries, 0);
	dns->timeout_ms = timeout_ms ? timeout_ms : MOAT_DNS_DEFAULT_TIMEOUT;
	pthread_mutex_init(&dns->proc_lock, NULL);
	pthread_mutex_init(&dns->lock, NULL);
	pthread_cond_init(&dns->cond, NULL);
	dns->cache = moat__dns_cache_new();
	dns->ub = ub_ctx_create();
	if (dns->ub == NULL || dns->cache == NULL) {
		snprintf(err, errlen, "cannot create the unbound context");
		goto fail;
	}
	/* Resolve in a thread of libunbound's, not a forked process: nothing here may fork. */
	if ((rc = ub_ctx_async(dns->ub, 1)) != 0) {
		snprintf(err, errlen, "unbound: %s", ub_strerror(rc));
		goto fail;
	}
	/*
	 * Every query goes to a forwarder (dns_resolver or resolv.conf), which decides what exists.
	 * unbound's built-in local zones would answer NXDOMAIN for names a mail gateway must be able
	 * to look up through its resolver: test. (RFC 6761, our loopback test zones), the
	 * documentation networks' reverse zones (RFC 5737, RFC 3849) and private reverse zones.
	 */
	/* ("nodefault" cannot be set through ub_ctx_set_option; "transparent" has the same effect.) */
	for (size_t i = 0; i < sizeof(nodefault_zones) / sizeof(nodefault_zones[0]); i++) {
		if ((rc = ub_ctx_set_option(dns->ub, "local-zone:", nodefault_zones[i])) != 0) {
			snprintf(err, errlen, "unbound: %s", ub_strerror(rc));
			goto fail;
		}
	}
	if ((rc = ub_ctx_set_option(dns->ub, "unblock-lan-zones:", "yes")) != 0 ||
	    (rc = ub_ctx_set_option(dns->ub, "insecure-lan-zones:", "yes")) != 0) {
		snprintf(err, errlen, "unbound: %s", ub_strerror(rc));
		goto fail;
	}
	/*
	 * The forwarder is often on loopback (a local caching resolver in resolv.conf, or the tests'
	 * nsd), which unbound refuses to query unless told.
	 */
	if ((rc = ub_ctx_set_option(dns->ub, "do-not-query-localhost:", "no")) != 0) {
		snprintf(err, errlen, "unbound: %s", ub_strerror(rc));
		goto fail;
	}
	if (resolver != NULL && resolver[0] != '\0') {
		if (!resolver_ok(resolver)) {
			snprintf(err, errlen, "dns_resolver %s: not an address[@port]", resolver);
			goto fail;
		}
		if ((rc = ub_ctx_set_fwd(dns->ub, resolver)) != 0) {
			snprintf(err, errlen, "dns_resolver %s: %s", resolver, ub_strerror(rc));
			goto fail;
		}
	} else if ((rc = ub_ctx_resolvconf(dns->ub, NULL)) != 0) {
		snprintf(err, errlen, "cannot read /etc/resolv.conf: %s", ub_strerror(rc));
		goto fail;
	}
	if (trust_anchor != NULL && trust_anchor[0] != '\0') {
		FILE *ta = fopen(trust_anchor, "r"); /* unbound reads it only at the first query */
		if (ta == NULL) {
			snprintf(err, errlen, "dns_dnssec_trust_anchor %s: %s", trust_anchor,
			    strerror(errno));
			goto fail;
		}
		fclose(ta);
		if ((rc = ub_ctx_add_ta_file(dns->ub, trust_anchor)) != 0) {
			snprintf(err, errlen, "dns_dnssec_trust_anchor %s: %s", trust_anchor,
			    ub_strerror(rc));
			goto fail;
		}
		dns->validate = true;
	} else {
		/* No validator module: answers are taken as given and never marked secure. */
		if ((rc = ub_ctx_set_option(dns->ub, "module-config:", "iterator")) != 0) {
			snprintf(err, errlen, "unbound: %s", ub_strerror(rc));
			goto fail;
		}
	}
	return dns;
fail:
	moat_dns_free(dns);
	return NULL;
}

/* ub_done - unbound's callback; runs inside ub_process() under proc_lock. */
static void
ub_done(void *arg, int err, struct ub_result *result)
{
	struct pending *p = arg;

	pthread_mutex_lock(&p->dns->lock);
	p->err = err;
	p->result = result;
	p->done = true;
	pthread_mutex_unlock(&p->dns->lock);
}

/* ub_all_done - has every query of P[0..n) that was sent its answer? Under dns->lock. */
static bool
ub_all_done(const struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].sent && !p[i].done)
			return false;
	return true;
}

/* now_ms - a monotonic clock in milliseconds. */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wire_name - a wire-format name in rdata at *off into text (no trailing dot); -1 if malformed. */
static int
wire_name(const unsigned char *d, size_t len, size_t off, char *out, size_t outlen)
{
	size_t o = 0;

	while (off < len) {
		size_t l = d[off++], i;
		if (l == 0) {
			if (o == 0)
				return -1; /* the root is no useful target */
			out[o - 1] = '\0'; /* drop the last dot */
			return 0;
		}
		if (l > 63 || off + l > len || o + l + 1 >= outlen)
			return -1;
		for (i = 0; i < l; i++) {
			unsigned char c = d[off + i];
			if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\')
				return -1;
			out[o++] = (char)c;
		}
		out[o++] = '.';
		off += l;
	}
	return -1;
}

/* convert_result - copy unbound's answer into ours, applying the bounds. */
static enum moat_dns_status
convert_result(const struct ub_result *r, enum moat_dns_type type, struct moat_dns_answer *a)
{
	char name[MOAT_DNS_NAME_MAX + 2];
	char txt[MOAT_DNS_MAX_TXT + 1];
	int i;

	if (r->bogus)
		return moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
	if (r->rcode == 3 || r->nxdomain)
		return moat__dns_answer_fail(a, MOAT_DNS_NXDOMAIN);
	if (r->rcode != 0)
		return moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
	if (!r->havedata || r->data == NULL)
		return moat__dns_answer_fail(a, MOAT_DNS_NODATA);
	for (i = 0; r->data[i] != NULL; i++) {
		const unsigned char *d = (const unsigned char *)r->data[i];
		size_t len = (size_t)r->len[i], off = 0, n = 0;

		switch (type) {
		case MOAT_DNS_A:
		case MOAT_DNS_AAAA:
			if (len != (type == MOAT_DNS_A ? 4u : 16u))
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			if (moat__dns_answer_add(a, 0, d, len) < 0)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			break;
		case MOAT_DNS_TXT:
			/* RFC 7208 3.3: the character-strings are concatenated without spaces. */
			while (off < len) {
				size_t l = d[off++];
				if (off + l > len || n + l > MOAT_DNS_MAX_TXT)
					return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
				memcpy(txt + n, d + off, l);
				n += l;
				off += l;
			}
			if (moat__dns_answer_add(a, 0, txt, n) < 0)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			break;
		case MOAT_DNS_MX:
			if (len < 3)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			/* A target that is no usable host name is dropped, not trusted. */
			if (wire_name(d, len, 2, name, sizeof(name)) == 0 &&
			    moat__dns_answer_add(a, (uint16_t)(d[0] << 8 | d[1]), name,
				strlen(name)) < 0)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			break;
		case MOAT_DNS_PTR:
		case MOAT_DNS_CNAME:
			if (wire_name(d, len, 0, name, sizeof(name)) == 0 &&
			    moat__dns_answer_add(a, 0, name, strlen(name)) < 0)
				return moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
			break;
		}
	}
	a->secure = r->secure != 0;
	a->status = a->n > 0 ? MOAT_DNS_OK : MOAT_DNS_NODATA;
	return a->status;
}

/* present_name - NAME in presentation format: bytes other than LDH, '_' and '.' as \\DDD. */
static void
present_name(const char *name, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *name && o + 5 < outlen; name++) {
		unsigned char c = (unsigned char)*name;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.') {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, outlen - o, "\\%03u", c);
			o += 4;
		}
	}
	out[o] = '\0';
}

/*
 * dns_wait - wait for the answers of the queries sent in P[0..n) until DEADLINE, then cancel those
 * still out (see the file comment for the locking).
 */
static void
dns_wait(struct moat_dns *dns, struct pending *p, size_t n, long long deadline)
{
	for (;;) {
		long long left;
		bool done;

		pthread_mutex_lock(&dns->lock);
		done = ub_all_done(p, n);
		pthread_mutex_unlock(&dns->lock);
		if (done)
			return;
		left = deadline - now_ms();
		if (left <= 0) {
			pthread_mutex_lock(&dns->proc_lock);
			pthread_mutex_lock(&dns->lock);
			for (size_t i = 0; i < n; i++)
				if (p[i].sent && !p[i].done)
					ub_cancel(dns->ub, p[i].id);
			pthread_mutex_unlock(&dns->lock);
			pthread_mutex_unlock(&dns->proc_lock);
			return;
		}
		if (left > 50)
			left = 50;
		if (pthread_mutex_trylock(&dns->proc_lock) == 0) {
			struct pollfd pfd = { .fd = ub_fd(dns->ub), .events = POLLIN };
			if (poll(&pfd, 1, (int)left) > 0)
				ub_process(dns->ub);
			pthread_mutex_unlock(&dns->proc_lock);
			pthread_mutex_lock(&dns->lock);
			pthread_cond_broadcast(&dns->cond);
			pthread_mutex_unlock(&dns->lock);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += left * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_mutex_lock(&dns->lock);
			if (!ub_all_done(p, n))
				pthread_cond_timedwait(&dns->cond, &dns->lock, &ts);
			pthread_mutex_unlock(&dns->lock);
		}
	}
}

/* ub_finish - the answer of a query that dns_wait gave up on or got, remembered for its TTL
 * under LNAME (the name lower-cased, no trailing dot). */
static enum moat_dns_status
ub_finish(struct moat_dns *dns, struct pending *p, const char *lname, enum moat_dns_type type,
    struct moat_dns_answer *a)
{
	enum moat_dns_status st;

	if (!p->done || p->err != 0 || p->result == NULL) {
		ub_resolve_free(p->result);
		return moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
	}
	st = convert_result(p->result, type, a);
	/* libunbound's ttl: the answer's, or for NXDOMAIN/NODATA the SOA's negative TTL (0 if
	 * there was no SOA: not cached). A bogus result's ttl is untrusted; it is TEMPFAIL here. */
	if (p->result->ttl > 0)
		moat__dns_cache_put(dns->cache, lname, type, a, (unsigned)p->result->ttl, now_ms());
	ub_resolve_free(p->result);
	return st;
}

/* dns_deadline - TIMEOUT_MS from now; no deadline for 0 (a fixture without delay). */
static long long
dns_deadline(unsigned timeout_ms)
{
	return timeout_ms > 0 ? now_ms() + timeout_ms : LLONG_MAX;
}

/* dns_lname - one question's cache key, in the batch's array of keys. */
typedef char dns_lname[MOAT_DNS_NAME_MAX + 2];

/*
 * dns_ask - the questions Q[0..n) until DEADLINE: invalid names fail at once, the fixture answers
 * in turn, the cache answers what it holds, and libunbound gets the rest all at once. P and LNAME
 * have room for n entries.
 */
static void
dns_ask(struct moat_dns *dns, struct moat_dns_q *q, size_t n, long long deadline, struct pending *p,
    dns_lname *lname)
{
	char pres[MOAT_DNS_NAME_MAX * 4 + 2];
	uint64_t t0 = moat_metrics_now_ns();
	bool asked =
	    false; /* timed: only what leaves the process (or stands for it, in a fixture) */

	for (size_t i = 0; i < n; i++) {
		struct moat_dns_answer *a = &q[i].answer;

		memset(a, 0, sizeof(*a));
		p[i] = (struct pending){ .dns = dns };
		if (!moat_dns_name_valid(q[i].name)) {
			moat__dns_answer_fail(a, MOAT_DNS_PERMFAIL);
		} else if (dns->fixture) {
			asked = true;
			if (now_ms() < deadline)
				moat__dns_fixture_query(dns, q[i].name, q[i].type, a);
			else
				moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
		} else {
			moat__dns_lower_name(q[i].name, lname[i], sizeof(lname[i]));
			if (moat__dns_cache_get(dns->cache, lname[i], q[i].type, now_ms(), a))
				continue;
			present_name(q[i].name, pres, sizeof(pres));
			if (ub_resolve_async(dns->ub, pres, (int)q[i].type, 1, &p[i], ub_done,
				&p[i].id) == 0)
				asked = p[i].sent = true;
			else
				moat__dns_answer_fail(a, MOAT_DNS_TEMPFAIL);
		}
	}
	if (!dns->fixture) {
		dns_wait(dns, p, n, deadline);
		for (size_t i = 0; i < n; i++)
			if (p[i].sent)
				ub_finish(dns, &p[i], lname[i], q[i].type, &q[i].answer);
	}
	if (asked) /* a batch counts once, for its wall time */
		moat_metrics_observe(dns->metrics, MOAT_METRICS_DNS, moat_metrics_now_ns() - t0);
}

enum moat_dns_status
moat_dns_query(struct moat_dns *dns, const char *name, enum moat_dns_type type,
    struct moat_dns_answer *answer)
{
	struct moat_dns_q q = { .name = name, .type = type };
	struct pending p;
	dns_lname lname;

	if (dns == NULL) {
		memset(answer, 0, sizeof(*answer));
		return moat__dns_answer_fail(answer, MOAT_DNS_TEMPFAIL);
	}
	dns_ask(dns, &q, 1, dns_deadline(dns->timeout_ms), &p, &lname);
	*answer = q.answer;
	return answer->status;
}

void
moat_dns_query_batch(struct moat_dns *dns, struct moat_dns_q *q, size_t n, unsigned timeout_ms)
{
	struct pending *p;
	dns_lname *lname;

	if (dns != NULL && timeout_ms == 0)
		timeout_ms = dns->timeout_ms;
	p = calloc(n > 0 ? n : 1, sizeof(*p));
	lname = calloc(n > 0 ? n : 1, sizeof(*lname));
	if (dns == NULL || p == NULL || lname == NULL) {
		for (size_t i = 0; i < n; i++) {
			memset(&q[i].answer, 0, sizeof(q[i].answer));
			moat__dns_answer_fail(&q[i].answer, MOAT_DNS_TEMPFAIL);
		}
	} else {
		dns_ask(dns, q, n, dns_deadline(timeout_ms), p, lname);
	}
	free(p);
	free(lname);
}

bool
moat_dns_query_cached(struct moat_dns *dns, struct moat_dns_q *q, size_t n)
{
	dns_lname lname;
	size_t i;

	if (dns == NULL || dns->fixture)
		return false;
	for (i = 0; i < n; i++) {
		memset(&q[i].answer, 0, sizeof(q[i].answer));
		if (!moat_dns_name_valid(q[i].name))
			break;
		moat__dns_lower_name(q[i].name, lname, sizeof(lname));
		if (!moat__dns_cache_get(dns->cache, lname, q[i].type, now_ms(), &q[i].answer))
			break;
	}
	if (i == n)
		return true;
	while (i-- > 0)
		moat_dns_answer_clear(&q[i].answer);
	return false;
}

void
moat_dns_set_metrics(struct moat_dns *dns, struct moat_metrics *m)
{
	if (dns != NULL)
		dns->metrics = m;
}

void
moat_dns_cache_stats(struct moat_dns *dns, struct moat_dns_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (dns != NULL && dns->cache != NULL)
		moat__dns_cache_stats(dns->cache, st);
}

void
moat_dns_free(struct moat_dns *dns)
{
	size_t i;

	if (dns == NULL)
		return;
	if (dns->fixture) {
		for (i = 0; i < dns->nrecs; i++) {
			free(dns->recs[i].name);
			free(dns->recs[i].data);
		}
		free(dns->recs);
	} else {
		if (dns->ub != NULL)
			ub_ctx_delete(dns->ub);
		moat__dns_cache_free(dns->cache);
		pthread_mutex_destroy(&dns->proc_lock);
		pthread_mutex_destroy(&dns->lock);
		pthread_cond_destroy(&dns->cond);
	}
	free(dns);
}
