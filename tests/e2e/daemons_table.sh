#!/bin/bash
# daemons_table.sh - one scenario table (tests/e2e/data/daemons.table) through both daemons: each
# row's session runs through mxmoat-milter under miltertest (scenario.lua) and through
# mxmoat-proxy's session under the transcript rig (tests/helpers/px_transcript, a simulated MTA
# behind it), and the first refusal of each must be the same: transaction, SMTP stage, reply code
# and enhanced status, or both accept. Rows with a known difference name it and assert what each
# daemon does today. One TAP case a row.
# Ports: 13570 (nsd, for the rows with auth_inbound=yes), 13571-13589 (the milters).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"    # port_lock
. "${top_srcdir:-.}/tests/lib/dns.sh"
top_builddir=${top_builddir:-.}
port_lock daemons-table || tap_skip_all "another run of this test held its ports for 600 s"

command -v miltertest >/dev/null || tap_skip_all "needs miltertest"
[ -x "$top_builddir/milter/mxmoat-milter" ] || tap_bail "mxmoat-milter not built"
rig=$top_builddir/tests/helpers/px_transcript
[ -x "$rig" ] || tap_bail "tests/helpers/px_transcript not built"
TOP_DIR=$(mktemp -d /tmp/mxmoat-table.XXXXXX)
MILTER_DIR=$TOP_DIR
trap 'for s in "${!slot_pid[@]}"; do reap "$s"; done; dns_stop; rm -rf "$TOP_DIR"' EXIT
DNSP=13570
data=$top_srcdir/tests/e2e/data
# MXMOAT_QUICK=1 (make distcheck): no nsd, the rows that ask DNS (auth_inbound=yes, dnsbl_sites,
# iprev_action=reject, greylist=selective) are skipped
quick=${MXMOAT_QUICK:-}
[ "$quick" = 1 ] || dns_start $DNSP .="$data/root.zone" example.org="$data/daemons.zone" \
	2.0.192.in-addr.arpa="$data/daemons.rev.zone" ||
	tap_bail "nsd did not start"
# the same records for the rig's fixture: "dns NAME TYPE VALUE" lines
fixture=$(awk '$2 == "IN" && ($3 == "A" || $3 == "TXT") {
	name = ($1 == "@") ? "example.org" : $1 ".example.org"
	v = $0; sub(/^[^\t ]+[\t ]+IN[\t ]+[A-Z]+[\t ]+/, "", v); gsub(/^"|"$/, "", v)
	print "dns " name " " $3 " " v }' "$data/daemons.zone"
	awk '$2 == "IN" && $3 == "PTR" { t = $4; sub(/\.$/, "", t)
	print "dns " $1 ".2.0.192.in-addr.arpa PTR " t }' "$data/daemons.rev.zone")
user=$(id -un nobody 2>/dev/null || echo nobody)

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

# A milter of its own for each row (fresh rate-limit buckets). Stopping one takes libmilter some
# seconds, so each row's milter is told to stop and the next row goes on, on the next port of the
# pool; a port is reused only once its last milter has exited. Each keeps its log in row-N/.
NPORTS=19
declare -a slot_pid=()
reap() {	# reap SLOT - wait (bounded) for the milter last started on SLOT; its exit status
	local pid=${slot_pid[$1]:-} i
	[ -n "$pid" ] || return 0
	for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local rc=$?
	slot_pid[$1]=
	[ "$rc" = 0 ] || { echo "a milter exited with status $rc" >> "$TOP_DIR/exits"; }
}

# milter_verdict N - row N through its milter into $got_milter: "T:STAGE CODE STATUS",
# "T:eom accepted", or what went wrong.
milter_verdict() {
	local slot=$(($1 % NPORTS)) out res t stage reply line kv
	local -a args=()
	local -; set -f	# values such as zone*2 or 127.0.0.[2..11] are no file patterns
	for kv in $conf; do args+=(-o "$kv"); done
	reap "$slot"
	MILTER_DIR=$TOP_DIR/row-$1
	mkdir -p "$MILTER_DIR"
	MILTER_SOCK=inet:$((13571 + slot))@127.0.0.1
	if ! milter_start "$MILTER_SOCK" -o daemon_user="$user" -o "dns_resolver=127.0.0.1@$DNSP" \
	    "${args[@]}" >/dev/null; then
		got_milter="milter did not start"
		return
	fi
	out=$(MILTER_SOCK=$MILTER_SOCK SC_LOGIN=$milter_login SC_CLIENT=$client SC_HELO=$helo SC_MAIL=$mail SC_RCPTS=$rcpts \
		SC_TIMES=$times SC_MESSAGE="$data/$message" \
		timeout 60 miltertest -s "$top_srcdir/tests/e2e/miltertest/scenario.lua" 2>&1)
	kill -TERM "$MILTER_PID" 2>/dev/null
	slot_pid[slot]=$MILTER_PID
	MILTER_PID=
	res=$(printf '%s\n' "$out" | sed -n 's/^result //p' | tail -n 1)
	if [ -z "$res" ]; then
		got_milter="miltertest: $(printf '%s' "$out" | tr '\n' ' ')"
		return
	fi
	t=${res%%:*}; stage=${res#*:}; stage=${stage%% *}; reply=${res##* }
	case $reply in
	continue|accept) got_milter="$t:eom accepted"; return ;;
	esac
	# the code and enhanced status the milter set: its log line for the refusal
	line=$(grep -E ' (reject|tempfail) stage=[a-z]+ code=[0-9]+ status=' "$MILTER_LOG" | tail -n 1)
	if [[ $line =~ code=([0-9]+)\ status=([0-9.]+) ]]; then
		got_milter="$t:$stage ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
	else
		got_milter="$t:$stage $reply (no log line)"
	fi
}

