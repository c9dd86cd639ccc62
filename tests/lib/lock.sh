# lock.sh - serialise runs of one test across build trees (source it; bash). Two trees running the
# same e2e test at once would fight over its fixed ports, so every test that listens takes a lock
# named after itself first (postfix.sh and proxy.sh source this file).
#
#   port_lock NAME [SECONDS]   hold /tmp/mxmoat-e2e-NAME.lock until the script exits, waiting at
#                              most SECONDS (default 600) for another run to let go; 1 if it did not
#
# Example:
#   port_lock proxy-sink || tap_skip_all "another run of this test held its ports for 600 s"

port_lock() {
	local fd
	exec {fd}>"/tmp/mxmoat-e2e-$1.lock" || return 1
	flock -w "${2:-600}" "$fd"
}
