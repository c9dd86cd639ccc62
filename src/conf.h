/*
 * conf.h - mxmoat's configuration, shared by mxmoat-proxy, mxmoat-milter and the tools.
 *
 * A configuration is loaded into an immutable, reference-counted snapshot (struct moat_conf).
 * Every key is declared once, in the table in conf_table.c: name, type, offset into the snapshot,
 * default, limits and a one-line doc. That table drives parsing, validation, --dump-config and the
 * key list checked against doc/mxmoat.conf.5. A reload builds a new snapshot; sessions in flight keep
 * the one they took a reference to.
 */
#ifndef MOAT_CONF_H
#define MOAT_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cidr.h"

struct moat_signer;
struct moat_sender_login_map;
struct moat_dnsbl;

#define MOAT_CONF_ERR_MAX 512 /* room for one "file:line: key: what is wrong" message */
#define MOAT_CONF_LINE_MAX 4096 /* longest line accepted in a config file */
#define MOAT_CONF_INCLUDE_DEPTH 8 /* include = FILE nesting */

enum moat_conf_type {
	MOAT_CT_STRING, /* char *: free text, optionally checked by a validator */
	MOAT_CT_UINT, /* unsigned: decimal */
	MOAT_CT_SIZE, /* uint64_t: bytes, with optional k/m/g suffix (powers of 1024) */
	MOAT_CT_TIME, /* unsigned: milliseconds, written with ms/s/m/h/d suffix (bare = seconds) */
	MOAT_CT_BOOL, /* bool: yes/no, true/false, on/off, 1/0 */
	MOAT_CT_ENUM, /* int: index into the '|'-separated allowed values */
	MOAT_CT_INT, /* int: decimal with an optional '-'; min and max are int64_t values */
};

/* Which programs read a key; used by --dump-config and the man page. */
#define MOAT_CK_PROXY 0x1
#define MOAT_CK_MILTER 0x2
#define MOAT_CK_ALL (MOAT_CK_PROXY | MOAT_CK_MILTER)
#define MOAT_CK_FILE_RELATIVE 0x4 /* a relative path set in a file is relative to that file */

/* A validator for MOAT_CT_STRING keys: returns 0, or -1 with a message in err. */
typedef int (*moat_conf_check_fn)(const char *value, char *err, size_t errlen);

struct moat_conf_key {
	const char *name;
	enum moat_conf_type type;
	size_t offset; /* into struct moat_conf */
	const char *def; /* default, as it would be written in the file; NULL = dynamic */
	uint64_t min, max; /* numeric types, in the stored unit */
	const char *allowed; /* MOAT_CT_ENUM: "a|b|c" */
	moat_conf_check_fn check; /* MOAT_CT_STRING and MOAT_CT_ENUM: optional */
	unsigned scope; /* MOAT_CK_* */
	const char *doc; /* one line */
};

/* The shape of a log line: key=value text, or one JSON object (log.h). */
enum moat_log_format {
	MOAT_LOG_TEXT = 0,
	MOAT_LOG_JSON = 1,
};

