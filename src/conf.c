/*
 * conf.c - load and dump configuration snapshots.
 *
 * The file format is "key = value" lines, '#' or ';' comments, and "include = FILE" (relative to
 * the including file), read with libinih. Every key is typed by the table in conf_table.c; its
 * value is parsed by conf_value.c and checked by conf_check.c's validators. Errors name
 * file:line, the key and what was expected; the first error ends the load and nothing of the
 * half-read configuration is kept. Owns struct moat_conf; hands out references.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conf_int.h"
#include "dkim_sign.h"
#include "dnsbl.h"
#include "sender_login.h"

#define CONF_BUILTIN "(built-in defaults)"
#define CONF_CMDLINE "command line"

/* A file name kept until the load ends (error messages and "first set at" point at it). */
struct conf_name {
	struct conf_name *next;
	char name[];
};

/* State of one load, shared by nested includes. */
struct conf_parse {
	struct moat_conf *conf;
	const char *file; /* current file */
	unsigned line; /* current line in it, counted by conf_reader */
	FILE *fp;
	unsigned depth;
	unsigned *seen_line; /* per key: line it was set at in the file, 0 = not yet */
	const char **seen_file; /* per key: which file */
	struct conf_name **names; /* every file name opened, freed when the load ends */
	bool failed;
	char *err;
	size_t errlen;
};

static pthread_once_t conf_inih_once = PTHREAD_ONCE_INIT;

/* conf_inih_setup - libinih's run-time options, set once: long lines, no continuation lines. */
static void
conf_inih_setup(void)
{
	ini_use_stack = false;
	ini_max_line = MOAT_CONF_LINE_MAX + 3;
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;
}

/* conf_fail - record the first error as "file:line: key: message". */
static void __attribute__((format(printf, 3, 4)))
conf_fail(struct conf_parse *p, const char *key, const char *fmt, ...)
{
	char msg[MOAT_CONF_ERR_MAX];
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		snprintf(p->err, p->errlen, "%s:%u: %s%s%s", p->file, p->line, key ? key : "",
		    key ? ": " : "", msg);
	else
		snprintf(p->err, p->errlen, "%s: %s%s%s", p->file, key ? key : "", key ? ": " : "",
		    msg);
}

/* conf_edit_distance - Levenshtein distance, for "did you mean" on unknown keys. */
static size_t
conf_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65], i, j;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			if (up + 1 < best)
				best = up + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* conf_closest_key - the key nearest to NAME, if it is close enough to be a typo. */
static const char *
conf_closest_key(const char *name)
{
	const char *best = NULL;
	size_t bestd = 4;

	for (size_t i = 0; i < moat_conf_nkeys; i++) {
		size_t d = conf_edit_distance(name, moat_conf_keys[i].name);
		if (d < bestd) {
			bestd = d;
			best = moat_conf_keys[i].name;
		}
	}
	return best;
}

const struct moat_conf_key *
moat_conf_find_key(const char *name)
{
	for (size_t i = 0; i < moat_conf_nkeys; i++)
		if (strcmp(moat_conf_keys[i].name, name) == 0)
			return &moat_conf_keys[i];
	return NULL;
}


static int conf_parse_file(struct conf_parse *p, const char *file);

/* conf_relative - VALUE as a path relative to the directory of FILE (as it is if absolute or if
 * FILE has no directory part). -1 if it does not fit in out. */
static int
conf_relative(const char *file, const char *value, char *out, size_t outlen)
{
	const char *slash = strrchr(file, '/');
	int rc;

	if (value[0] == '/' || slash == NULL)
		rc = snprintf(out, outlen, "%s", value);
	else
		rc = snprintf(out, outlen, "%.*s/%s", (int)(slash - file), file, value);
	return rc < 0 || (size_t)rc >= outlen ? -1 : 0;
}

/* conf_include - "include = FILE": FILE relative to the directory of the including file. */
static int
conf_include(struct conf_parse *p, const char *value)
{
	char path[PATH_MAX];
	struct conf_parse sub = *p;

	if (p->depth + 1 >= MOAT_CONF_INCLUDE_DEPTH) {
		conf_fail(p, "include", "includes nested deeper than %d", MOAT_CONF_INCLUDE_DEPTH);
		return -1;
	}
	if (conf_relative(p->file, value, path, sizeof(path)) < 0) {
		conf_fail(p, "include", "path too long");
		return -1;
	}
	sub.depth = p->depth + 1;
	sub.failed = false;
	if (conf_parse_file(&sub, path) < 0) {
		/* An include that cannot be opened is reported at the include line. */
		if (!sub.failed)
			conf_fail(p, "include", "cannot read '%s': %s", path, strerror(errno));
		p->failed = true;
		return -1;
	}
	return 0;
}

