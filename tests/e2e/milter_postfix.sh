#!/bin/bash
# milter_postfix.sh - mxmoat-milter behind a real Postfix (tests/lib/postfix.sh), swaks as the
# client, smtp-sink capturing what Postfix relays: the core's limits reach the client with the
# right codes (452 for the 101st recipient, 552 for size and header limits), accepted mail is
# relayed unchanged, macros reach the core (queue id, {daemon_name}), SIGHUP reloads without
# stopping, SIGTERM stops cleanly, unix sockets get their mode and owner, and Postfix's
# milter_default_action decides when the milter is down.
# Ports: 13500 (smtpd), 13501 (sink), 13502 (milter inet).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
top_builddir=${top_builddir:-.}
milter_pf_prepare milter-postfix

conf=$MILTER_DIR/mxmoat.conf
printf 'limit_recipients = 100\nlimit_message_size = 20k\nlimit_header_count = 40\nlimit_junk_commands = 5\n' > "$conf"
tap_ok "milter starts on inet:13502@127.0.0.1" milter_start inet:13502@127.0.0.1 -c "$conf"

# Postfix runs with the shipped snippet, socket address changed to ours.
mapfile -t snippet < <(milter_pf_snippet 13502)
tap_is "snippet: smtpd_milters line found" "$(printf '%s\n' "${snippet[@]}" | grep -c '^smtpd_milters = inet:127.0.0.1:13502$')" 1
milter_pf_start 13500 13501 "${snippet[@]}" "milter_macro_daemon_name = mxmoat-test-in"

# 1. a plain message goes through unchanged
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net \
	--header 'Subject: milter plain' --body 'plain body' 2>&1)
tap_like "plain: 250 queued" "$out" "<-  250 2\.0\.0 Ok: queued as [0-9A-F]+"
qid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-F]*\).*/\1/p')
tap_ok "plain: relayed" pf_wait_delivered 1 20
f=$(pf_delivered_last)
tap_like "plain: headers relayed" "$(pf_headers "$f")" $'\nSubject: milter plain(\n|$)'
tap_is "plain: body relayed" "$(pf_body "$f" | head -n 1)" "plain body"
tap_ok "plain: the milter logged Postfix's queue id (macro i)" milter_log_grep " message queue_id=$qid mta_size=-?[0-9]+ client=.*from=<a@example\.org> nrcpt=1 .*verdict=continue"
tap_ok "plain: {daemon_name} reached the core as the listener" milter_log_grep " connect client=.* listener=mxmoat-test-in"
# Postfix 3.7 offers every step (0x1fffff); we take no reply at HELO (0x2000), header (0x80),
# end of header (0x40000) and body (0x80000), skip DATA (0x200) but not unknown commands,
# and take header values with their leading space (0x100000): 0x1c2280.
tap_ok "plain: the protocol steps negotiated with Postfix" milter_log_grep \
	" negotiate mta_protocol=0x1fffff protocol=0x1c2280 actions=0x131$"
# The interposed accept tuned the inet connection (milter_tcp_tuning, milter/interpose.c).
tap_is "inet: tcp-tuning logged once" "$(grep -c ' tcp-tuning active: TCP_NODELAY and TCP_QUICKACK' "$MILTER_LOG")" 1

# 2. 101 recipients: the 101st is told 452 4.5.3, the message goes to the first 100
rcpts=$(for i in $(seq 1 101); do printf 'r%d@example.net,' "$i"; done)
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to "${rcpts%,}" \
	--header 'Subject: many' --body 'many' 2>&1)
tap_like "101 rcpt: the 101st gets 452 4.5.3" "$out" $' -> RCPT TO:<r101@example.net>\n<\\*\\* 452 4\\.5\\.3 Too many recipients'
tap_is "101 rcpt: the first 100 accepted" "$(printf '%s\n' "$out" | grep -c '^<-  250 2\.1\.5 Ok')" 100
tap_like "101 rcpt: message queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "101 rcpt: relayed" pf_wait_delivered 2 20
tap_is "101 rcpt: relayed to 100 recipients" "$(pf_envelope "$(pf_delivered_last)" | grep -c '^X-Rcpt-Args: ')" 100