/* auto: stderr when running in the foreground (-f), syslog when detached. */
enum moat_log_target {
	MOAT_LOG_AUTO = 0,
	MOAT_LOG_SYSLOG = 1,
	MOAT_LOG_STDERR = 2
};
/* spf_fail_action / spf_temperror_action: tag only, or reject (fail) / tempfail (temperror). */
enum moat_spf_action {
	MOAT_SPF_ACT_TAG = 0,
	MOAT_SPF_ACT_ENFORCE = 1
};
/* milter_engine: which milter protocol server mxmoat-milter runs */
enum moat_milter_engine {
	MOAT_MILTER_LIBMILTER = 0,
	MOAT_MILTER_NATIVE = 1
};
/* dmarc_reject_action, dmarc_bad_from_action */
enum moat_dmarc_action {
	MOAT_DMARC_ACT_REJECT = 0,
	MOAT_DMARC_ACT_QUARANTINE = 1,
	MOAT_DMARC_ACT_TAG = 2
};
/* dmarc_quarantine_action */
enum moat_dmarc_qaction {
	MOAT_DMARC_QACT_QUARANTINE = 0,
	MOAT_DMARC_QACT_TAG = 1
};
/* dmarc_temperror_action */
enum moat_dmarc_temp {
	MOAT_DMARC_TEMP_TEMPFAIL = 0,
	MOAT_DMARC_TEMP_CONTINUE = 1
};
/* tls_protocols_min */
enum moat_tls_min {
	MOAT_TLS_MIN_12 = 0,
	MOAT_TLS_MIN_13 = 1
};
/* tls_starttls_pipelined: plaintext received after the STARTTLS line is dropped, or the session closed. */
enum moat_tls_pipelined {
	MOAT_TLS_PIPE_DISCARD = 0,
	MOAT_TLS_PIPE_CLOSE = 1
};
/* tls_backend: no TLS to the MTA, STARTTLS when offered, or STARTTLS required (else tempfail). */
enum moat_tls_backend {
	MOAT_TLS_BACKEND_NONE = 0,
	MOAT_TLS_BACKEND_STARTTLS,
	MOAT_TLS_BACKEND_REQUIRED
};
/* header_ambiguous_action: an ambiguous header section is rejected (5xx) or tempfailed (4xx). */
enum moat_hdr_action {
	MOAT_HDR_ACT_REJECT = 0,
	MOAT_HDR_ACT_TEMPFAIL = 1
};
/* proxy_bare_newline */
enum moat_bare_newline {
	MOAT_BARE_REJECT = 0,
	MOAT_BARE_NORMALIZE = 1
};
/* dkim_sign_canonicalization: header/body (RFC 6376 3.4) */
enum moat_dkim_canon {
	MOAT_DKIM_RELAXED_RELAXED = 0,
	MOAT_DKIM_RELAXED_SIMPLE,
	MOAT_DKIM_SIMPLE_RELAXED,
	MOAT_DKIM_SIMPLE_SIMPLE
};
/* dkim_sign_failure: a message that should be signed but cannot be is tempfailed or passed unsigned. */
enum moat_dkim_sign_failure {
	MOAT_DKIM_FAIL_TEMPFAIL = 0,
	MOAT_DKIM_FAIL_UNSIGNED = 1
};
/* scan_virus_action: what a virus found by clamd does */
enum moat_scan_virus {
	MOAT_SCAN_VIRUS_REJECT = 0,
	MOAT_SCAN_VIRUS_QUARANTINE,
	MOAT_SCAN_VIRUS_TAG
};
/* scan_failure: a scanner that is down, too slow or answers nonsense */
enum moat_scan_failure {
	MOAT_SCAN_FAIL_TEMPFAIL = 0,
	MOAT_SCAN_FAIL_ACCEPT = 1
};
enum moat_backend_client {
	MOAT_PASS_NONE = 0,
	MOAT_PASS_XCLIENT,
	MOAT_PASS_PROXY_V1,
	MOAT_PASS_PROXY_V2
};
/* dnsbl_action: what a client whose score reaches dnsbl_threshold gets */
enum moat_dnsbl_action {
	MOAT_DNSBL_REJECT = 0, /* 554 5.7.1 naming the zone, closed */
	MOAT_DNSBL_TEMPFAIL, /* 421 4.7.1, closed */
	MOAT_DNSBL_LOG, /* the log line only */
};

/* iprev_action: the client's forward-confirmed reverse DNS, unused, in our Authentication-Results
 * (and the proxy's Received field), or also required */
enum moat_iprev_action {
	MOAT_IPREV_ACT_NONE = 0,
	MOAT_IPREV_ACT_TAG,
	MOAT_IPREV_ACT_REJECT,
};

/* greylist: which inbound clients are greylisted at RCPT */
enum moat_greylist_mode {
	MOAT_GREYLIST_NO = 0,
	MOAT_GREYLIST_ALL,
	MOAT_GREYLIST_SELECTIVE, /* a DNS list score above 0, or no iprev=pass */
};

/* proxy_backend_connect: at the first MAIL, or at accept */
enum moat_backend_connect {
	MOAT_BCONN_MAIL = 0,
	MOAT_BCONN_ACCEPT = 1
};

