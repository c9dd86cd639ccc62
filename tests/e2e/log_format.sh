#!/bin/bash
# log_format.sh - log_format = text and json through both daemons: the same scenario runs once in
# each format (mxmoat-milter under miltertest: a recipient over the limit, a bad SIZE=, a
# connect-only session; mxmoat-proxy in front of smtp-sink: a message with a recipient over the
# limit, then one relayed), and every line of every log parses back: a text line as
# "prog[pid]: session event key=value ... [msg]", a JSON line as one object whose first members
# are prog, pid, level, session, event, every value a string. Both formats carry the same
# events with the same keys in the same order.
# Ports: 15620 (milter), 15621 (proxy), 15622 (sink).
. "${top_srcdir:-.}/tests/lib/tap.sh"
. "${top_srcdir:-.}/tests/lib/milter.sh"
. "${top_srcdir:-.}/tests/lib/postfix.sh"    # port_lock
. "${top_srcdir:-.}/tests/lib/proxy.sh"
top_builddir=${top_builddir:-.}
port_lock log-format || tap_skip_all "another run of this test held its ports for 600 s"
command -v miltertest >/dev/null || tap_skip_all "needs miltertest"
command -v swaks >/dev/null && command -v smtp-sink >/dev/null || tap_skip_all "needs swaks and smtp-sink"
MILTER_DIR=$(mktemp -d /tmp/mxmoat-logfmt.XXXXXX)
chmod 755 "$MILTER_DIR"
trap 'milter_stop; px_cleanup; rm -rf "$MILTER_DIR"' EXIT
px_init || tap_bail "no temp dir"

export MILTER_SOCK=inet:15620@127.0.0.1
for fmt in text json; do
	tap_ok "milter ($fmt) starts" milter_start "$MILTER_SOCK" -o log_format=$fmt -o limit_recipients=2
	for t in limits connect_only; do
		out=$(timeout 60 miltertest -s "$top_srcdir/tests/e2e/miltertest/$t.lua" 2>&1)
		tap_like "milter ($fmt): $t ran to the end" "$out" "$t: done"
	done
	milter_stop
	tap_is "milter ($fmt): exit 0" "$MILTER_RC" 0
	mv "$MILTER_LOG" "$MILTER_DIR/milter.$fmt"

	px_sink_start 15622 || tap_bail "smtp-sink did not start"
	tap_ok "proxy ($fmt) starts" px_start 15621 127.0.0.1:15622 -o log_format=$fmt -o limit_recipients=1
	out=$(swaks --server 127.0.0.1:15621 --from a@example.org --to b@example.net,c@example.net \
		--body 'two recipients' 2>&1)
	tap_like "proxy ($fmt): the second recipient gets 452 4.5.3" "$out" "<\*\* 452 4\.5\.3 "
	tap_like "proxy ($fmt): the message is relayed" "$out" "<-  250 2\.0\.0 Ok"
	px_stop
	px_sink_stop
	mv "$PX_DIR/proxy.log" "$MILTER_DIR/proxy.$fmt"
done

# parse FORMAT FILE - every line parsed back; prints "event key key ..." per line, or
# "BAD: line" for a line that does not parse.
parse() {
	python3 - "$1" "$2" <<'EOF'
import json, re, sys
fmt, path = sys.argv[1], sys.argv[2]
head = re.compile(r'^(mxmoat-proxy|mxmoat-milter)\[[0-9]+\]: (\S+) (\S+) ?(.*)$')
pair = re.compile(r'([A-Za-z0-9_.-]+)=("[^"]*"|[^ ]*)(?: +|$)')
for line in open(path, encoding='ascii').read().split('\n')[:-1]:
    if fmt == 'json':
        try:
            obj = json.loads(line)
        except ValueError:
            print('BAD: ' + line); continue
        keys = list(obj)
        if keys[:5] != ['prog', 'pid', 'level', 'session', 'event'] or \
           not all(isinstance(v, str) for v in obj.values()):
            print('BAD: ' + line); continue
        print(' '.join([obj['event']] + keys[5:]))
    else:
        m = head.match(line)
        if m is None:
            print('BAD: ' + line); continue
        rest, keys = m.group(4), []
        while True:
            p = pair.match(rest)
            if p is None or p.end() == 0:
                break
            keys.append(p.group(1)); rest = rest[p.end():]
        if rest:
            keys.append('msg')
        print(' '.join([m.group(3)] + keys))
EOF
}
for d in milter proxy; do
	for fmt in text json; do
		parse $fmt "$MILTER_DIR/$d.$fmt" >"$MILTER_DIR/$d.$fmt.keys"
		tap_is "$d: every $fmt line parses back" "$(grep -c '^BAD: ' "$MILTER_DIR/$d.$fmt.keys")" 0
		grep '^BAD: ' "$MILTER_DIR/$d.$fmt.keys" | head -n 3 | while IFS= read -r l; do tap_diag "$l"; done
	done
	tap_ok "$d: lines logged" test "$(wc -l <"$MILTER_DIR/$d.text.keys")" -ge 5
	tap_is "$d: the same events with the same keys in both formats" \
		"$(diff <(sort "$MILTER_DIR/$d.text.keys") <(sort "$MILTER_DIR/$d.json.keys") && echo same)" same
done
tap_ok "milter (json): the refused recipient" grep -q '"reason":"limit_recipients"' "$MILTER_DIR/milter.json"
tap_ok "proxy (json): the relayed message's summary" \
	grep -q '"event":"relayed",.*"nrcpt":"1"' "$MILTER_DIR/proxy.json"
tap_done
