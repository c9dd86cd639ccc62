/*
 * ratelimit.c - rate-limit rules, bucket keys and verdicts (see ratelimit.h).
 *
 * Owns struct moat_ratelimit: the rules parsed from a snapshot (swapped whole on reload, never
 * locked on the hot path), the embedded store, the optional synchronous Redis store, and a second
 * small embedded store that remembers which refusals were logged lately, so a flood from one key
 * costs one log line per ratelimit_log_interval.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

#define RL_LOG_ENTRIES 4096 /* keys whose last refusal is remembered for the log */
#define RL_COUNT_MAX 1000000u
#define RL_PERIOD_MIN_MS 1000ULL
#define RL_PERIOD_MAX_MS (7ULL * 24 * 3600 * 1000)

/* Per kind: config key, bucket key tag, and the words of the reply and the log. */
static const struct rl_kind_info {
	const char *key; /* reason token and config key */
	const char *tag; /* bucket key prefix */
	const char *what; /* reply text */
} rl_kinds[MOAT_RL_NKINDS] = {
	[MOAT_RL_CONN_IP] = { "ratelimit_conn_per_ip", "cip",
	    "Too many connections from your address" },
	[MOAT_RL_CONN_NET] = { "ratelimit_conn_per_net", "cnet",
	    "Too many connections from your network" },
	[MOAT_RL_MSG_IP] = { "ratelimit_msg_per_ip", "mip", "Too many messages from your address" },
	[MOAT_RL_RCPT_IP] = { "ratelimit_rcpt_per_ip", "rip",
	    "Too many recipients from your address" },
	[MOAT_RL_MSG_SENDER] = { "ratelimit_msg_per_sender", "msnd",
	    "Too many messages from this sender" },
	[MOAT_RL_RCPT_SENDER] = { "ratelimit_rcpt_per_sender", "rsnd",
	    "Too many recipients from this sender" },
	[MOAT_RL_MSG_USER] = { "ratelimit_msg_per_user", "musr",
	    "Too many messages from this account" },
	[MOAT_RL_RCPT_USER] = { "ratelimit_rcpt_per_user", "rusr",
	    "Too many recipients from this account" },
	[MOAT_RL_TLS_IP] = { "ratelimit_tls_per_ip", "tip",
	    "Too many TLS handshakes from your address" },
	[MOAT_RL_AUTH_FAIL_IP] = { "ratelimit_auth_fail_per_ip", "afip",
	    "Too many failed authentications from your address" },
	[MOAT_RL_AUTH_FAIL_USER] = { "ratelimit_auth_fail_per_user", "afusr",
	    "Too many failed authentications for this account" },
};

/* The reason of a refusal because the shared store failed (fail-closed). */
static const char rl_reason_store_down[] = "ratelimit_store_down";

/* The rules of one snapshot; immutable once published. */
struct rl_rules {
	struct rl_rules *retired_next; /* older rule sets, freed with the limiter */
	struct moat_rl_limit limit[MOAT_RL_NKINDS];
	struct moat_cidr_set *allow;
	struct moat_cidr_set *deny;
	unsigned prefix4, prefix6;
	uint64_t log_interval_us;
};

struct moat_ratelimit {
	_Atomic(struct rl_rules *) rules;
	pthread_mutex_t reload_lock; /* reloads only; checks never take it */
	struct rl_rules *retired;
	struct moat_rlmem *mem;
	struct moat_rlmem *logged; /* refusals logged lately (one token per interval) */
	struct moat_rlredis *redis; /* NULL unless ratelimit_store = redis */
	enum moat_rl_store store;
	enum moat_rl_failure failure;
	char *prefix;
	moat_rl_clock_fn clock;
	void *clock_arg;
	struct moat_metrics *metrics; /* Redis call times; NULL: not counted */
};

