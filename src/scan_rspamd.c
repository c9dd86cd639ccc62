/*
 * scan_rspamd.c - the rspamd client (see scan_rspamd.h). HTTP is libcurl's (one easy handle on
 * its own multi handle per message, so the body can be handed over piece by piece from the
 * message events and the wait for the answer can share a poll with clamd's socket); the answer
 * is parsed by json-c. Neither is ours to get wrong: the only protocol code here is the mapping.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "scan_rspamd.h"
#include "scan.h"
#include "text.h"

struct moat_rspamd {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *headers;
	unsigned timeout_ms;
	/* the piece being handed to libcurl, and whether its read callback is paused for more */
	const char *src;
	size_t left;
	bool eof, paused;
	/* the answer */
	char *reply;
	size_t rlen;
	bool too_long, done;
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t rspamd_once = PTHREAD_ONCE_INIT;
static bool rspamd_curl_ok;

/* rspamd_curl_init - libcurl's global setup, once per process, before the first handle. */
static void
rspamd_curl_init(void)
{
	rspamd_curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* rspamd_read - libcurl asks for body bytes: the current piece, end of body, or pause. */
static size_t
rspamd_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct moat_rspamd *r = arg;
	size_t n = size * nitems;

	if (r->left == 0) {
		if (r->eof)
			return 0;
		r->paused = true;
		return CURL_READFUNC_PAUSE;
	}
	if (n > r->left)
		n = r->left;
	memcpy(buf, r->src, n);
	r->src += n;
	r->left -= n;
	return n;
}

/* rspamd_write - answer bytes, kept up to MOAT_RSPAMD_REPLY_MAX; past it the transfer fails. */
static size_t
rspamd_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct moat_rspamd *r = arg;
	size_t n = size * nmemb;
	char *grown;

	if (n > MOAT_RSPAMD_REPLY_MAX - r->rlen) {
		r->too_long = true;
		return 0;
	}
	if ((grown = realloc(r->reply, r->rlen + n + 1)) == NULL)
		return 0;
	r->reply = grown;
	memcpy(r->reply + r->rlen, p, n);
	r->rlen += n;
	r->reply[r->rlen] = '\0';
	return n;
}

/* rspamd_header - "Name: value" for the request, unless value is unknown or could break the
 * header (a control character). 0, or -1 when out of memory. */
