#!/bin/bash
# conf_docs.sh - doc/mxmoat.conf.5 against the key table: every key the daemons know is documented
# with its real default, and the page documents no key that does not exist.
. "$top_srcdir/tests/lib/tap.sh"

man=$top_srcdir/doc/mxmoat.conf.5
dump=$( { "$top_builddir/proxy/mxmoat-proxy" -d; "$top_builddir/milter/mxmoat-milter" -d; } | sort -u)
missing=""
wrong=""
while IFS= read -r line; do
	key=${line%% = *}
	value=${line#* = }
	[ "$key" = authserv_id ] && value="(the host name)"
	[ -z "$value" ] && value="(empty)"
	block=$(awk -v k=".B $key" '$0 == k { getline; getline; print; exit }' "$man")
	block=${block//\\:/}    # \: marks where a long default may break; it prints nothing
	if ! grep -qx "\.B $key" "$man"; then
		missing="$missing $key"
	elif [ "$block" != "Default: \\fB$value\\fR." ]; then
		wrong="$wrong $key(page:'$block' table:'$value')"
	fi
done <<< "$dump"
tap_is "every key is in mxmoat.conf(5)" "$missing" ""
tap_is "every default in mxmoat.conf(5) matches the table" "$wrong" ""

documented=$(awk '/^\.SH KEYS/ { on = 1; next } /^\.SH/ { on = 0 } on && /^\.B / { print $2 }' "$man" | sort)
known=$(printf '%s\n' "$dump" | sed 's/ = .*//' | sort)
tap_is "mxmoat.conf(5) documents no unknown key" "$(comm -23 <(echo "$documented") <(echo "$known") | tr '\n' ' ')" ""
tap_done