struct moat_conf {
	atomic_int refs;
	char *source; /* the file it was read from, or "(built-in defaults)" */

	/* general */
	char *authserv_id;
	char *dns_resolver;
	unsigned dns_timeout; /* ms */
	char *dns_dnssec_trust_anchor; /* file; empty: no DNSSEC validation */
	int spf_fail_action; /* enum moat_spf_action */
	int spf_temperror_action; /* enum moat_spf_action */
	bool spf_delay_reject; /* an SPF refusal at each RCPT, not at MAIL */
	char *daemon_user;
	char *daemon_group;
	int log_target; /* enum moat_log_target */
	int log_format; /* enum moat_log_format */
	bool log_verbose;
	char *metrics_listen; /* "": no metrics endpoint */
	char *metrics_allow; /* CIDR list of the clients that may scrape */
	unsigned drain_timeout; /* ms */

	/* trust rules */
	char *internal_networks;
	char *submission_listeners;
	bool trust_authenticated;

	/* limits */
	unsigned limit_line_length;
	unsigned limit_recipients;
	uint64_t limit_message_size;
	uint64_t limit_header_size;
	unsigned limit_header_count;
	int header_ambiguous_action; /* enum moat_hdr_action */
	unsigned limit_messages_per_session;
	unsigned limit_errors;
	unsigned limit_junk_commands;
	unsigned limit_sessions_per_ip;

	/* proxy */
	char *proxy_listen;
	char *proxy_backend;
	int proxy_backend_pass; /* enum moat_backend_client */
	int proxy_backend_connect; /* enum moat_backend_connect */
	char *proxy_pid_file;
	unsigned proxy_workers;
	unsigned proxy_threadpool_size;
	unsigned proxy_timeout_command; /* ms */
	unsigned proxy_timeout_data; /* ms */
	unsigned proxy_timeout_backend; /* ms */
	unsigned proxy_session_lifetime; /* ms */
	unsigned proxy_greet_pause; /* ms; 0: none */
	int proxy_bare_newline; /* enum moat_bare_newline */
	char *proxy_inbound_proxy_networks; /* CIDR list: peers that must send a PROXY header */
	unsigned proxy_inbound_proxy_timeout; /* ms */
	unsigned proxy_min_data_rate; /* bytes/s in DATA; 0: none */
	unsigned proxy_min_data_rate_window; /* ms */
	/* holding mode (src/hold.c): when the core writes a header that depends on the body */
	uint64_t proxy_hold_memory; /* held in memory up to this, then in a spool file */
	char *proxy_spool_dir;
	bool proxy_chunking; /* offer CHUNKING: BDAT (proxy/bdat.c) */

	/* TLS (proxy/tls*.c; the proxy enforces the listener and timeout keys) */
	char *proxy_listen_tls; /* implicit-TLS listeners (RFC 8314) */
	char *proxy_submission_listen; /* plaintext listeners that require AUTH (inside TLS) */
	bool proxy_require_tls; /* plaintext listeners: 530 5.7.0 before STARTTLS */
	char *tls_cert_file; /* comma list, paired in order with tls_key_file */
	char *tls_key_file;
	char *tls_sni_map; /* "name=cert:key, ..." extra certificate sets chosen by SNI */
	int tls_protocols_min; /* enum moat_tls_min */
	char *tls_ciphers; /* TLS 1.2 list; forward-secret suites only */
	char *tls_groups;
	unsigned tls_ticket_rotation; /* ms; 0: no session tickets */
	unsigned tls_handshake_timeout; /* ms */
	bool tls_request_client_cert;
	char *tls_client_ca_file;
	int tls_starttls_pipelined; /* enum moat_tls_pipelined */
	int tls_backend; /* enum moat_tls_backend */
	char *tls_backend_ca_file;
	char *tls_backend_verify_name;

