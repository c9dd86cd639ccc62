#!/bin/bash
# auth_fail_limits.sh - failed AUTH across sessions in mxmoat-proxy, on a submission listener in
# front of a real Postfix whose SASL is the Dovecot fixture: 50 wrong passwords for alice from
# 127.0.0.2, one session each; ratelimit_auth_fail_per_ip = 10/1h lets the first 10 through to
# Postfix (its 535) and answers the AUTH of the other 40 with 421 4.7.0 and a close, without
# asking Postfix; bob logs in from 127.0.0.3 meanwhile. ratelimit_auth_fail_per_user = 15/1h:
# five more failures for alice from 127.0.0.4, then alice with her right password from 127.0.0.5
# gets the same 421 as a wrong one (no oracle), while bob still logs in. No password, no login in
# clear in the proxy's log. (Dovecot's own failure delay and penalty are off here.) Then two proxies sharing one Redis (ratelimit_store = redis): the
# failures counted by one refuse the address at the other.
# Ports 19480 (Postfix), 19481 (sink), 19482-19483 (proxy), 19484-19487 (two Redis proxies),
# 19488 (Redis).
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/postfix.sh"
. "$top_srcdir/tests/lib/proxy.sh"
. "$top_srcdir/tests/lib/dovecot.sh"
. "$top_srcdir/tests/lib/redis.sh"

[ "$MXMOAT_QUICK" = 1 ] && tap_skip_all "MXMOAT_QUICK"
dovecot_pf_require
swaks --support 2>&1 | grep -q '^=== TLS supported' || tap_skip_all "swaks without TLS"
port_lock auth-fail-limits || tap_skip_all "another run of this test held its ports for 600 s"

PF_PORT=19480 PF_SINK_PORT=19481 PLAIN=19482 SUB=19483
PID2=
cleanup() {
	[ -n "$PID2" ] && proc_stop "$PID2" KILL
	dovecot_stop
	redis_stop
	px_cleanup
	pf_stop
}
trap cleanup EXIT
px_init || tap_bail "no temp dir"

pw_a='al1ce-Pw+7' pw_b='b0b-Pw+9'
# Dovecot's own failure delay and penalty off: what is tested is mxmoat's limit
DOVECOT_CONF_EXTRA=$DOVECOT_NO_PENALTY
dovecot_pf_start "$PX_DIR/dovecot" "alice:$pw_a" "bob:$pw_b"
px_tls_key
common=(-o "tls_cert_file=$PX_DIR/rsa.pem" -o "tls_key_file=$PX_DIR/rsa.key" -o proxy_backend_pass=xclient
	-o ratelimit_allow= -o ratelimit_conn_per_ip=1000/60s -o ratelimit_conn_per_net= -o ratelimit_tls_per_ip=)

tap_is "defaults: 10/1h per address, 30/1h per login" \
	"$("$top_builddir/proxy/mxmoat-proxy" -d | grep '^ratelimit_auth_fail_per_')" \
	$'ratelimit_auth_fail_per_ip = 10/1h\nratelimit_auth_fail_per_user = 30/1h'

px_start $PLAIN 127.0.0.1:$PF_PORT "${common[@]}" -o "proxy_submission_listen=127.0.0.1:$SUB" \
	-o ratelimit_auth_fail_per_user=15/1h ||
	{ cat "$PX_DIR/proxy.log"; tap_bail "proxy did not start"; }
px__wait_port $SUB || tap_diag "submission listener not up"

# auth PORT SRC USER PASSWORD - one session from address SRC that authenticates, then quits
auth() {
	swaks --server "127.0.0.1:$1" --local-interface "$2" --tls --auth PLAIN --auth-user "$3" \
		--auth-password "$4" --quit-after AUTH --timeout 20 2>&1
}
refused_ip=$'<~\\* +421 4\\.7\\.0 Too many failed authentications from your address, try again later'
refused_user=$'<~\\* +421 4\\.7\\.0 Too many failed authentications for this account, try again later'

n535=0 n421=0 other=0
for i in $(seq 1 50); do
	out=$(auth $SUB 127.0.0.2 alice "wrong-$i")
	if grep -qE '<~\* +535 5\.7\.8' <<<"$out"; then
		n535=$((n535 + 1))
	elif grep -qE "$refused_ip" <<<"$out"; then
		n421=$((n421 + 1))
		[ "$n421" = 1 ] && first421=$i && last421_out=$out
	else
		other=$((other + 1)); tap_diag "session $i: $(tail -n 3 <<<"$out")"
	fi
	if [ "$i" = 25 ]; then
		tap_like "bob from 127.0.0.3 in the middle of it: 235" "$(auth $SUB 127.0.0.3 bob "$pw_b")" \
			$'<~  235 2\\.7\\.0 Authentication successful'
	fi
