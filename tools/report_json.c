/*
 * report_json.c - the aggregate reports as one JSON document for scripts (report.h), with json-c.
 *
 * The same data as the XML, in the same names: {"reports": [{"file", "report_metadata",
 * "policy_published", "records": [{"source_ip", "count", "policy_evaluated", "identifiers",
 * "auth_results"}]}]}. Counts are numbers; an element the XML leaves out is left out here too.
 */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

struct report_json {
	json_object *root, *reports;
};

/* add_str - KEY: VALUE into OBJ; skipped when OPTIONAL and empty. */
static void
add_str(json_object *obj, const char *key, const char *value, int optional)
{
	if (optional && (value == NULL || value[0] == '\0'))
		return;
	json_object_object_add(obj, key, json_object_new_string(value ? value : ""));
}

/* dkim_result - one DKIM result appended to the array ARG. */
static void
dkim_result(const char *domain, const char *selector, const char *result, void *arg)
{
	json_object *d = json_object_new_object();

	add_str(d, "domain", domain, 0);
	add_str(d, "selector", selector, 0);
	add_str(d, "result", result, 0);
	json_object_array_add(arg, d);
}

static json_object *
record(const struct report_row *r)
{
	json_object *rec = json_object_new_object(), *pe = json_object_new_object();
	json_object *ids = json_object_new_object(), *ar = json_object_new_object();
	json_object *spf = json_object_new_object(), *dkim = json_object_new_array();

	add_str(rec, "source_ip", r->f[COL_SOURCE_IP], 0);
	json_object_object_add(rec, "count", json_object_new_int64((int64_t)r->count));
	add_str(pe, "disposition", r->f[COL_DISPOSITION], 0);
	add_str(pe, "dkim", r->f[COL_DKIM_ALIGNED], 0);
	add_str(pe, "spf", r->f[COL_SPF_ALIGNED], 0);
	if (r->f[COL_OVERRIDE][0]) {
		json_object *reason = json_object_new_object();
		add_str(reason, "type", r->f[COL_OVERRIDE], 0);
		add_str(reason, "comment", r->f[COL_OVERRIDE_COMMENT], 1);
		json_object_object_add(pe, "reason", reason);
	}
	json_object_object_add(rec, "policy_evaluated", pe);
	add_str(ids, "envelope_from", r->f[COL_ENVELOPE_FROM], 1);
	add_str(ids, "header_from", r->f[COL_HEADER_FROM], 0);
	json_object_object_add(rec, "identifiers", ids);
	json_object_object_add(ar, "dkim", dkim);
	(void)report_dkim_each(r->f[COL_DKIM], dkim_result, dkim);
	add_str(spf, "domain", r->f[COL_SPF_DOMAIN], 0);
	add_str(spf, "scope", r->f[COL_SPF_SCOPE], 1);
	add_str(spf, "result", r->f[COL_SPF_RESULT], 0);
	json_object_object_add(ar, "spf", spf);
	json_object_object_add(rec, "auth_results", ar);
	return rec;
}

struct report_json *
report_json_begin(void)
{
	struct report_json *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->root = json_object_new_object();
	j->reports = json_object_new_array();
	json_object_object_add(j->root, "reports", j->reports);
	return j;
}

int
report_json_add(struct report_json *j, const struct report *rep, const struct report_meta *meta)
{
	static const char *const pol_names[POL_COUNT] = { "p", "sp", "np", "adkim", "aspf",
		"testing", "psd", "rua", "ruf", "fo" };
	json_object *r = json_object_new_object(), *md = json_object_new_object();
	json_object *dr = json_object_new_object(), *pp = json_object_new_object();
	json_object *recs = json_object_new_array();
	char file[1024];

	if (report_filename(rep, meta, file, sizeof(file)) < 0)
		file[0] = '\0';
	add_str(r, "file", file, 0);
	add_str(md, "org_name", meta->org_name, 0);
	add_str(md, "email", meta->email, 0);
	add_str(md, "report_id", rep->report_id, 0);
	json_object_object_add(dr, "begin", json_object_new_int64(rep->begin));
	json_object_object_add(dr, "end", json_object_new_int64(rep->end));
	json_object_object_add(md, "date_range", dr);
	json_object_object_add(r, "report_metadata", md);
	add_str(pp, "domain", rep->domain, 0);
	for (int i = 0; i < POL_COUNT; i++)
		add_str(pp, pol_names[i], rep->pol.f[i], i != POL_P);
	json_object_object_add(r, "policy_published", pp);
	json_object_object_add(r, "messages", json_object_new_int64((int64_t)rep->messages));
	for (size_t i = 0; i < rep->nrows; i++)
		json_object_array_add(recs, record(&rep->rows[i]));
	json_object_object_add(r, "records", recs);
	return json_object_array_add(j->reports, r);
}

int
report_json_end(struct report_json *j, FILE *out)
{
	int rc = 0;

	if (j == NULL)
		return -1;
	if (out != NULL &&
	    fprintf(out, "%s\n",
		json_object_to_json_string_ext(j->root,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		rc = -1;
	json_object_put(j->root);
	free(j);
	return rc;
}
