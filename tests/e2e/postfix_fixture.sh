#!/bin/bash
# postfix_fixture.sh - self-test of tests/lib/postfix.sh: a throwaway Postfix starts on its own
# loopback port, takes mail from swaks, hands it to smtp-sink (relay mode) or a Maildir (virtual
# mode), logs to its own maillog, honours extra main.cf lines, and leaves nothing behind.
# Ports: 13590-13592.
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (postfix -c)"
command -v postfix >/dev/null && command -v swaks >/dev/null || tap_skip_all "needs postfix and swaks"

port_lock postfix-fixture || tap_skip_all "another run of this test held its ports for 600 s"
trap pf_stop EXIT
sys_sum_before=$(cat /etc/postfix/main.cf /etc/postfix/master.cf 2>/dev/null | md5sum)

# --- relay mode: everything goes to smtp-sink
PF_PORT=13590 PF_SINK_PORT=13591
pf_init "smtpd_banner = fixture-banner ESMTP" "smtpd_recipient_restrictions = check_recipient_access inline:{ { refused@example.net = REJECT no thanks } }"
tap_ok "sink: smtp-sink starts" pf_sink_start
tap_ok "sink: postfix starts and answers" pf_start
dir=$PF_DIR

out=$(swaks --server 127.0.0.1:$PF_PORT --from a@example.org --to b@example.net,c@example.net \
	--header 'Subject: fixture one' --body 'line one' 2>&1)
tap_like "sink: banner from the extra main.cf line" "$out" "<-  220 fixture-banner ESMTP"
tap_like "sink: message queued" "$out" "<-  250 2\.0\.0 Ok: queued as [0-9A-F]+"
tap_ok "sink: one message captured" pf_wait_delivered 1 20
f=$(pf_delivered_last)
hdrs=$(pf_headers "$f")
tap_like "sink: Subject delivered" "$hdrs" $'(^|\n)Subject: fixture one(\n|$)'
tap_like "sink: Postfix Received on top" "$(printf '%s\n' "$hdrs" | head -n 1)" "^Received: from .* \(unknown \[127\.0\.0\.1\]\)$"
tap_is "sink: smtp-sink records not in the headers" "$(printf '%s\n' "$hdrs" | grep -c -E '^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):')" 0
tap_is "sink: body" "$(pf_body "$f" | head -n 1)" "line one"
tap_is "sink: both recipients in one transaction" "$(pf_envelope "$f" | grep -c '^X-Rcpt-Args: ')" 2
tap_like "sink: sender in the envelope" "$(pf_envelope "$f" | grep '^X-Mail-Args:')" "^X-Mail-Args: <a@example\.org>"

out=$(swaks --server 127.0.0.1:$PF_PORT --from a@example.org --to refused@example.net 2>&1)
tap_like "sink: restriction from the extra lines applies" "$out" "<\*\* 554 5\.7\.1 <refused@example\.net>: Recipient address rejected: no thanks"
tap_ok "sink: the reject is in the maillog" pf_maillog_grep "NOQUEUE: reject: RCPT from .*refused@example\.net.*no thanks"
tap_ok "sink: delivery logged" pf_maillog_grep "status=sent \(250 2\.0\.0 Ok\)"
tap_ok "sink: queue drains" pf_queue_empty_wait 10
master=$(tr -d ' ' < "$PF_QUEUE/pid/master.pid")
pf_stop
tap_ok "sink: master is gone after pf_stop" bash -c "! kill -0 $master 2>/dev/null"
tap_ok "sink: temp dir removed" test ! -e "$dir"
tap_ok "sink: port closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/13590) 2>/dev/null"
tap_ok "sink: smtp-sink port closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/13591) 2>/dev/null"

# --- Maildir mode: the virtual agent writes every recipient's mail to one Maildir
PF_PORT=13592 PF_SINK_PORT=
pf_init
tap_ok "maildir: postfix starts" pf_start
out=$(swaks --server 127.0.0.1:$PF_PORT --from a@example.org --to x@anywhere.test \
	--header 'Subject: fixture two' --body 'line two' 2>&1)
tap_like "maildir: message queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "maildir: one message in Maildir/new" pf_wait_delivered 1 20
f=$(pf_delivered_last)
tap_like "maildir: file is in new/" "$f" "/mail/sink/new/[^/]+$"
hdrs=$(pf_headers "$f")
tap_like "maildir: Subject delivered" "$hdrs" $'(^|\n)Subject: fixture two(\n|$)'
tap_like "maildir: Delivered-To added by virtual" "$hdrs" $'(^|\n)Delivered-To: x@anywhere\.test(\n|$)'
tap_is "maildir: body" "$(pf_body "$f" | head -n 1)" "line two"
pf_stop

tap_is "system Postfix config untouched" "$(cat /etc/postfix/main.cf /etc/postfix/master.cf 2>/dev/null | md5sum)" "$sys_sum_before"
tap_done