/* rl_clock_monotonic - the default clock, in microseconds. */
static uint64_t
rl_clock_monotonic(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- parsing ---- */

/* rl_parse_uint - decimal digits at *p, advancing it; -1 when absent or over max. */
static int
rl_parse_uint(const char **p, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)**p))
		return -1;
	for (; isdigit((unsigned char)**p); (*p)++) {
		v = v * 10 + (uint64_t)(**p - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

int
moat_ratelimit_parse_limit(const char *text, struct moat_rl_limit *out, char *err, size_t errlen)
{
	const char *p = text;
	uint64_t count, period, unit = 1000;

	memset(out, 0, sizeof(*out));
	out->action = -1;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || strcmp(p, "off") == 0 || strcmp(p, "0") == 0)
		return 0;
	if (rl_parse_uint(&p, RL_COUNT_MAX, &count) < 0 || count == 0 || *p++ != '/') {
		snprintf(err, errlen, "'%s' is not COUNT/PERIOD (COUNT 1..%u), e.g. 20/60s", text,
		    RL_COUNT_MAX);
		return -1;
	}
	if (rl_parse_uint(&p, RL_PERIOD_MAX_MS, &period) < 0) {
		snprintf(err, errlen, "'%s': PERIOD must be a number with ms, s, m, h or d", text);
		return -1;
	}
	if (strncmp(p, "ms", 2) == 0) {
		unit = 1;
		p += 2;
	} else if (*p == 's' || *p == 'm' || *p == 'h' || *p == 'd') {
		unit = *p == 's' ? 1000 : *p == 'm' ? 60000 : *p == 'h' ? 3600000 : 86400000;
		p++;
	}
	period *= unit;
	if (period < RL_PERIOD_MIN_MS || period > RL_PERIOD_MAX_MS) {
		snprintf(err, errlen, "'%s': PERIOD must be between 1s and 7d", text);
		return -1;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (strcmp(p, "log") == 0)
		out->action = MOAT_RL_LOG_ONLY;
	else if (strcmp(p, "enforce") == 0)
		out->action = MOAT_RL_ENFORCE;
	else if (*p != '\0') {
		snprintf(err, errlen, "'%s': after COUNT/PERIOD only 'log' or 'enforce' may follow",
		    text);
		return -1;
	}
	out->count = (unsigned)count;
	out->period_ms = period;
	return 0;
}

int
moat_conf_check_ratelimit(const char *value, char *err, size_t errlen)
{
	struct moat_rl_limit lim;

	return moat_ratelimit_parse_limit(value, &lim, err, errlen);
}

static void
rl_rules_free(struct rl_rules *r)
{
	if (r == NULL)
		return;
	moat_cidr_set_free(r->allow);
	moat_cidr_set_free(r->deny);
	free(r);
}

/* rl_rules_new - the rules of CONF, or NULL with err. */
static struct rl_rules *
rl_rules_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	const char *text[MOAT_RL_NKINDS] = {
		conf->ratelimit_conn_per_ip,
		conf->ratelimit_conn_per_net,
		conf->ratelimit_msg_per_ip,
		conf->ratelimit_rcpt_per_ip,
		conf->ratelimit_msg_per_sender,
		conf->ratelimit_rcpt_per_sender,
		conf->ratelimit_msg_per_user,
		conf->ratelimit_rcpt_per_user,
		conf->ratelimit_tls_per_ip,
		conf->ratelimit_auth_fail_per_ip,
		conf->ratelimit_auth_fail_per_user,
	};
	struct rl_rules *r = calloc(1, sizeof(*r));
	char msg[MOAT_CONF_ERR_MAX];

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t k = 0; k < MOAT_RL_NKINDS; k++) {
		if (moat_ratelimit_parse_limit(text[k] ? text[k] : "", &r->limit[k], msg,
			sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: %s", rl_kinds[k].key, msg);
			rl_rules_free(r);
			return NULL;
		}
		if (r->limit[k].action < 0)
			r->limit[k].action = conf->ratelimit_action;
	}
	if ((r->allow = moat_cidr_set_parse(conf->ratelimit_allow ? conf->ratelimit_allow : "", msg,
		 sizeof(msg))) == NULL) {
		snprintf(err, errlen, "ratelimit_allow: %s", msg);
		rl_rules_free(r);
		return NULL;
	}
	if ((r->deny = moat_cidr_set_parse(conf->ratelimit_deny ? conf->ratelimit_deny : "", msg,
		 sizeof(msg))) == NULL) {
		snprintf(err, errlen, "ratelimit_deny: %s", msg);
		rl_rules_free(r);
		return NULL;
	}
	r->prefix4 = conf->ratelimit_net_prefix_v4 > 32 ? 32 : conf->ratelimit_net_prefix_v4;
	r->prefix6 = conf->ratelimit_net_prefix_v6 > 128 ? 128 : conf->ratelimit_net_prefix_v6;
	r->log_interval_us = (uint64_t)conf->ratelimit_log_interval * 1000;
	if (r->log_interval_us == 0)
		r->log_interval_us = 60000000;
	return r;
}

/* ---- the limiter ---- */

struct moat_ratelimit *
moat_ratelimit_new(const struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_ratelimit *rl = calloc(1, sizeof(*rl));
	struct rl_rules *rules;

	if (rl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((rules = rl_rules_new(conf, err, errlen)) == NULL) {
		free(rl);
		return NULL;
	}
	atomic_init(&rl->rules, rules);
	pthread_mutex_init(&rl->reload_lock, NULL);
	rl->clock = rl_clock_monotonic;
	rl->store = conf->ratelimit_store == MOAT_RL_STORE_REDIS ? MOAT_RL_STORE_REDIS
								 : MOAT_RL_STORE_MEMORY;
	rl->failure = conf->ratelimit_redis_failure == MOAT_RL_FAIL_CLOSED ? MOAT_RL_FAIL_CLOSED
									   : MOAT_RL_FAIL_OPEN;
	rl->prefix = strdup(conf->ratelimit_redis_prefix ? conf->ratelimit_redis_prefix : "");
	if (rl->prefix != NULL && strlen(rl->prefix) >= MOAT_RL_REDIS_PREFIX_MAX) {
		snprintf(err, errlen, "ratelimit_redis_prefix: longer than %d bytes",
		    MOAT_RL_REDIS_PREFIX_MAX - 1);
		moat_ratelimit_free(rl);
		return NULL;
	}
	rl->mem = moat_rlmem_new(conf->ratelimit_max_entries);
	rl->logged = moat_rlmem_new(RL_LOG_ENTRIES);
	if (rl->prefix == NULL || rl->mem == NULL || rl->logged == NULL)
		goto oom;
	if (rl->store == MOAT_RL_STORE_REDIS) {
		rl->redis = moat_rlredis_new(conf->ratelimit_redis, rl->prefix,
		    conf->ratelimit_redis_timeout);
		if (rl->redis == NULL)
			goto oom;
	}
	return rl;
oom:
	snprintf(err, errlen, "out of memory");
	moat_ratelimit_free(rl);
	return NULL;
}

void
moat_ratelimit_free(struct moat_ratelimit *rl)
{
	struct rl_rules *r, *next;

	if (rl == NULL)
		return;
	rl_rules_free(atomic_load(&rl->rules));
	for (r = rl->retired; r != NULL; r = next) {
		next = r->retired_next;
		rl_rules_free(r);
	}
	moat_rlredis_free(rl->redis);
	moat_rlmem_free(rl->mem);
	moat_rlmem_free(rl->logged);
	pthread_mutex_destroy(&rl->reload_lock);
	free(rl->prefix);
	free(rl);
}

int
moat_ratelimit_reload(struct moat_ratelimit *rl, const struct moat_conf *conf, char *err,
    size_t errlen)
{
	struct rl_rules *fresh = rl_rules_new(conf, err, errlen), *old;

	if (fresh == NULL)
		return -1;
	/*
	 * A checker may still be reading the old rules, and taking a lock or a reference on every
	 * check is what we avoid: old rule sets are kept until the limiter is freed. Reloads are
	 * rare and a rule set is a few hundred bytes.
	 */
	pthread_mutex_lock(&rl->reload_lock);
	old = atomic_exchange(&rl->rules, fresh);
	old->retired_next = rl->retired;
	rl->retired = old;
	pthread_mutex_unlock(&rl->reload_lock);
	return 0;
}

void
moat_ratelimit_set_clock(struct moat_ratelimit *rl, moat_rl_clock_fn fn, void *arg)
{
	rl->clock = fn != NULL ? fn : rl_clock_monotonic;
	rl->clock_arg = arg;
}

enum moat_rl_store
moat_ratelimit_store(const struct moat_ratelimit *rl)
{
	return rl->store;
}

const char *
moat_ratelimit_redis_prefix(const struct moat_ratelimit *rl)
{
	return rl->prefix;
}

struct moat_rlredis *
moat__ratelimit_redis(struct moat_ratelimit *rl)
{
	return rl->redis;
}

struct moat_rlmem *
moat__ratelimit_mem(struct moat_ratelimit *rl)
{
	return rl->mem;
}

uint64_t
moat__ratelimit_now_us(struct moat_ratelimit *rl)
{
	return rl->clock(rl->clock_arg);
}

bool
moat__ratelimit_fails_closed(const struct moat_ratelimit *rl)
{
	return rl->failure == MOAT_RL_FAIL_CLOSED;
}

/* ---- planning ---- */

/* rl_fnv64 - an unkeyed hash, the same in every instance (long senders in shared keys). */
static uint64_t
rl_fnv64(const char *s, size_t len, bool fold)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)(fold ? tolower((unsigned char)s[i]) : s[i]);
		h *= 1099511628211ULL;
	}
	return h;
}

