#!/usr/bin/env bash
# Bounded libFuzzer runs of the checkpoint parsers (CI only): the pickle VM,
# the zip reader and the safetensors header, FUZZ_SECONDS each (default
# 30), from their seed corpora, with ASan+UBSan. Skips (exit 0) without
# clang/libFuzzer: the corpus replays already run under ctest everywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-30}
out=${FUZZ_BUILD_DIR:-build-fuzz}
if ! command -v clang >/dev/null 2>&1; then
	echo "checkpoint-fuzz: clang not installed, skipping"
	exit 0
fi
probe=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' >"$probe/p.c"
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
	echo "checkpoint-fuzz: clang has no libFuzzer runtime (libclang-rt-dev), skipping"
	exit 0
fi
# fuzzer-no-link instruments the libraries too, so libFuzzer sees coverage.
CC=clang cmake -S . -B "$out" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -Wno-error=format-nonliteral" >/dev/null
cmake --build "$out" -j2 --target pickle_fuzz zip_fuzz safetensors_fuzz >/dev/null
for f in pickle zip safetensors; do
	mkdir -p "$work/$f"
	cp tests/fuzz/corpus/$f/* "$work/$f/"
	# -max_len bounds inputs, -timeout catches hangs, -rss_limit_mb blowups
	"$out/fuzz/${f}_fuzz" "$work/$f" -max_total_time="$secs" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 4
	echo "checkpoint-fuzz: $f ${secs}s without a crash"
done
