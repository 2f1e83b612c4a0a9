#!/bin/sh
# export-fuzz.sh - bounded libFuzzer runs of the export guard's parsers:
# the attestation parser and the in-memory ONNX lint (own wire pre-scan +
# protobuf-c + every lint pass). Run by .ci/run from the repository root.
#
# Builds its own clang tree ($BUILD_DIR-fuzz-export). Libraries are built
# with -fsanitize=fuzzer-no-link so libFuzzer sees their coverage (the
# mlsec_fuzzer() helper only instruments the harness itself).
# EXPORT_FUZZ_SECONDS (default 20) bounds each run.
set -eu
SECS=${EXPORT_FUZZ_SECONDS:-20}
B=${BUILD_DIR:-build}-fuzz-export
if ! command -v clang >/dev/null 2>&1; then
	echo "export-fuzz: clang not installed, skipped" >&2
	exit 0
fi
W=$(mktemp -d /tmp/mlsec-export-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT
{
	CC=clang cmake -S . -B "$B" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_FLAGS="-Wno-error=format-nonliteral -fsanitize=fuzzer-no-link,address,undefined" &&
		cmake --build "$B" -j2 --target attestation_fuzz export_lint_fuzz
} >"$W/build.log" 2>&1 || { tail -30 "$W/build.log" >&2; echo "export-fuzz: build failed" >&2; exit 1; }
for f in attestation export_lint; do
	mkdir -p "$W/$f"
	# New inputs go to the scratch dir; the committed corpus is only read.
	"$B/fuzz/${f}_fuzz" -max_total_time="$SECS" -rss_limit_mb=1024 -max_len=65536 \
		-print_final_stats=0 -artifact_prefix="$W/" "$W/$f" "tests/fuzz/corpus/$f" \
		>"$W/$f.log" 2>&1 || {
		tail -40 "$W/$f.log" >&2
		echo "export-fuzz: $f crashed; reproducer in $W is kept" >&2
		trap - EXIT
		exit 1
	}
	grep "DONE" "$W/$f.log" | sed "s/^/export-fuzz $f: /" || true
done
