# dovecot.sh - a throwaway Dovecot auth service (passwd-file, PLAIN and LOGIN) that a test's
# Postfix asks for SASL (source it; bash; run as root). Nothing outside the temp dir is read or
# written; the passwords never leave the test.
#
#   dovecot_start DIR USER:PASSWORD...  write DIR/dovecot.conf and DIR/users, start `dovecot -F`,
#                                       wait (bounded, 5 s) for its auth socket; sets DOVECOT_PID
#                                       and DOVECOT_PF (the main.cf lines for pf_init, an array).
#                                       1 (dovecot.out printed as TAP comments) if it did not start.
#   dovecot_stop                        stop it (idempotent; call it from the EXIT trap)
#   DOVECOT_CONF_EXTRA                  lines appended to dovecot.conf, e.g.
#                                       "$DOVECOT_NO_PENALTY": Dovecot's own failure delay (2 s)
#                                       and per-address penalty (up to 15 s a lookup, past which
#                                       Postfix gives up with 454) off, for a test of our limits
#
# For a test of the proxy's submission listener in front of Postfix (tap.sh and postfix.sh
# sourced):
#   dovecot_pf_require                  skip the test unless run as root with swaks, dovecot and
#                                       a Postfix that has Dovecot SASL
#   dovecot_pf_start DIR USER:PASSWORD...  dovecot_start, then Postfix on PF_PORT asking it for
#                                       SASL and taking XCLIENT from 127.0.0.1 (the proxy),
#                                       relaying to smtp-sink on PF_SINK_PORT; the test is
#                                       skipped if one of them does not start
#
# Example:
#   dovecot_start "$PX_DIR/dovecot" "alice:$pw" || tap_bail "dovecot did not start"
#   pf_init "${DOVECOT_PF[@]}" "smtpd_authorized_xclient_hosts = 127.0.0.1"

DOVECOT_PID=
DOVECOT_PF=()
DOVECOT_NO_PENALTY=$'auth_failure_delay = 0\nservice anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}'

dovecot_start() {
	local dir=$1 i
	shift
	mkdir -p "$dir/run" "$dir/state" || return 1
	cat >"$dir/dovecot.conf" <<EOC
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
${DOVECOT_CONF_EXTRA:-}
EOC
	: >"$dir/users"
	for i in "$@"; do printf '%s:{PLAIN}%s\n' "${i%%:*}" "${i#*:}" >>"$dir/users"; done
	chmod 644 "$dir/users"
	dovecot -F -c "$dir/dovecot.conf" >"$dir/dovecot.out" 2>&1 &
	DOVECOT_PID=$!
	for i in $(seq 1 50); do [ -S "$dir/run/auth-postfix" ] && break; sleep 0.1; done
	if [ ! -S "$dir/run/auth-postfix" ]; then
		sed 's/^/# /' "$dir/dovecot.out"
		return 1
	fi
	DOVECOT_PF=("smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = dovecot"
		"smtpd_sasl_path = $dir/run/auth-postfix" "smtpd_sasl_authenticated_header = yes")
}

dovecot_stop() {
	[ -n "$DOVECOT_PID" ] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
	DOVECOT_PID=
	return 0
}

dovecot_pf_require() {
	[ "$(id -u)" = 0 ] || tap_skip_all "needs root (postfix -c)"
	command -v postfix >/dev/null && command -v swaks >/dev/null || tap_skip_all "needs postfix and swaks"
	command -v dovecot >/dev/null || tap_skip_all "needs dovecot (Debian dovecot-core)"
	postconf -a | grep -qx dovecot || tap_skip_all "Postfix without Dovecot SASL"
}

dovecot_pf_start() {
	dovecot_start "$@" || tap_bail "dovecot did not start"
	pf_init "${DOVECOT_PF[@]}" "smtpd_authorized_xclient_hosts = 127.0.0.1" || tap_bail "pf_init failed"
	pf_sink_start && pf_start || { pf_diag; tap_bail "postfix did not start"; }
}