# proxy_in - the row as a transcript scenario for the rig, with the simulated MTA.
proxy_in() {
	local kv r i l first a
	local -; set -f
	printf 'mta\nclient %s\n%s\n' "$client" "$fixture"
	for kv in $conf; do printf 'set %s\n' "$kv"; done
	if [ -n "$logins" ]; then	# AUTH: a submission listener with implicit TLS
		printf 'implicit tls\nset proxy_submission_listen=127.0.0.1:465\nlistener 127.0.0.1:465\n'
		printf 'connect\nclient tls done\nC: EHLO %s\n' "$helo"
		for a in $logins; do
			printf 'C: AUTH PLAIN %s\n' "$(printf '\0%s\0%s' "${a%%:*}" "${a#*:}" | base64 -w0)"
		done
	else
		printf 'connect\nC: EHLO %s\n' "$helo"
	fi
	for ((i = 1; i <= times; i++)); do
		printf 'C: MAIL FROM:%s\n' "$mail"
		for r in $rcpts; do printf 'C: RCPT TO:%s\n' "$r"; done
		printf 'C: DATA\n'
		first=1
		while IFS= read -r l; do
			[[ $l == .* ]] && l=.$l        # dot-stuffing (RFC 5321 4.5.2)
			if [ $first = 1 ]; then printf 'C: %s\n' "$l"; first=0; else printf 'C+ %s\n' "$l"; fi
		done < "$data/$message"
		printf 'C+ .\n'
	done
	printf 'C: QUIT\n'
}

# proxy_verdict - the first 4xx/5xx reply in the transcript, named by the command it answered.
proxy_verdict() {
	proxy_in > "$TOP_DIR/row.in"
	"$rig" -p "$TOP_DIR/row.in" 2>/dev/null | awk '
		$0 == "connect" { stage = "connect" }
		/^C: EHLO / { stage = "helo" }
		/^C: AUTH / { stage = "auth" }
		/^C: MAIL / { t++; n = 0; stage = "mail" }
		/^C: RCPT / { stage = "rcpt" ++n }
		/^C: DATA$/ { stage = "data"; indata = 1; next }
		/^C[:+] \.$/ && indata { stage = "eom"; indata = 0 }
		/^C: QUIT$/ { stage = "quit" }
		/^c< [45][0-9][0-9][ -]/ && res == "" && !(stage == "auth" && /^c< 535 /) { res = (t + 0) ":" stage " " substr($2, 1, 3) " " $3 }
		/^c< 250[ -]/ && stage == "eom" { last = t ":eom accepted" }
		END { print (res != "" ? res : (last != "" ? last : "no verdict")) }'
}

data_abs=$(cd "$data" && pwd)	# for "@DATA@" in conf (a daemon may change directory)
row=0
while IFS='|' read -r name conf client helo mail rcpts message times expect proxy logins; do
	name=$(trim "$name")
	case $name in ''|'#'*) continue ;; esac
	row=$((row + 1))
	conf=$(trim "$conf"); [ "$conf" = - ] && conf=
	client=$(trim "$client"); helo=$(trim "$helo"); mail=$(trim "$mail"); rcpts=$(trim "$rcpts")
	message=$(trim "$message"); times=$(trim "$times"); expect=$(trim "$expect"); proxy=$(trim "$proxy")
	conf=${conf//@DATA@/$data_abs}; logins=$(trim "$logins")
	milter_login=${logins##* }	# the last attempt: {auth_authen} if it succeeded
	case $milter_login in ''|*:wrong) milter_login= ;; *) milter_login=${milter_login%%:*} ;; esac
	if [ "$quick" = 1 ] && [[ " $conf " == *" auth_inbound=yes "* || " $conf " == *" dnsbl_sites="* ||
		" $conf " == *" iprev_action=reject "* || " $conf " == *" greylist=selective "* ]]; then
		tap_skip "$name: $conf" "MXMOAT_QUICK=1: no nsd"
		continue
	fi
	want_proxy=$expect
	[ "$proxy" = - ] || want_proxy="$proxy (expected to differ)"
	got_proxy=$(proxy_verdict)
	[ "$proxy" = - ] || got_proxy="$got_proxy (expected to differ)"
	milter_verdict "$row"
	tap_is "$name: $conf" "milter $got_milter; proxy $got_proxy" "milter $expect; proxy $want_proxy"
done < "$data/daemons.table"
for s in "${!slot_pid[@]}"; do reap "$s"; done
tap_is "every milter exited with status 0" "$(cat "$TOP_DIR/exits" 2>/dev/null)" ""
cat "$TOP_DIR"/row-*/milter.log > "$TOP_DIR/all.log"
MILTER_LOG=$TOP_DIR/all.log
tap_ok "no ASan/LSan/UBSan report from the milters" milter_sanitizer_clean
tap_done
