/*
 * report_send.c - mailing aggregate reports (mxmoat-report --send, report.h).
 *
 * The destinations are the policy's rua= mailto: URIs (RFC 9990 3, with an optional "!size"
 * limit); one outside the policy domain gets reports only when its domain publishes
 * "<policy-domain>._report._dmarc.<its-domain>" TXT "v=DMARC1" (RFC 9990 3: verifying external
 * destinations). Each report goes as its own message to one destination: a short text part and
 * the gzip-compressed report as an attachment named as --write names the file, submitted with
 * libcurl's SMTP client (it speaks the protocol, dot-stuffs the body and reports the server's
 * reply code) to report_smtp.
 */
#include "config.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "dmarc_failure.h"
#include "dns.h"
#include "report.h"

#define RUA_ADDR_MAX MOAT_DFR_ADDR_MAX
#define SEND_TIMEOUT_S 120L
#define B64_LINE_IN 57 /* bytes per base64 line of 76 characters */

/* same_or_sub - A is B or a subdomain of it (case-insensitive). */
static bool
same_or_sub(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return la >= lb && strcasecmp(a + la - lb, b) == 0 && (la == lb || a[la - lb - 1] == '.');
}

int
report_rua_authorized(struct moat_dns *dns, const char *policy_domain, const char *addr)
{
	const char *dom = strrchr(addr, '@') + 1;
	struct moat_dns_answer ans;
	char name[2 * MOAT_DNS_NAME_MAX];
	int ok = 0;

	/* the policy domain's own, or its parent's or child's: not external */
	if (same_or_sub(dom, policy_domain) || same_or_sub(policy_domain, dom))
		return 1;
	if (snprintf(name, sizeof(name), "%s._report._dmarc.%s", policy_domain, dom) >=
	    (int)sizeof(name))
		return 0;
	switch (moat_dns_query(dns, name, MOAT_DNS_TXT, &ans)) {
	case MOAT_DNS_OK:
		for (size_t i = 0; i < ans.n; i++) {
			const char *t = ans.rr[i].data;
			size_t len = ans.rr[i].len;
			if (len >= 8 && strncmp(t, "v=DMARC1", 8) == 0 &&
			    (len == 8 || t[8] == ';' || t[8] == ' '))
				ok = 1;
		}
		break;
	case MOAT_DNS_TEMPFAIL:
		ok = -1;
		break;
	default:
		break;
	}
	moat_dns_answer_clear(&ans);
	return ok;
}

/* A message built (open_memstream), then read by libcurl. */
struct msg {
	char *p;
	size_t len, off;
};

/* msg_base64 - DATA in base64 lines of 76 characters, each ending in CRLF. */
static void
msg_base64(FILE *f, const unsigned char *data, size_t len)
{
	unsigned char line[80];

	for (size_t o = 0; o < len; o += B64_LINE_IN) {
		size_t n = len - o < B64_LINE_IN ? len - o : B64_LINE_IN;
		EVP_EncodeBlock(line, data + o, (int)n);
		fprintf(f, "%s\r\n", (const char *)line);
	}
}

static size_t
msg_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct msg *m = arg;
	size_t n = m->len - m->off;

	if (n > size * nitems)
		n = size * nitems;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return n;
}

