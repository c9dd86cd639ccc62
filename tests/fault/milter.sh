#!/bin/bash
# milter.sh - mxmoat-milter killed (SIGKILL) under load behind a real Postfix with the shipped
# snippet (contrib/postfix/main.cf.milter: milter_default_action = tempfail), then started again.
# 20 sessions of plain and pipelined traffic straight to Postfix (tests/lib/loadgen.py), the
# authentication engine on (nsd serving tests/fault/data/example.org.zone). No message is accepted
# without its checks: every message at the sink carries the milter's Authentication-Results;
# while the milter is gone clients get 4xx, never 5xx; every 250 is at the sink once.
# Ports 19760 (smtpd), 19761 (sink), 19762 (milter), 19763 (nsd).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/fault.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"
milter_pf_prepare fault-milter "$FAULT_PY"

SMTPD=19760 SINK=19761 MPORT=19762 N=19763
PX_DIR=$MILTER_DIR   # the ledgers (tests/lib/fault.sh)
dns_start $N "example.org=$top_srcdir/tests/fault/data/example.org.zone" || tap_bail "nsd did not start"
mstart() {
	milter_start "inet:$MPORT@127.0.0.1" -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$N" \
		-o authserv_id=gw.fault.test -o log_verbose=no || tap_bail "the milter did not start"
}
mstart
mapfile -t snippet < <(milter_pf_snippet $MPORT)
milter_pf_start $SMTPD $SINK "${snippet[@]}"
FAULT_DUMPS=$PF_SINKDIR

fault_load milter --port $SMTPD --sessions 20 --messages 800 --mix plain,pipelined --seconds 150
fault_ledger_wait milter 200 || tap_diag "the load stopped before 200 messages"
kill -KILL "$MILTER_PID"
wait "$MILTER_PID" 2>/dev/null
MILTER_PID=
fault_ledger_wait milter 450 || tap_diag "the load stopped before 450 messages"
mstart
fault_load_wait
fault_outcomes milter
pf_queue_empty_wait 60 || tap_diag "Postfix's queue did not empty in 60 s"
fault_verify milter
fault_counted "milter killed"
tap_ok "while it was gone: 4xx ($O_4xx), never 5xx, no client left without a reply" \
	test "$O_4xx" -gt 0 -a "$O_5xx" -eq 0 -a "$O_nodot" -eq 0 -a "$O_conn" -eq 0
unchecked=$(grep -L '^Authentication-Results: gw\.fault\.test;' $(pf_delivered_files) | wc -l)
tap_is "no message accepted without its checks (all $(pf_delivered_count) carry the milter's A-R)" "$unchecked" 0
milter_stop
tap_is "the restarted milter exits 0 on SIGTERM" "$MILTER_RC" 0
tap_ok "no sanitizer report in the milter's log" milter_sanitizer_clean
tap_done
