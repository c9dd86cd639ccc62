/*
 * metrics.c - the counters of metrics.h: one shard per counting thread, summed at scrape time.
 *
 * Owns the registry (a pthread key, the list of live shards, the totals of shards whose thread
 * exited, the configuration generation). A shard is a flat array of counters plus a small table
 * of refusal reasons, written only by its thread with relaxed loads and stores (a plain add on
 * the hot path); the scrape reads them with relaxed loads under the registry's lock, which only
 * shard creation, thread exit and scrapes take.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

#define REASONS_MAX 64 /* distinct refusal reasons per shard; more count as "other" */
#define RENDER_REASONS_MAX 256 /* distinct reasons in one scrape */
#define RENDER_MAX ((size_t)1 << 20) /* bytes of one scrape */

static const char *const auth_method_names[] = { "spf", "dkim", "dmarc", "arc" };
static const char *const auth_result_names[] = { "pass", "fail", "softfail", "neutral", "none",
	"policy", "temperror", "permerror", "other" };
#define AUTH_METHODS (sizeof(auth_method_names) / sizeof(auth_method_names[0]))
#define AUTH_RESULTS (sizeof(auth_result_names) / sizeof(auth_result_names[0]))

/* indexed by enum moat_action; MOAT_CONTINUE at end of message is an accept */
static const char *const message_names[] = { "accept", "accept", "quarantine", "discard",
	"tempfail", "reject" };
#define MESSAGE_KINDS (sizeof(message_names) / sizeof(message_names[0]))

static const char *const backend_names[] = { "2xx", "3xx", "4xx", "5xx", "other" };
#define BACKEND_CLASSES (sizeof(backend_names) / sizeof(backend_names[0]))

static const char *const tls_names[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other" };
#define TLS_VERSIONS (sizeof(tls_names) / sizeof(tls_names[0]))

/* indexed by enum moat_metrics_drep */
static const char *const drep_names[] = { "written", "dropped", "lost" };
#define DREP_STATUSES (sizeof(drep_names) / sizeof(drep_names[0]))

/* Upper bounds of the histogram buckets, in seconds and in nanoseconds (+Inf is the count). */
static const char *const hist_le[] = { "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10" };
static const uint64_t hist_le_ns[] = { 500000, 1000000, 2500000, 5000000, 10000000, 25000000,
	50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000,
	10000000000 };
#define HIST_BUCKETS (sizeof(hist_le_ns) / sizeof(hist_le_ns[0]))
#define HIST_SLOTS (HIST_BUCKETS + 2) /* the buckets, past the last one, the sum in ns */
static const char *const hist_names[] = { "mxmoat_dns_query_seconds", "mxmoat_redis_call_seconds" };
static const char *const hist_help[] = { "Time of DNS queries that left the process.",
	"Time of rate-limit calls to Redis." };
#define HISTS (sizeof(hist_names) / sizeof(hist_names[0]))

/* The flat counter array of a shard. */
enum {
	C_SESS_OPEN,
	C_SESS_CLOSE,
	C_HOLD_ADD,
	C_HOLD_SUB,
	C_REDIS_ERR,
	C_MSG,
	C_AUTH = C_MSG + MESSAGE_KINDS,
	C_BACKEND = C_AUTH + AUTH_METHODS * AUTH_RESULTS,
	C_TLS = C_BACKEND + BACKEND_CLASSES,
	C_DREP = C_TLS + TLS_VERSIONS,
	C_HIST = C_DREP + DREP_STATUSES,
	C_REASON_OTHER = C_HIST + HISTS * HIST_SLOTS,
	C_N
};

struct shard {
	struct shard *next, *prev;
	struct moat_metrics *reg;
	_Atomic uint64_t c[C_N];
	_Atomic(const char *) reason[REASONS_MAX]; /* set once, then never changed */
	_Atomic uint64_t reason_count[REASONS_MAX];
};

struct moat_metrics {
	pthread_key_t key;
	pthread_mutex_t lock; /* the shard list and retired */
	struct shard *live;
	struct shard retired; /* totals of shards whose thread exited; written under lock */
	_Atomic uint64_t generation;
};

/* bump - add N to a counter only this thread writes: no read-modify-write on the bus. */
static inline void
bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}

