#!/bin/bash
# dns_fixture.sh - tests/lib/dns.sh itself: nsd starts on a loopback port, answers from the zone
# file, refuses a broken zone, and dns_stop leaves no process and no directory behind.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/dns.sh"
. "$top_srcdir/tests/lib/postfix.sh"    # port_lock
[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK=1"
command -v /usr/sbin/nsd >/dev/null || tap_skip_all "nsd not installed"
port_lock dns-fixture || tap_skip_all "another run of this test held its ports for 600 s"
trap dns_stop EXIT
PORT=15300

# dns_txt NAME - the first TXT string of NAME from 127.0.0.1:$PORT over UDP (Debian's python3).
dns_txt() {
	/usr/bin/python3 - "$1" "$PORT" <<'PY'
import socket, struct, sys
name, port = sys.argv[1], int(sys.argv[2])
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for label in name.split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00" + struct.pack(">HH", 16, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.1", port))
r = s.recv(4096)
rcode = r[3] & 15
an = struct.unpack(">H", r[6:8])[0]
if rcode or not an:
    print("rcode=%d an=%d" % (rcode, an)); sys.exit(0)
i = len(q)
i += 2 + 8  # compressed name pointer, type, class, ttl
rdlen = struct.unpack(">H", r[i:i + 2])[0]; i += 2
print(r[i + 1:i + 1 + r[i]].decode())
PY
}

dns_start $PORT fixture.test="$top_srcdir/tests/e2e/data/fixture.test.zone"
tap_is "nsd starts on 127.0.0.1:$PORT" "$?" 0
pid=$DNS_PID dir=$DNS_DIR
tap_is "TXT answered from the zone file" "$(dns_txt fixture.test)" "v=spf1 ip4:192.0.2.0/24 -all"
tap_is "missing name is NXDOMAIN" "$(dns_txt nope.fixture.test)" "rcode=3 an=0"
dns_stop
kill -0 "$pid" 2>/dev/null
tap_is "dns_stop ends nsd" "$?" 1
tap_ok "dns_stop removes its directory" test ! -e "$dir"

bad=$(mktemp); printf 'this is not a zone\n' >"$bad"
dns_start $PORT broken.test="$bad" 2>/dev/null
tap_is "a broken zone file is refused" "$?" 2
tap_is "nothing left running after a refused start" "$DNS_PID" ""
rm -f "$bad"
tap_done
