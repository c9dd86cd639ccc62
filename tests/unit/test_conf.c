/*
 * test_conf.c - configuration loading: every error path with its exact file:line message,
 * defaults, units, includes, overrides and the dump round trip.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

/* write_temp - CONTENT into a new file under DIR; returns its path (static buffer per call). */
static char *
write_temp(const char *dir, const char *name, const char *content)
{
	char *path;
	FILE *fp;

	cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
	cr_assert_not_null(fp = fopen(path, "w"));
	fputs(content, fp);
	fclose(fp);
	return path;
}

static char *
make_dir(void)
{
	char *dir = strdup("/tmp/moat-conf-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	return dir;
}

struct bad_case {
	const char *label;
	const char *content;
	const char *want; /* the message after "PATH:"; "%s" stands for the directory */
};

static const struct bad_case bad_cases[] = {
	{ "a value starting with ';' (\"k = ;x\" would read as empty)", "report_from =;\n",
	    "1: report_from: ';' at the start of a value or after a blank: a configuration file reads "
	    "it as the start of a comment" },
	{ "typo gets a hint", "limit_recipents = 5\n",
	    "1: limit_recipents: unknown key (did you mean limit_recipients?)" },
	{ "unknown key, no near miss", "\n# comment\nfrobnicate_everything = 1\n",
	    "3: frobnicate_everything: unknown key" },
	{ "not a number", "limit_recipients = ten\n",
	    "1: limit_recipients: 'ten': expected a whole number" },
	{ "negative number", "limit_recipients = -1\n",
	    "1: limit_recipients: '-1': expected a whole number" },
	{ "below minimum", "limit_recipients = 0\n",
	    "1: limit_recipients: '0' is out of range (1 to 100000)" },
	{ "above maximum", "limit_line_length = 70000\n",
	    "1: limit_line_length: '70000' is out of range (512 to 65536)" },
	{ "bad size suffix", "limit_message_size = 10x\n",
	    "1: limit_message_size: '10x': expected a size such as 512k, 50m or 1g" },
	{ "size overflow", "limit_message_size = 99999999999999999999\n",
	    "1: limit_message_size: '99999999999999999999': expected a size such as 512k, 50m or 1g" },
	{ "size past max", "limit_message_size = 3g\n",
	    "1: limit_message_size: '3g' is out of range (1k to 2g)" },
	{ "bad time", "dns_timeout = 5 minutes\n",
	    "1: dns_timeout: '5 minutes': expected a time such as 500ms, 30s, 5m or 1h" },
	{ "time below minimum", "dns_timeout = 10ms\n",
	    "1: dns_timeout: '10ms' is out of range (100ms to 1m)" },
	{ "bad bool", "log_verbose = maybe\n", "1: log_verbose: 'maybe' is not yes or no" },
	{ "bad enum", "log_target = file\n",
	    "1: log_target: 'file' is not one of auto|syslog|stderr" },
	{ "listen without port", "proxy_listen = 127.0.0.1\n",
	    "1: proxy_listen: '127.0.0.1' is not host:port ([addr]:port for IPv6)" },
	{ "listen bad item in list", "proxy_listen = 127.0.0.1:25, [::1]:99999\n",
	    "1: proxy_listen: '[::1]:99999' is not host:port ([addr]:port for IPv6)" },
	{ "backend relative unix path", "proxy_backend = unix:relative\n",
	    "1: proxy_backend: 'unix:relative': expected unix:/absolute/path (at most 107 bytes)" },
	{ "resolver by name", "dns_resolver = dns.example:53\n",
	    "1: dns_resolver: 'dns.example:53' is not address[@port] (an IP address, not a name)" },
	{ "resolver bad port", "dns_resolver = 127.0.0.1@0\n",
	    "1: dns_resolver: '127.0.0.1@0' is not address[@port] (an IP address, not a name)" },
	{ "cidr prefix too long", "internal_networks = 10.0.0.0/8, 192.0.2.0/33\n",
	    "1: internal_networks: not an address or address/prefix: '192.0.2.0/33'" },
	{ "milter socket scheme", "milter_socket = tcp:25\n",
	    "1: milter_socket: 'tcp:25': expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path" },
	{ "authserv-id with a space", "authserv_id = mx example\n",
	    "1: authserv_id: 'mx example' is not a host name (letters, digits, '-', '.')" },
	{ "set twice", "limit_recipients = 5\n\nlimit_recipients = 6\n",
	    "3: limit_recipients: set twice (first at %s/main.conf:1)" },
	{ "line without =", "limit_recipients = 5\nlimit_recipients\n",
	    "2: expected 'key = value'" },
	{ "sections are refused", "[proxy]\nproxy_listen = 127.0.0.1:25\n",
	    "2: sections ([proxy]) are not used: write keys at the top level" },
	{ "missing include", "limit_errors = 5\ninclude = missing.conf\n",
	    "2: include: cannot read '%s/missing.conf': No such file or directory" },
};

/* check_bad_file - one pass per row of bad_cases. */
static void
check_bad_file(const struct bad_case *c)
{
	char err[MOAT_CONF_ERR_MAX], want[1024], *dir = make_dir();
	char *path = write_temp(dir, "main.conf", c->content);
	struct moat_conf *conf = moat_conf_load(path, NULL, 0, err, sizeof(err));
	int n;

	cr_assert_null(conf, "%s: loaded although it should fail", c->label);
	const char *mark = strstr(c->want, "%s");

	n = snprintf(want, sizeof(want), "%s:", path);
	if (mark == NULL)
		snprintf(want + n, sizeof(want) - (size_t)n, "%s", c->want);
	else
		snprintf(want + n, sizeof(want) - (size_t)n, "%.*s%s%s", (int)(mark - c->want),
		    c->want, dir, mark + 2);
	cr_assert_str_eq(err, want, "%s", c->label);
	free(path);
	free(dir);
}

Test(conf, bad_file)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		check_bad_file(&bad_cases[i]);
}

