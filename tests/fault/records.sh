#!/bin/bash
# records.sh - bad input at volume below the session: the committed corpora of the parsers that
# read what a sender publishes or writes (tests/fuzz/corpus/ spf_record, spf_macro, dmarc_record,
# dkim_verify, arc, from, dkim_sig_tags) served as DNS records by nsd and sent as messages over
# real sockets (tests/lib/loadgen.py records: one domain of its own per input), 20 sessions at
# once, round after round for 30 s, with auth on and SPF fails refused, while mixed load runs
# beside them. Every transaction gets a reply (none cut, none refused), every 250 is at the
# backend once and nothing refused is, the records really reached SPF, DKIM and DMARC (their
# errors and failures are in the verdicts, SPF fails refused at MAIL), no crash, no sanitizer
# report, no leak, a normal client still served, the descriptors back where they were (counted
# once a first message has started the resolver). Ports 19780-19782.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/fault.sh"
fault_require records
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || tap_skip_all "nsd not installed"

FAULT_PORT=19780 S=19781 N=19782
C=$top_srcdir/tests/fuzz/corpus
CORPORA=(--corpus "spf=$C/spf_record" --corpus "macro=$C/spf_macro" --corpus "dmarc=$C/dmarc_record"
	--corpus "dkim=$C/dkim_verify" --corpus "arc=$C/arc" --corpus "from=$C/from" --corpus "sig=$C/dkim_sig_tags")
cleanup() {
	dns_stop
	px_cleanup
}
trap cleanup EXIT
fault_init
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" records "${CORPORA[@]}" --zone "$PX_DIR/test.zone" ||
	tap_bail "the corpora's zone was not written"
dns_start $N "test=$PX_DIR/test.zone" "example.org=$top_srcdir/tests/fault/data/example.org.zone" ||
	tap_bail "nsd did not start"
px_sink_start $S || tap_bail "smtp-sink did not start"
fault_proxy $FAULT_PORT 127.0.0.1:$S -o auth_inbound=yes -o "dns_resolver=127.0.0.1@$N" -o dns_timeout=2s \
	-o spf_fail_action=reject
# the resolver's thread, its event loop and sockets start with the first query: count after one
fault_serving "before the records"
fds0=$(fault_fds)

fault_load beside --port $FAULT_PORT --sessions 20 --messages 100000 --seconds 30
"$FAULT_PY" "$top_srcdir/tests/lib/loadgen.py" records "${CORPORA[@]}" --port $FAULT_PORT --run records \
	--ledger "$PX_DIR/records.ledger" --seconds 30 >"$PX_DIR/records.out" 2>&1
out=$(tail -n 1 "$PX_DIR/records.out")
tap_like "every input replayed, every transaction answered ($out)" "$out" \
	'^inputs=[1-9][0-9]* rounds=[1-9][0-9]* sent=[1-9][0-9]* ok=[0-9]* reply=[0-9]* nodot=0 conn=0 refused=0$'
inputs=$(sed -n 's/^inputs=\([0-9]*\) rounds=\([0-9]*\) sent=\([0-9]*\).*/\1 \2 \3/p' <<<"$out")
read -r n_in n_rounds n_sent <<<"$inputs"
tap_is "one transaction per input and round" "${n_sent:-?}" "$((${n_in:-0} * ${n_rounds:-0}))"
fault_outcomes records
tap_ok "some inputs were accepted and some refused ($O_ok 250, $O_4xx 4xx, $O_5xx 5xx)" \
	test "$O_ok" -gt 0 -a "$O_5xx" -gt 0
fault_load_wait
fault_verify beside records
fault_counted "mixed load and the records beside it"

# the served records reached the parsers: their errors and failures are in the verdicts
for result in spf=permerror dkim=permerror dkim=fail dmarc=fail arc=fail; do
	n=$(grep -c "auth verdict=.*ar=\".*$result" "$PX_DIR/proxy.log")
	tap_ok "$result in $n verdicts" test "$n" -gt 0
done
n=$(grep -c '^records-.* reply MAIL-550' "$PX_DIR/records.ledger")
tap_ok "SPF fails refused at MAIL ($n)" test "$n" -gt 0

tap_ok "the proxy still runs" kill -0 "$PX_PID"
fault_serving "after the records"
# unbound keeps a TCP connection to the server (answers too big for UDP) for 60 s of idleness
fds=$(fault_fds_settle "$fds0" 90)
tap_ok "descriptors back to $fds0 ($fds)" test "$fds" -le "$fds0"
fault_stop_clean "records"
tap_done
