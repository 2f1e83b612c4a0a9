#!/bin/sh
# tensor-fuzz.sh - bounded libFuzzer run of the ONNX loader + graph compiler
# (tests/fuzz/onnx_fuzz.c). Run by .ci/run from the repository root with
# BUILD_DIR set. Builds the harness with clang into its own directory when
# the main build has no fuzzers, then fuzzes for TENSOR_FUZZ_SECONDS
# (default 60) on a scratch copy of the seed corpus. Fails on any crash.
set -eu
: "${BUILD_DIR:=build}"
SECS="${TENSOR_FUZZ_SECONDS:-60}"
FUZZ_BIN="$BUILD_DIR/fuzz/onnx_fuzz"
if [ ! -x "$FUZZ_BIN" ]; then
	if ! command -v clang >/dev/null 2>&1; then
		echo "tensor-fuzz: clang not found, skipping" >&2
		exit 0
	fi
	FDIR="$BUILD_DIR/fuzz-tensor"
	CC=clang cmake -S . -B "$FDIR" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$FDIR" -j2 --target onnx_fuzz >/dev/null
	FUZZ_BIN="$FDIR/fuzz/onnx_fuzz"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ART="$BUILD_DIR/tensor-fuzz-artifacts"
mkdir -p "$ART"
cp tests/fuzz/corpus/onnx/* "$WORK/"
"$FUZZ_BIN" -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=1024 -timeout=10 \
	-artifact_prefix="$ART/" -print_final_stats=1 "$WORK" 2>"$WORK/log" || {
	tail -60 "$WORK/log" >&2
	echo "tensor-fuzz: failing inputs kept in $ART (add them to tests/fuzz/corpus/onnx once fixed)" >&2
	ls -l "$ART" >&2
	exit 1
}
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$WORK/log" || true
echo "tensor-fuzz: ${SECS}s without findings"