static int
rspamd_header(struct moat_rspamd *r, const char *name, const char *value)
{
	struct curl_slist *l;
	size_t len;
	char *line;

	if (value == NULL)
		return 0;
	for (const char *q = value; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return 0;
	len = strlen(name) + strlen(value) + 3;
	if ((line = malloc(len)) == NULL)
		return -1;
	/* "Name:" alone removes a header libcurl would add */
	snprintf(line, len, value[0] ? "%s: %s" : "%s:", name, value);
	l = curl_slist_append(r->headers, line); /* copies it */
	free(line);
	if (l == NULL)
		return -1;
	r->headers = l;
	return 0;
}

/* rspamd_step - let libcurl move data; notes the end of the transfer. */
static void
rspamd_step(struct moat_rspamd *r)
{
	CURLMsg *msg;
	int running, left;

	curl_multi_perform(r->multi, &running);
	while ((msg = curl_multi_info_read(r->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE) {
			r->done = true;
			r->rc = msg->data.result;
		}
}

struct moat_rspamd *
moat_rspamd_open(const char *hostport, unsigned timeout_ms, const struct moat_rspamd_env *env,
    char *err, size_t errlen)
{
	struct moat_rspamd *r;
	char host[256], url[300];
	int port, bad = 0;

	if (moat_hostport_split(hostport, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "not host:port");
		return NULL;
	}
	snprintf(url, sizeof(url),
	    strchr(host, ':') ? "http://[%s]:%d/checkv2" : "http://%s:%d/checkv2", host, port);
	pthread_once(&rspamd_once, rspamd_curl_init);
	if (!rspamd_curl_ok || (r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "libcurl could not start or out of memory");
		return NULL;
	}
	r->timeout_ms = timeout_ms;
	if ((r->multi = curl_multi_init()) == NULL || (r->easy = curl_easy_init()) == NULL)
		goto oom;
	/* chunked: the length is not known until the end; no 100-continue round trip */
	bad |= rspamd_header(r, "Transfer-Encoding", "chunked");
	bad |= rspamd_header(r, "Expect", "");
	bad |= rspamd_header(r, "Content-Type", "");
	bad |= rspamd_header(r, "IP", env->ip);
	bad |= rspamd_header(r, "Helo", env->helo);
	bad |= rspamd_header(r, "Hostname", env->hostname);
	bad |=
	    rspamd_header(r, "From", env->from != NULL && env->from[0] == '\0' ? "<>" : env->from);
	for (size_t i = 0; i < env->nrcpt; i++)
		bad |= rspamd_header(r, "Rcpt", env->rcpt[i]);
	bad |= rspamd_header(r, "User", env->user);
	bad |= rspamd_header(r, "Queue-Id", env->queue_id);
	/* not one of rspamd's own request headers: its rules read it (task:get_request_header) */
	bad |= rspamd_header(r, "Authentication-Results",
	    env->authres != NULL && env->authres[0] != '\0' ? env->authres : NULL);
	if (bad)
		goto oom;
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
	curl_easy_setopt(r->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_READFUNCTION, rspamd_read);
	curl_easy_setopt(r->easy, CURLOPT_READDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, rspamd_write);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK)
		goto oom;
	return r;
oom:
	snprintf(err, errlen, "out of memory");
	moat_rspamd_free(r);
	return NULL;
}

/* rspamd_fail - the reason a transfer stopped, into err. */
static int
rspamd_fail(struct moat_rspamd *r, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s%s%s", what, r->errbuf[0] ? ": " : "", r->errbuf);
	return -1;
}

int
moat_rspamd_send(struct moat_rspamd *r, const char *p, size_t n, char *err, size_t errlen)
{
	int64_t deadline = moat__scan_now_ms() + r->timeout_ms;

	if (r->done)
		return rspamd_fail(r, "rspamd ended the request early", err, errlen);
	r->src = p;
	r->left = n;
	r->eof = n == 0;
	if (r->paused) {
		r->paused = false;
		curl_easy_pause(r->easy, CURLPAUSE_CONT);
	}
	rspamd_step(r);
	while (r->left > 0 && !r->done) {
		int64_t left_ms = deadline - moat__scan_now_ms();

		if (left_ms <= 0)
			return rspamd_fail(r, "timed out sending to rspamd", err, errlen);
		curl_multi_poll(r->multi, NULL, 0, (int)(left_ms < 1000 ? left_ms : 1000), NULL);
		rspamd_step(r);
	}
	if (r->left > 0)
		return rspamd_fail(r, "rspamd ended the request early", err, errlen);
	return 0;
}

int
moat_rspamd_wait(struct moat_rspamd *r, int extra_fd, int timeout_ms, bool *extra_ready)
{
	struct curl_waitfd w = { .fd = extra_fd, .events = CURL_WAIT_POLLIN };

	*extra_ready = false;
	if (!r->done) {
		curl_multi_poll(r->multi, extra_fd >= 0 ? &w : NULL, extra_fd >= 0 ? 1 : 0,
		    timeout_ms, NULL);
		*extra_ready = extra_fd >= 0 && (w.revents & CURL_WAIT_POLLIN);
		rspamd_step(r);
	}
	return r->done ? 1 : 0;
}

int
moat_rspamd_result(struct moat_rspamd *r, struct moat_rspamd_result *res, char *err, size_t errlen)
{
	long status = 0;

	if (!r->done)
		return rspamd_fail(r, "no answer from rspamd in time", err, errlen);
	if (r->too_long) {
		snprintf(err, errlen, "answer longer than %zu bytes", MOAT_RSPAMD_REPLY_MAX);
		return -1;
	}
	if (r->rc != CURLE_OK)
		return rspamd_fail(r, curl_easy_strerror(r->rc), err, errlen);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, errlen, "rspamd answered HTTP %ld", status);
		return -1;
	}
	return moat_rspamd_parse(r->reply ? r->reply : "", r->rlen, res, err, errlen);
}

