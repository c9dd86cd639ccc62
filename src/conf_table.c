/*
 * conf_table.c - every configuration key, declared once.
 *
 * This table drives parsing and validation (conf.c), --dump-config, and the test that checks
 * doc/mxmoat.conf.5 lists every key with its default. Add a key here and a field in struct moat_conf;
 * nothing else needs to know about it. Defaults are written as they would be in the file.
 */
#include "config.h"

#include <stddef.h>

#include "conf.h"
#include "ratelimit.h"
#include "dkim_sign.h"
#include "dmarc_report.h"
#include "dnsbl.h"

#define OFF(field) offsetof(struct moat_conf, field)

#define K_STR(name, def, check, scope, doc) \
	{ \
#name, MOAT_CT_STRING, OFF(name), def, 0, 0, NULL, check, scope, doc \
	}
#define K_UINT(name, def, min, max, scope, doc) \
	{ \
#name, MOAT_CT_UINT, OFF(name), def, min, max, NULL, NULL, scope, doc \
	}
#define K_SIZE(name, def, min, max, scope, doc) \
	{ \
#name, MOAT_CT_SIZE, OFF(name), def, min, max, NULL, NULL, scope, doc \
	}
#define K_TIME(name, def, min, max, scope, doc) \
	{ \
#name, MOAT_CT_TIME, OFF(name), def, min, max, NULL, NULL, scope, doc \
	}
#define K_BOOL(name, def, scope, doc) \
	{ \
#name, MOAT_CT_BOOL, OFF(name), def, 0, 1, NULL, NULL, scope, doc \
	}
#define K_INT(name, def, min, max, scope, doc) \
	{ \
#name, MOAT_CT_INT, OFF(name), def, (uint64_t)(int64_t)(min), \
		    (uint64_t)(int64_t)(max), NULL, NULL, scope, doc \
	}
#define K_ENUM(name, def, allowed, scope, doc) \
	{ \
#name, MOAT_CT_ENUM, OFF(name), def, 0, 0, allowed, NULL, scope, doc \
	}

#define KB 1024ULL
#define MB (1024ULL * 1024)
#define SEC 1000ULL


