# postfix.sh - a throwaway Postfix instance for the bash e2e tests (source it; bash; run as root).
#
# Everything lives under one temp dir: config dir (main.cf, master.cf), queue dir, data dir, the
# maillog file (there is no syslog here, so Postfix's errors are only visible there) and the
# captured mail. The system Postfix (/etc/postfix, /var/spool/postfix) is never read for
# configuration and never touched: every command is run with `-c $PF_CONF`.
#
#   pf_init [EXTRA_MAIN_CF_LINE...]    make the temp dir and write main.cf/master.cf; sets PF_DIR,
#                                      PF_CONF, PF_QUEUE, PF_LOG, PF_MAILDIR, PF_SINKDIR.
#                                      Needs PF_PORT (smtpd listen port on 127.0.0.1). Extra lines
#                                      are "name = value" main.cf settings, applied with
#                                      postconf -e (they replace the fixture's defaults),
#                                      e.g. "smtpd_milters = inet:127.0.0.1:13501".
#                                      Delivery: PF_SINK_PORT set -> relay everything to
#                                      [127.0.0.1]:PF_SINK_PORT (start pf_sink_start there);
#                                      unset -> every recipient is delivered to the Maildir
#                                      $PF_MAILDIR by the virtual(8) agent.
#   pf_start                           `postfix start`, wait (bounded) until PF_PORT greets (220).
#   pf_stop                            stop Postfix and the sink, remove the temp dir (idempotent;
#                                      call it from an EXIT trap). PF_KEEP=1 keeps the dir.
#   pf_postconf ARGS...                postconf -c $PF_CONF ARGS (e.g. -e "key = value")
#   pf_reload                          postfix reload (after pf_postconf -e)
#   pf_sink_start                      smtp-sink on 127.0.0.1:PF_SINK_PORT, one file per message
#                                      under $PF_SINKDIR (the dump format of smtp-sink(1))
#   pf_maillog                         print the maillog so far
#   pf_maillog_grep REGEX              0 if a maillog line matches the extended regex
#   pf_wait_delivered N [SECONDS]      wait (bounded, default 20 s) until N messages were captured
#   pf_delivered_count                 how many messages were captured so far
#   pf_delivered_files                 the captured message files, oldest first, one per line
#   pf_delivered_last                  path of the newest captured message
#   pf_headers FILE                    the header block of a captured message (up to the blank
#                                      line; smtp-sink's own records before the message skipped)
#   pf_body FILE                       the body of a captured message
#   pf_envelope FILE                   smtp-sink's X-Mail-Args:/X-Rcpt-Args: records (sink mode)
#   pf_queue_empty_wait [SECONDS]      wait until the queue has no messages
#   pf_diag                            print the maillog tail as TAP comments (after a failure)
#   pf_save NAME / pf_use NAME         two instances side by side: the fixture keeps one instance's
#                                      variables; pf_save copies them to NAME_PF_DIR etc., pf_use
#                                      makes NAME's the current ones again (before pf_init of the
#                                      second one: PF_DIR= PF_STARTED= PF_SINK_PID=)
# A test takes its port lock first (port_lock, tests/lib/lock.sh, sourced here).
#
# Example:
#   . "$top_srcdir/tests/lib/tap.sh"; . "$top_srcdir/tests/lib/postfix.sh"
#   PF_PORT=13510 PF_SINK_PORT=13511
#   trap pf_stop EXIT
#   pf_init "smtpd_milters = inet:127.0.0.1:13512" "milter_default_action = tempfail"
#   pf_sink_start && pf_start || tap_bail "postfix did not start"

. "$(dirname "${BASH_SOURCE[0]}")/lock.sh"

PF_DIR=
PF_SINK_PID=
PF_STARTED=

pf__die() { printf '# postfix.sh: %s\n' "$*" >&2; return 1; }