/* rl_add - append a bucket for KIND keyed by TEXT (lower-cased when FOLD) to the plan; HIDE: the
 * key is always the hash, so TEXT (a login: AUTH data, never logged) is in no log line or Redis key. */
static void
rl_add(struct moat_rl_plan *plan, const struct rl_rules *r, enum moat_rl_kind kind,
    const char *text, bool fold, bool hide)
{
	const struct moat_rl_limit *lim = &r->limit[kind];
	struct moat_rl_req *q;
	size_t len = strlen(text), taglen = strlen(rl_kinds[kind].tag);
	int n;

	if (lim->count == 0 || plan->n >= MOAT_RL_PLAN_MAX)
		return;
	q = &plan->req[plan->n];
	q->kind = kind;
	q->action = lim->action;
	q->cost = 1;
	q->interval_us = lim->period_ms * 1000 / lim->count;
	if (q->interval_us == 0)
		q->interval_us = 1;
	q->limit_us = q->interval_us * lim->count;
	if (!hide && taglen + 1 + len < sizeof(q->key)) {
		memcpy(q->key, rl_kinds[kind].tag, taglen);
		q->key[taglen] = ':';
		for (size_t i = 0; i < len; i++)
			q->key[taglen + 1 + i] =
			    fold ? (char)tolower((unsigned char)text[i]) : text[i];
		q->keylen = taglen + 1 + len;
		q->key[q->keylen] = '\0';
	} else {
		/* Too long to keep or hidden: a hash of the folded text, the same in every instance. */
		n = snprintf(q->key, sizeof(q->key), "%s:#%016" PRIx64 "-%zu", rl_kinds[kind].tag,
		    rl_fnv64(text, len, fold), len);
		q->keylen = n > 0 ? (size_t)n : 0;
	}
	plan->n++;
}