const struct moat_conf_key moat_conf_keys[] = {
	/* general */
	K_STR(authserv_id, NULL, moat_conf_check_authserv_id, MOAT_CK_ALL,
	    "authserv-id written in and matched against Authentication-Results (default: the host name)"),
	K_STR(dns_resolver, "", moat_conf_check_resolver, MOAT_CK_ALL,
	    "DNS server to forward to, address[@port]; empty: the servers in /etc/resolv.conf"),
	K_TIME(dns_timeout, "5s", 100, 60 * SEC, MOAT_CK_ALL,
	    "how long one DNS query may take before it is a temporary error"),
	K_STR(dns_dnssec_trust_anchor, "", NULL, MOAT_CK_ALL,
	    "file of DNSSEC trust anchors (unbound's format); empty: no DNSSEC validation"),
	K_ENUM(spf_fail_action, "tag", "tag|reject", MOAT_CK_ALL,
	    "an SPF fail for MAIL FROM: tag (Authentication-Results only) or reject (550 5.7.23)"),
	K_ENUM(spf_temperror_action, "tag", "tag|tempfail", MOAT_CK_ALL,
	    "an SPF temperror for MAIL FROM: tag (Authentication-Results only) or tempfail (451 4.7.24)"),
	K_BOOL(spf_delay_reject, "no", MOAT_CK_ALL,
	    "with spf_fail_action = reject or spf_temperror_action = tempfail, refuse at each RCPT instead of at MAIL (Postfix's smtpd_delay_reject)"),
	K_STR(daemon_user, "nobody", NULL, MOAT_CK_ALL,
	    "user to run as after binding sockets; a daemon started as root refuses to stay root"),
	K_STR(daemon_group, "", NULL, MOAT_CK_ALL,
	    "group to run as (empty: the primary group of daemon_user)"),
	K_ENUM(log_target, "auto", "auto|syslog|stderr", MOAT_CK_ALL,
	    "where log lines go: syslog (facility mail), stderr, or auto (stderr with -f, else syslog)"),
	K_ENUM(log_format, "text", "text|json", MOAT_CK_ALL,
	    "shape of a log line: text (session-id event key=value ...) or json (one object per line, the same fields)"),
	K_BOOL(log_verbose, "no", MOAT_CK_ALL, "also log debug lines"),
	K_STR(metrics_listen, "", moat_conf_check_listen_addr, MOAT_CK_ALL,
	    "address:port ([address]:port for IPv6) serving GET /metrics in the Prometheus text format; empty: off"),
	K_STR(metrics_allow, "127.0.0.0/8, ::1", moat_conf_check_cidr_list, MOAT_CK_ALL,
	    "clients that may scrape metrics_listen (CIDR list); others are closed at accept"),
	K_TIME(drain_timeout, "30s", 0, 3600 * SEC, MOAT_CK_ALL,
	    "on SIGTERM, how long sessions in flight (the native milter engine: messages in progress) may take to finish before they are cut"),

	/* trust rules */
	K_STR(internal_networks, "", moat_conf_check_cidr_list, MOAT_CK_ALL,
	    "client networks whose mail is outbound (signed, not verified); CIDR list"),
	K_STR(submission_listeners, "", NULL, MOAT_CK_ALL,
	    "listeners whose mail is outbound: proxy listen addresses (addr:port) or milter {daemon_name} values"),
	K_BOOL(trust_authenticated, "yes", MOAT_CK_ALL,
	    "mail from SMTP-authenticated senders is outbound"),

	/* limits */
	K_UINT(limit_line_length, "2048", 512, 65536, MOAT_CK_ALL,
	    "longest command line in bytes, CRLF included; DATA lines are relayed whatever their length"),
	K_UINT(limit_recipients, "100", 1, 100000, MOAT_CK_ALL,
	    "recipients per message; one more gets 452 4.5.3"),
	K_SIZE(limit_message_size, "50m", 1 * KB, 2048 * MB, MOAT_CK_ALL,
	    "largest message in bytes (headers and body); larger gets 552 5.3.4"),
	K_SIZE(limit_header_size, "1m", 1 * KB, 64 * MB, MOAT_CK_ALL,
	    "largest header section in bytes; larger gets 552 5.3.4"),
	K_UINT(limit_header_count, "1000", 16, 100000, MOAT_CK_ALL,
	    "most header fields in one message; more gets 552 5.3.4"),
	K_ENUM(header_ambiguous_action, "reject", "reject|tempfail", MOAT_CK_PROXY,
	    "a header section the proxy or mxmoat-check cannot read unambiguously (leading whitespace, a line that is no field, a folded field name, NUL, bare CR or LF): reject (550 5.6.0) or tempfail (451 4.6.0); never relayed"),
	K_UINT(limit_messages_per_session, "100", 1, 100000, MOAT_CK_ALL,
	    "messages in one SMTP session; one more gets 421 4.7.0 and the session is closed"),
	K_UINT(limit_errors, "20", 1, 1000, MOAT_CK_ALL,
	    "rejected commands in one session before 421 and close (Postfix smtpd_hard_error_limit)"),
	K_UINT(limit_junk_commands, "100", 1, 10000, MOAT_CK_ALL,
	    "NOOP, RSET, VRFY, HELP and unknown commands in one session; the one that reaches the "
	    "limit gets 421 and a close (Postfix smtpd_junk_command_limit)"),
	K_UINT(limit_sessions_per_ip, "50", 1, 100000, MOAT_CK_ALL,
	    "concurrent sessions from one client address; one more gets 421 4.7.0"),

	/* proxy */
	K_STR(proxy_listen, "127.0.0.1:10025", moat_conf_check_listen_list, MOAT_CK_PROXY,
	    "plaintext SMTP listeners, comma-separated host:port ([v6]:port for IPv6)"),
	K_STR(proxy_backend, "127.0.0.1:25", moat_conf_check_backend, MOAT_CK_PROXY,
	    "the MTA behind the proxy: host:port or unix:/path"),
	K_ENUM(proxy_backend_pass, "none", "none|xclient|proxy_v1|proxy_v2", MOAT_CK_PROXY,
	    "how the real client is passed to the backend: none, XCLIENT or PROXY protocol v1/v2"),
	K_ENUM(proxy_backend_connect, "mail", "mail|accept", MOAT_CK_PROXY,
	    "when the backend is connected: at the first MAIL, or as soon as a client is accepted"),
	K_STR(proxy_pid_file, "", NULL, MOAT_CK_PROXY, "pid file (empty: none)"),
	K_UINT(proxy_workers, "0", 0, 256, MOAT_CK_PROXY,
	    "event-loop threads accepting connections (0: one per core)"),
	K_UINT(proxy_threadpool_size, "4", 1, 128, MOAT_CK_PROXY,
	    "threads that run blocking policy checks (DNS, big-body crypto, a message's wait for its scanners) for all loops: with a scanner on, at most this many messages are scanned at once"),
	K_TIME(proxy_timeout_command, "5m", 1 * SEC, 3600 * SEC, MOAT_CK_PROXY,
	    "client idle time allowed between commands (RFC 5321 4.5.3.2.7: 5 minutes)"),
	K_TIME(proxy_timeout_data, "3m", 1 * SEC, 3600 * SEC, MOAT_CK_PROXY,
	    "client idle time allowed inside DATA (RFC 5321 4.5.3.2.5: 3 minutes)"),
	K_TIME(proxy_timeout_backend, "10m", 1 * SEC, 3600 * SEC, MOAT_CK_PROXY,
	    "wait for a backend connection or reply (RFC 5321 4.5.3.2.6: 10 minutes after the final dot)"),
	K_TIME(proxy_session_lifetime, "1h", 1 * SEC, 86400 * SEC, MOAT_CK_PROXY,
	    "longest a client session may last, whatever it does; then 421 4.4.2 and close"),
	K_TIME(proxy_greet_pause, "0s", 0, 60 * SEC, MOAT_CK_PROXY,
	    "delay before the 220 banner; a client that talks first gets 554 5.5.1 and is closed (0: no pause)"),
	K_ENUM(proxy_bare_newline, "reject", "reject|normalize", MOAT_CK_PROXY,
	    "bare CR or LF in a command or in DATA: reject (550 5.5.2, transaction dropped) or normalize to CRLF"),
	K_STR(proxy_inbound_proxy_networks, "", moat_conf_check_cidr_list, MOAT_CK_PROXY,
	    "load balancers whose connections start with a PROXY protocol v1/v2 header (required from them, on every listener); CIDR list, empty: none"),
	K_TIME(proxy_inbound_proxy_timeout, "5s", 100, 60 * SEC, MOAT_CK_PROXY,
	    "how long a listed load balancer may take to send its whole PROXY header; then the connection is closed"),
	K_UINT(proxy_min_data_rate, "500", 0, 1000000000, MOAT_CK_PROXY,
	    "least bytes per second a client must send in DATA, measured over proxy_min_data_rate_window; slower gets 421 4.4.2 (0: no minimum)"),
	K_TIME(proxy_min_data_rate_window, "30s", 1 * SEC, 3600 * SEC, MOAT_CK_PROXY,
	    "the window proxy_min_data_rate is measured over (restarted whenever the proxy itself stops reading)"),
	K_SIZE(proxy_hold_memory, "256k", 4 * KB, 64 * MB, MOAT_CK_PROXY,
	    "holding mode: a held message is kept in memory up to this size, past it in proxy_spool_dir"),
	K_STR(proxy_spool_dir, "/var/spool/mxmoat", NULL, MOAT_CK_PROXY,
	    "holding mode: directory of the unlinked temporary files of messages past proxy_hold_memory"),

	K_BOOL(proxy_chunking, "no", MOAT_CK_PROXY,
	    "offer CHUNKING (RFC 3030): BDAT messages are always held until the verdict, then go to the backend with DATA"),

	/* TLS (proxy) */
	K_STR(proxy_listen_tls, "", moat_conf_check_listen_list, MOAT_CK_PROXY,
	    "implicit-TLS listeners (RFC 8314, port 465 style), comma-separated host:port; needs tls_cert_file"),
	K_STR(proxy_submission_listen, "", moat_conf_check_listen_list, MOAT_CK_PROXY,
	    "submission listeners (port 587 style), comma-separated host:port: STARTTLS, then AUTH relayed to the backend before MAIL; needs tls_cert_file"),
	K_BOOL(proxy_require_tls, "no", MOAT_CK_PROXY,
	    "on plaintext listeners, MAIL, RCPT and DATA before STARTTLS get 530 5.7.0"),
	K_STR(tls_cert_file, "", NULL, MOAT_CK_PROXY,
	    "certificate chain files (PEM, leaf first), comma-separated, paired in order with tls_key_file; empty: no TLS offered"),
	K_STR(tls_key_file, "", NULL, MOAT_CK_PROXY,
	    "private key files (PEM), comma-separated, one per tls_cert_file entry; refused if group- or world-readable"),
	K_STR(tls_sni_map, "", NULL, MOAT_CK_PROXY,
	    "extra certificate sets chosen by SNI: comma-separated name=certfile:keyfile (a name may repeat for RSA and ECDSA; *.domain matches one label)"),
	K_ENUM(tls_protocols_min, "TLSv1.2", "TLSv1.2|TLSv1.3", MOAT_CK_PROXY,
	    "lowest TLS version accepted (TLS 1.3 is always preferred)"),
	K_STR(tls_ciphers,
	    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
	    NULL, MOAT_CK_PROXY,
	    "TLS 1.2 cipher list (OpenSSL syntax), server preference; a list that selects a suite without ECDHE is refused"),
	K_STR(tls_groups, "X25519:P-256", NULL, MOAT_CK_PROXY,
	    "key-exchange groups, colon-separated, in preference order"),
	K_TIME(tls_ticket_rotation, "1h", 0, 24ULL * 3600 * SEC, MOAT_CK_PROXY,
	    "session-ticket keys are replaced this often and a ticket lives at most twice as long; 0: no tickets"),
	K_TIME(tls_handshake_timeout, "10s", 1 * SEC, 300 * SEC, MOAT_CK_PROXY,
	    "a TLS handshake not finished in this time closes the session"),
	K_BOOL(tls_request_client_cert, "no", MOAT_CK_PROXY,
	    "ask SMTP clients for a certificate; any is accepted and its SHA-256 fingerprint reaches the policy, the log and the proxy's Received field"),
	K_STR(tls_client_ca_file, "", NULL, MOAT_CK_PROXY,
	    "CA certificates (PEM) named to clients when tls_request_client_cert is on, and against which their certificate is verified"),
	K_ENUM(tls_starttls_pipelined, "discard", "discard|close", MOAT_CK_PROXY,
	    "plaintext sent after the STARTTLS line, before the handshake: discarded unread, or the session closed"),
	K_ENUM(tls_backend, "none", "none|starttls|required", MOAT_CK_PROXY,
	    "STARTTLS towards proxy_backend, certificate verified: none; starttls (plaintext only when the MTA offers no STARTTLS or refuses it, and logged); required (then 451 4.7.4). A failed handshake is 451 4.7.5 in both modes, never a plaintext retry"),
	K_STR(tls_backend_ca_file, "", NULL, MOAT_CK_PROXY,
	    "CA certificates (PEM) the backend's certificate is verified against; empty: the system's default CAs"),
	K_STR(tls_backend_verify_name, "", NULL, MOAT_CK_PROXY,
	    "host name the backend's certificate must match (also sent as SNI); empty: the host part of proxy_backend"),

	/* rate limits (ratelimit.c) */
	K_ENUM(ratelimit_store, "memory", "memory|redis", MOAT_CK_ALL,
	    "where rate-limit buckets live: memory (this daemon) or redis (shared by every instance using the same server)"),
	K_STR(ratelimit_redis, "127.0.0.1:6379", moat_conf_check_hostport, MOAT_CK_ALL,
	    "the Redis server (host:port) when ratelimit_store is redis"),
	K_STR(ratelimit_redis_prefix, "mxmoat:rl:", NULL, MOAT_CK_ALL,
	    "prefix of every Redis key the limiter writes"),
	K_TIME(ratelimit_redis_timeout, "200ms", 10, 10 * SEC, MOAT_CK_ALL,
	    "how long connecting to Redis or one Redis call may take before Redis counts as unreachable"),
	K_ENUM(ratelimit_redis_failure, "open", "open|closed", MOAT_CK_ALL,
	    "Redis unreachable: open (this daemon's memory enforces the limits, one log line per interval) or closed (421 at connect, 451 4.3.0 at MAIL/RCPT)"),
	K_ENUM(ratelimit_action, "enforce", "enforce|log", MOAT_CK_ALL,
	    "what a limit without its own action does when exceeded: enforce (421 at connect, 451 4.7.1 at MAIL/RCPT) or log only"),
	K_STR(ratelimit_conn_per_ip, "60/60s", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "connections per client address, COUNT/PERIOD[ log|enforce] (COUNT at once, refilled over PERIOD); empty: off"),
	K_STR(ratelimit_conn_per_net, "300/60s", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "connections per client network (ratelimit_net_prefix_v4/_v6); empty: off"),
	K_STR(ratelimit_msg_per_ip, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "messages (MAIL commands) per client address; empty: off"),
	K_STR(ratelimit_rcpt_per_ip, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "recipients (RCPT commands) per client address; empty: off"),
	K_STR(ratelimit_msg_per_sender, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "messages per envelope sender (MAIL FROM, case-folded; the null sender counts as one sender); empty: off"),
	K_STR(ratelimit_rcpt_per_sender, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "recipients per envelope sender; empty: off"),
	K_STR(ratelimit_msg_per_user, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "messages per SMTP-authenticated user; empty: off"),
	K_STR(ratelimit_rcpt_per_user, "", moat_conf_check_ratelimit, MOAT_CK_ALL,
	    "recipients per SMTP-authenticated user; empty: off"),
	K_STR(ratelimit_tls_per_ip, "60/60s", moat_conf_check_ratelimit, MOAT_CK_PROXY,
	    "TLS handshakes (STARTTLS or implicit TLS) per client address; empty: off"),
	K_STR(ratelimit_auth_fail_per_ip, "10/1h", moat_conf_check_ratelimit, MOAT_CK_PROXY,
	    "failed AUTH (the backend's 535) per client address, across sessions; once used up AUTH gets 421 4.7.0 and the connection is closed; empty: off"),
	K_STR(ratelimit_auth_fail_per_user, "30/1h", moat_conf_check_ratelimit, MOAT_CK_PROXY,
	    "failed AUTH per login (hashed), from any address; once used up that login gets 421 4.7.0, right password or not; empty: off"),
	K_UINT(ratelimit_net_prefix_v4, "24", 8, 32, MOAT_CK_ALL,
	    "IPv4 prefix length that makes one network for ratelimit_conn_per_net"),
	K_UINT(ratelimit_net_prefix_v6, "64", 16, 128, MOAT_CK_ALL,
	    "IPv6 prefix length that makes one network for ratelimit_conn_per_net"),
	K_STR(ratelimit_allow, "127.0.0.0/8, ::1", moat_conf_check_cidr_list, MOAT_CK_ALL,
	    "client networks no rate limit applies to; CIDR list"),
	K_STR(ratelimit_deny, "", moat_conf_check_cidr_list, MOAT_CK_ALL,
	    "client networks refused at connect (554 5.7.1); CIDR list"),
	K_UINT(ratelimit_max_entries, "100000", 1024, 100000000, MOAT_CK_ALL,
	    "buckets the embedded store keeps; past it the least recently used is forgotten"),
	K_TIME(ratelimit_log_interval, "60s", 1 * SEC, 3600 * SEC, MOAT_CK_ALL,
	    "a refused key, or an unreachable Redis, is logged at most once per this interval"),

	/* DNS block and allow lists */
	K_STR(dnsbl_sites, "", moat_dnsbl_check, MOAT_CK_ALL,
	    "DNS block and allow lists asked at connect, zone[=FILTER][*WEIGHT] as postscreen_dnsbl_sites; empty: none"),
	K_INT(dnsbl_threshold, "1", -100000, 100000, MOAT_CK_ALL,
	    "a client whose summed weights reach this score gets dnsbl_action"),
	K_ENUM(dnsbl_action, "reject", "reject|tempfail|log", MOAT_CK_ALL,
	    "at dnsbl_threshold: reject (554 5.7.1 naming the zone), tempfail (421 4.7.1), both closing, or log only"),
	K_TIME(dnsbl_timeout, "5s", 100, 60 * SEC, MOAT_CK_ALL,
	    "how long all DNS list queries of one client may take; a list that has not answered by then counts nothing"),
	K_ENUM(iprev_action, "tag", "none|tag|reject", MOAT_CK_ALL,
	    "the client's forward-confirmed reverse DNS (iprev): not looked up, in our Authentication-Results, or also required (550 5.7.25 at MAIL)"),

	/* greylisting (greylist.c), in the rate limiter's store */
	K_ENUM(greylist, "no", "no|all|selective", MOAT_CK_ALL,
	    "greylisting at RCPT of inbound mail (451 4.7.1): no, all clients, or selective (a DNS list score above 0 or no forward-confirmed reverse DNS)"),
	K_TIME(greylist_delay, "5m", 1 * SEC, SEC * 86400, MOAT_CK_ALL,
	    "how long a new (network, sender, recipient) triplet is refused before a retry passes"),
	K_TIME(greylist_retry_window, "4h", 1 * SEC, 7 * SEC * 86400, MOAT_CK_ALL,
	    "how long after greylist_delay a retry still passes; later, the triplet starts over"),
	K_TIME(greylist_pass_ttl, "35d", 1 * SEC, 49 * SEC * 86400, MOAT_CK_ALL,
	    "a triplet that passed lets its client network through for this long after its latest message"),
	K_UINT(greylist_net_prefix_v4, "24", 8, 32, MOAT_CK_ALL,
	    "IPv4 prefix length of the client network in a greylisting triplet"),
	K_UINT(greylist_net_prefix_v6, "64", 16, 128, MOAT_CK_ALL,
	    "IPv6 prefix length of the client network in a greylisting triplet"),
	K_INT(dnsbl_allowlist_threshold, "0", -100000, 0, MOAT_CK_ALL,
	    "a client whose DNS list score is at or below this negative value skips greylisting; 0: off"),

	/* DKIM verification and DMARC */
	K_BOOL(auth_inbound, "yes", MOAT_CK_ALL,
	    "on inbound mail, run SPF, DKIM verification and DMARC, replace our Authentication-Results and apply the dmarc_/spf_ actions"),
	K_UINT(dkim_max_signatures, "5", 1, 50, MOAT_CK_ALL,
	    "DKIM signatures evaluated per message, top-down; the rest are reported as dkim=policy"),
	K_BOOL(dkim_body_length_pass, "no", MOAT_CK_ALL,
	    "a signature whose l= leaves body content unsigned still passes (default: dkim=policy)"),
	K_ENUM(dmarc_reject_action, "reject", "reject|quarantine|tag", MOAT_CK_ALL,
	    "a DMARC fail under p=reject: reject (550 5.7.1), quarantine, or tag (Authentication-Results only)"),
	K_ENUM(dmarc_quarantine_action, "quarantine", "quarantine|tag", MOAT_CK_ALL,
	    "a DMARC fail under p=quarantine: quarantine verdict, or tag (Authentication-Results only)"),
	K_ENUM(dmarc_bad_from_action, "reject", "reject|quarantine|tag", MOAT_CK_ALL,
	    "a message without exactly one From field with exactly one address (dmarc=permerror): reject (550 5.7.1), quarantine or tag"),
	K_ENUM(dmarc_temperror_action, "tempfail", "tempfail|continue", MOAT_CK_ALL,
	    "a DNS error that leaves the DMARC result open (dmarc=temperror): tempfail (451 4.7.1) or continue (A-R only)"),
	K_STR(dmarc_never_reject, "", NULL, MOAT_CK_ALL,
	    "From domains (comma-separated, subdomains included) whose DMARC reject becomes quarantine"),
	K_STR(dmarc_force_reject, "", NULL, MOAT_CK_ALL,
	    "From domains (comma-separated, subdomains included) rejected (550 5.7.1) unless DMARC passes, whatever they publish"),

	/* ARC (arc_verify.c) */
	K_BOOL(arc_verify, "yes", MOAT_CK_ALL,
	    "with auth_inbound, validate the ARC chain (RFC 8617) of inbound mail and write arc= in our Authentication-Results"),
	K_UINT(arc_max_instances, "50", 1, 50, MOAT_CK_ALL,
	    "ARC sets a chain may have; a longer chain is arc=fail (RFC 8617 allows 50)"),
	K_STR(arc_trusted_sealers, "", NULL, MOAT_CK_ALL,
	    "sealer domains (comma-separated, subdomains included) whose ARC-Authentication-Results may override a DMARC fail"),
	K_BOOL(arc_seal, "no", MOAT_CK_ALL,
	    "add our ARC set to outbound mail that carries an ARC chain or our Authentication-Results, with a signing table key"),
	K_STR(arc_seal_domain, "", NULL, MOAT_CK_ALL,
	    "the domain whose signing table row seals (its first key); empty: the From domain's row"),

	/* DMARC reports (dmarc_report.c, tools/mxmoat-report.c) */
	K_ENUM(dmarc_report_store, "none", "none|sqlite|redis", MOAT_CK_ALL,
	    "where every DMARC evaluation is recorded for aggregate reports: none, sqlite (dmarc_report_db, one gateway) or redis (the ratelimit_redis server, shared by every gateway recording there)"),
	K_STR(dmarc_report_db, "/var/lib/mxmoat/dmarc-report.db", NULL, MOAT_CK_ALL,
	    "the SQLite file of dmarc_report_store = sqlite (WAL journal beside it); its directory must be writable by daemon_user"),
	K_STR(dmarc_report_redis_prefix, "mxmoat:dmarc:", NULL, MOAT_CK_ALL,
	    "prefix of the Redis keys of dmarc_report_store = redis (the server and timeout are ratelimit_redis and ratelimit_redis_timeout)"),
	K_BOOL(dmarc_failure_reports, "no", MOAT_CK_ALL,
	    "make DMARC failure reports (RFC 9991) for policies with ruf= as their fo= asks: the header only, recipient addresses redacted; stored in dmarc_report_store (not none) for mxmoat-report --send"),
	K_UINT(dmarc_failure_report_domain_limit, "10", 1, 100000, MOAT_CK_ALL,
	    "failure reports made per policy domain and hour (each gateway counts its own)"),
	K_UINT(dmarc_failure_report_dest_limit, "20", 1, 100000, MOAT_CK_ALL,
	    "failure reports made per ruf= destination address and hour (each gateway counts its own)"),
	K_STR(report_smtp, "", moat_conf_check_scanner, MOAT_CK_ALL,
	    "where mxmoat-report --send submits reports: host:port or unix:/path of an MTA; empty: proxy_backend"),
	K_STR(report_org_name, "", NULL, MOAT_CK_ALL,
	    "org_name written in aggregate reports (empty: authserv_id)"),
	K_STR(report_from, "", NULL, MOAT_CK_ALL,
	    "contact address written in aggregate reports (empty: postmaster@ the authserv_id)"),

	/* milter */
	/* DKIM signing (dkim_sign.c, signtable.c) */
	K_STR(sender_login_map, "", NULL, MOAT_CK_ALL | MOAT_CK_FILE_RELATIVE,
	    "file of 'login domain|address ...' lines: an authenticated session may use only its login's domains and addresses in MAIL FROM and the header From (else 553 5.7.1), relative to the configuration file that sets it; empty: any"),
	K_STR(dkim_signing_table, "", NULL, MOAT_CK_ALL | MOAT_CK_FILE_RELATIVE,
	    "file mapping From domains to selector, algorithm and key file (see SIGNING TABLE), relative to the configuration file that sets it; empty: no signing"),
	K_ENUM(dkim_sign_canonicalization, "relaxed/relaxed",
	    "relaxed/relaxed|relaxed/simple|simple/relaxed|simple/simple", MOAT_CK_ALL,
	    "header/body canonicalization of the signatures made (RFC 6376 3.4)"),
	K_STR(dkim_sign_headers, MOAT_DKIM_SIGN_HEADERS_DEFAULT, moat_conf_check_header_list,
	    MOAT_CK_ALL,
	    "header fields signed when present (comma list; Name-* matches a prefix); From is always signed"),
	K_STR(dkim_oversign_headers, MOAT_DKIM_OVERSIGN_HEADERS_DEFAULT,
	    moat_conf_check_header_list, MOAT_CK_ALL,
	    "header fields listed in h= once more than present, so none can be added after signing"),
	K_TIME(dkim_sign_expire, "0s", 0, 30ULL * SEC * 86400, MOAT_CK_ALL,
	    "signature lifetime written as x= (RFC 6376 3.5); 0: no x="),
	K_ENUM(dkim_sign_failure, "tempfail", "tempfail|unsigned", MOAT_CK_ALL,
	    "a message that should be signed but cannot be: tempfail (451 4.7.0) or pass it on unsigned"),

	/* content scanning (scan.c) */
	K_STR(scan_clamd, "", moat_conf_check_scanner, MOAT_CK_ALL,
	    "clamd to scan every message with (INSTREAM): unix:/path or host:port; empty: off"),
	K_STR(scan_rspamd, "", moat_conf_check_hostport_or_empty, MOAT_CK_ALL,
	    "rspamd's normal worker (host:port) every message is checked by (HTTP /checkv2); empty: off"),
	K_ENUM(scan_virus_action, "reject", "reject|quarantine|tag", MOAT_CK_ALL,
	    "a virus found by clamd: reject (554 5.7.1 naming it), quarantine, or tag (X-Virus-Status field)"),
	K_TIME(scan_timeout, "30s", 100, 600 * SEC, MOAT_CK_ALL,
	    "how long connecting to a scanner, handing it a piece of the message, or waiting for its answer may take"),
	K_ENUM(scan_failure, "tempfail", "tempfail|accept", MOAT_CK_ALL,
	    "a scanner down, too slow or answering nonsense: tempfail (451 4.3.0) or accept unscanned (logged); applies to each scanner"),
	K_BOOL(scan_outbound, "no", MOAT_CK_ALL,
	    "scan outbound mail (internal networks, submission listeners, authenticated senders) too"),

	K_STR(milter_socket, "inet:8894@127.0.0.1", moat_conf_check_milter_socket, MOAT_CK_MILTER,
	    "libmilter socket: inet:PORT@HOST, inet6:PORT@HOST or unix:PATH"),
	K_STR(milter_pid_file, "", NULL, MOAT_CK_MILTER, "pid file (empty: none)"),
	K_STR(milter_socket_mode, "0660", moat_conf_check_file_mode, MOAT_CK_MILTER,
	    "permissions of a unix milter socket, octal"),
	K_STR(milter_socket_owner, "", NULL, MOAT_CK_MILTER,
	    "owner of a unix milter socket, user[:group] (empty: the daemon's own)"),
	K_TIME(milter_timeout, "5m", 1 * SEC, 7200 * SEC, MOAT_CK_MILTER,
	    "how long to wait for the MTA to send or take a milter packet"),
	K_UINT(milter_backlog, "128", 1, 65535, MOAT_CK_MILTER,
	    "listen queue length of the milter socket"),
	K_BOOL(milter_tcp_tuning, "yes", MOAT_CK_MILTER,
	    "set TCP_NODELAY and TCP_QUICKACK on inet milter connections (no 40 ms stall per round)"),
	K_ENUM(milter_engine, "libmilter", "libmilter|native", MOAT_CK_MILTER,
	    "the milter protocol server: libmilter's, or mxmoat's own on libuv loops (no thread hand-off per reply, one write per reply); read at start-up only"),
	K_SIZE(milter_hold_memory, "256k", 4 * KB, 64 * MB, MOAT_CK_MILTER,
	    "with scan_rspamd: the milter's copy of a message for rspamd (asked at end of message) is kept in memory up to this size, past it in milter_spool_dir"),
	K_STR(milter_spool_dir, "/var/spool/mxmoat", NULL, MOAT_CK_MILTER,
	    "with scan_rspamd: directory of the unlinked temporary files of copies past milter_hold_memory"),
};

const size_t moat_conf_nkeys = sizeof(moat_conf_keys) / sizeof(moat_conf_keys[0]);
