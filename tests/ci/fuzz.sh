#!/usr/bin/env bash
# fuzz.sh - bounded libFuzzer runs of every harness (CI only), run by
# .ci/run from the repository root.
#
# Builds the clang fuzz tree once ($FUZZ_BUILD_DIR, default build-fuzz:
# MLSEC_FUZZ=ON instruments every library) with all fuzz targets, then runs
# each fuzzer in $FUZZ_BUILD_DIR/fuzz/ for FUZZ_SECONDS (default 20) on a
# scratch copy of its seed corpus (the corpus dir comes from the
# mlsec_fuzzer() registration, so it cannot drift from ctest's replay).
# Any crash, leak, timeout or OOM fails the run; its reproducer is kept
# under $FUZZ_ARTIFACTS (default $FUZZ_BUILD_DIR/fuzz-artifacts).
# Prints "PASS/FAIL fuzz: <name> ..." per fuzzer and "fuzz: N passed,
# M failed" last. Skips (exit 0) without clang or its libFuzzer runtime:
# the corpus replays run under ctest in every build anyway.
# FUZZ_ONLY="a b" restricts the run to those fuzzers (names without _fuzz
# or with); FUZZ_PARALLEL (default 2) fuzzers run at once.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
SECS=${FUZZ_SECONDS:-20}
B=${FUZZ_BUILD_DIR:-build-fuzz}
ART=${FUZZ_ARTIFACTS:-$B/fuzz-artifacts}
JOBS=${FUZZ_JOBS:-2}

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not installed, skipped"
	exit 0
fi
W=$(mktemp -d /tmp/mlsec-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' >"$W/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$W/p.c" -o "$W/p" >/dev/null 2>&1; then
	echo "fuzz: clang has no libFuzzer runtime (libclang-rt-dev), skipped"
	exit 0
fi

# name -> corpus dir, from every mlsec_fuzzer(NAME ... CORPUS dir ...) call.
# The registrations span lines; ${CMAKE_SOURCE_DIR} and a local ${F} are
# the only variables used for corpus paths.
python3 - >"$W/fuzzers.tsv" <<'PY' || { echo "fuzz: cannot list the fuzzers"; exit 1; }
import glob, re
for cm in sorted(glob.glob("**/CMakeLists.txt", recursive=True)):
    if cm.startswith(("build", ".")):
        continue
    text = re.sub(r"#[^\n]*", "", open(cm).read())
    local = dict(re.findall(r"set\((\w+)\s+([^\s)]+)\)", text))
    for m in re.finditer(r"mlsec_fuzzer\(\s*(\w+)(.*?)\)\s*\n", text, re.S):
        c = re.search(r"CORPUS\s+(\S+)", m.group(2))
        if not c:
            continue
        d = c.group(1).replace("${CMAKE_SOURCE_DIR}/", "").replace("${CMAKE_CURRENT_SOURCE_DIR}", cm.rsplit("/", 1)[0] if "/" in cm else ".")
        for k, v in local.items():
            d = d.replace("${%s}" % k, v.replace("${CMAKE_SOURCE_DIR}/", ""))
        print(f"{m.group(1)}\t{d}")
PY
if [ -n "${FUZZ_ONLY:-}" ]; then
	awk -v only=" ${FUZZ_ONLY} " -F'\t' '{ n = $1; sub(/_fuzz$/, "", n) }
		index(only, " " $1 " ") || index(only, " " n " ")' "$W/fuzzers.tsv" >"$W/f2" && mv "$W/f2" "$W/fuzzers.tsv"
fi
targets=$(cut -f1 "$W/fuzzers.tsv" | tr '\n' ' ')
[ -n "$targets" ] || { echo "fuzz: no fuzzers registered"; exit 1; }

t0=$(date +%s)
# shellcheck disable=SC2086 # targets is a word list
# -O1 -gline-tables-only: quicker to build than -O2 -g, still
# symbolised stacks; the build is most of this script's time.
if ! { CC=clang cmake -S . -B "$B" -DMLSEC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" &&
	cmake --build "$B" -j"$JOBS" --target $targets; } >"$W/build.log" 2>&1; then
	tail -40 "$W/build.log"
	echo "fuzz: build failed"
	exit 1
fi
echo "fuzz: built $(echo "$targets" | wc -w) fuzzers in $(($(date +%s) - t0)) s"

mkdir -p "$ART"
# One fuzzer: its verdict line (and the crash excerpt) goes to $W/NAME.res.
run_one() {
	local name=$1 corpus=$2 bin="$B/fuzz/$1" rc execs maxlen=65536 big
	mkdir -p "$W/$name"
	if [ -d "$corpus" ]; then
		cp -r "$corpus/." "$W/$name/"
		big=$(find "$corpus" -type f -printf '%s\n' | sort -n | tail -1)
		[ "${big:-0}" -gt "$maxlen" ] && maxlen=$big
	fi
	# New inputs go to the scratch copy; the committed corpus is only read.
	# -timeout: one input over 10 s is a hang; -rss_limit_mb: blowups;
	# -max_len: 64 KiB or the largest seed (libFuzzer would cut seeds).
	TMPDIR="$W" timeout -k 10 $((SECS + 120)) "$bin" "$W/$name" \
		-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$ART/$name-" >"$W/$name.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$W/$name.log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "PASS fuzz: $name ${SECS}s, ${execs:-?} execs, corpus $(find "$W/$name" -type f | wc -l) inputs" >"$W/$name.res"
	else
		{
			grep -E -m1 -A25 "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error:|==[0-9]+== ERROR" \
				"$W/$name.log" || tail -30 "$W/$name.log"
			echo "FAIL fuzz: $name (exit $rc); reproducer: $(ls -t "$ART/$name-"* 2>/dev/null | head -1)"
		} >"$W/$name.res"
	fi
}

# FUZZ_PARALLEL fuzzers at a time (default 2: one per core).
par=${FUZZ_PARALLEL:-2}
names=()
while IFS=$'\t' read -r name corpus; do
	if [ ! -x "$B/fuzz/$name" ]; then
		# mlsec_fuzzer() only builds it when its libraries exist here.
		echo "SKIP fuzz: $name (not built in this configuration)"
		continue
	fi
	while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do
		wait -n
	done
	run_one "$name" "$corpus" &
	names+=("$name")
done <"$W/fuzzers.tsv"
wait
passed=0
failed=0
for name in "${names[@]}"; do
	cat "$W/$name.res"
	if grep -q '^PASS ' "$W/$name.res"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed ($(($(date +%s) - t0)) s)"
[ "$failed" -eq 0 ]
