#!/bin/bash
# contrib_milter.sh - the shipped mxmoat-milter snippets, checked with the tools that read them,
# without installing or starting an MTA or a service:
#   - contrib/systemd/mxmoat-milter.service: `systemd-analyze verify` says nothing (every key
#     known, every value parsed; ExecStart pointed at the built binary, man pages not looked up),
#     `systemd-analyze security --offline` confirms the hardening the issue asks for, and the
#     unit's ExecStartPre check passes on contrib/mxmoat.conf;
#   - contrib/sendmail/mxmoat.mc: expanded by m4 with Sendmail's own cf macros (Debian package
#     sendmail-cf, m4 files only, no Sendmail) into a sendmail.cf holding the X line of the
#     filter, InputMailFilters=mxmoat and, per stage, every macro the Postfix snippet sends.
# Starting the unit needs systemd as PID 1, and running Sendmail needs sendmail-bin, which would
# replace Postfix: neither is done here.
. "${top_srcdir:-.}/tests/lib/tap.sh"
top_srcdir=$(cd "${top_srcdir:-.}" && pwd)
top_builddir=$(cd "${top_builddir:-.}" && pwd)
milter=$top_builddir/milter/mxmoat-milter
[ -x "$milter" ] || tap_bail "mxmoat-milter not built"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# tap_skip N NAME REASON - N skipped cases
tap_skip() {
	local i
	for i in $(seq 1 "$1"); do
		TAP_N=$((TAP_N + 1))
		printf 'ok %d - %s # SKIP %s\n' "$TAP_N" "$2" "$3"
	done
}

quiet() { "$@" >/dev/null 2>&1; }

# ---- systemd unit ----
unit=$work/mxmoat-milter.service
sed "s|/usr/sbin/mxmoat-milter|$milter|g" "$top_srcdir/contrib/systemd/mxmoat-milter.service" >"$unit"
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify --man=no "$unit" 2>&1)
	tap_is "systemd unit: systemd-analyze verify reports nothing" "$out" ""
	sec=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1)
	# LABEL|REGEX: a line of the offline assessment that must be a pass
	for want in 'NoNewPrivileges|NoNewPrivileges=' \
		'ProtectSystem=strict|ProtectSystem=  *Service has strict read-only' \
		'PrivateTmp|PrivateTmp=' 'no CAP_SYS_ADMIN|CapabilityBoundingSet=~CAP_SYS_ADMIN ' \
		'no CAP_NET_BIND_SERVICE|CapabilityBoundingSet=~CAP_NET_\(BIND_SERVICE' \
		'no CAP_CHOWN|CapabilityBoundingSet=~CAP_\(CHOWN' \
		'no CAP_SETUID|CapabilityBoundingSet=~CAP_SET\(UID'; do
		tap_like "systemd unit: security assessment passes ${want%%|*}" "$sec" $'(^|\n)✓ '"${want#*|}"
	done
else
	tap_skip 8 "systemd unit" "systemd-analyze not installed"
fi
pre=$(sed -n 's/^ExecStartPre=//p' "$unit" | sed "s|/etc/mxmoat/mxmoat.conf|$top_srcdir/contrib/mxmoat.conf|")
read -r -a pre_argv <<<"$pre"
tap_is "systemd unit: ExecStartPre is the built binary's -n check" "${pre_argv[0]} ${pre_argv[1]}" "$milter -n"
tap_ok "systemd unit: ExecStartPre passes on contrib/mxmoat.conf" quiet "${pre_argv[@]}"

# ---- Sendmail snippet ----
cfm4=/usr/share/sendmail/cf/m4/cf.m4
if [ -r "$cfm4" ] && command -v m4 >/dev/null; then
	{
		printf 'divert(-1)\ninclude(`%s'"'"')\n' "$cfm4"
		printf 'OSTYPE(`linux'"'"')dnl\nDOMAIN(`generic'"'"')dnl\n'
		cat "$top_srcdir/contrib/sendmail/mxmoat.mc"
		printf 'MAILER(`smtp'"'"')dnl\n'
	} >"$work/test.mc"
	m4 "$work/test.mc" >"$work/sendmail.cf" 2>"$work/m4.err"
	tap_is "sendmail: m4 expands the snippet without error" "$?:$(cat "$work/m4.err")" "0:"
	cf=$(cat "$work/sendmail.cf")
	tap_is "sendmail: the filter's X line" "$(grep '^Xmxmoat' "$work/sendmail.cf")" \
		'Xmxmoat, S=inet:8894@127.0.0.1, F=T, T=C:10s;S:30s;R:30s;E:5m'
	tap_like "sendmail: the filter is in InputMailFilters" "$cf" $'\nO InputMailFilters=mxmoat\n'
	# Every macro the Postfix snippet sends at a stage is in Sendmail's list for that stage.
	pf=$top_srcdir/contrib/postfix/main.cf.milter
	for pair in connect:connect helo:helo mail:envfrom end_of_data:eom; do
		list=$(sed -n "s/^milter_${pair%%:*}_macros = //p" "$pf")
		sm=$(sed -n "s/^O Milter\.macros\.${pair#*:}=//p" "$work/sendmail.cf")
		missing=
		for m in $list; do
			case ", $sm," in *", $m,"*) ;; *) missing="$missing $m" ;; esac
		done
		tap_is "sendmail: Milter.macros.${pair#*:} has Postfix's milter_${pair%%:*}_macros ($list)" \
			"${list:+x}${missing}" "x"
	done
else
	tap_skip 7 "sendmail" "sendmail-cf (m4 files) or m4 not installed"
fi
tap_done
