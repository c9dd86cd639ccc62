#!/bin/bash
# deb_package.sh - the Debian package (debian/): built with `dpkg-buildpackage -us -uc -b` out of a
# copy of the tree, lintian-clean, installed with `dpkg -i` on this machine; each daemon started
# by hand (no systemd runs here) with the packaged configuration, as root so that it drops to the
# packaged user itself; one message relayed through the packaged proxy (XCLIENT, as packaged) to
# the fixtures' Postfix, and one through the packaged milter with miltertest; then
# `dpkg --remove` keeps the configuration and `dpkg --purge` leaves nothing but the mxmoat user.
# Whatever happens, the package this test installed is purged on exit. Ports 18500-18502.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/postfix.sh"

[ "${MXMOAT_QUICK:-}" = 1 ] && tap_skip_all "MXMOAT_QUICK"
[ "$(id -u)" = 0 ] || tap_skip_all "dpkg -i needs root"
for c in dpkg-buildpackage dh dh_autoreconf lintian fakeroot postfix swaks miltertest; do
	command -v "$c" >/dev/null || tap_skip_all "$c not installed (tests/packages/deb.txt)"
done
src=$(cd "$top_srcdir" && pwd)
[ -f "$src/debian/control" ] || tap_bail "no debian/ in $src"

P=18500 PF_PORT=18501 M=18502
CONF=/etc/mxmoat/mxmoat.conf
port_lock deb-package || tap_skip_all "another run of this test held the package for 600 s"
dpkg-query -W -f='${Status}' mxmoat 2>/dev/null | grep -q 'install ok' &&
	tap_bail "an mxmoat package is already installed here; this test would replace and purge it"

DEB_INSTALLED=
deb_cleanup() {
	milter_stop
	px_cleanup
	pf_stop
	[ -n "$DEB_INSTALLED" ] && deb_dpkg --purge mxmoat >/dev/null
}
trap deb_cleanup EXIT
trap 'exit 1' INT TERM HUP
px_init || tap_bail "no temp dir"
MILTER_DIR=$PX_DIR

# deb_dpkg ARGS... - dpkg, retried (bounded, 120 s) while apt or another dpkg holds its lock
deb_dpkg() {
	local i out
	for i in $(seq 1 60); do
		out=$(dpkg "$@" 2>&1) && { printf '%s\n' "$out"; return 0; }
		grep -q 'lock' <<<"$out" || break
		sleep 2
	done
	printf '%s\n' "$out"
	return 1
}

# deb_is_ok NAME RC OUTPUT - pass if RC is 0, else show the command's OUTPUT
deb_is_ok() {
	tap_is "$1" "$2" 0
	[ "$2" = 0 ] || printf '# %s\n' "$3"
}

# deb_owner PATH - "user:group mode" of PATH
deb_owner() { stat -c '%U:%G %a' "$1" 2>&1; }

# --- build out of a copy: tracked and new files only, none of the build trees ---
mkdir "$PX_DIR/src" || tap_bail "no build dir"
before=$(git -C "$src" status --porcelain 2>&1)
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z -co --exclude-standard |
		tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$PX_DIR/src"
else
	tar -C "$src" --exclude='./build*' -cf - . | tar -xf - -C "$PX_DIR/src"
fi || tap_bail "cannot copy the tree"
# A clean environment: make check's MAKEFLAGS (its jobserver, TESTS=...) must not reach the build.
# nocheck: the unit tests debian/rules runs are part of this suite already.
(cd "$PX_DIR/src" && env -i PATH="$PATH" HOME="$PX_DIR" LC_ALL=C.UTF-8 \
	DEB_BUILD_OPTIONS="nocheck parallel=2" DEB_BUILD_PROFILES=nocheck \
	timeout 1800 dpkg-buildpackage -us -uc -b) >"$PX_DIR/build.log" 2>&1
rc=$?
tap_is "dpkg-buildpackage -us -uc -b exits 0" "$rc" 0
arch=$(dpkg --print-architecture)
version=$(cd "$PX_DIR/src" && dpkg-parsechangelog -S Version)
deb=$PX_DIR/mxmoat_${version}_$arch.deb
if [ "$rc" != 0 ] || [ ! -f "$deb" ]; then
	tail -n 40 "$PX_DIR/build.log" | sed 's/^/# /'
	tap_done
	exit 1