static inline uint64_t
load(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* shard_add_reason - add N to REASON's count in SH (the caller is SH's only writer). */
static void
shard_add_reason(struct shard *sh, const char *reason, uint64_t n)
{
	for (size_t i = 0; i < REASONS_MAX; i++) {
		const char *r = atomic_load_explicit(&sh->reason[i], memory_order_relaxed);

		if (r == NULL) {
			/* the count before the name: a scrape that sees the name sees its count */
			bump(&sh->reason_count[i], n);
			atomic_store_explicit(&sh->reason[i], reason, memory_order_release);
			return;
		}
		if (r == reason || strcmp(r, reason) == 0) {
			bump(&sh->reason_count[i], n);
			return;
		}
	}
	bump(&sh->c[C_REASON_OTHER], n);
}

/* shard_fold - add SRC's counts into DST (DST is written under the registry's lock). */
static void
shard_fold(struct shard *dst, const struct shard *src)
{
	for (size_t i = 0; i < C_N; i++)
		bump(&dst->c[i], load(&src->c[i]));
	for (size_t i = 0; i < REASONS_MAX; i++) {
		const char *r = atomic_load_explicit(&src->reason[i], memory_order_acquire);

		if (r == NULL)
			break;
		shard_add_reason(dst, r, load(&src->reason_count[i]));
	}
}

/* shard_retire - the pthread key's destructor: the thread exits, its counts go to retired. */
static void
shard_retire(void *arg)
{
	struct shard *sh = arg;
	struct moat_metrics *m = sh->reg;

	pthread_mutex_lock(&m->lock);
	shard_fold(&m->retired, sh);
	if (sh->prev != NULL)
		sh->prev->next = sh->next;
	else
		m->live = sh->next;
	if (sh->next != NULL)
		sh->next->prev = sh->prev;
	pthread_mutex_unlock(&m->lock);
	free(sh);
}

