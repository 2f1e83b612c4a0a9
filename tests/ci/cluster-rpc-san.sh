#!/usr/bin/env bash
# cluster-rpc-san.sh - the cluster path (orchestrator, stage service,
# mlsec-submit, Python grpcio client) with the ASan+UBSan binaries of
# build-san (built by `make test-san` before .ci/run calls this): a few
# end-to-end scenarios, then no sanitizer report in any service log.
# The ctest cluster tests are labelled nosan because they run processes;
# this is where those processes run sanitized. About 30 s.
set -u
cd "$(dirname "$0")/../.."
SAN_BIN=${SAN_BIN:-build-san/bin}
for b in mlsec-orchestratord mlsec-fake-tritond mlsec-submit mlsec-devbroker; do
	if [ ! -x "$SAN_BIN/$b" ]; then
		echo "cluster-rpc-san: $SAN_BIN/$b not built (run make san): skipped"
		exit 0
	fi
done
command -v redis-server >/dev/null || { echo "cluster-rpc-san: no redis-server: skipped"; exit 0; }
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
status=0
for c in verdicts python_wire orch_restart stage_sigterm; do
	out=$(T_KEEP=1 BIN="$SAN_BIN" bash tests/cluster/cluster_test.sh "$c" 2>&1)
	rc=$?
	dir=$(printf '%s\n' "$out" | sed -n 's/^logs kept in //p' | tail -n 1)
	if [ $rc -ne 0 ]; then
		echo "$out" | tail -n 30
		echo "cluster-rpc-san: $c FAILED"
		status=1
	elif [ -n "$dir" ] && grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" \
		"$dir"/*.log >/dev/null 2>&1; then
		grep -h -A20 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$dir"/*.log | head -60
		echo "cluster-rpc-san: $c: sanitizer report"
		status=1
	else
		echo "cluster-rpc-san: $c ok"
	fi
	[ -n "$dir" ] && rm -rf "$dir"
done
exit $status