# pf_init - create the instance's directories and configuration
pf_init() {
	[ -n "${PF_PORT:-}" ] || { pf__die "PF_PORT is not set"; return 1; }
	[ "$(id -u)" = 0 ] || { pf__die "must run as root (postfix -c needs it)"; return 1; }
	command -v postfix >/dev/null || { pf__die "postfix not installed"; return 1; }
	PF_DIR=$(mktemp -d /tmp/mxmoat-pf.XXXXXX) || return 1
	# Postfix's daemons run as the mail_owner and chdir into the queue: the path must be searchable.
	chmod 755 "$PF_DIR"
	PF_CONF=$PF_DIR/etc
	PF_QUEUE=$PF_DIR/spool
	PF_DATA=$PF_DIR/data
	PF_LOG=$PF_DIR/maillog
	PF_MAILDIR=$PF_DIR/mail/sink/
	PF_SINKDIR=$PF_DIR/sink
	mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$PF_DIR/mail" "$PF_SINKDIR" || return 1
	chown postfix: "$PF_DATA" "$PF_DIR/mail" "$PF_SINKDIR" || return 1
	: > "$PF_LOG"

	local delivery
	if [ -n "${PF_SINK_PORT:-}" ]; then
		delivery="relayhost = [127.0.0.1]:$PF_SINK_PORT
relay_domains =
smtp_dns_support_level = disabled"
	else
		delivery="virtual_mailbox_domains = static:all
virtual_mailbox_base = $PF_DIR/mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:$(id -u postfix)
virtual_gid_maps = static:$(id -g postfix)
virtual_minimum_uid = 1
virtual_mailbox_limit = 0"
	fi

	cat > "$PF_CONF/main.cf" <<EOF
# Written by tests/lib/postfix.sh for one test run; removed by pf_stop.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
maillog_file = $PF_LOG
maillog_file_prefixes = $PF_DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.mxmoat.test
mydomain = mxmoat.test
myorigin = \$myhostname
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = \$myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_peername_lookup = no
disable_vrfy_command = yes
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
notify_classes =
default_process_limit = 100
in_flow_delay = 0
# one relay transaction per message, whatever the recipient count (tests count them)
default_destination_recipient_limit = 1000
$delivery
EOF
	# Extra settings replace the defaults above through postconf -e: a duplicate key in main.cf
	# makes every Postfix process log a warning at start-up, and postlogd, logging its own
	# warning into its own full socket queue, deadlocks the instance.
	if [ $# -gt 0 ]; then
		postconf -c "$PF_CONF" -e "$@" || { pf__die "postconf -e failed: $*"; return 1; }
	fi

	# No chroot anywhere: the queue dir has no copy of /etc for a chroot to use.
	cat > "$PF_CONF/master.cf" <<EOF
# Written by tests/lib/postfix.sh.
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	# A config dir of our own must hold the files `postfix check` looks for there.
	[ -f /etc/postfix/dynamicmaps.cf ] && cp /etc/postfix/dynamicmaps.cf "$PF_CONF/"
	[ -d /etc/postfix/dynamicmaps.cf.d ] && cp -r /etc/postfix/dynamicmaps.cf.d "$PF_CONF/"
	return 0
}

pf_postconf() { postconf -c "$PF_CONF" "$@"; }

PF_VARS="PF_DIR PF_CONF PF_QUEUE PF_DATA PF_LOG PF_MAILDIR PF_SINKDIR PF_STARTED PF_SINK_PID PF_PORT PF_SINK_PORT"
pf_save() { local v; for v in $PF_VARS; do eval "${1}_$v=\${$v:-}"; done; }
pf_use() { local v; for v in $PF_VARS; do eval "$v=\${${1}_$v:-}"; done; }

# pf__port_open - 0 when something accepts on 127.0.0.1:$1
pf__port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pf__banner PORT - 0 when the server on 127.0.0.1:PORT sends a 220 greeting within 2 s
pf__banner() {
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		IFS= read -r -t 2 line <&3 || exit 1
		printf "QUIT\r\n" >&3
		case $line in 220*) exit 0 ;; *) exit 1 ;; esac' _ "$1" 2>/dev/null
}

# pf_start - start the instance and wait until smtpd answers on PF_PORT (at most 15 s)
pf_start() {
	[ -n "$PF_DIR" ] || { pf__die "pf_init first"; return 1; }
	if pf__port_open "$PF_PORT"; then
		pf__die "port $PF_PORT already in use"; return 1
	fi
	postfix -c "$PF_CONF" start >> "$PF_DIR/postfix-start.out" 2>&1 || {
		pf__die "postfix start failed:"; sed 's/^/# /' "$PF_DIR/postfix-start.out" "$PF_LOG" >&2
		return 1
	}
	PF_STARTED=1
	local i
	for i in $(seq 1 50); do
		pf__port_open "$PF_PORT" && break
		sleep 0.1
	done
	# smtpd greets only once it has read its configuration: a broken setting shows here.
	if ! pf__banner "$PF_PORT"; then
		pf__die "smtpd did not greet on 127.0.0.1:$PF_PORT"; pf_diag >&2
		return 1
	fi
	return 0
	return 1
}

pf_reload() { postfix -c "$PF_CONF" reload >> "$PF_DIR/postfix-start.out" 2>&1; }