	/* rate limits (ratelimit.c; "COUNT/PERIOD[ log|enforce]" strings, "" = off) */
	int ratelimit_store; /* enum moat_rl_store (ratelimit.h) */
	char *ratelimit_redis; /* host:port */
	char *ratelimit_redis_prefix;
	unsigned ratelimit_redis_timeout; /* ms */
	int ratelimit_redis_failure; /* enum moat_rl_failure */
	int ratelimit_action; /* enum moat_rl_action: default for limits without their own */
	char *ratelimit_conn_per_ip;
	char *ratelimit_conn_per_net;
	char *ratelimit_msg_per_ip;
	char *ratelimit_rcpt_per_ip;
	char *ratelimit_msg_per_sender;
	char *ratelimit_rcpt_per_sender;
	char *ratelimit_msg_per_user;
	char *ratelimit_rcpt_per_user;
	char *ratelimit_tls_per_ip;
	char *ratelimit_auth_fail_per_ip;
	char *ratelimit_auth_fail_per_user;
	unsigned ratelimit_net_prefix_v4;
	unsigned ratelimit_net_prefix_v6;
	char *ratelimit_allow; /* CIDR list: no limit applies */
	char *ratelimit_deny; /* CIDR list: refused at connect */
	unsigned ratelimit_max_entries;
	unsigned ratelimit_log_interval; /* ms */

	/* DNS block and allow lists (dnsbl.c; the check in checks.c) */
	char *dnsbl_sites; /* postscreen's syntax; "" = off */
	int dnsbl_threshold;
	int dnsbl_action; /* enum moat_dnsbl_action */
	unsigned dnsbl_timeout; /* ms */
	int iprev_action; /* enum moat_iprev_action */

	/* greylisting (greylist.c; the check in checks.c) */
	int greylist; /* enum moat_greylist_mode */
	unsigned greylist_delay; /* ms */
	unsigned greylist_retry_window; /* ms */
	unsigned greylist_pass_ttl; /* ms */
	unsigned greylist_net_prefix_v4;
	unsigned greylist_net_prefix_v6;
	int dnsbl_allowlist_threshold; /* <= this (negative) score: no greylisting; 0: off */

	/* DKIM verification and DMARC (auth.c, dkim_verify.c, dmarc.c) */
	bool auth_inbound; /* run the engine on inbound mail */
	unsigned dkim_max_signatures;
	bool dkim_body_length_pass; /* content after l= still passes */
	int dmarc_reject_action; /* enum moat_dmarc_action */
	int dmarc_quarantine_action; /* enum moat_dmarc_qaction */
	int dmarc_bad_from_action; /* enum moat_dmarc_action */
	int dmarc_temperror_action; /* enum moat_dmarc_temp */
	char *dmarc_never_reject; /* From domains, comma/space separated */
	char *dmarc_force_reject;
	/* ARC (arc_verify.c, auth.c) */
	bool arc_verify; /* validate ARC chains on inbound mail (with auth_inbound) */
	unsigned arc_max_instances; /* 1 to 50 */
	char *arc_trusted_sealers; /* sealer domains, comma/space separated */
	bool arc_seal; /* seal outbound mail (arc_seal.c through dkim_sign.c) */
	char *arc_seal_domain; /* signing table row that seals; "": the From domain's */
	/* DMARC reports (dmarc_report.c records, mxmoat-report writes) */
	int dmarc_report_store; /* enum moat_dmarc_report_store */
	char *dmarc_report_db; /* the SQLite file */
	char *dmarc_report_redis_prefix;
	bool dmarc_failure_reports; /* RFC 9991 failure reports to ruf= */
	unsigned dmarc_failure_report_domain_limit; /* per policy domain and hour */
	unsigned dmarc_failure_report_dest_limit; /* per destination address and hour */
	char *report_smtp; /* host:port or unix:/path; "": proxy_backend */
	char *report_org_name; /* RFC 9990 org_name; "": authserv_id */
	char *report_from; /* RFC 9990 email; "": postmaster@authserv_id */
	/* DKIM signing (dkim_sign.c, signtable.c) */
	char *sender_login_map; /* file; empty: no binding of logins to senders */
	char *dkim_signing_table; /* file; empty: no signing */
	int dkim_sign_canonicalization; /* enum moat_dkim_canon */
	char *dkim_sign_headers; /* comma list; "List-*" style wildcards */
	char *dkim_oversign_headers; /* comma list */
	unsigned dkim_sign_expire; /* ms; 0: no x= */
	int dkim_sign_failure; /* enum moat_dkim_sign_failure */

