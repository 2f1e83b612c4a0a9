#!/bin/sh
# inspect-fuzz.sh - a bounded libFuzzer run of the inspect engine: model
# sniffing, ONNX/safetensors/PyTorch weight loading, the per-layer checks
# and a tiny activation + FGSM run. Run by .ci/run from the repository root.
#
# Builds its own clang tree ($BUILD_DIR-fuzz-inspect); libraries get
# -fsanitize=fuzzer-no-link so libFuzzer sees their coverage.
# INSPECT_FUZZ_SECONDS (default 20) bounds the run.
set -eu
SECS=${INSPECT_FUZZ_SECONDS:-20}
B=${BUILD_DIR:-build}-fuzz-inspect
if ! command -v clang >/dev/null 2>&1; then
	echo "inspect-fuzz: clang not installed, skipped" >&2
	exit 0
fi
W=$(mktemp -d /tmp/mlsec-inspect-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT
{
	CC=clang cmake -S . -B "$B" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_FLAGS="-Wno-error=format-nonliteral -fsanitize=fuzzer-no-link,address,undefined" &&
		cmake --build "$B" -j2 --target inspect_fuzz
} >"$W/build.log" 2>&1 || { tail -30 "$W/build.log" >&2; echo "inspect-fuzz: build failed" >&2; exit 1; }
mkdir -p "$W/corpus"
# New inputs go to the scratch dir; the committed corpus is only read.
TMPDIR="$W" "$B/fuzz/inspect_fuzz" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=20 \
	-print_final_stats=0 -artifact_prefix="$W/" "$W/corpus" tests/fuzz/corpus/inspect \
	>"$W/fuzz.log" 2>&1 || {
	tail -40 "$W/fuzz.log" >&2
	echo "inspect-fuzz: crashed; reproducer in $W is kept" >&2
	trap - EXIT
	exit 1
}
grep "DONE" "$W/fuzz.log" | sed "s/^/inspect-fuzz: /" || true