/* conf_handler - libinih callback: one "name = value" line. Returns 1 to go on, 0 to stop. */
static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = user;
	const struct moat_conf_key *key;
	char err[MOAT_CONF_ERR_MAX];
	size_t idx;

	if (section != NULL && section[0] != '\0') {
		conf_fail(p, NULL, "sections ([%s]) are not used: write keys at the top level",
		    section);
		return 0;
	}
	if (strcmp(name, "include") == 0)
		return conf_include(p, value) == 0;
	if ((key = moat_conf_find_key(name)) == NULL) {
		const char *hint = conf_closest_key(name);
		if (hint != NULL)
			conf_fail(p, name, "unknown key (did you mean %s?)", hint);
		else
			conf_fail(p, name, "unknown key");
		return 0;
	}
	idx = (size_t)(key - moat_conf_keys);
	if (p->seen_line[idx] != 0) {
		conf_fail(p, name, "set twice (first at %s:%u)", p->seen_file[idx],
		    p->seen_line[idx]);
		return 0;
	}
	if ((key->scope & MOAT_CK_FILE_RELATIVE) && value[0] != '\0') {
		/* A file named by a key is found next to the file that names it, not in the
		 * daemon's working directory (which is / once detached). */
		char path[PATH_MAX];
		if (conf_relative(p->file, value, path, sizeof(path)) < 0) {
			conf_fail(p, name, "path too long");
			return 0;
		}
		if (moat__conf_set(p->conf, key, path, err, sizeof(err)) < 0) {
			conf_fail(p, name, "%s", err);
			return 0;
		}
	} else if (moat__conf_set(p->conf, key, value, err, sizeof(err)) < 0) {
		conf_fail(p, name, "%s", err);
		return 0;
	}
	p->seen_line[idx] = p->line;
	p->seen_file[idx] = p->file;
	return 1;
}

/* conf_reader - fgets for libinih that counts lines and refuses over-long ones. */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_parse *p = stream;
	size_t len;

	if (p->failed || fgets(str, num, p->fp) == NULL)
		return NULL;
	p->line++;
	len = strlen(str);
	if (len > 0 && str[len - 1] != '\n' && !feof(p->fp)) {
		conf_fail(p, NULL, "line longer than %d bytes", MOAT_CONF_LINE_MAX);
		return NULL;
	}
	return str;
}

/* conf_parse_file - read one file into p->conf. -1 with errno set if it cannot be opened. */
static int
conf_parse_file(struct conf_parse *p, const char *file)
{
	int rc;

	struct conf_name *kept;
	size_t len = strlen(file);

	if ((p->fp = fopen(file, "r")) == NULL)
		return -1;
	if ((kept = malloc(sizeof(*kept) + len + 1)) == NULL) {
		fclose(p->fp);
		errno = ENOMEM;
		return -1;
	}
	memcpy(kept->name, file, len + 1);
	kept->next = *p->names;
	*p->names = kept;
	p->file = kept->name;
	p->line = 0;
	rc = ini_parse_stream(conf_reader, p, conf_handler, p);
	if (ferror(p->fp) && !p->failed)
		conf_fail(p, NULL, "read error: %s", strerror(errno));
	fclose(p->fp);
	if (rc > 0 && !p->failed) {
		p->line = (unsigned)rc;
		conf_fail(p, NULL, "expected 'key = value'");
	}
	return p->failed ? -2 : 0;
}

/* conf_defaults - every key to its default, through the same parser as the file. */
static int
conf_defaults(struct moat_conf *conf, char *err, size_t errlen)
{
	char host[256], msg[MOAT_CONF_ERR_MAX];

	for (size_t i = 0; i < moat_conf_nkeys; i++) {
		const struct moat_conf_key *key = &moat_conf_keys[i];
		const char *def = key->def;

		if (def == NULL) { /* authserv_id: the host name */
			if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
				snprintf(host, sizeof(host), "localhost");
			host[sizeof(host) - 1] = '\0';
			def = host;
		}
		if (moat__conf_set(conf, key, def, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: %s: bad default: %s", CONF_BUILTIN, key->name,
			    msg);
			return -1;
		}
	}
	return 0;
}

/* conf_finish - derived data built once per snapshot. */
static int
conf_finish(struct moat_conf *conf, char *err, size_t errlen)
{
	char msg[MOAT_CONF_ERR_MAX];

	conf->internal_set = moat_cidr_set_parse(conf->internal_networks, msg, sizeof(msg));
	if (conf->internal_set == NULL) {
		snprintf(err, errlen, "%s: internal_networks: %s", conf->source, msg);
		return -1;
	}
	conf->proxy_inbound_set =
	    moat_cidr_set_parse(conf->proxy_inbound_proxy_networks, msg, sizeof(msg));
	if (conf->proxy_inbound_set == NULL) {
		snprintf(err, errlen, "%s: proxy_inbound_proxy_networks: %s", conf->source, msg);
		return -1;
	}
	/* The signing table and its keys load with the snapshot: a bad key fails start-up or
	 * leaves the running snapshot in place on reload (dkim_sign.c). */
	if (moat_signer_load(conf, &conf->signer, err, errlen) < 0)
		return -1;
	conf->dnsbl = moat_dnsbl_parse(conf->dnsbl_sites, msg, sizeof(msg));
	if (conf->dnsbl == NULL && msg[0] != '\0') {
		snprintf(err, errlen, "%s: dnsbl_sites: %s", conf->source, msg);
		return -1;
	}
	/* with the snapshot too: a SIGHUP reloads it, and a bad line keeps the running one */
	if (conf->sender_login_map[0] != '\0' &&
	    (conf->sender_logins =
		    moat_sender_login_map_load(conf->sender_login_map, msg, sizeof(msg))) == NULL) {
		snprintf(err, errlen, "sender_login_map: %s", msg);
		return -1;
	}
	return 0;
}