# 3. oversized message: 552 5.3.4 at end of data, nothing relayed
before=$(pf_delivered_count)
big=$(head -c 30000 /dev/zero | tr '\0' 'x' | fold -w 70)
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net \
	--header 'Subject: big' --body "$big" 2>&1)
tap_like "oversized: 552 5.3.4 after the dot" "$out" $' -> \\.\n<\\*\\* 552 5\\.3\\.4 Message size exceeds fixed maximum message size'
tap_ok "oversized: logged by the milter" milter_log_grep " reject stage=eom code=552 status=5\.3\.4 reason=limit_message_size"

# 4. SIZE= declared over the limit: refused at MAIL
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net \
	--quit-after MAIL --mail-from-params 'SIZE=999999' 2>&1 || true)
if printf '%s\n' "$out" | grep -q 'MAIL FROM:<a@example.org> SIZE=999999'; then
	tap_like "SIZE=999999: 552 5.3.4 at MAIL" "$out" "<\*\* 552 5\.3\.4 Message size exceeds fixed maximum message size"
else
	# swaks without --mail-from-params: speak SMTP ourselves
	out=$(timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/13500
		read -r l <&3; printf "EHLO t\r\n" >&3
		while read -r l <&3; do case $l in 250\ *) break;; esac; done
		printf "MAIL FROM:<a@example.org> SIZE=999999\r\n" >&3; read -r l <&3; echo "$l"
		printf "QUIT\r\n" >&3' | tr -d '\r')
	tap_like "SIZE=999999: 552 5.3.4 at MAIL" "$out" "^552 5\.3\.4 Message size exceeds fixed maximum message size"
fi

# 5. too many header fields (limit 40): 552 5.3.4 at end of data (no-reply headers, sticky verdict)
hdrs=()
for i in $(seq 1 45); do hdrs+=(--add-header "X-Filler-$i: $i"); done
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net "${hdrs[@]}" 2>&1)
tap_like "45 headers: 552 5.3.4 Too many header fields" "$out" $' -> \\.\n<\\*\\* 552 5\\.3\\.4 Too many header fields'
tap_is "oversized and header floods: nothing relayed" "$(pf_delivered_count)" "$before"

# 5b. junk commands (limit_junk_commands = 5): Postfix answers NOOP, RSET, VRFY and HELP itself
# and never tells the milter; the milter counts the unknown commands it is sent, and the 5th
# gets its 421, on which Postfix closes the connection
steps=()
for i in $(seq 1 10); do steps+=("S:NOOP\r\n" R "S:RSET\r\n" R); done
for i in $(seq 1 6); do steps+=("S:XJUNK$i\r\n" R); done
out=$(python3 "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 13500 R "S:EHLO client.example\r\n" R "${steps[@]}" A)
tap_is "junk: 20 NOOP/RSET answered by Postfix" "$(grep -c '^<- 250 2\.0\.0 Ok' <<<"$out")" 20
tap_is "junk: 4 unknown commands answered 500 by Postfix" "$(grep -c '^<- 500 5\.5\.2 Error: command not recognized$' <<<"$out")" 4
tap_like "junk: the 5th unknown command gets 421 4.7.0 from the milter, then the connection ends" "$out" \
	$'\n<- 421 4\\.7\\.0 Too many useless commands, closing connection\nEOF$'
tap_ok "junk: logged by the milter" milter_log_grep " tempfail stage=unknown code=421 status=4\.7\.0 reason=limit_junk_commands"

# 6. SIGHUP reloads (limit_recipients 2) and does not stop the milter
printf 'limit_recipients = 2\nlimit_message_size = 20k\nlimit_header_count = 40\n' > "$conf"
kill -HUP "$MILTER_PID"
for i in $(seq 1 50); do milter_log_grep " reload loaded " && break; sleep 0.1; done
tap_ok "SIGHUP: reload logged" milter_log_grep " reload loaded .*mxmoat\.conf"
tap_ok "SIGHUP: milter still running" kill -0 "$MILTER_PID"
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to x1@example.net,x2@example.net,x3@example.net 2>&1)
tap_like "SIGHUP: new limit applies to new sessions" "$out" $' -> RCPT TO:<x3@example.net>\n<\\*\\* 452 4\\.5\\.3 Too many recipients'