/* rl_add_subject - the per-address, per-sender and per-user buckets of one event, in that order. */
static void
rl_add_subject(struct moat_rl_plan *plan, const struct rl_rules *r,
    const struct moat_rl_subject *subj, const char *ip, enum moat_rl_kind by_ip,
    enum moat_rl_kind by_sender, enum moat_rl_kind by_user)
{
	if (subj->addr != NULL)
		rl_add(plan, r, by_ip, ip, false, false);
	if (subj->sender != NULL)
		rl_add(plan, r, by_sender, subj->sender, true, false);
	if (subj->user != NULL && subj->user[0] != '\0')
		rl_add(plan, r, by_user, subj->user, false, true);
}

/* rl_net_text - "a.b.c.0/24" or "2001:db8::/64" for ADDR cut to the configured prefix. */
static void
rl_net_text(const struct rl_rules *r, const struct moat_addr *addr, char *out, size_t len)
{
	struct moat_addr net = *addr;
	unsigned prefix = addr->v4 ? 96 + r->prefix4 : r->prefix6;
	char text[64];

	for (unsigned bit = prefix; bit < 128; bit++)
		net.bytes[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	moat_addr_format(&net, text, sizeof(text));
	snprintf(out, len, "%s/%u", text, addr->v4 ? r->prefix4 : r->prefix6);
}

/*
 * rl_peek - turn the plan's charges into looks: cost 0 against a limit one interval short is
 * allowed exactly when one token is left, and moves no bucket (the same sums in the Redis script).
 */
static void
rl_peek(struct moat_rl_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		plan->req[i].cost = 0;
		plan->req[i].limit_us -= plan->req[i].interval_us;
	}
}

