#!/bin/bash
# proxy_data_rate.sh - proxy_min_data_rate: a client that drips its message slower than the minimum
# (but fast enough to reset every idle timeout) is cut with 421 4.4.2 and the backend never gets
# the message; a slow client above the minimum, over several windows, and a fast one are served.
# Backend: smtp-sink. Ports 12710-12719.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"

command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=12710 S=12711
port_lock proxy-data-rate || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
# 200 bytes/s over 1 s windows; the idle timeout (2 s) alone would never cut a 0.25 s drip
px_start $P 127.0.0.1:$S -o proxy_min_data_rate=200 -o proxy_min_data_rate_window=1s \
	-o proxy_timeout_data=2s || { cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }

HELLO=(R "S:EHLO client.example\r\n" R)
TXN=("S:MAIL FROM:<a@example.org>\r\n" R "S:RCPT TO:<b@example.net>\r\n" R "S:DATA\r\n" R)

# wait_dumps N - bounded wait until the sink has N messages
wait_dumps() {
	local i
	for i in $(seq 1 40); do [ "$(px_dumps)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}

# drip.py PORT N SECS: EHLO, MAIL, RCPT, DATA, then N lines of 10 bytes, one every SECS s, reading
# whatever the proxy says meanwhile; prints each reply line, "EOF" if it closed, the ms from the
# 354 to the first reply inside DATA and how many lines it dripped before that reply. Bounded:
# N * SECS + 5 s.
cat >"$PX_DIR/drip.py" <<'PY'
import select, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rb")
def reply():
    while True:
        try:
            line = f.readline().decode("latin-1").rstrip("\r\n")
        except OSError:        # a reset after our last drip crossed the close: the same as EOF
            line = ""
        print("<- " + line if line else "EOF", flush=True)
        if len(line) < 4 or line[3] != "-":
            return line
reply()
for cmd in (b"EHLO client.example", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA"):
    s.sendall(cmd + b"\r\n")
    reply()
t0 = time.time()
s.sendall(b"Subject: drip\r\n\r\n")
sent = 0
for i in range(n):
    r, _, _ = select.select([s], [], [], secs)
    if r:
        break
    try:
        s.sendall(b"drip%02d..\r\n" % i)
    except OSError:
        break
    sent += 1
else:
    s.sendall(b".\r\n")
r, _, _ = select.select([s], [], [], 5)
ms = int((time.time() - t0) * 1000)
if r:
    line = reply()
    if line and line.startswith("4"):
        reply()
print("ms=%d" % ms, flush=True)
print("dripped=%d" % sent, flush=True)
PY
before=$(px_dumps)
out=$(/usr/bin/python3 "$PX_DIR/drip.py" $P 24 0.25)
ms=$(printf '%s\n' "$out" | sed -n 's/^ms=//p')
dripped=$(printf '%s\n' "$out" | sed -n 's/^dripped=//p')
tap_like "slow drip (40 bytes/s < 200): 421 4.4.2, then closed" "$out" $'<- 354 [^\n]*\n<- 421 4\\.4\\.2 [^\n]*\nEOF\n'
# The event: the cut came while the drip was still going (before its 24th line), at least a whole
# window after the 354 (which opens the window a little before the client's clock starts).
cut_early() { test "$ms" -ge 900 -a "$ms" -lt 5000 -a "$dripped" -lt 24; }
tap_ok "... cut at the end of the first 1 s window, not at the end of the 6 s drip: ${ms} ms, ${dripped} of 24 lines" cut_early
tap_like "... logged with the bytes counted" "$(cat "$PX_DIR/proxy.log")" 'data-rate bytes=[0-9]+ ms=[1-4][0-9]{3} min=200/s'
tap_like "... and as a data-rate timeout" "$(cat "$PX_DIR/proxy.log")" 'timeout which=data-rate'
# the proxy's backend leg has ended (the sink logged its disconnect) before the sink is counted
px_sink_idle_wait || tap_diag "the sink did not see the backend leg end"
tap_is "... the backend got no message (its transaction was aborted)" "$(( $(px_dumps) - before ))" 0

# slow but above the minimum: 900 bytes every 0.25 s (3,600 bytes/s, 18 times the minimum: a
# loaded machine that stretches the pauses does not bring it under) for 3 s, three windows
slow=("S:Subject: slow\r\n\r\n")
line=$(printf 'x%.0s' $(seq 1 898))
for i in $(seq 1 12); do slow+=(P:0.25 "S:$line\r\n"); done
before=$(px_dumps)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "${slow[@]}" "S:.\r\n" R "S:QUIT\r\n" A)
tap_like "3,600 bytes/s over three windows: delivered" "$out" $'<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
wait_dumps $((before + 1))
tap_is "... the sink got it" "$(( $(px_dumps) - before ))" 1

# fast: 90 KB at once (one argument: under the kernel's 128 KB limit)
big=$(head -c 90000 /dev/zero | tr '\0' 'y' | fold -w 76 | sed 's/$/\\r/' | tr -d '\n' | sed 's/\\r/\\r\\n/g')
before=$(px_dumps)
out=$(px_chat $P "${HELLO[@]}" "${TXN[@]}" "S:Subject: fast\r\n\r\n$big.\r\n" R "S:QUIT\r\n" A)
tap_like "a fast client: delivered" "$out" $'<- 250 2\\.0\\.0 Ok[^\n]*\n<- 221'
wait_dumps $((before + 1))
tap_is "... the sink got it" "$(( $(px_dumps) - before ))" 1

# commands are not DATA: a slow command phase is only bound by the idle timeout
out=$(px_chat $P "${HELLO[@]}" P:1.2 "S:NOOP\r\n" R P:1.2 "S:NOOP\r\n" R "S:QUIT\r\n" A)
tap_like "pauses between commands are not measured" "$out" $'<- 250 2\\.0\\.0 Ok\n<- 250 2\\.0\\.0 Ok\n<- 221'
px_stop

# proxy_min_data_rate=0: no minimum, only the idle timeout
px_start $P 127.0.0.1:$S -o proxy_min_data_rate=0 -o proxy_min_data_rate_window=1s -o proxy_timeout_data=2s ||
	tap_diag "restart failed"
before=$(px_dumps)
out=$(/usr/bin/python3 "$PX_DIR/drip.py" $P 6 0.25)
tap_like "rate 0: the same drip for 1.5 s is delivered" "$out" $'<- 250 2\\.0\\.0 Ok'

wait_dumps $((before + 1))
tap_is "... the sink got it" "$(( $(px_dumps) - before ))" 1
tap_is "no sanitizer report in the proxy log" "$(grep -c 'AddressSanitizer\|runtime error' "$PX_DIR/proxy.log")" 0
tap_done