# 7. a bad config on SIGHUP is refused, the running one stays
printf 'limit_recipients = many\n' > "$conf"
kill -HUP "$MILTER_PID"
for i in $(seq 1 50); do milter_log_grep " reload refused" && break; sleep 0.1; done
tap_ok "SIGHUP with a bad file: refused, logged" milter_log_grep " reload refused: .*limit_recipients"
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to y1@example.net,y2@example.net,y3@example.net 2>&1)
tap_like "SIGHUP with a bad file: old limit still applies" "$out" $' -> RCPT TO:<y3@example.net>\n<\\*\\* 452 4\\.5\\.3 Too many recipients'

# 8. SIGTERM: clean exit, no sanitizer report
milter_stop
tap_is "SIGTERM: exit status 0" "$MILTER_RC" 0
tap_ok "SIGTERM: stop logged" milter_log_grep " stop clean"
tap_ok "no ASan/LSan/UBSan report" milter_sanitizer_clean

# 9. milter down: milter_default_action decides (tempfail, then accept)
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net 2>&1)
tap_like "milter down, default_action=tempfail: 451 4.7.1" "$out" "<\*\* 451 4\.7\.1 Service unavailable - try again later"
tap_ok "milter down: Postfix logs the connect failure" pf_maillog_grep "warning: connect to Milter service inet:127\.0\.0\.1:13502: Connection refused"
pf_postconf -e "milter_default_action = accept" && pf_reload && sleep 1
before=$(pf_delivered_count)
out=$(swaks --server 127.0.0.1:13500 --from a@example.org --to b@example.net --header 'Subject: unfiltered' 2>&1)
tap_like "milter down, default_action=accept: queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "milter down, default_action=accept: relayed" pf_wait_delivered $((before + 1)) 20

# 10. unix socket with mode and owner
sockdir=$MILTER_DIR/run
mkdir -p "$sockdir" && chown nobody "$sockdir"
tap_ok "unix socket: milter starts" milter_start "unix:$sockdir/milter.sock" \
	-o milter_socket_mode=0660 -o milter_socket_owner=nobody:postfix
tap_is "unix socket: mode and owner" "$(stat -c '%a %U %G' "$sockdir/milter.sock")" "660 nobody postfix"
pf_postconf -e "smtpd_milters = unix:$sockdir/milter.sock" "milter_default_action = tempfail" && pf_reload && sleep 1
before=$(pf_delivered_count)
out=$(swaks --server 127.0.0.1:13500 --from c@example.org --to d@example.net --header 'Subject: via unix' 2>&1)
tap_like "unix socket: queued" "$out" "<-  250 2\.0\.0 Ok: queued as"
tap_ok "unix socket: relayed" pf_wait_delivered $((before + 1)) 20
tap_ok "unix socket: the milter saw it" milter_log_grep " message queue_id=[0-9A-F]+ .*from=<c@example\.org>"
tap_is "unix socket: no tcp-tuning line of its own (only the inet run's)" \
	"$(grep -c ' tcp-tuning active' "$MILTER_LOG")" 1
milter_stop
tap_is "unix socket: SIGTERM exit 0" "$MILTER_RC" 0
tap_ok "unix socket: no sanitizer report" milter_sanitizer_clean
tap_done
