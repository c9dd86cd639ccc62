/*
 * report_xml.c - one RFC 9990 aggregate report as XML, gzip-compressed into a file (report.h).
 *
 * The element order is that of the schema in RFC 9990 appendix A (doc/dmarc-aggregate-report.xsd
 * is ours, written from it, and the tests validate every report against it). Text is escaped for
 * XML; the file is written under a temporary name and renamed, so a reader never sees half.
 * gzip level 1: a million records' reports take half the CPU of level 6 (bench/report), and
 * repetitive XML compresses well either way.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "report.h"

#define XML_NS "urn:ietf:params:xml:ns:dmarc-2.0"

struct out {
	gzFile gz;
	int failed;
};

static void
put(struct out *o, const char *s)
{
	if (!o->failed && gzputs(o->gz, s) < 0)
		o->failed = 1;
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
putf(struct out *o, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		o->failed = 1;
	else
		put(o, buf);
}

/* text - S escaped for XML character data. */
static void
text(struct out *o, const char *s)
{
	const char *p = s;

	for (; *p; p++) {
		const char *rep = *p == '&' ? "&amp;"
		    : *p == '<'             ? "&lt;"
		    : *p == '>'             ? "&gt;"
		    : *p == '"'             ? "&quot;"
					    : NULL;
		if (rep == NULL && (unsigned char)*p < 0x20 && *p != '\t')
			rep = " "; /* not allowed in XML 1.0 */
		if (rep == NULL)
			continue;
		if (p > s && !o->failed && gzwrite(o->gz, s, (unsigned)(p - s)) <= 0)
			o->failed = 1;
		put(o, rep);
		s = p + 1;
	}
	put(o, s);
}

/* elem - <name>text</name> at INDENT tabs; skipped when OPTIONAL and empty. */
static void
elem(struct out *o, int indent, const char *name, const char *value, int optional)
{
	static const char tabs[] = "\t\t\t\t\t\t";

	if (optional && (value == NULL || value[0] == '\0'))
		return;
	put(o,
	    tabs + sizeof(tabs) - 1 - (size_t)indent); /* no printf per element: a million rows */
	put(o, "<");
	put(o, name);
	put(o, ">");
	text(o, value ? value : "");
	put(o, "</");
	put(o, name);
	put(o, ">\n");
}

/* dkim_result - one RFC 9990 <dkim> element of <auth_results>. */
static void
dkim_result(const char *domain, const char *selector, const char *result, void *arg)
{
	struct out *o = arg;

	put(o, "\t\t\t<dkim>\n");
	elem(o, 4, "domain", domain, 0);
	elem(o, 4, "selector", selector, 0);
	elem(o, 4, "result", result, 0);
	put(o, "\t\t\t</dkim>\n");
}

static void
record(struct out *o, const struct report_row *r)
{
	put(o, "\t<record>\n\t\t<row>\n");
	elem(o, 3, "source_ip", r->f[COL_SOURCE_IP], 0);
	putf(o, "\t\t\t<count>%" PRIu64 "</count>\n", r->count);
	put(o, "\t\t\t<policy_evaluated>\n");
	elem(o, 4, "disposition", r->f[COL_DISPOSITION], 0);
	elem(o, 4, "dkim", r->f[COL_DKIM_ALIGNED], 0);
	elem(o, 4, "spf", r->f[COL_SPF_ALIGNED], 0);
	if (r->f[COL_OVERRIDE][0]) {
		put(o, "\t\t\t\t<reason>\n");
		elem(o, 5, "type", r->f[COL_OVERRIDE], 0);
		elem(o, 5, "comment", r->f[COL_OVERRIDE_COMMENT], 1);
		put(o, "\t\t\t\t</reason>\n");
	}
	put(o, "\t\t\t</policy_evaluated>\n\t\t</row>\n\t\t<identifiers>\n");
	elem(o, 3, "envelope_from", r->f[COL_ENVELOPE_FROM], 1);
	elem(o, 3, "header_from", r->f[COL_HEADER_FROM], 0);
	put(o, "\t\t</identifiers>\n\t\t<auth_results>\n");
	if (report_dkim_each(r->f[COL_DKIM], dkim_result, o) < 0)
		o->failed = 1;
	put(o, "\t\t\t<spf>\n");
	elem(o, 4, "domain", r->f[COL_SPF_DOMAIN], 0);
	elem(o, 4, "scope", r->f[COL_SPF_SCOPE], 1);
	elem(o, 4, "result", r->f[COL_SPF_RESULT], 0);
	put(o, "\t\t\t</spf>\n\t\t</auth_results>\n\t</record>\n");
}

int
report_xml_write(const struct report *rep, const struct report_meta *meta, const char *path,
    char *err, size_t errlen)
{
	char tmp[4096];
	struct out o = { NULL, 0 };
	const struct report_policy *p = &rep->pol;
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);

	if (n < 0 || (size_t)n >= sizeof(tmp) || (o.gz = gzopen(tmp, "wb1")) == NULL) {
		snprintf(err, errlen, "cannot create %s", tmp);
		return -1;
	}
	put(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback xmlns=\"" XML_NS "\">\n");
	put(&o, "\t<version>1.0</version>\n\t<report_metadata>\n");
	elem(&o, 2, "org_name", meta->org_name, 0);
	elem(&o, 2, "email", meta->email, 0);
	elem(&o, 2, "report_id", rep->report_id, 0);
	putf(&o,
	    "\t\t<date_range>\n\t\t\t<begin>%" PRId64 "</begin>\n\t\t\t<end>%" PRId64 "</end>\n"
	    "\t\t</date_range>\n",
	    rep->begin, rep->end);
	elem(&o, 2, "generator", PACKAGE_NAME " " PACKAGE_VERSION, 0);
	put(&o, "\t</report_metadata>\n\t<policy_published>\n");
	elem(&o, 2, "domain", rep->domain, 0);
	elem(&o, 2, "discovery_method", "treewalk", 0);
	elem(&o, 2, "p", p->f[POL_P], 0);
	elem(&o, 2, "sp", p->f[POL_SP], 1);
	elem(&o, 2, "np", p->f[POL_NP], 1);
	elem(&o, 2, "adkim", p->f[POL_ADKIM], 1);
	elem(&o, 2, "aspf", p->f[POL_ASPF], 1);
	elem(&o, 2, "testing", p->f[POL_TESTING], 1);
	elem(&o, 2, "fo", p->f[POL_FO], 1);
	put(&o, "\t</policy_published>\n");
	for (size_t i = 0; i < rep->nrows; i++)
		record(&o, &rep->rows[i]);
	put(&o, "</feedback>\n");
	if (gzclose(o.gz) != Z_OK || o.failed) {
		snprintf(err, errlen, "cannot write %s", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s", tmp, path);
		unlink(tmp);
		return -1;
	}
	return 0;
}
