#!/usr/bin/env bash
# Bounded libFuzzer run of the pbtxt parser + Triton rules (CI only).
# Builds a clang fuzz tree when clang and its fuzzer runtime are available,
# then fuzzes for FUZZ_SECONDS (default 60) starting from the seed corpus.
# Skips (exit 0) without clang/libFuzzer: the corpus replay already runs
# under ctest in every build.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
out=${FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null 2>&1; then
	echo "triton-fuzz: clang not installed, skipping"
	exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' >"$probe/p.c"
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
	echo "triton-fuzz: clang has no libFuzzer runtime (libclang-rt-dev), skipping"
	exit 0
fi
# fuzzer-no-link: coverage instrumentation for the libraries too (the harness
# alone gives libFuzzer no signal). -Wno-error=format-nonliteral: clang is
# stricter than gcc about vprintf wrappers (common/core/src/err.c).
CC=clang cmake -S . -B "$out" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -Wno-error=format-nonliteral" >/dev/null
cmake --build "$out" -j2 --target fuzz_pbtxt >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT
cp tests/fuzz/corpus/pbtxt/* "$work/"
# -max_len bounds input size; -timeout catches hangs; -rss_limit_mb leaks/blowups.
"$out/fuzz/fuzz_pbtxt" "$work" -max_total_time="$secs" -max_len=8192 -timeout=5 \
	-rss_limit_mb=1024 -print_final_stats=1 2>&1 | tail -n 15
echo "triton-fuzz: ${secs}s without a crash"