	/* content scanning (scan.c, scan_clamd.c, scan_rspamd.c) */
	char *scan_clamd; /* unix:PATH or host:port; "" = off */
	char *scan_rspamd; /* host:port of rspamd's normal worker; "" = off */
	int scan_virus_action; /* enum moat_scan_virus */
	unsigned scan_timeout; /* ms */
	int scan_failure; /* enum moat_scan_failure */
	bool scan_outbound; /* scan outbound mail too */

	/* milter */
	char *milter_socket;
	char *milter_pid_file;
	char *milter_socket_mode; /* octal, unix sockets only */
	char *milter_socket_owner; /* user[:group], unix sockets only; "" = unchanged */
	unsigned milter_timeout; /* ms; libmilter's read/write timeout towards the MTA */
	unsigned milter_backlog; /* listen(2) backlog */
	bool milter_tcp_tuning; /* TCP_NODELAY, TCP_QUICKACK on accepted inet sockets */
	int milter_engine; /* enum moat_milter_engine; at start-up only */
	/* the milter's copy of a message for rspamd (src/hold.c), read back at end of message */
	uint64_t milter_hold_memory; /* in memory up to this, then in a spool file */
	char *milter_spool_dir;

	/* derived from the keys above by conf_finish() (conf.c); not keys themselves */
	struct moat_cidr_set *internal_set;
	struct moat_cidr_set *proxy_inbound_set; /* proxy_inbound_proxy_networks */
	struct moat_signer *signer; /* dkim_signing_table loaded, keys and all; NULL: no signing */
	struct moat_sender_login_map *sender_logins; /* sender_login_map loaded; NULL: none */
	struct moat_dnsbl *dnsbl; /* dnsbl_sites parsed; NULL: no list */
};

/* The key table and its length (conf_table.c). */
extern const struct moat_conf_key moat_conf_keys[];
extern const size_t moat_conf_nkeys;

/* A key=value given on the command line with -o; applied after the file, in order. */
struct moat_conf_override {
	const char *key;
	const char *value;
};

/*
 * moat_conf_load - read FILE (NULL: built-in defaults only), then apply the overrides.
 * Returns a snapshot with one reference, or NULL with "file:line: key: what is wrong" in err.
 */
struct moat_conf *moat_conf_load(const char *file, const struct moat_conf_override *ov, size_t nov,
    char *err, size_t errlen);

/* moat_conf_parse_override - split "key=value" in place (arg is modified); -1 if no '='. */
int moat_conf_parse_override(char *arg, struct moat_conf_override *out);

struct moat_conf *moat_conf_ref(struct moat_conf *conf);
void moat_conf_unref(struct moat_conf *conf); /* NULL is a no-op */

/* moat_conf_find_key - the table entry for NAME, or NULL. */
const struct moat_conf_key *moat_conf_find_key(const char *name);

/* moat_conf_dump - write every key of SCOPE as "name = value" (postconf style). */
void moat_conf_dump(const struct moat_conf *conf, unsigned scope, bool only_changed, FILE *out);

/* Validators shared with later modules. */
int moat_conf_check_hostport(const char *value, char *err, size_t errlen);
int moat_conf_check_listen_list(const char *value, char *err, size_t errlen);
int moat_conf_check_backend(const char *value, char *err, size_t errlen);
int moat_conf_check_scanner(const char *value, char *err, size_t errlen);
int moat_conf_check_hostport_or_empty(const char *value, char *err, size_t errlen);
int moat_conf_check_resolver(const char *value, char *err, size_t errlen);
int moat_conf_check_milter_socket(const char *value, char *err, size_t errlen);
int moat_conf_check_cidr_list(const char *value, char *err, size_t errlen);
int moat_conf_check_authserv_id(const char *value, char *err, size_t errlen);
int moat_conf_check_file_mode(const char *value, char *err, size_t errlen);
int moat_conf_check_listen_addr(const char *value, char *err, size_t errlen);

#endif /* MOAT_CONF_H */
