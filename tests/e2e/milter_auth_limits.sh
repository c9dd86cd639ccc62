#!/bin/bash
# milter_auth_limits.sh - what can be done about failed AUTH behind Postfix, where mxmoat-milter
# cannot see it: a real Postfix 3.7 with SASL (the Dovecot fixture, its own failure delay and
# penalty off) and mxmoat-milter, run with contrib/postfix/main.cf.milter and
# contrib/postfix/main.cf.auth-limits as shipped. 12 wrong passwords from 127.0.0.2 within a
# minute: Postfix answers 10 with 535 and refuses the AUTH of the others itself, while bob logs
# in from 127.0.0.3 and his message goes through the milter with his login. The milter's log has
# the sessions of the failures but nothing of the failures themselves.
# Ports: 19490 (smtpd), 19491 (sink), 19492 (milter).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/milter.sh"
. "$top_srcdir/tests/lib/dovecot.sh"

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
dovecot_pf_require
milter_pf_prepare milter-auth-limits
cleanup_all() { dovecot_stop; milter__pf_cleanup; }
trap cleanup_all EXIT

pw_b='b0b-Pw+9'
DOVECOT_CONF_EXTRA=$DOVECOT_NO_PENALTY
dovecot_start "$MILTER_DIR/dovecot" "alice:al1ce-Pw+7" "bob:$pw_b" || tap_bail "dovecot did not start"

tap_ok "milter starts" milter_start inet:19492@127.0.0.1 -o log_verbose=yes
mapfile -t snippet < <(milter_pf_snippet 19492; grep -v -e '^#' -e '^$' "$top_srcdir/contrib/postfix/main.cf.auth-limits")
tap_is "the snippet sets smtpd_client_auth_rate_limit = 10" \
	"$(printf '%s\n' "${snippet[@]}" | grep -c '^smtpd_client_auth_rate_limit = 10$')" 1
milter_pf_start 19490 19491 "${snippet[@]}" "${DOVECOT_PF[@]}" "smtpd_client_event_limit_exceptions ="

auth() {	# auth SRC USER PASSWORD [swaks options]
	local src=$1 user=$2 pw=$3
	shift 3
	swaks --server 127.0.0.1:19490 --local-interface "$src" --auth PLAIN --auth-user "$user" \
		--auth-password "$pw" --timeout 20 "$@" 2>&1
}
n535=0 nlimit=0
for i in $(seq 1 12); do
	out=$(auth 127.0.0.2 alice "wrong-$i" --quit-after AUTH)
	grep -qE '<\*\* +535 5\.7\.8' <<<"$out" && n535=$((n535 + 1))
	if grep -qE '<\*\* +450 4\.7\.1 Error: too many AUTH commands from 127\.0\.0\.2' <<<"$out"; then
		nlimit=$((nlimit + 1))
		[ "$nlimit" = 1 ] && first=$i
	fi
done
tap_is "12 wrong passwords from 127.0.0.2: 10 get 535" "$n535" 10
tap_is "... then Postfix refuses the AUTH itself (450 4.7.1 too many AUTH commands)" "$nlimit" 2
tap_is "... from the 11th on" "$first" 11
tap_ok "Postfix logs why" pf_maillog_grep 'AUTH command rate limit exceeded: [0-9]+ from [^ ]*\[127\.0\.0\.2\]'

out=$(auth 127.0.0.3 bob "$pw_b" --from bob@example.org --to r@example.net --body "after the failures")
tap_like "bob from 127.0.0.3: 235" "$out" '<-  235 2\.7\.0'
tap_like "... and his message is queued" "$out" '<-  250 2\.0\.0 Ok: queued as'
tap_ok "... relayed" pf_wait_delivered 1 20
tap_ok "the milter saw the sessions of the failures (connect from 127.0.0.2)" \
	milter_log_grep 'connect client=[^ ]*\[127\.0\.0\.2\]'
tap_is "... but no AUTH and no failure in them: nothing in its log says auth" \
	"$(grep -c ' auth ' "$MILTER_LOG")" 0
tap_is "no password or login of the failures in the milter's log" \
	"$(grep -ciE 'wrong-|alice' "$MILTER_LOG")" 0
milter_stop
tap_ok "no sanitizer report" milter_sanitizer_clean
tap_done