/* conf_free - release a snapshot whose last reference is gone. */
static void
conf_free(struct moat_conf *conf)
{
	for (size_t i = 0; i < moat_conf_nkeys; i++)
		if (moat_conf_keys[i].type == MOAT_CT_STRING)
			free(*(char **)((char *)conf + moat_conf_keys[i].offset));
	moat_cidr_set_free(conf->internal_set);
	moat_cidr_set_free(conf->proxy_inbound_set);
	moat_signer_free(conf->signer);
	moat_dnsbl_free(conf->dnsbl);
	moat_sender_login_map_free(conf->sender_logins);
	free(conf->source);
	free(conf);
}

/* conf_names_free - the file names kept during a load. */
static void
conf_names_free(struct conf_name *names)
{
	while (names != NULL) {
		struct conf_name *next = names->next;
		free(names);
		names = next;
	}
}

struct moat_conf *
moat_conf_load(const char *file, const struct moat_conf_override *ov, size_t nov, char *err,
    size_t errlen)
{
	struct conf_parse p;
	struct conf_name *names = NULL;
	struct moat_conf *conf;
	char msg[MOAT_CONF_ERR_MAX];

	pthread_once(&conf_inih_once, conf_inih_setup);
	err[0] = '\0';
	if ((conf = calloc(1, sizeof(*conf))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&conf->refs, 1);
	conf->source = strdup(file ? file : CONF_BUILTIN);
	if (conf->source == NULL || conf_defaults(conf, err, errlen) < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "out of memory");
		conf_free(conf);
		return NULL;
	}

	memset(&p, 0, sizeof(p));
	p.conf = conf;
	p.names = &names;
	p.err = err;
	p.errlen = errlen;
	p.seen_line = calloc(moat_conf_nkeys, sizeof(*p.seen_line));
	p.seen_file = calloc(moat_conf_nkeys, sizeof(*p.seen_file));
	if (p.seen_line == NULL || p.seen_file == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (file != NULL) {
		int rc = conf_parse_file(&p, file);
		if (rc == -1) {
			snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
			goto fail;
		}
		if (rc < 0)
			goto fail;
	}
	for (size_t i = 0; i < nov; i++) {
		const struct moat_conf_key *key = moat_conf_find_key(ov[i].key);
		if (key == NULL) {
			const char *hint = conf_closest_key(ov[i].key);
			snprintf(err, errlen, "%s: -o %s: unknown key%s%s%s", CONF_CMDLINE,
			    ov[i].key, hint ? " (did you mean " : "", hint ? hint : "",
			    hint ? "?)" : "");
			goto fail;
		}
		if (moat__conf_set(conf, key, ov[i].value, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: -o %s: %s", CONF_CMDLINE, ov[i].key, msg);
			goto fail;
		}
	}
	if (conf_finish(conf, err, errlen) < 0)
		goto fail;
	free(p.seen_line);
	free(p.seen_file);
	conf_names_free(names);
	return conf;

fail:
	free(p.seen_line);
	free(p.seen_file);
	conf_names_free(names);
	conf_free(conf);
	return NULL;
}

int
moat_conf_parse_override(char *arg, struct moat_conf_override *out)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg)
		return -1;
	*eq = '\0';
	out->key = arg;
	out->value = eq + 1;
	return 0;
}

struct moat_conf *
moat_conf_ref(struct moat_conf *conf)
{
	atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
	return conf;
}

void
moat_conf_unref(struct moat_conf *conf)
{
	if (conf == NULL)
		return;
	if (atomic_fetch_sub_explicit(&conf->refs, 1, memory_order_acq_rel) == 1)
		conf_free(conf);
}


void
moat_conf_dump(const struct moat_conf *conf, unsigned scope, bool only_changed, FILE *out)
{
	struct moat_conf *defaults = NULL;
	char err[MOAT_CONF_ERR_MAX], a[64], b[64];

	if (only_changed)
		defaults = moat_conf_load(NULL, NULL, 0, err, sizeof(err));
	for (size_t i = 0; i < moat_conf_nkeys; i++) {
		const struct moat_conf_key *key = &moat_conf_keys[i];
		const char *value;

		if ((key->scope & scope) == 0)
			continue;
		value = moat__conf_value_text(conf, key, a, sizeof(a));
		if (defaults != NULL &&
		    strcmp(value, moat__conf_value_text(defaults, key, b, sizeof(b))) == 0)
			continue;
		fprintf(out, "%s = %s\n", key->name, value);
	}
	moat_conf_unref(defaults);
}
