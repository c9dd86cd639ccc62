/*
 * sign_message.c - sign one message with the core signer, for the e2e tests and bench/sign.
 *
 *   sign_message -c CONF [-o KEY=VALUE]... [-n COUNT] < message > signed-message
 *
 * Reads the message (LF or CRLF, at most 10 MB), feeds header fields and body to moat_sign_*
 * exactly as the policy core does, and writes the DKIM-Signature fields followed by the message
 * with CRLF line ends; with arc_seal, our ARC set above them (ARC-Seal on top, as the core's
 * header edits place it; "arc-seal: ..." on stderr says what was done). With -n, signs COUNT times and prints on stderr the rate per CPU second
 * ("N signatures/s cpu", the basis `openssl speed` uses by default, steady on a shared machine)
 * and per wall-clock second ("N signatures/s wall").
 * Exit: 0 signed, 1 not signed (no key, no From), 2 signing failed, 3 usage.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dkim_sign.h"

#define MSG_MAX (10 * 1024 * 1024)

/* to_crlf - every line ending as CRLF. */
static char *
to_crlf(const char *in, size_t len, size_t *outlen)
{
	char *out = malloc(2 * len + 3);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	*outlen = o;
	return out;
}

/* sign_once - one pass; the status. Values go to vals; *keep (if not NULL) gets the message
 * object for moat_sign_arc, the caller frees it. */
static enum moat_sign_status
sign_once(const struct moat_signer *sg, const char *msg, size_t len, char **vals, size_t *n,
    char *why, size_t whylen, struct moat_sign **keep)
{
	struct moat_sign *s = moat_sign_begin(sg);
	size_t pos = 0, start;
	enum moat_sign_status st;

	/* Header fields: a line starting with blank continues the field (RFC 5322 2.2.3). */
	while (pos < len) {
		const char *eol;
		if (len - pos >= 2 && msg[pos] == '\r' && msg[pos + 1] == '\n') {
			pos += 2;
			break;
		}
		start = pos;
		for (;;) {
			eol = memmem(msg + pos, len - pos, "\r\n", 2);
			if (eol == NULL) {
				pos = len;
				break;
			}
			pos = (size_t)(eol - msg) + 2;
			if (pos >= len || (msg[pos] != ' ' && msg[pos] != '\t'))
				break;
		}
		moat_sign_header(s, msg + start, (eol ? (size_t)(eol - msg) : len) - start);
	}
	moat_sign_eoh(s);
	/* Body in 8 KB chunks, as the proxy would feed it. */
	for (size_t off = pos; off < len; off += 8192)
		moat_sign_body(s, msg + off, len - off > 8192 ? 8192 : len - off);
	st = moat_sign_end(s, vals, MOAT_SIGN_KEYS_MAX, n, why, whylen);
	if (keep != NULL)
		*keep = s;
	else
		moat_sign_free(s);
	return st;
}

int
main(int argc, char **argv)
{
	struct moat_conf_override ov[32];
	size_t nov = 0, len = 0, clen, n = 0;
	const char *conffile = NULL;
	unsigned long count = 0;
	char err[MOAT_CONF_ERR_MAX], why[512], *raw, *msg, *vals[MOAT_SIGN_KEYS_MAX];
	char *arc[3], arcwhy[320];
	struct moat_conf *conf;
	struct moat_sign *s;
	enum moat_sign_status st;
	int c, arc_rc;

	while ((c = getopt(argc, argv, "c:o:n:")) != -1) {
		if (c == 'c')
			conffile = optarg;
		else if (c == 'o' && nov < 32 && moat_conf_parse_override(optarg, &ov[nov]) == 0)
			nov++;
		else if (c == 'n')
			count = strtoul(optarg, NULL, 10);
		else
			return 3;
	}
	if ((conf = moat_conf_load(conffile, ov, nov, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sign_message: %s\n", err);
		return 3;
	}
	if (conf->signer == NULL) {
		fprintf(stderr, "sign_message: no dkim_signing_table\n");
		return 3;
	}
	raw = malloc(MSG_MAX + 1);
	while (raw != NULL && len <= MSG_MAX) {
		size_t r = fread(raw + len, 1, MSG_MAX + 1 - len, stdin);
		if (r == 0)
			break;
		len += r;
	}
	if (raw == NULL || len > MSG_MAX || (msg = to_crlf(raw, len, &clen)) == NULL) {
		fprintf(stderr, "sign_message: message too large or out of memory\n");
		return 3;
	}
	free(raw);
	if (count > 0) {
		struct timespec a, b, ca, cb;
		double secs, cpu;
		unsigned long sigs = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
		for (unsigned long i = 0; i < count; i++) {
			if (sign_once(conf->signer, msg, clen, vals, &n, why, sizeof(why), NULL) !=
			    MOAT_SIGN_OK) {
				fprintf(stderr, "sign_message: %s\n", why);
				return 2;
			}
			for (size_t k = 0; k < n; k++)
				free(vals[k]);
			sigs += n;
		}
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
		clock_gettime(CLOCK_MONOTONIC, &b);
		secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		cpu = (double)(cb.tv_sec - ca.tv_sec) + (double)(cb.tv_nsec - ca.tv_nsec) / 1e9;
		fprintf(stderr, "%.1f signatures/s cpu\n%.1f signatures/s wall\n",
		    (double)sigs / cpu, (double)sigs / secs);
	}
	st = sign_once(conf->signer, msg, clen, vals, &n, why, sizeof(why), &s);
	arc_rc = moat_sign_arc(s, arc, arcwhy, sizeof(arcwhy));
	moat_sign_free(s);
	if (conf->arc_seal)
		fprintf(stderr, "arc-seal: %s: %s\n",
		    arc_rc > 0        ? "sealed"
			: arc_rc == 0 ? "skipped"
				      : "failed",
		    arcwhy);
	if (arc_rc > 0)
		printf("ARC-Seal: %s\r\nARC-Message-Signature: %s\r\nARC-Authentication-Results: %s\r\n",
		    arc[2], arc[1], arc[0]);
	for (int i = 0; i < 3; i++)
		free(arc[i]);
	if (st != MOAT_SIGN_OK && arc_rc <= 0) {
		fprintf(stderr, "sign_message: %s: %s\n", moat_sign_status_name(st), why);
		free(msg);
		moat_conf_unref(conf);
		return st == MOAT_SIGN_FAILED ? 2 : 1;
	}
	for (size_t k = 0; k < n; k++) {
		printf("DKIM-Signature: %s\r\n", vals[k]);
		free(vals[k]);
	}
	fwrite(msg, 1, clen, stdout);
	free(msg);
	moat_conf_unref(conf);
	return 0;
}
