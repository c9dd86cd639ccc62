#!/bin/bash
# ratelimit_proxy_flood.sh - a connection flood through mxmoat-proxy (embedded store): 2,000
# connections from 127.0.0.2 with ratelimit_conn_per_ip = 20/1h get exactly 20 greetings and
# 1,980 times 421 4.7.0, while one connection in 200 from 127.0.0.3 is greeted every time; the
# refused key is logged once; the proxy is still there. Bounded: at most 120 s. Ports 16430-16431.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=16430 S=16431
port_lock ratelimit-proxy-flood || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
# 1h: one token back every 3 minutes, so the count is exact for a test that lasts less. The
# proxy may free a refused session after the client has already opened the next connection (a
# loaded machine): limit_sessions_per_ip is raised so only the rate limit answers.
px_start $P 127.0.0.1:$S -o ratelimit_allow= -o ratelimit_conn_per_ip=20/1h -o ratelimit_conn_per_net= \
	-o limit_sessions_per_ip=5000 ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }

out=$(timeout 120 "$PX_PY" - $P <<'PY'
import socket, sys
port = int(sys.argv[1])
def first_line(src):
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    buf = b""
    while b"\n" not in buf:
        d = s.recv(512)
        if not d:
            break
        buf += d
    s.close()
    return buf.split(b"\r\n")[0].decode("latin-1")
served = refused = other = 0
codes = set()
for i in range(2000):
    line = first_line("127.0.0.2")
    if line.startswith("220 "):
        served += 1
    else:
        refused += 1
        codes.add(line)
    if i % 200 == 0 and first_line("127.0.0.3").startswith("220 "):
        other += 1
print("served=%d refused=%d other=%d" % (served, refused, other))
print("codes=%s" % "|".join(sorted(codes)))
PY
)
tap_like "2,000 connections: exactly 20 greeted, 1,980 refused" "$out" "served=20 refused=1980 "
tap_like "the other address is greeted all 10 times" "$out" " other=10"
tap_is "every refusal is 421 4.7.0" "$(sed -n 's/^codes=//p' <<< "$out")" \
	"421 4.7.0 Too many connections from your address, try again later"
tap_is "the flood is logged once" \
	"$(grep -c 'limit=ratelimit_conn_per_ip key="cip:127.0.0.2"' "$PX_DIR/proxy.log")" 1
kill -0 "$PX_PID" 2>/dev/null
tap_ok "the proxy is still running" test $? = 0
tap_done