/* msg_build - the message to TO carrying the report file GZ named NAME; -1 when out of memory. */
static int
msg_build(struct msg *m, const struct report_sender *s, const struct report *rep, const char *to,
    const unsigned char *gz, size_t gzlen, const char *name)
{
	char date[64], begin[32], end[32];
	time_t now = time(NULL), b = (time_t)rep->begin, e = (time_t)rep->end;
	struct tm tm;
	FILE *f = open_memstream(&m->p, &m->len);

	if (f == NULL)
		return -1;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	strftime(begin, sizeof(begin), "%Y-%m-%d %H:%M:%S", gmtime_r(&b, &tm));
	strftime(end, sizeof(end), "%Y-%m-%d %H:%M:%S", gmtime_r(&e, &tm));
	/* RFC 9990 3: the Subject names the policy domain, the submitter and the report id */
	fprintf(f,
	    "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
	    "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n"
	    "Message-ID: <%s.%" PRId64 ".dmarc@%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"=_mxmoat_%s\"\r\n\r\n"
	    "--=_mxmoat_%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "DMARC aggregate report (RFC 9990) for %s from %s,\r\n"
	    "messages of %s to %s UTC.\r\n\r\n"
	    "--=_mxmoat_%s\r\nContent-Type: application/gzip; name=\"%s\"\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n",
	    s->meta->email, to, date, rep->domain, s->meta->receiver, rep->report_id,
	    rep->report_id, rep->begin, s->meta->receiver, rep->report_id, rep->report_id,
	    rep->domain, s->meta->org_name, begin, end, rep->report_id, name, name);
	msg_base64(f, gz, gzlen);
	fprintf(f, "\r\n--=_mxmoat_%s--\r\n", rep->report_id);
	if (ferror(f)) {
		fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

/* smtp_send - the message M to TO through S->smtp: 0 sent; 1 refused for good (a 5xx reply);
 * -1 may work later; err says why. */
static int
smtp_send(const struct report_sender *s, const char *to, struct msg *m, char *err, size_t errlen)
{
	struct curl_slist *rcpt = NULL;
	char url[512], from[RUA_ADDR_MAX + 2], rcpt_s[RUA_ADDR_MAX + 2], cerr[CURL_ERROR_SIZE] = "";
	bool unix_path = strncmp(s->smtp, "unix:", 5) == 0;
	CURL *c = NULL;
	CURLcode rc;
	long code = 0;
	int status = -1;

	snprintf(url, sizeof(url), "smtp://%s/%s", unix_path ? "localhost" : s->smtp,
	    s->meta->receiver);
	snprintf(from, sizeof(from), "<%s>", s->meta->email);
	snprintf(rcpt_s, sizeof(rcpt_s), "<%s>", to);
	if ((c = curl_easy_init()) == NULL || (rcpt = curl_slist_append(NULL, rcpt_s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (unix_path)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s->smtp + 5);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, msg_read);
	curl_easy_setopt(c, CURLOPT_READDATA, m);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, SEND_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK) {
		status = 0;
	} else {
		/* a 5xx reply will be the same tomorrow; anything else may not be */
		status = code >= 500 && code <= 599 ? 1 : -1;
		snprintf(err, errlen, "smtp %s: %s (reply %ld)", s->smtp,
		    cerr[0] ? cerr : curl_easy_strerror(rc), code);
	}
out:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	return status;
}

/* send_msg - M, built when BUILT is 0 (else out of memory), to TO as smtp_send; frees M. */
static int
send_msg(const struct report_sender *s, const char *to, struct msg *m, int built, char *err,
    size_t errlen)
{
	int status = -1;

	if (built < 0)
		snprintf(err, errlen, "out of memory");
	else
		status = smtp_send(s, to, m, err, errlen);
	free(m->p);
	return status;
}

int
report_send_one(const struct report_sender *s, const struct report *rep, const char *to,
    const unsigned char *gz, size_t gzlen, const char *name, char *err, size_t errlen)
{
	struct msg m = { 0 };

	return send_msg(s, to, &m, msg_build(&m, s, rep, to, gz, gzlen, name), err, errlen);
}

/* failure_build - the failure report REPORT to TO under its own header; -1 when out of memory. */
static int
failure_build(struct msg *m, const struct report_sender *s, const char *policy_domain, long long id,
    const char *to, const char *report)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = open_memstream(&m->p, &m->len);

	if (f == NULL)
		return -1;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	/* RFC 6591 3.1: the report's own header, then the multipart/report stored by the daemon */
	fprintf(f,
	    "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
	    "Subject: DMARC failure report for %s\r\n"
	    "Message-ID: <fr.%lld.%lld@%s>\r\nMIME-Version: 1.0\r\n%s",
	    s->meta->email, to, date, policy_domain, id, (long long)now, s->meta->receiver, report);
	return fclose(f) == 0 ? 0 : -1;
}

int
report_send_failure(const struct report_sender *s, const char *policy_domain, long long id,
    const char *to, const char *report, char *err, size_t errlen)
{
	struct msg m = { 0 };

	return send_msg(s, to, &m, failure_build(&m, s, policy_domain, id, to, report), err,
	    errlen);
}
