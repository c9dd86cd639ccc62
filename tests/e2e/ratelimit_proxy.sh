#!/bin/bash
# ratelimit_proxy.sh - connection rate limits in mxmoat-proxy (embedded store): with
# ratelimit_conn_per_ip = 3/60s the 4th connection from one address gets 421 4.7.0 and is
# closed before the backend is contacted, another address is still served, a deny-listed one gets
# 554 5.7.1, and the flood is logged once. Ports: 16320 (proxy), 16321 (sink).
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v smtp-sink >/dev/null || tap_skip_all "smtp-sink (postfix) not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "smtp-sink -u needs root"

P=16320 S=16321
port_lock ratelimit-proxy || tap_skip_all "another run of this test held its ports for 600 s"
trap px_cleanup EXIT
px_init || tap_bail "no temp dir"
px_sink_start $S || tap_bail "smtp-sink did not start"
px_start $P 127.0.0.1:$S -o ratelimit_allow= -o ratelimit_conn_per_ip=3/60s \
	-o ratelimit_conn_per_net= -o ratelimit_deny=127.0.0.9 ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }

# px_start's readiness probe from 127.0.0.1 counts too: the test's client is 127.0.0.2.
chat() { python3 "$top_srcdir/tests/lib/smtp_chat.py" 127.0.0.1 $P --src "$1" R "S:QUIT\r\n" A; }
for i in 1 2 3; do
	tap_like "127.0.0.2 connection $i: greeted" "$(chat 127.0.0.2)" "^<- 220 "
done
out=$(chat 127.0.0.2)
tap_like "127.0.0.2 connection 4: 421 4.7.0 and closed" "$out" \
	$'^<- 421 4\\.7\\.0 Too many connections from your address, try again later\n(EOF|<- )'
tap_like "127.0.0.2 connection 5: still 421" "$(chat 127.0.0.2)" "^<- 421 4\\.7\\.0 "
tap_like "127.0.0.3 is served meanwhile" "$(chat 127.0.0.3)" "^<- 220 "
tap_like "deny-listed 127.0.0.9: 554 5.7.1" "$(chat 127.0.0.9)" "^<- 554 5\\.7\\.1 "
tap_is "the refused address is logged once" \
	"$(grep -c 'limit=ratelimit_conn_per_ip key="cip:127.0.0.2"' "$PX_DIR/proxy.log")" 1
tap_done