fi
tap_is "configure.ac's version is debian/changelog's" \
	"$(sed -n 's/^AC_INIT(\[mxmoat\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")" "$version"
tap_is "the source tree is untouched by the build" "$(git -C "$src" status --porcelain 2>&1)" "$before"

# --- lintian: no error, no warning (overrides carry their reasons in debian/) ---
lint=$(timeout 600 lintian "$PX_DIR/mxmoat_${version}_$arch.changes" 2>/dev/null)
tap_is "lintian: no error or warning" "$(grep -E '^[EW]: ' <<<"$lint")" ""

# --- install ---
DEB_INSTALLED=1
out=$(deb_dpkg -i "$deb")
deb_is_ok "dpkg -i exits 0" $? "$out"
tap_is "the package is installed" "$(dpkg-query -W -f='${Status} ${Version}' mxmoat)" "install ok installed $version"
for f in /usr/sbin/mxmoat-proxy /usr/sbin/mxmoat-milter /usr/bin/mxmoat-check /usr/bin/mxmoat-keygen \
	/usr/bin/mxmoat-report; do
	tap_ok "$f is installed and executable" test -x "$f"
done
for m in mxmoat-proxy.8 mxmoat-milter.8 mxmoat-check.1 mxmoat-keygen.1 mxmoat-report.1 mxmoat.conf.5; do
	tap_ok "man page $m" test -f "/usr/share/man/man${m##*.}/$m.gz"
done
tap_like "$CONF is a conffile" "$(dpkg-query -W -f='${Conffiles}' mxmoat)" "^ $CONF [0-9a-f]{32}$"
tap_ok "both systemd units are installed" test -f /lib/systemd/system/mxmoat-proxy.service -a \
	-f /lib/systemd/system/mxmoat-milter.service
tap_is "neither unit is enabled on install" \
	"$(ls /etc/systemd/system/multi-user.target.wants/ 2>/dev/null | grep -c '^mxmoat')" 0
pw=$(getent passwd mxmoat)
tap_like "mxmoat is a system user with no login, home /var/lib/mxmoat" "$pw" \
	'^mxmoat:x:[0-9]+:[0-9]+:[^:]*:/var/lib/mxmoat:/usr/sbin/nologin$'
uid=$(cut -d: -f3 <<<"$pw")
tap_ok "its uid is a system uid (100-999)" test "${uid:-0}" -ge 100 -a "${uid:-0}" -le 999
tap_is "/var/spool/mxmoat: mxmoat, 0700" "$(deb_owner /var/spool/mxmoat)" "mxmoat:mxmoat 700"
tap_is "/var/lib/mxmoat: mxmoat, 0750" "$(deb_owner /var/lib/mxmoat)" "mxmoat:mxmoat 750"
tap_like "mxmoat-proxy -n accepts the packaged configuration" \
	"$(/usr/sbin/mxmoat-proxy -n -c $CONF 2>&1)" "configuration $CONF is valid"
tap_like "mxmoat-milter -n accepts the packaged configuration" \
	"$(/usr/sbin/mxmoat-milter -n -c $CONF 2>&1)" "configuration $CONF is valid"
tap_is "the packaged configuration's daemon_user is mxmoat" \
	"$(/usr/sbin/mxmoat-proxy -d -c $CONF | sed -n 's/^daemon_user = //p')" mxmoat
out=$(/usr/bin/mxmoat-keygen -a ed25519 -o "$PX_DIR/ed.key" s1 example.org 2>&1)
tap_like "mxmoat-keygen makes a key and prints its record" "$out" 'v=DKIM1; k=ed25519; p='

# --- the packaged proxy, started as root with the packaged file: it drops to mxmoat itself ---
pf_init "smtpd_authorized_xclient_hosts = 127.0.0.1" || tap_bail "pf_init failed"
pf_start || tap_bail "postfix did not start"
PX_BIN=/usr/sbin/mxmoat-proxy
px_start $P 127.0.0.1:$PF_PORT -c $CONF -o log_target=stderr ||
	{ sed 's/^/# /' "$PX_DIR/proxy.log"; tap_bail "the packaged proxy did not start"; }
