# tap.sh - TAP output for the shell tests under tests/e2e/ (source it; bash).
#
#   tap_ok   NAME CMD...        pass if CMD exits 0
#   tap_is   NAME GOT WANT      pass if the two strings are equal (both shown on failure)
#   tap_like NAME GOT REGEX     pass if GOT matches the extended regex
#   tap_has  NAME GOT PART      pass if PART occurs in GOT, as a fixed string
#   tap_skip NAME REASON        one case skipped ("ok N - NAME # SKIP REASON"), same rule as below
#   tap_skip_all REASON         the whole file is skipped (prints "1..0 # SKIP REASON", exits 0):
#                               only for what the machine lacks (a package, root, MXMOAT_QUICK)
#   tap_bail REASON             a fixture or a daemon of ours failed: "Bail out!", an ERROR
#   tap_done                    print the plan; exit 1 if anything failed
#
# Each assertion is one TAP line, so `make check` counts cases, not scripts.

TAP_N=0
TAP_FAILED=0

tap__result() {	# tap__result OK NAME [DIAG...]
	TAP_N=$((TAP_N + 1))
	if [ "$1" = 0 ]; then
		printf 'ok %d - %s\n' "$TAP_N" "$2"
	else
		TAP_FAILED=$((TAP_FAILED + 1))
		printf 'not ok %d - %s\n' "$TAP_N" "$2"
		shift 2
		for line in "$@"; do printf '#   %s\n' "$line"; done
	fi
}

tap_ok() {
	local name=$1; shift
	"$@"; tap__result $? "$name" "command failed: $*"
}

tap_is() {
	[ "$2" = "$3" ]; tap__result $? "$1" "got:  '$2'" "want: '$3'"
}

tap_like() {
	[[ $2 =~ $3 ]]; tap__result $? "$1" "got:  '$2'" "want match: '$3'"
}

tap_has() {
	[[ $2 == *"$3"* ]]; tap__result $? "$1" "got:  '$2'" "want part: '$3'"
}

tap_diag() {
	printf '# %s\n' "$@"
}

# tap_bail REASON - a fixture or a daemon of ours failed: the file is an error, never a skip.
tap_bail() {
	printf 'Bail out! %s\n' "$1"
	exit 1
}

tap_skip() {
	TAP_N=$((TAP_N + 1))
	printf 'ok %d - %s # SKIP %s\n' "$TAP_N" "$1" "$2"
}

tap_skip_all() {
	printf '1..0 # SKIP %s\n' "$1"
	exit 0
}

tap_done() {
	printf '1..%d\n' "$TAP_N"
	[ "$TAP_FAILED" = 0 ]
}