/* shard_here - the calling thread's shard, made on its first count; NULL when out of memory. */
static struct shard *
shard_here(struct moat_metrics *m)
{
	struct shard *sh = pthread_getspecific(m->key);

	if (sh != NULL)
		return sh;
	if ((sh = calloc(1, sizeof(*sh))) == NULL)
		return NULL;
	sh->reg = m;
	if (pthread_setspecific(m->key, sh) != 0) {
		free(sh);
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	sh->next = m->live;
	if (m->live != NULL)
		m->live->prev = sh;
	m->live = sh;
	pthread_mutex_unlock(&m->lock);
	return sh;
}

struct moat_metrics *
moat_metrics_new(void)
{
	struct moat_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (pthread_key_create(&m->key, shard_retire) != 0) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	atomic_init(&m->generation, 1);
	return m;
}

void
moat_metrics_free(struct moat_metrics *m)
{
	if (m == NULL)
		return;
	/* deleting the key first: no destructor runs for these shards any more */
	pthread_key_delete(m->key);
	for (struct shard *sh = m->live, *next; sh != NULL; sh = next) {
		next = sh->next;
		free(sh);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* count - add N to counter I of the calling thread's shard. */
static void
count(struct moat_metrics *m, size_t i, uint64_t n)
{
	struct shard *sh;

	if (m != NULL && (sh = shard_here(m)) != NULL)
		bump(&sh->c[i], n);
}

void
moat_metrics_session(struct moat_metrics *m, int delta)
{
	count(m, delta > 0 ? C_SESS_OPEN : C_SESS_CLOSE, 1);
}

void
moat_metrics_message(struct moat_metrics *m, enum moat_action a)
{
	if ((size_t)a < MESSAGE_KINDS)
		count(m, C_MSG + (size_t)a, 1);
}

void
moat_metrics_refusal(struct moat_metrics *m, const char *reason)
{
	struct shard *sh;

	if (m != NULL && (sh = shard_here(m)) != NULL)
		shard_add_reason(sh, reason != NULL && reason[0] != '\0' ? reason : "unknown", 1);
}

/* name_index - the index of NAME in NAMES (N entries), or the last one ("other"). */
static size_t
name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (name != NULL && strcmp(names[i], name) == 0)
			return i;
	return n - 1;
}

void
moat_metrics_auth(struct moat_metrics *m, enum moat_metrics_auth method, const char *result)
{
	if ((size_t)method < AUTH_METHODS)
		count(m,
		    C_AUTH + (size_t)method * AUTH_RESULTS +
			name_index(auth_result_names, AUTH_RESULTS, result),
		    1);
}

void
moat_metrics_backend_reply(struct moat_metrics *m, unsigned code)
{
	unsigned cls = code / 100;

	count(m, C_BACKEND + (cls >= 2 && cls <= 5 ? cls - 2 : BACKEND_CLASSES - 1), 1);
}

void
moat_metrics_tls(struct moat_metrics *m, const char *protocol)
{
	count(m, C_TLS + name_index(tls_names, TLS_VERSIONS, protocol), 1);
}

void
moat_metrics_observe(struct moat_metrics *m, enum moat_metrics_hist h, uint64_t ns)
{
	struct shard *sh;
	size_t b = 0;

	if (m == NULL || (size_t)h >= HISTS || (sh = shard_here(m)) == NULL)
		return;
	while (b < HIST_BUCKETS && ns > hist_le_ns[b])
		b++;
	bump(&sh->c[C_HIST + (size_t)h * HIST_SLOTS + b], 1);
	bump(&sh->c[C_HIST + (size_t)h * HIST_SLOTS + HIST_BUCKETS + 1], ns);
}

void
moat_metrics_redis_error(struct moat_metrics *m)
{
	count(m, C_REDIS_ERR, 1);
}

void
moat_metrics_dmarc_report(struct moat_metrics *m, enum moat_metrics_drep status, uint64_t n)
{
	if ((size_t)status < DREP_STATUSES)
		count(m, C_DREP + (size_t)status, n);
}

void
moat_metrics_hold(struct moat_metrics *m, int64_t delta)
{
	if (delta >= 0)
		count(m, C_HOLD_ADD, (uint64_t)delta);
	else
		count(m, C_HOLD_SUB, (uint64_t)-delta);
}

void
moat_metrics_generation_next(struct moat_metrics *m)
{
	if (m != NULL)
		atomic_fetch_add(&m->generation, 1);
}

uint64_t
moat_metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the scrape ---- */

/* A bounded growing text buffer: past RENDER_MAX or out of memory it fails, never truncates. */
struct out {
	char *p;
	size_t len, cap;
	bool failed;
};

static void __attribute__((format(printf, 2, 3))) out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2;
		char *p;

		if (cap > RENDER_MAX || (p = realloc(o->p, cap)) == NULL) {
			o->failed = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
}

/* out_head - the HELP and TYPE lines of one metric. */
static void
out_head(struct out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* out_label_value - a label value with the format's escapes (backslash, quote, newline). */
static void
out_label_value(struct out *o, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			out_printf(o, "\\%c", *v);
		else if (*v == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *v);
	}
}

/* The sums of one scrape. */
struct totals {
	uint64_t c[C_N];
	const char *reason[RENDER_REASONS_MAX];
	uint64_t reason_count[RENDER_REASONS_MAX];
	size_t nreasons;
};

/* totals_add - add shard SH into T (under the registry's lock). */
static void
totals_add(struct totals *t, const struct shard *sh)
{
	for (size_t i = 0; i < C_N; i++)
		t->c[i] += load(&sh->c[i]);
	for (size_t i = 0; i < REASONS_MAX; i++) {
		const char *r = atomic_load_explicit(&sh->reason[i], memory_order_acquire);
		uint64_t n;
		size_t j;

		if (r == NULL)
			break;
		n = load(&sh->reason_count[i]);
		for (j = 0; j < t->nreasons && strcmp(t->reason[j], r) != 0; j++)
			;
		if (j == t->nreasons) {
			if (j == RENDER_REASONS_MAX) {
				t->c[C_REASON_OTHER] += n;
				continue;
			}
			t->reason[t->nreasons++] = r;
		}
		t->reason_count[j] += n;
	}
}

static void
render_hist(struct out *o, const struct totals *t, size_t h)
{
	const uint64_t *slot = &t->c[C_HIST + h * HIST_SLOTS];
	uint64_t cum = 0;

	out_head(o, hist_names[h], "histogram", hist_help[h]);
	for (size_t b = 0; b < HIST_BUCKETS; b++) {
		cum += slot[b];
		out_printf(o, "%s_bucket{le=\"%s\"} %llu\n", hist_names[h], hist_le[b],
		    (unsigned long long)cum);
	}
	cum += slot[HIST_BUCKETS];
	out_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", hist_names[h], (unsigned long long)cum);
	out_printf(o, "%s_sum %llu.%09llu\n", hist_names[h],
	    (unsigned long long)(slot[HIST_BUCKETS + 1] / 1000000000ULL),
	    (unsigned long long)(slot[HIST_BUCKETS + 1] % 1000000000ULL));
	out_printf(o, "%s_count %llu\n", hist_names[h], (unsigned long long)cum);
}

/* render_labelled - one counter family with label LABEL over a fixed set of NAMES. */
static void
render_labelled(struct out *o, const struct totals *t, const char *name, const char *label,
    const char *help, const char *const *names, size_t n, size_t first)
{
	out_head(o, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		out_printf(o, "%s{%s=\"%s\"} %llu\n", name, label, names[i],
		    (unsigned long long)t->c[first + i]);
}

char *
moat_metrics_render(struct moat_metrics *m, size_t *len)
{
	struct totals *t = calloc(1, sizeof(*t));
	struct out o = { .cap = 4096 };
	uint64_t messages[MESSAGE_KINDS - 1];

	if (t == NULL || (o.p = malloc(o.cap)) == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&m->lock);
	totals_add(t, &m->retired);
	for (const struct shard *sh = m->live; sh != NULL; sh = sh->next)
		totals_add(t, sh);
	pthread_mutex_unlock(&m->lock);

	out_head(&o, "mxmoat_sessions_active", "gauge", "SMTP sessions open now.");
	out_printf(&o, "mxmoat_sessions_active %lld\n",
	    (long long)(t->c[C_SESS_OPEN] - t->c[C_SESS_CLOSE]));
	out_head(&o, "mxmoat_sessions_total", "counter", "SMTP sessions opened.");
	out_printf(&o, "mxmoat_sessions_total %llu\n", (unsigned long long)t->c[C_SESS_OPEN]);

	/* continue and accept are one verdict on the wire */
	messages[0] = t->c[C_MSG] + t->c[C_MSG + 1];
	for (size_t i = 2; i < MESSAGE_KINDS; i++)
		messages[i - 1] = t->c[C_MSG + i];
	out_head(&o, "mxmoat_messages_total", "counter",
	    "Messages that reached end of data, by verdict.");
	for (size_t i = 0; i < MESSAGE_KINDS - 1; i++)
		out_printf(&o, "mxmoat_messages_total{verdict=\"%s\"} %llu\n", message_names[i + 1],
		    (unsigned long long)messages[i]);

	out_head(&o, "mxmoat_auth_results_total", "counter",
	    "Results of SPF, DKIM (per signature), DMARC and ARC on inbound messages.");
	for (size_t i = 0; i < AUTH_METHODS; i++)
		for (size_t j = 0; j < AUTH_RESULTS; j++) {
			uint64_t n = t->c[C_AUTH + i * AUTH_RESULTS + j];

			if (n > 0)
				out_printf(&o,
				    "mxmoat_auth_results_total{method=\"%s\",result=\"%s\"} %llu\n",
				    auth_method_names[i], auth_result_names[j],
				    (unsigned long long)n);
		}

	out_head(&o, "mxmoat_refusals_total", "counter",
	    "Commands, messages and connections refused (4xx, 5xx), by the check's reason.");
	for (size_t i = 0; i < t->nreasons; i++) {
		out_printf(&o, "mxmoat_refusals_total{reason=\"");
		out_label_value(&o, t->reason[i]);
		out_printf(&o, "\"} %llu\n", (unsigned long long)t->reason_count[i]);
	}
	if (t->c[C_REASON_OTHER] > 0)
		out_printf(&o, "mxmoat_refusals_total{reason=\"other\"} %llu\n",
		    (unsigned long long)t->c[C_REASON_OTHER]);

	render_labelled(&o, t, "mxmoat_backend_replies_total", "class",
	    "Replies from the backend MTA, by class (mxmoat-proxy).", backend_names,
	    BACKEND_CLASSES, C_BACKEND);
	render_labelled(&o, t, "mxmoat_tls_handshakes_total", "version",
	    "TLS handshakes completed with clients, by protocol version.", tls_names, TLS_VERSIONS,
	    C_TLS);
	for (size_t h = 0; h < HISTS; h++)
		render_hist(&o, t, h);
	out_head(&o, "mxmoat_redis_errors_total", "counter",
	    "Rate-limit calls Redis did not answer (down, timeout, bad reply): the fallback decided.");
	out_printf(&o, "mxmoat_redis_errors_total %llu\n", (unsigned long long)t->c[C_REDIS_ERR]);

	render_labelled(&o, t, "mxmoat_dmarc_report_records_total", "status",
	    "DMARC evaluations recorded for aggregate reports: written to the store, dropped (queue full), lost (store error).",
	    drep_names, DREP_STATUSES, C_DREP);

	out_head(&o, "mxmoat_hold_bytes", "gauge",
	    "Bytes of messages held until end of data (mxmoat-proxy holding mode).");
	out_printf(&o, "mxmoat_hold_bytes %lld\n",
	    (long long)(t->c[C_HOLD_ADD] - t->c[C_HOLD_SUB]));
	out_head(&o, "mxmoat_config_generation", "gauge",
	    "Configuration generation: 1 at start, one more for each reload that took.");
	out_printf(&o, "mxmoat_config_generation %llu\n",
	    (unsigned long long)atomic_load(&m->generation));
	free(t);
	if (o.failed) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}