tap_is "the proxy runs as mxmoat" "$(stat -c %U "/proc/$PX_PID")" mxmoat
out=$(timeout 60 swaks --server 127.0.0.1:$P --helo client.example --from a@example.org \
	--to b@example.net --header "Subject: packaged" --body "through the package" 2>&1)
tap_like "swaks through the packaged proxy: Postfix's 250 with its queue id" "$out" \
	$'<-  250 2\\.0\\.0 Ok: queued as [0-9A-Za-z]+'
pf_wait_delivered 1 20
tap_is "Postfix delivered one message" "$(pf_delivered_count)" 1
copy=$(pf_delivered_last)
tap_is "the copy has the body" "$(pf_body "$copy" | tr -d '\r')" "through the package"
hdr=$(pf_headers "$copy")
tap_like "XCLIENT as packaged: Postfix names the client the proxy told it" "$hdr" \
	$'Received: from client\\.example \\([^ ]+ \\[127\\.0\\.0\\.1\\]\\)\n\tby [^ ]+ \\(Postfix\\)'
tap_like "the proxy's Received field, with the packaged authserv_id" "$hdr" \
	$'\nReceived: from client\\.example \\([^\n]*\n\tby mx\\.example\\.org \\(mxmoat\\) with ESMTP id '
px_stop
tap_is "the proxy logged no error (the spool directory is usable)" \
	"$(grep -ciE 'error|cannot|denied|No such file' "$PX_DIR/proxy.log")" 0

# --- the packaged milter, the same way, and one message through it with miltertest ---
MILTER_BIN=/usr/sbin/mxmoat-milter
export MILTER_SOCK=inet:$M@127.0.0.1
milter_start "$MILTER_SOCK" -c $CONF || tap_bail "the packaged milter did not start"
tap_is "the milter runs as mxmoat" "$(stat -c %U "/proc/$MILTER_PID")" mxmoat
# (a transaction aborted mid-body, then a whole message to its end, answered with continue)
out=$(timeout 60 miltertest -s "$src/tests/e2e/miltertest/abort_mid_body.lua" 2>&1)
tap_like "miltertest: a message through the packaged milter" "$out" "abort_mid_body: done"
tap_ok "the milter logged the message" milter_log_grep " message .*from=<c@example\.org> nrcpt=1 "
milter_stop
tap_is "the milter exits 0 on SIGTERM" "$MILTER_RC" 0

# --- remove keeps the configuration, purge removes the rest ---
files=$(dpkg-query -L mxmoat)
mkdir -p /etc/mxmoat/keys && cp "$PX_DIR/ed.key" /etc/mxmoat/keys/ &&
	: > /var/spool/mxmoat/left-over && : > /var/lib/mxmoat/state
out=$(deb_dpkg --remove mxmoat)
deb_is_ok "dpkg --remove exits 0" $? "$out"
tap_ok "remove: the binaries are gone" test ! -e /usr/sbin/mxmoat-proxy -a ! -e /usr/sbin/mxmoat-milter
tap_ok "remove: $CONF stays" test -f $CONF
out=$(deb_dpkg --purge mxmoat)
deb_is_ok "dpkg --purge exits 0" $? "$out"
DEB_INSTALLED=
tap_is "purge: dpkg knows nothing of mxmoat" "$(dpkg-query -W -f='${Status}' mxmoat 2>/dev/null)" ""
for d in /etc/mxmoat /var/lib/mxmoat /var/spool/mxmoat /usr/share/doc/mxmoat; do
	tap_ok "purge: $d is gone" test ! -e "$d"
done
left=""
while IFS= read -r f; do
	[ -e "$f" ] && [ "$f" != /. ] || continue
	# a directory another package owns too (/usr/bin, /lib/systemd/system) rightly stays
	[ -d "$f" ] && dpkg-query -S "$f" >/dev/null 2>&1 && continue
	left="$left $f"
done <<<"$files"
tap_is "purge: nothing the package installed is left" "$left" ""
tap_is "purge: no systemd state of the units is left" \
	"$(ls /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null | grep -c mxmoat)" 0
tap_like "purge: the mxmoat user stays (Debian does not remove system users)" "$(getent passwd mxmoat)" '^mxmoat:'
tap_done
