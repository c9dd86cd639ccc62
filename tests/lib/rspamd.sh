# rspamd.sh - a real rspamd (Debian's rspamd) for the e2e tests (source it; bash).
#
#   rspamd_start PORT
#       Start rspamd in the foreground in a private temporary directory (RSPAMD_DIR, kept across
#       restarts) with a configuration written here: only its normal worker, on 127.0.0.1:PORT; no
#       network (DNS to a closed loopback port), a five-name TLD list (the full one takes a
#       minute to compile on a loaded machine), none of Debian's rules, and one Lua prefilter:
#       a message containing MXMOAT-RSPAMD-REJECT, -SOFT-REJECT, -GREYLIST, -ADD-HEADER or
#       -REWRITE-SUBJECT gets that action, with the symbol MXMOAT_TEST_PATTERN (score 2.5);
#       anything else gets "no action". A request with an Authentication-Results header (mxmoat's
#       own, with auth_inbound) gets the symbol MXMOAT_AR (score 0) with the header's value as its
#       option, so rspamd's log shows what arrived. Subjects are rewritten as "***SPAM*** %s". Waits (at most
#       120 s) until /ping answers. Sets RSPAMD_PID and RSPAMD_PORT; non-zero with its log on
#       stderr on failure.
#   rspamd_kill
#       Stop it (by its pid only; its workers follow) and wait until the port is closed.
#   rspamd_stop
#       rspamd_kill and remove RSPAMD_DIR. Safe to call twice; call it from your EXIT trap.

. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

RSPAMD_DIR=
RSPAMD_PID=
RSPAMD_PORT=

rspamd__ping() {
	curl -s -m 2 "http://127.0.0.1:$RSPAMD_PORT/ping" 2>/dev/null | grep -q "^pong"
}

rspamd_start() {
	local i
	RSPAMD_PORT=$1
	command -v rspamd >/dev/null 2>&1 || { echo "rspamd_start: rspamd not installed" >&2; return 2; }
	if [ -z "$RSPAMD_DIR" ]; then
		RSPAMD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-rspamd.XXXXXX") || return 2
		chmod 755 "$RSPAMD_DIR"
		mkdir -p "$RSPAMD_DIR/db" "$RSPAMD_DIR/run"
		printf 'com\nnet\norg\ntest\nexample\n' >"$RSPAMD_DIR/tld.dat"
		cat >"$RSPAMD_DIR/test.lua" <<'LUA'
local forced = {
  { 'MXMOAT-RSPAMD-SOFT-REJECT', 'soft reject' },
  { 'MXMOAT-RSPAMD-REJECT', 'reject' },
  { 'MXMOAT-RSPAMD-GREYLIST', 'greylist' },
  { 'MXMOAT-RSPAMD-ADD-HEADER', 'add header' },
  { 'MXMOAT-RSPAMD-REWRITE-SUBJECT', 'rewrite subject' },
}
rspamd_config:register_symbol({
  name = 'MXMOAT_TEST_PATTERN',
  type = 'prefilter',
  priority = 10,
  score = 2.5,
  group = 'mxmoat',
  callback = function(task)
    local content = tostring(task:get_content())
    for _, f in ipairs(forced) do
      if content:find(f[1], 1, true) then
        task:insert_result('MXMOAT_TEST_PATTERN', 1.0, f[1])
        task:set_pre_result(f[2], 'mxmoat test pattern')
        return
      end
    end
  end,
})
rspamd_config:register_symbol({
  name = 'MXMOAT_AR',
  score = 0.0,
  group = 'mxmoat',
  callback = function(task)
    local ar = task:get_request_header('Authentication-Results')
    if ar then
      task:insert_result('MXMOAT_AR', 1.0, tostring(ar))
    end
  end,
})
LUA
		cat >"$RSPAMD_DIR/rspamd.conf" <<CONF
options {
  pidfile = "$RSPAMD_DIR/run/rspamd.pid";
  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }
  filters = "";
  url_tld = "$RSPAMD_DIR/tld.dat";
  tempdir = "$RSPAMD_DIR/run";
}
logging { type = "file"; filename = "$RSPAMD_DIR/run/rspamd.log"; level = "info"; }
actions { reject = 15; rewrite_subject = 8; add_header = 6; greylist = 4; subject = "***SPAM*** %s"; }
worker "normal" { bind_socket = "127.0.0.1:$RSPAMD_PORT"; count = 1; }
lua = "$RSPAMD_DIR/test.lua";
CONF
	fi
	(
		for fd in $(ls "/proc/$BASHPID/fd"); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		exec rspamd -f -u root -g root -c "$RSPAMD_DIR/rspamd.conf" --var=DBDIR="$RSPAMD_DIR/db" \
			</dev/null >>"$RSPAMD_DIR/rspamd.out" 2>&1
	) &
	RSPAMD_PID=$!
	for i in $(seq 1 1200); do
		kill -0 "$RSPAMD_PID" 2>/dev/null || break
		rspamd__ping && return 0
		sleep 0.1
	done
	echo "rspamd_start: rspamd did not answer on 127.0.0.1:$RSPAMD_PORT" >&2
	tail -n 30 "$RSPAMD_DIR/rspamd.out" "$RSPAMD_DIR/run/rspamd.log" >&2 2>/dev/null
	rspamd_kill
	return 1
}

rspamd_kill() {
	local i
	[ -n "$RSPAMD_PID" ] || return 0
	proc_stop "$RSPAMD_PID"
	RSPAMD_PID=
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$RSPAMD_PORT") 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

rspamd_stop() {
	rspamd_kill
	[ -n "$RSPAMD_DIR" ] && rm -rf "$RSPAMD_DIR"
	RSPAMD_DIR=
}
