#!/usr/bin/env bash
# CI checks of the cluster infrastructure that are not ctest tests:
#  - the shell scripts parse (and pass shellcheck when it is installed);
#  - mlsec-devbroker starts and stops leak-free under valgrind;
#  - the README's demo (deploy/local/demo.sh) shows verdicts 0 and 2 and
#    leaves nothing running;
#  - docs/config.md matches the binaries (warning only: regenerate with
#    tools/configdoc/gen-config-md.sh).
set -euo pipefail
BUILD_DIR=${BUILD_DIR:-build}
BIN=$BUILD_DIR/bin
scripts=(deploy/local/mlsec-cluster deploy/local/demo.sh tests/lib/cluster-env.sh
	tests/infra/test_cluster_script.sh tools/configdoc/gen-config-md.sh)

echo "-- shell syntax"
for s in "${scripts[@]}"; do
	bash -n "$s"
done
if command -v shellcheck >/dev/null; then
	shellcheck -S warning "${scripts[@]}"
fi

echo "-- mlsec-devbroker start/stop under valgrind"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --error-exitcode=9 \
	"$BIN/mlsec-devbroker" --bootstrap-file "$tmp/kafka.env" >"$tmp/db.log" 2>&1 &
vg=$!
for _ in $(seq 1 300); do
	[ -s "$tmp/kafka.env" ] && break
	sleep 0.1
done
[ -s "$tmp/kafka.env" ] || { cat "$tmp/db.log"; exit 1; }
kill -TERM "$vg"
if ! wait "$vg"; then
	cat "$tmp/db.log"
	echo "mlsec-devbroker: valgrind reported errors or a bad exit"
	exit 1
fi

if [ -d examples/triton/clean ] && [ -d examples/triton/hostile ]; then
	echo "-- demo"
	MLSEC_RUN_DIR=$tmp/demo MLSEC_BIN_DIR=$BIN bash deploy/local/demo.sh
	if pgrep -f -- "$tmp/demo" >/dev/null; then
		echo "demo left processes running"
		exit 1
	fi
else
	echo "-- demo skipped: examples/triton is missing"
fi

echo "-- docs/config.md"
bash tools/configdoc/gen-config-md.sh "$BIN" "$tmp/config.md" >/dev/null
if [ ! -f docs/config.md ] || ! diff -q docs/config.md "$tmp/config.md" >/dev/null; then
	echo "warning: docs/config.md is out of date; run tools/configdoc/gen-config-md.sh"
fi
echo "cluster-infra checks passed"