/* rspamd_action - rspamd's action name (rspamd's own spelling, with a space) as ours. */
static int
rspamd_action(const char *name, enum moat_rspamd_action *a)
{
	static const struct {
		const char *name;
		enum moat_rspamd_action action;
	} map[] = {
		{ "no action", MOAT_RSPAMD_NO_ACTION },
		{ "greylist", MOAT_RSPAMD_GREYLIST },
		{ "add header", MOAT_RSPAMD_ADD_HEADER },
		{ "rewrite subject", MOAT_RSPAMD_REWRITE_SUBJECT },
		{ "soft reject", MOAT_RSPAMD_SOFT_REJECT },
		{ "reject", MOAT_RSPAMD_REJECT },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(name, map[i].name) == 0) {
			*a = map[i].action;
			return 0;
		}
	return -1;
}

/* rspamd_number - a JSON number (integer or not) into *d; false when it is not one. */
static bool
rspamd_number(struct json_object *o, double *d)
{
	if (o == NULL ||
	    (!json_object_is_type(o, json_type_double) && !json_object_is_type(o, json_type_int)))
		return false;
	*d = json_object_get_double(o);
	return true;
}

/* rspamd_symbols - the names of the symbols object, comma-separated, cut at a whole name. */
static void
rspamd_symbols(struct json_object *syms, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	if (syms == NULL || !json_object_is_type(syms, json_type_object))
		return;
	json_object_object_foreach(syms, key, val)
	{
		size_t k = strlen(key);

		(void)val;
		if (used + k + 2 > len)
			break;
		if (used > 0)
			out[used++] = ',';
		memcpy(out + used, key, k + 1);
		used += k;
	}
}

int
moat_rspamd_parse(const char *json, size_t n, struct moat_rspamd_result *res, char *err,
    size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *top = NULL, *o;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (tok == NULL || n > MOAT_RSPAMD_REPLY_MAX) {
		snprintf(err, errlen, tok == NULL ? "out of memory" : "answer too long");
		goto out;
	}
	top = json_tokener_parse_ex(tok, json, (int)n);
	if (top == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n || !json_object_is_type(top, json_type_object)) {
		snprintf(err, errlen, "malformed answer from rspamd (not one JSON object)");
		goto out;
	}
	if (!json_object_object_get_ex(top, "action", &o) ||
	    !json_object_is_type(o, json_type_string) ||
	    rspamd_action(json_object_get_string(o), &res->action) < 0) {
		snprintf(err, errlen, "malformed answer from rspamd (no known action)");
		goto out;
	}
	if (!rspamd_number(json_object_object_get(top, "score"), &res->score)) {
		snprintf(err, errlen, "malformed answer from rspamd (no score)");
		goto out;
	}
	if (!rspamd_number(json_object_object_get(top, "required_score"), &res->required))
		res->required = 0;
	rspamd_symbols(json_object_object_get(top, "symbols"), res->symbols, sizeof(res->symbols));
	if (res->action == MOAT_RSPAMD_REWRITE_SUBJECT) {
		const char *subj;
		size_t len;

		o = json_object_object_get(top, "subject");
		if (o == NULL || !json_object_is_type(o, json_type_string) ||
		    (len = strlen(subj = json_object_get_string(o))) == 0 ||
		    len > MOAT_RSPAMD_SUBJECT_MAX || len != (size_t)json_object_get_string_len(o) ||
		    strpbrk(subj, "\r\n") != NULL) {
			snprintf(err, errlen,
			    "malformed answer from rspamd (rewrite subject without "
			    "a usable subject)");
			goto out;
		}
		memcpy(res->subject, subj, len + 1);
	}
	rc = 0;
out:
	json_object_put(top);
	if (tok != NULL)
		json_tokener_free(tok);
	return rc;
}

void
moat_rspamd_free(struct moat_rspamd *r)
{
	if (r == NULL)
		return;
	if (r->multi != NULL && r->easy != NULL)
		curl_multi_remove_handle(r->multi, r->easy);
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	if (r->multi != NULL)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->headers);
	free(r->reply);
	free(r);
}
