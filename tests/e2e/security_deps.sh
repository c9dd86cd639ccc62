#!/bin/bash
# security_deps.sh - SECURITY.md's "Dependencies" against what the daemons link: every Debian
# package in its table is a library mxmoat-proxy or mxmoat-milter names itself (DT_NEEDED), and
# every such library's package is in the table; every library pulled in by those is named in the
# paragraph under the table; nothing named there is missing from what the loader maps
# (tests/lib/linked_libs.sh: ldd and dpkg -S). The C library and the sanitizer build's compiler
# runtime are the exceptions SECURITY.md itself states.
. "${top_srcdir:-.}/tests/lib/tap.sh"
top_builddir=${top_builddir:-.}
command -v dpkg >/dev/null && command -v readelf >/dev/null || tap_skip_all "needs dpkg and readelf"
for b in proxy/mxmoat-proxy milter/mxmoat-milter; do
	[ -x "$top_builddir/$b" ] || tap_bail "$b not built"
done

runtime='^(libc6|libasan8|libubsan1|libstdc\+\+6|libgcc-s1)$'
linked=$("$top_srcdir/tests/lib/linked_libs.sh" "$top_builddir/proxy/mxmoat-proxy" \
	"$top_builddir/milter/mxmoat-milter")
tap_is "every linked library belongs to a Debian package" "$(printf '%s\n' "$linked" | grep -c '^? ')" 0
direct=$(printf '%s\n' "$linked" | awk '$4 == "direct" { print $1 }' | grep -Ev "$runtime" | sort -u)
indirect=$(printf '%s\n' "$linked" | awk '{ print $1 }' | grep -Ev "$runtime" | sort -u |
	comm -23 - <(printf '%s\n' "$direct"))

section=$(sed -n '/^## Dependencies$/,/^## /p' "$top_srcdir/SECURITY.md")
table=$(printf '%s\n' "$section" | sed -n 's/^| \(lib[^ |]*\|zlib1g\) |.*/\1/p' | sort -u)
pulled=$(printf '%s\n' "$section" | sed -n '/^Pulled in by those/,/^$/p')
tap_ok "SECURITY.md has a dependency table" test -n "$table"
tap_is "linked by the daemons themselves but not in SECURITY.md's table" \
	"$(comm -23 <(printf '%s\n' "$direct") <(printf '%s\n' "$table") | tr '\n' ' ')" ""
tap_is "in SECURITY.md's table but linked by neither daemon" \
	"$(comm -13 <(printf '%s\n' "$direct") <(printf '%s\n' "$table") | tr '\n' ' ')" ""
missing=""
for p in $indirect; do
	printf '%s\n' "$pulled" | grep -Eq "(^|[ (])$(printf '%s' "$p" | sed 's/[.+]/\\&/g')[,;). ]" ||
		missing="$missing $p"
done
tap_is "every library pulled in by them is named under the table" "$missing" ""
stale=""
for p in $(printf '%s\n' "$pulled" | grep -oE '\blib[a-z0-9.+-]*[0-9]\b' | sort -u); do
	printf '%s\n' "$indirect" | grep -qx -- "$p" || printf '%s\n' "$p" | grep -Eq "$runtime" ||
		stale="$stale $p"
done
tap_is "every library named under the table is pulled in" "$stale" ""
tap_done