void
moat_ratelimit_plan(struct moat_ratelimit *rl, enum moat_rl_event ev,
    const struct moat_rl_subject *subj, struct moat_rl_plan *plan)
{
	const struct rl_rules *r = atomic_load_explicit(&rl->rules, memory_order_acquire);
	char ip[64] = "", net[80];

	memset(plan, 0, offsetof(struct moat_rl_plan, req));
	plan->ev = ev;
	if (subj->addr != NULL) {
		if (moat_cidr_set_match(r->allow, subj->addr)) {
			plan->pre = MOAT_RL_PRE_ALLOWED;
			return;
		}
		if (ev == MOAT_RL_EV_CONNECT && moat_cidr_set_match(r->deny, subj->addr)) {
			plan->pre = MOAT_RL_PRE_DENIED;
			return;
		}
		moat_addr_format(subj->addr, ip, sizeof(ip));
	}
	switch (ev) {
	case MOAT_RL_EV_CONNECT:
		if (subj->addr != NULL) {
			rl_net_text(r, subj->addr, net, sizeof(net));
			rl_add(plan, r, MOAT_RL_CONN_IP, ip, false, false);
			rl_add(plan, r, MOAT_RL_CONN_NET, net, false, false);
		}
		break;
	case MOAT_RL_EV_TLS:
		if (subj->addr != NULL)
			rl_add(plan, r, MOAT_RL_TLS_IP, ip, false, false);
		break;
	case MOAT_RL_EV_MAIL:
		rl_add_subject(plan, r, subj, ip, MOAT_RL_MSG_IP, MOAT_RL_MSG_SENDER,
		    MOAT_RL_MSG_USER);
		break;
	case MOAT_RL_EV_FIRST_RCPT:
		/* MAIL's first: the verdict names the first refused bucket (message_counted) */
		rl_add_subject(plan, r, subj, ip, MOAT_RL_MSG_IP, MOAT_RL_MSG_SENDER,
		    MOAT_RL_MSG_USER);
		rl_add_subject(plan, r, subj, ip, MOAT_RL_RCPT_IP, MOAT_RL_RCPT_SENDER,
		    MOAT_RL_RCPT_USER);
		break;
	case MOAT_RL_EV_RCPT:
		rl_add_subject(plan, r, subj, ip, MOAT_RL_RCPT_IP, MOAT_RL_RCPT_SENDER,
		    MOAT_RL_RCPT_USER);
		break;
	case MOAT_RL_EV_AUTH:
	case MOAT_RL_EV_AUTH_FAIL:
		if (subj->addr != NULL)
			rl_add(plan, r, MOAT_RL_AUTH_FAIL_IP, ip, false, false);
		if (subj->user != NULL && subj->user[0] != '\0')
			rl_add(plan, r, MOAT_RL_AUTH_FAIL_USER, subj->user, false, true);
		if (ev == MOAT_RL_EV_AUTH)
			rl_peek(plan);
		break;
	}
}

