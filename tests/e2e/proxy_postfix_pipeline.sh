#!/bin/bash
# proxy_postfix_pipeline.sh - Postfix's own smtp client delivering through mxmoat-proxy into a
# second Postfix, with pipelining on both legs (RFC 2920): the sending Postfix pipelines MAIL, the
# RCPTs and DATA to the proxy, and the proxy writes each group the core passed to the receiving
# Postfix in one write (its log_verbose line "pipelined=N"). Every message arrives byte-identical
# apart from the fields the three hops add on top; one recipient the receiving Postfix refuses
# gets its 554 inside the group and only that recipient bounces. Ports 12890-12892.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK: Postfix tests skipped"
[ "$(id -u)" = 0 ] || tap_skip_all "postfix -c needs root"

SEND=12890 RECV=12891 P=12892 N=4
# Two instances of the fixture, swapped with pf_save and pf_use.
# group_files - the delivered copies of the test's messages (not the bounce, which quotes one)
group_files() {
	local f
	for f in $(pf_delivered_files); do
		pf_headers "$f" | grep -q '^Subject: group ' && echo "$f"
	done
}
cleanup() { px_cleanup; pf_use S; pf_stop; pf_use R; pf_stop; }
port_lock proxy-postfix-pipeline || tap_skip_all "another run of this test held its ports for 600 s"
trap cleanup EXIT
px_init || tap_bail "no temp dir"

# the receiving Postfix: delivers to its Maildir, refuses one recipient, takes XCLIENT from the proxy
PF_PORT=$RECV
unset PF_SINK_PORT
pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" \
	"smtpd_recipient_restrictions = check_recipient_access inline:{ {nobody@example.net=REJECT no such user} }, permit" \
	|| tap_bail "pf_init (receiving) failed"
pf_start || tap_bail "receiving postfix did not start"
pf_save R
px_start $P 127.0.0.1:$RECV -o proxy_backend_pass=xclient -o log_verbose=yes || tap_bail "proxy did not start"

# the sending Postfix: relays everything to the proxy, its smtp client logs verbosely for it
PF_DIR= PF_STARTED= PF_SINK_PID= PF_PORT=$SEND PF_SINK_PORT=$P
pf_init "debug_peer_list = 127.0.0.1" "debug_peer_level = 2" || tap_bail "pf_init (sending) failed"
pf_start || tap_bail "sending postfix did not start"
pf_save S

for i in $(seq 1 $N); do
	printf 'From: a@example.org\nTo: b@example.net, c@example.net\nSubject: group %s\nMessage-ID: <group%s@example.org>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\n\nmessage %s\n..leading dot\nend\n' \
		"$i" "$i" "$i" > "$PX_DIR/msg$i"
	rcpts="b@example.net c@example.net"
	[ "$i" = 1 ] && rcpts="$rcpts nobody@example.net"
	# shellcheck disable=SC2086
	sendmail -C "$PF_CONF" -f a@example.org $rcpts < "$PX_DIR/msg$i" || tap_bail "sendmail failed"
done

# the bounce for nobody@ goes to a@example.org the same way: 2N + 1 deliveries
pf_use R
pf_wait_delivered $((2 * N + 1)) 60
tap_is "the receiving Postfix delivered $N messages to 2 recipients each" \
	"$(group_files | wc -l)" $((2 * N))
# what the three hops add is a block of fields on top: Return-Path, Delivered-To, X-Original-To
# and the Received fields; the rest is the message as sendmail was given it
same=0
for f in $(group_files); do
	i=$(sed -n 's/^Subject: group //p' "$f" | head -1)
	awk 'top && /^[ \t]/ { next } top && /^(Return-Path|Delivered-To|X-Original-To|Received):/ { next }
		{ top = 0; print }' top=1 "$f" | cmp -s - "$PX_DIR/msg$i" && same=$((same + 1))
done
tap_is "every copy is byte-identical apart from the fields added on top" "$same" $((2 * N))
tap_ok "the proxy's Received field is among them" grep -q '(mxmoat) with ESMTP' "$(pf_delivered_last)"
tap_ok "the proxy wrote pipelined groups to the receiving Postfix" \
	grep -qE ' backend pipelined=[3-9] ' "$PX_DIR/proxy.log"
tap_is "the receiving Postfix refused nobody@ once" "$(grep -c 'reject: RCPT from .*<nobody@example.net>' "$PF_LOG")" 1

pf_use S
pf_queue_empty_wait 30
tap_ok "the sending Postfix used PIPELINING towards the proxy" grep -q 'Using ESMTP PIPELINING' "$PF_LOG"
tap_is "the sending Postfix logged $((2 * N)) deliveries and the bounce with status=sent" \
	"$(grep -c 'status=sent (250 ' "$PF_LOG")" $((2 * N + 1))
tap_like "the 554 for nobody@ came back inside its group, verbatim" \
	"$(grep 'to=<nobody@example.net>' "$PF_LOG")" 'said: 554 5\.7\.1 <nobody@example\.net>: Recipient address rejected: no such user \(in reply to RCPT TO command\)'
tap_is "nothing was deferred" "$(grep -c 'status=deferred' "$PF_LOG")" 0
tap_is "no sanitizer report in the proxy log" "$(grep -c 'Sanitizer' "$PX_DIR/proxy.log")" 0
if [ "$TAP_FAILED" -gt 0 ]; then
	pf_diag
	pf_use R
	pf_diag
	sed 's/^/# /' "$PX_DIR/proxy.log" | tail -40
fi
tap_done