done
tap_is "50 wrong passwords from 127.0.0.2: 10 get Postfix's 535" "$n535" 10
tap_is "... the other 40 get 421 4.7.0" "$n421" 40
tap_is "... nothing else" "$other" 0
tap_is "... the first 421 is session 11" "$first421" 11
tap_is "... and the connection is closed after it (QUIT gets no 221)" "$(grep -c '221 ' <<<"$last421_out")" 0
tap_is "Postfix saw 10 failed AUTH, not 50" "$(grep -c 'SASL PLAIN authentication failed' "$PF_LOG")" 10
tap_like "bob from 127.0.0.3 after it: 235" "$(auth $SUB 127.0.0.3 bob "$pw_b")" $'<~  235 2\\.7\\.0'

# the login's budget: 10 failures so far, 5 more from another address use it up
for i in $(seq 1 5); do auth $SUB 127.0.0.4 alice "wrong-again-$i" >/dev/null; done
tap_like "alice's 16th failure, from 127.0.0.4: 421 for the account" \
	"$(auth $SUB 127.0.0.4 alice wrong-16)" "$refused_user"
tap_like "alice with the right password from 127.0.0.5: the same 421, no 235" \
	"$(auth $SUB 127.0.0.5 alice "$pw_a")" "$refused_user"
tap_like "bob from 127.0.0.5: 235" "$(auth $SUB 127.0.0.5 bob "$pw_b")" $'<~  235 2\\.7\\.0'

log=$PX_DIR/proxy.log
tap_is "the proxy logs 40 refusals at AUTH" \
	"$(grep -c 'auth result=refused mech=PLAIN reason=ratelimit_auth_fail_per_ip' "$log")" 40
tap_is "the limit itself is logged once (ratelimit_log_interval)" \
	"$(grep -c 'ratelimit limit=ratelimit_auth_fail_per_ip key="afip:127.0.0.2" action=refuse' "$log")" 1
tap_like "the login's bucket is logged by its hash" "$(cat "$log")" \
	'limit=ratelimit_auth_fail_per_user key="afusr:#[0-9a-f]{16}-5" action=refuse'
b64=$(printf '\0alice\0%s' "$pw_a" | base64 -w0)
tap_is "no password (plain or base64) in the proxy's log" \
	"$(grep -cF -e "$pw_a" -e "$pw_b" -e "$b64" -e wrong- "$log")" 0
tap_is "no login in clear in the proxy's log" "$(grep -ciE 'alice|bob' "$log")" 0
px_stop

# ---- two proxies, one Redis: the failures counted at one refuse at the other ----
if redis_start 19488 2>/dev/null; then
	rconf=(-o ratelimit_store=redis -o ratelimit_redis=127.0.0.1:19488 -o ratelimit_auth_fail_per_ip=3/1h)
	px_start 19484 127.0.0.1:$PF_PORT "${common[@]}" "${rconf[@]}" \
		-o "proxy_submission_listen=127.0.0.1:19485" || tap_bail "proxy A did not start"
	"$top_builddir/proxy/mxmoat-proxy" -f -o proxy_listen=127.0.0.1:19486 -o proxy_backend=127.0.0.1:$PF_PORT \
		-o proxy_workers=1 -o auth_inbound=no "${common[@]}" "${rconf[@]}" \
		-o "proxy_submission_listen=127.0.0.1:19487" >>"$PX_DIR/proxy2.log" 2>&1 &
	PID2=$!
	px__wait_port 19485 && px__wait_port 19487 || tap_bail "Redis proxies not up"
	for i in 1 2 3; do
		tap_like "Redis, proxy A: wrong password $i from 127.0.0.6: 535" \
			"$(auth 19485 127.0.0.6 alice "wrong-r$i")" '<~\* +535 5\.7\.8'
	done
	tap_like "Redis, proxy B: the 4th AUTH from 127.0.0.6 gets 421" "$(auth 19487 127.0.0.6 bob "$pw_b")" "$refused_ip"
	tap_like "Redis, proxy A too" "$(auth 19485 127.0.0.6 bob "$pw_b")" "$refused_ip"
	tap_like "Redis, proxy B: bob from 127.0.0.7: 235" "$(auth 19487 127.0.0.7 bob "$pw_b")" $'<~  235 2\\.7\\.0'
	tap_is "Redis holds the address's bucket" \
		"$(redis-cli -p 19488 --raw exists 'mxmoat:rl:afip:127.0.0.6')" 1
	redis_kill
	tap_like "Redis down, fail open: proxy B decides from its own memory (no failure seen there): 535" \
		"$(auth 19487 127.0.0.6 alice wrong-r4)" '<~\* +535 5\.7\.8'
	proc_stop "$PID2" TERM
	PID2=
	px_stop
	tap_is "no sanitizer report" \
		"$(cat "$PX_DIR/proxy.log" "$PX_DIR/proxy2.log" | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" 0
else
	tap_skip "two proxies sharing one Redis" "redis-server did not start"
fi
tap_done