bool
moat_ratelimit_message_counted(const struct moat_verdict *v)
{
	static const enum moat_rl_kind msg[] = { MOAT_RL_MSG_IP, MOAT_RL_MSG_SENDER,
		MOAT_RL_MSG_USER };

	if (v->action == MOAT_CONTINUE || v->action == MOAT_ACCEPT)
		return true;
	/* reasons are rl_kinds' static strings: a refusal by a message bucket, or no store */
	if (v->reason == NULL || strcmp(v->reason, rl_reason_store_down) == 0)
		return false;
	for (size_t i = 0; i < sizeof(msg) / sizeof(msg[0]); i++)
		if (strcmp(v->reason, rl_kinds[msg[i]].key) == 0)
			return false;
	return true;
}

void
moat_ratelimit_local(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    struct moat_rl_result *res)
{
	uint64_t now = rl->clock(rl->clock_arg), retry;

	for (size_t i = 0; i < plan->n; i++) {
		const struct moat_rl_req *q = &plan->req[i];
		res[i].allowed = moat_rlmem_take(rl->mem, q->key, q->keylen, q->interval_us,
		    q->limit_us, q->cost, now, &retry);
		res[i].retry_ms = (retry + 999) / 1000;
	}
}

void
moat_ratelimit_fallback(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    struct moat_rl_result *res)
{
	if (rl->failure == MOAT_RL_FAIL_OPEN)
		moat_ratelimit_local(rl, plan, res);
}

/* ---- deciding ---- */

/* rl_log_due - true at most once per log interval for KEY (a refusal worth a line). */
static bool
rl_log_due(struct moat_ratelimit *rl, const struct rl_rules *r, const char *key, size_t keylen)
{
	uint64_t retry;

	return moat_rlmem_take(rl->logged, key, keylen, r->log_interval_us, r->log_interval_us, 1,
	    rl->clock(rl->clock_arg), &retry);
}

bool
moat__ratelimit_log_due(struct moat_ratelimit *rl, const char *key, size_t keylen)
{
	return rl_log_due(rl, atomic_load_explicit(&rl->rules, memory_order_acquire), key, keylen);
}

/* rl_refuse - the reply for a refusal at EV: 421 and close at connect, TLS and AUTH, else 451. */
static void
rl_refuse(struct moat_verdict *v, enum moat_rl_event ev, const char *reason, const char *what,
    const char *mail_status)
{
	if (ev == MOAT_RL_EV_CONNECT || ev == MOAT_RL_EV_TLS || ev == MOAT_RL_EV_AUTH ||
	    ev == MOAT_RL_EV_AUTH_FAIL) {
		/* RFC 5321 3.8: 421 and close when the server cannot serve the client now. */
		moat_verdict_set(v, MOAT_TEMPFAIL, 421, "4.7.0", reason, "%s, try again later",
		    what);
		v->close = true;
	} else {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, mail_status, reason, "%s, try again later",
		    what);
	}
}

void
moat_ratelimit_decide(struct moat_ratelimit *rl, const struct moat_rl_plan *plan,
    const struct moat_rl_result *res, enum moat_rl_status status, const char *sid,
    struct moat_verdict *v)
{
	const struct rl_rules *r = atomic_load_explicit(&rl->rules, memory_order_acquire);
	char esc[MOAT_RL_KEY_MAX * 4 + 4];

