#!/bin/sh
# CI-only checks for the poison monitor: a bounded libFuzzer run of the
# gradient-log record parser (clang + libclang-rt), seeded from the corpus.
# Run from the repository root; BUILD_DIR is the main build directory.
set -eu
: "${BUILD_DIR:=build}"
FUZZ_SECONDS="${MLSEC_FUZZ_SECONDS:-30}"
if ! command -v clang >/dev/null 2>&1; then
	echo "poison.sh: clang not installed, fuzz run skipped"
	exit 0
fi
FUZZ_DIR="${BUILD_DIR}-fuzz-poison"
CC=clang cmake -S . -B "$FUZZ_DIR" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$FUZZ_DIR" -j2 --target gradlog_fuzz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/gradlog/* "$work/"
"$FUZZ_DIR/fuzz/gradlog_fuzz" -max_total_time="$FUZZ_SECONDS" -max_len=8192 \
	-print_final_stats=1 "$work" 2>&1 | tail -5
echo "poison.sh: fuzz run clean (${FUZZ_SECONDS}s)"
