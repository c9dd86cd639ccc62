#!/bin/bash
# linked_libs.sh - the Debian packages of the libraries a program links (run it; bash).
#
#   tests/lib/linked_libs.sh BINARY...
#
# One line per library, sorted: "PACKAGE VERSION SONAME direct|indirect", from ldd (every
# library the loader maps, also those pulled in by others) and dpkg -S (the package that owns the
# file; /lib and /usr/lib are one directory on Debian 12, so both spellings are asked). direct:
# one of the BINARYs names it itself (DT_NEEDED). A library no package owns is "? ? SONAME ...".
# tests/run prints this for the daemons; tests/e2e/security_deps.sh checks SECURITY.md with it.
set -u
declare -A needed
for bin in "$@"; do
	while read -r so; do needed[$so]=1; done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done
ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
while read -r so path; do
	real=$(realpath "$path")
	pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null ||
		dpkg -S "/usr$real" 2>/dev/null)
	pkg=${pkg%%:*}
	ver=$([ -n "$pkg" ] && dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)
	echo "${pkg:-?} ${ver:-?} $so $([ -n "${needed[$so]:-}" ] && echo direct || echo indirect)"
done | sort -u