# pf_sink_start - smtp-sink capturing each message into its own file under PF_SINKDIR
pf_sink_start() {
	[ -n "${PF_SINK_PORT:-}" ] || { pf__die "PF_SINK_PORT is not set"; return 1; }
	# smtp-sink refuses to run as root without -u; the dump dir belongs to that user.
	smtp-sink -u postfix -d "$PF_SINKDIR/%Y%m%d%H%M%S." -h sink.mxmoat.test \
		"127.0.0.1:$PF_SINK_PORT" 64 > "$PF_DIR/sink.out" 2>&1 &
	PF_SINK_PID=$!
	local i
	for i in $(seq 1 50); do
		pf__port_open "$PF_SINK_PORT" && return 0
		sleep 0.1
	done
	pf__die "smtp-sink did not answer on 127.0.0.1:$PF_SINK_PORT"
	return 1
}

# pf_stop - stop everything this fixture started and remove its files; safe to call twice
pf_stop() {
	[ -n "$PF_DIR" ] || return 0
	if [ -n "$PF_STARTED" ]; then
		postfix -c "$PF_CONF" stop >/dev/null 2>&1
		local pid i
		pid=$(cat "$PF_QUEUE/pid/master.pid" 2>/dev/null | tr -d ' ')
		if [ -n "$pid" ]; then
			for i in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && postfix -c "$PF_CONF" abort >/dev/null 2>&1
		fi
		PF_STARTED=
	fi
	if [ -n "$PF_SINK_PID" ]; then
		kill "$PF_SINK_PID" 2>/dev/null
		wait "$PF_SINK_PID" 2>/dev/null
		PF_SINK_PID=
	fi
	if [ -z "${PF_KEEP:-}" ]; then
		rm -rf "$PF_DIR"
	else
		printf '# postfix.sh: kept %s\n' "$PF_DIR" >&2
	fi
	PF_DIR=
}

pf_maillog() { cat "$PF_LOG"; }
pf_maillog_grep() { grep -qE "$1" "$PF_LOG"; }

pf_diag() {
	printf '# --- maillog (%s), last 30 lines\n' "$PF_LOG"
	tail -n 30 "$PF_LOG" 2>/dev/null | sed 's/^/# /'
}

# pf_delivered_files - captured messages, oldest first (the folder is listed, not globbed: a
# glob of ~35,000 paths exceeds the kernel's argument limit and would list nothing)
pf_delivered_files() {
	local dir=${PF_MAILDIR}new

	[ -n "${PF_SINK_PORT:-}" ] && dir=$PF_SINKDIR
	ls -1tr "$dir" 2>/dev/null | awk -v d="${dir%/}/" '{ print d $0 }'
}

pf_delivered_count() { pf_delivered_files | wc -l; }
pf_delivered_last() { pf_delivered_files | tail -n 1; }

# pf_wait_delivered N [SECONDS] - wait until at least N messages were captured
pf_wait_delivered() {
	local want=$1 secs=${2:-20} i
	for i in $(seq 1 $((secs * 10))); do
		[ "$(pf_delivered_count)" -ge "$want" ] && return 0
		sleep 0.1
	done
	return 1
}

# pf__message FILE - the message as the MTA relayed it. smtp-sink -d writes its own records first
# (X-Client-Addr:, X-Mail-Args:, ... then a three-line "Received: ... (smtp-sink) ..." header that
# marks their end, see smtp-sink(1) DUMP FILE FORMAT); those are skipped.
pf__message() {
	if [ -n "${PF_SINK_PORT:-}" ]; then
		awk 'BEGIN { skip = -1 } { sub(/\r$/, "") }
		     skip < 0 && /^Received: / { skip = 2; next }
		     skip < 0 { next }
		     skip > 0 { skip--; next }
		     { print }' "$1"
	else
		sed 's/\r$//' "$1"
	fi
}

# pf_envelope FILE - smtp-sink's envelope records (X-Mail-Args:, X-Rcpt-Args: ...); sink mode only
pf_envelope() {
	awk '/^Received: / { exit } { print }' "$1"
}

# pf_headers FILE - the message's header block, folded lines as they are
pf_headers() {
	pf__message "$1" | awk '$0 == "" { exit } { print }'
}

# pf_body FILE - the message body (after the blank line)
pf_body() {
	pf__message "$1" | awk 'b { print; next } $0 == "" { b = 1 }'
}

# pf_queue_empty_wait [SECONDS] - wait until postqueue shows an empty queue
pf_queue_empty_wait() {
	local secs=${1:-20} i
	for i in $(seq 1 $((secs * 10))); do
		postqueue -c "$PF_CONF" -p 2>/dev/null | grep -q 'Mail queue is empty' && return 0
		sleep 0.1
	done
	return 1
}
