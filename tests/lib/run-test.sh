#!/bin/sh
# run-test.sh - the automake LOG_COMPILER: run one test so that it speaks TAP on stdout.
# Shell tests (*.sh) print TAP themselves (tests/lib/tap.sh); Criterion programs are asked for it.
case "$1" in
*.sh)	exec bash "$@" ;;
*)	exec "$@" --tap=/dev/stdout ;;
esac