	moat_verdict_continue(v);
	if (status == MOAT_RL_STORE_DOWN)
		moat_metrics_redis_error(rl->metrics);
	if (plan->pre == MOAT_RL_PRE_ALLOWED)
		return;
	if (plan->pre == MOAT_RL_PRE_DENIED) {
		/* RFC 5321 3.1: 554 at connection opening means "no SMTP service here". */
		moat_verdict_set(v, MOAT_REJECT, 554, "5.7.1", "ratelimit_deny",
		    "Connections from your address are not accepted");
		v->close = true;
		return;
	}
	if (plan->n == 0)
		return;
	if (status == MOAT_RL_STORE_DOWN) {
		if (rl_log_due(rl, r, "!redis", 6))
			moat_log(LOG_WARNING, sid, "ratelimit",
			    "store=redis status=unreachable fallback=%s",
			    rl->failure == MOAT_RL_FAIL_CLOSED ? "closed" : "memory");
		if (rl->failure == MOAT_RL_FAIL_CLOSED) {
			rl_refuse(v, plan->ev, rl_reason_store_down,
			    "Rate-limit service unavailable", "4.3.0");
			return;
		}
	}
	for (size_t i = 0; i < plan->n; i++) {
		const struct moat_rl_req *q = &plan->req[i];
		bool log_only = q->action == MOAT_RL_LOG_ONLY;

		if (res[i].allowed)
			continue;
		if (rl_log_due(rl, r, q->key, q->keylen)) {
			moat_log_escape(q->key, q->keylen, esc, sizeof(esc));
			moat_log(LOG_NOTICE, sid, "ratelimit",
			    "limit=%s key=\"%s\" action=%s retry=%" PRIu64 "ms",
			    rl_kinds[q->kind].key, esc, log_only ? "log" : "refuse",
			    res[i].retry_ms);
		}
		if (!log_only && v->action == MOAT_CONTINUE)
			rl_refuse(v, plan->ev, rl_kinds[q->kind].key, rl_kinds[q->kind].what,
			    "4.7.1");
	}
}

void
moat_ratelimit_check(struct moat_ratelimit *rl, enum moat_rl_event ev,
    const struct moat_rl_subject *subj, struct moat_verdict *v)
{
	struct moat_rl_plan plan;

	moat_ratelimit_plan(rl, ev, subj, &plan);
	moat_ratelimit_charge(rl, &plan, subj->sid, v);
}

void
moat_ratelimit_charge(struct moat_ratelimit *rl, const struct moat_rl_plan *plan, const char *sid,
    struct moat_verdict *v)
{
	struct moat_rl_result res[MOAT_RL_PLAN_MAX];
	enum moat_rl_status status = MOAT_RL_OK;

	if (plan->n > 0) {
		uint64_t t0 = rl->redis != NULL ? moat_metrics_now_ns() : 0;

		if (rl->redis != NULL && moat_rlredis_take(rl->redis, plan, res) < 0) {
			status = MOAT_RL_STORE_DOWN;
			moat_ratelimit_fallback(rl, plan, res);
		} else if (rl->redis == NULL) {
			moat_ratelimit_local(rl, plan, res);
		}
		if (rl->redis != NULL)
			moat_metrics_observe(rl->metrics, MOAT_METRICS_REDIS,
			    moat_metrics_now_ns() - t0);
	}
	moat_ratelimit_decide(rl, plan, res, status, sid, v);
}

void
moat_ratelimit_set_metrics(struct moat_ratelimit *rl, struct moat_metrics *m)
{
	rl->metrics = m;
}

struct moat_metrics *
moat_ratelimit_metrics(const struct moat_ratelimit *rl)
{
	return rl->metrics;
}
