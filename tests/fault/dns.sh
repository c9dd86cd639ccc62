#!/bin/bash
# dns.sh - the DNS server the authentication engine asks (auth_inbound = yes: every inbound message
# is held until SPF, DKIM and DMARC are decided) stopped, then answering SERVFAIL, under load
# (tests/lib/fault.sh: 20 sessions of mixed traffic; tests/fault/data/example.org.zone, TTL 0).
# A DNS failure is never a bounce: every message not given 250 got a 4xx (DMARC temperror, the
# default dmarc_temperror_action = tempfail), every 250 is at the backend once, and mail flows
# again when the server is back; answers that take up to 400 ms (a forwarder holding each query)
# slow the mail down and change nothing else. Ports 19730-19733.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require dns
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"

FAULT_PORT=19730 S=19731 N=19732 D=19733
DELAY_PID=
ZONE=$top_srcdir/tests/fault/data/example.org.zone
cleanup() {
	[ -n "$DELAY_PID" ] && proc_stop "$DELAY_PID"
	dns_stop
	px_cleanup
}
trap cleanup EXIT
fault_init
dns_start $N "example.org=$ZONE" || tap_bail "nsd did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$N" -o dns_timeout=500ms

# only4xx LABEL - every message not given 250 got a 4xx: an SPF or DKIM temperror for the From
# domain leaves DMARC open (temperror, 451), never a fail (doc/architecture.md)
only4xx() {
	tap_is "$1: no client left without a reply, no 5xx ($O_ok 250, $O_4xx 4xx, $O_5xx 5xx)" \
		"$O_nodot/$O_conn/$O_5xx" "0/0/0"
}

# recovered LABEL - bounded (60 s): a fresh message is accepted again once the server answers
recovered() {
	local i t0=$SECONDS out
	for i in $(seq 1 60); do
		out=$(px_chat $FAULT_PORT R "S:EHLO check.example\r\n" R "S:MAIL FROM:<a@example.org>\r\n" R \
			"S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R \
			"S:From: <a@example.org>\r\nSubject: recovered\r\n\r\nbody\r\n.\r\n" R "S:QUIT\r\n" A)
		[[ $out =~ $'<- 250 2.0.0 Ok' ]] && break
		sleep 1
	done
	tap_like "$1: mail is accepted again once the server answers (after $((SECONDS - t0)) s)" "$out" $'<- 250 2.0.0 Ok'
}

# --- the server stopped at 200 messages, back at 500 ---
fault_load stopped --port $FAULT_PORT --sessions 20 --messages 800 --seconds 150
fault_ledger_wait stopped 200 || tap_diag "the load stopped before 200 messages"
dns_stop
fault_ledger_wait stopped 500 || tap_diag "the load stopped before 500 messages"
dns_start $N "example.org=$ZONE" || tap_bail "nsd did not come back"
fault_load_wait
fault_outcomes stopped
fault_verify stopped
fault_counted "DNS server stopped"
only4xx "DNS server stopped"
recovered "DNS server back"
passed=$(cat "$PX_DIR"/dump/* | grep -A 6 '^Authentication-Results:' | grep -c 'dmarc=pass')
tap_ok "the inbound messages delivered carry the engine's verdict ($passed with dmarc=pass)" test "$passed" -gt 0

# --- SERVFAIL (the zone configured without data) at 200 messages, served again at 500 ---
fault_load servfail --port $FAULT_PORT --sessions 20 --messages 800 --seconds 150
fault_ledger_wait servfail 200 || tap_diag "the load stopped before 200 messages"
dns_stop
dns_start $N "example.org=" || tap_bail "nsd (SERVFAIL) did not start"
fault_ledger_wait servfail 500 || tap_diag "the load stopped before 500 messages"
dns_stop
dns_start $N "example.org=$ZONE" || tap_bail "nsd did not come back"
fault_load_wait
fault_outcomes servfail
fault_verify servfail
fault_counted "DNS SERVFAIL"
only4xx "DNS SERVFAIL"
recovered "DNS answering again"
fault_serving "DNS back"

# --- a slow path to the server: every query held 0-400 ms (loadgen.py dnsdelay), dns_timeout 2 s ---
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" dnsdelay --port $D --upstream $N --delay-ms 400 \
	>"$PX_DIR/delay.out" 2>&1 &
DELAY_PID=$!
px_wait_log listening 1 "$PX_DIR/delay.out" || tap_bail "the DNS delayer did not start"
px_stop
fault_proxy $FAULT_PORT 127.0.0.1:$S -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$D" -o dns_timeout=2s
fault_load slowdns --port $FAULT_PORT --sessions 20 --messages 400 --seconds 150
fault_load_wait
fault_outcomes slowdns
fault_verify slowdns
fault_counted "DNS answers after 0-400 ms"
only4xx "DNS answers after 0-400 ms"
fault_stop_clean "DNS faults"
tap_done