Test(conf, line_too_long_names_the_line)
{
	char err[MOAT_CONF_ERR_MAX], want[600], *dir = make_dir();
	char *content = malloc(6000), *path;
	size_t n = (size_t)sprintf(content, "limit_errors = 5\ninternal_networks = ");

	memset(content + n, 'x', 5000);
	strcpy(content + n + 5000, "\n");
	path = write_temp(dir, "long.conf", content);
	cr_assert_null(moat_conf_load(path, NULL, 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: line longer than %d bytes", path, MOAT_CONF_LINE_MAX);
	cr_assert_str_eq(err, want);
	free(content);
	free(path);
	free(dir);
}

Test(conf, error_inside_include_names_the_included_file)
{
	char err[MOAT_CONF_ERR_MAX], want[600], *dir = make_dir();
	char *inc = write_temp(dir, "limits.conf", "limit_recipients = 50\nlimit_errors = lots\n");
	char *path = write_temp(dir, "main.conf", "include = limits.conf\n");

	cr_assert_null(moat_conf_load(path, NULL, 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: limit_errors: 'lots': expected a whole number", inc);
	cr_assert_str_eq(err, want);
	free(inc);
	free(path);
	free(dir);
}

Test(conf, unreadable_main_file)
{
	char err[MOAT_CONF_ERR_MAX];

	cr_assert_null(moat_conf_load("/nonexistent/mxmoat.conf", NULL, 0, err, sizeof(err)));
	cr_assert_str_eq(err, "/nonexistent/mxmoat.conf: cannot read: No such file or directory");
}

Test(conf, builtin_defaults)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, NULL, 0, err, sizeof(err));

	cr_assert_not_null(conf, "%s", err);
	cr_assert_str_eq(conf->proxy_listen, "127.0.0.1:10025");
	cr_assert_str_eq(conf->proxy_backend, "127.0.0.1:25");
	cr_assert_str_eq(conf->milter_socket, "inet:8894@127.0.0.1");
	cr_assert_str_eq(conf->dns_resolver, "");
	cr_assert_eq(conf->limit_line_length, 2048);
	cr_assert_eq(conf->limit_recipients, 100);
	cr_assert_eq(conf->limit_message_size, 50ULL * 1024 * 1024);
	cr_assert_eq(conf->dns_timeout, 5000);
	cr_assert_eq(conf->log_target, MOAT_LOG_AUTO);
	cr_assert(conf->trust_authenticated);
	cr_assert_gt(strlen(conf->authserv_id), 0);
	cr_assert_eq(moat_cidr_set_count(conf->internal_set), 0);
	moat_conf_unref(conf);
}

Test(conf, file_units_includes_and_overrides)
{
	char err[MOAT_CONF_ERR_MAX], *dir = make_dir();
	char *inc = write_temp(dir, "nets.conf", "internal_networks = 10.0.0.0/8 2001:db8::/32\n");
	char *path = write_temp(dir, "main.conf",
	    "# mxmoat\nauthserv_id = mx.example.org ; inline comment\n"
	    "limit_message_size = 10m\ndns_timeout = 1500ms\ndrain_timeout = 2m\n"
	    "log_verbose = yes\nlog_target = stderr\ninclude = nets.conf\nlimit_recipients = 10\n");
	struct moat_conf_override ov[] = { { "limit_recipients", "20" },
		{ "proxy_backend", "unix:/run/mta.sock" } };
	struct moat_conf *conf = moat_conf_load(path, ov, 2, err, sizeof(err));
	struct moat_addr a;

	cr_assert_not_null(conf, "%s", err);
	cr_assert_str_eq(conf->authserv_id, "mx.example.org");
	cr_assert_eq(conf->limit_message_size, 10ULL * 1024 * 1024);
	cr_assert_eq(conf->dns_timeout, 1500);
	cr_assert_eq(conf->drain_timeout, 120000);
	cr_assert(conf->log_verbose);
	cr_assert_eq(conf->log_target, MOAT_LOG_STDERR);
	cr_assert_eq(conf->limit_recipients, 20, "an override beats the file");
	cr_assert_str_eq(conf->proxy_backend, "unix:/run/mta.sock");
	cr_assert_eq(moat_cidr_set_count(conf->internal_set), 2);
	cr_assert_eq(moat_addr_parse("10.1.2.3", &a), 0);
	cr_assert(moat_cidr_set_match(conf->internal_set, &a));
	cr_assert_str_eq(conf->source, path);
	moat_conf_unref(conf);
	free(inc);
	free(path);
	free(dir);
}

Test(conf, bad_overrides)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf_override typo[] = { { "proxy_lisen", "127.0.0.1:25" } };
	struct moat_conf_override range[] = { { "limit_recipients", "0" } };
	struct moat_conf_override comment[] = { { "report_org_name", "Example ;Org" } };

	cr_assert_null(moat_conf_load(NULL, typo, 1, err, sizeof(err)));
	cr_assert_str_eq(err,
	    "command line: -o proxy_lisen: unknown key (did you mean proxy_listen?)");
	cr_assert_null(moat_conf_load(NULL, range, 1, err, sizeof(err)));
	cr_assert_str_eq(err,
	    "command line: -o limit_recipients: '0' is out of range (1 to 100000)");
	/* a file could not carry it: "report_org_name = Example ;Org" reads as "Example" */
	cr_assert_null(moat_conf_load(NULL, comment, 1, err, sizeof(err)));
	cr_assert_str_eq(err,
	    "command line: -o report_org_name: ';' at the start of a value or after a blank: a "
	    "configuration file reads it as the start of a comment");
}

Test(conf, parse_override_splits_at_first_equals)
{
	char arg[] = "internal_networks=10.0.0.0/8=x", bad[] = "novalue";
	struct moat_conf_override ov;

	cr_assert_eq(moat_conf_parse_override(arg, &ov), 0);
	cr_assert_str_eq(ov.key, "internal_networks");
	cr_assert_str_eq(ov.value, "10.0.0.0/8=x");
	cr_assert_eq(moat_conf_parse_override(bad, &ov), -1);
}

/* Every key written out by the dump must load back to the same dump. */
Test(conf, dump_round_trip)
{
	char err[MOAT_CONF_ERR_MAX], *dir = make_dir(), *path, *first, *second;
	struct moat_conf_override ov[] = { { "limit_message_size", "1536k" },
		{ "dns_timeout", "250ms" }, { "internal_networks", "192.0.2.0/24" },
		{ "proxy_backend_pass", "xclient" }, { "report_org_name", "Example;Org" } };
	struct moat_conf *a = moat_conf_load(NULL, ov, 5, err, sizeof(err)), *b;
	size_t len1, len2;
	FILE *fp;

	cr_assert_not_null(a, "%s", err);
	fp = open_memstream(&first, &len1);
	moat_conf_dump(a, MOAT_CK_ALL, false, fp);
	fclose(fp);
	path = write_temp(dir, "dump.conf", first);
	b = moat_conf_load(path, NULL, 0, err, sizeof(err));
	cr_assert_not_null(b, "%s", err);
	fp = open_memstream(&second, &len2);
	moat_conf_dump(b, MOAT_CK_ALL, false, fp);
	fclose(fp);
	cr_assert_str_eq(first, second);
	cr_assert(strstr(first, "limit_message_size = 1536k\n") != NULL);
	cr_assert(strstr(first, "dns_timeout = 250ms\n") != NULL);
	cr_assert(strstr(first, "proxy_backend_pass = xclient\n") != NULL);
	cr_assert(
	    strstr(first, "report_org_name = Example;Org\n") != NULL); /* no blank before ';' */
	moat_conf_unref(a);
	moat_conf_unref(b);
	free(first);
	free(second);
	free(path);
	free(dir);
}

Test(conf, dump_only_changed_and_scope)
{
	char err[MOAT_CONF_ERR_MAX], *out;
	struct moat_conf_override ov[] = { { "limit_errors", "7" }, { "proxy_workers", "2" } };
	struct moat_conf *conf = moat_conf_load(NULL, ov, 2, err, sizeof(err));
	size_t len;
	FILE *fp;

	cr_assert_not_null(conf, "%s", err);
	fp = open_memstream(&out, &len);
	moat_conf_dump(conf, MOAT_CK_MILTER, true, fp);
	fclose(fp);
	cr_assert_str_eq(out, "limit_errors = 7\n", "proxy keys are not the milter's");
	free(out);
	moat_conf_unref(conf);
}

Test(conf, every_key_has_doc_and_valid_default)
{
	for (size_t i = 0; i < moat_conf_nkeys; i++) {
		const struct moat_conf_key *k = &moat_conf_keys[i];
		cr_assert(k->doc != NULL && strlen(k->doc) > 10, "%s has no doc line", k->name);
		cr_assert(k->scope != 0, "%s is read by no program", k->name);
		cr_assert_eq(moat_conf_find_key(k->name), k, "%s declared twice", k->name);
	}
}

Test(conf, references_outlive_the_loader)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf = moat_conf_load(NULL, NULL, 0, err, sizeof(err));

	moat_conf_ref(conf);
	moat_conf_unref(conf);
	cr_assert_str_eq(conf->proxy_listen, "127.0.0.1:10025");
	moat_conf_unref(conf);
	moat_conf_unref(NULL);
}
