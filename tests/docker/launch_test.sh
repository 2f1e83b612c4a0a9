#!/usr/bin/env bash
# docker_launch: mlsec-launch maps service names to programs, passes the
# arguments through untouched, and refuses anything else.
# Usage: launch_test.sh LAUNCHER FAKEBIN_DIR
set -u
L=$1
BIN=$2
rm -rf "$BIN"
mkdir -p "$BIN"
for p in mlsec-orchestratord mlsec-inspectd mlsec-tritond mlsec-submit; do
	printf '#!/bin/sh\necho "$(basename "$0")|$*"\n' >"$BIN/$p"
	chmod +x "$BIN/$p"
done
printf '#!/bin/sh\nexit 7\n' >"$BIN/mlsec-poisond"
chmod +x "$BIN/mlsec-poisond"

passed=0
failed=0
expect() { # description, expected output, expected status, command...
	local what=$1 want=$2 wantrc=$3
	shift 3
	local got rc
	got=$("$@" 2>/dev/null)
	rc=$?
	if [ "$got" = "$want" ] && [ "$rc" -eq "$wantrc" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $what: got '$got' rc=$rc, want '$want' rc=$wantrc"
	fi
}
expect "stage name" "mlsec-inspectd|--flag a b" 0 "$L" inspect --flag "a b"
expect "orchestrator" "mlsec-orchestratord|" 0 "$L" orchestrator
expect "full program name" "mlsec-tritond|-x" 0 "$L" mlsec-tritond -x
expect "client program" "mlsec-submit|--help" 0 "$L" mlsec-submit --help
expect "exit status passes through" "" 7 "$L" poison
expect "missing program" "" 127 "$L" checkpoint
expect "unknown service" "" 2 "$L" bash
expect "path traversal" "" 2 "$L" ../../bin/sh
expect "slash" "" 2 "$L" mlsec/../sh
expect "upper case" "" 2 "$L" INSPECT
expect "itself" "" 2 "$L" mlsec-launch
expect "no argument" "" 2 "$L"
expect "empty" "" 2 "$L" ""
if "$L" --help | grep -q "mlsec-inspectd"; then passed=$((passed + 1)); else
	failed=$((failed + 1)); echo "FAIL --help lists programs"; fi
echo "docker_launch: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
