# greylist.sh - what the greylisting tests share (source it after tap.sh; bash).
#
#   gl_retry_until_passed START_NS CMD...
#       Run CMD (one delivery attempt, printing its dialogue) again while its output matches
#       $greylisted, until it matches $accepted (at most 60 tries, 0.25 s apart), then two TAP
#       cases: a retry passed, and not before the 2 s delay nor 30 s after START_NS (date +%s%N
#       of the first try).
gl_retry_until_passed() {
	local start_ns=$1 passed=0 out ms i
	shift
	for i in $(seq 1 60); do
		out=$("$@")
		if [[ $out =~ $accepted ]]; then passed=1; break; fi
		[[ $out =~ $greylisted ]] || break
		sleep 0.25
	done
	ms=$((($(date +%s%N) - start_ns) / 1000000))
	tap_is "a retry after the delay passes" "$passed" 1
	tap_ok "... not before the 2 s delay, and within 30 s ($ms ms)" test "$ms" -ge 2000 -a "$ms" -lt 30000
}
