#!/bin/bash
# greylist_milter.sh - greylisting through mxmoat-milter behind a real Postfix, the client's
# address given by XCLIENT: the first try and a retry before greylist_delay (2 s) get 451 4.7.1
# from Postfix with the milter's text, a retry after it (awaited by polling, the elapsed time
# asserted) is delivered, the client's network then passes at once with another sender, and a
# client in internal_networks is never greylisted.
# Ports: 16630 (smtpd), 16631 (sink), 16632 (milter).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/greylist.sh"
top_builddir=${top_builddir:-.}

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
milter_pf_prepare greylist-milter

tap_ok "milter starts with greylist=all" milter_start inet:16632@127.0.0.1 -o auth_inbound=no \
	-o greylist=all -o greylist_delay=2s -o internal_networks=192.0.2.30/32
milter_pf_start 16630 16631 "smtpd_milters = inet:127.0.0.1:16632" \
	"milter_default_action = tempfail" "milter_protocol = 6" \
	"smtpd_authorized_xclient_hosts = 127.0.0.0/8" "mynetworks = 0.0.0.0/0"

send() {	# send ADDR FROM - one message from ADDR (XCLIENT) through Postfix
	swaks --server 127.0.0.1:16630 --xclient-addr "$1" --from "$2" --to b@example.net \
		--body "from $1" 2>&1
}
greylisted=$'RCPT TO:<b@example.net>\n<\\*\\* 451 4\\.7\\.1 Greylisted, try again in [12] seconds'
accepted=$'<-  250 2\\.0\\.0 Ok: queued as'

start_ns=$(date +%s%N)
tap_like "first try: 451 4.7.1 with the delay" "$(send 192.0.2.20 a@example.org)" "$greylisted"
tap_like "retry at once: 451 4.7.1" "$(send 192.0.2.20 a@example.org)" "$greylisted"
gl_retry_until_passed "$start_ns" send 192.0.2.20 a@example.org
tap_like "the network then passes at once, another sender" "$(send 192.0.2.99 other@example.com)" \
	"$accepted"
tap_like "a client in internal_networks is never greylisted" "$(send 192.0.2.30 a@example.org)" \
	"$accepted"
tap_ok "three messages relayed" pf_wait_delivered 3 20
tap_ok "the milter logged the first try" milter_log_grep \
	"greylist client=192\\.0\\.2\\.20 result=new wait=2000ms"
tap_ok "no ASan/LSan/UBSan report from the milter" milter_sanitizer_clean
[ "$TAP_FAILED" = 0 ] || { tail -n 30 "$MILTER_LOG"; pf_maillog | tail -n 20; } | sed "s/^/# /"
tap_done
