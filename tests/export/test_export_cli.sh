#!/bin/sh
# test_export_cli.sh MLSEC - `mlsec export-guard` end to end: exit codes
# 0/1/2, a signed chain that verifies, and a flipped byte that fails naming
# its stage. Needs the openssl command for the key pair.
set -u
M=${1:?usage: test_export_cli.sh path/to/mlsec}
D=tests/data/export
T=$(mktemp -d /tmp/mlsec-export-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { want=$1; shift; "$@" >"$T/out" 2>"$T/err"; got=$?; [ "$got" = "$want" ] ||
	{ cat "$T/out" "$T/err" >&2; fail "exit $got, want $want: $*"; }; }

expect 0 "$M" export-guard --output "$D/clean_cnn.onnx"
expect 2 "$M" export-guard --output "$D/lint/pos_trigger_where.onnx"
grep -q EXPORT-TRIGGER-BACKDOOR "$T/out" || fail "backdoor not reported"
expect 0 "$M" export-guard --output "$D/lint/pos_custom_domain.onnx" --fail-on high
expect 2 "$M" export-guard --output "$D/lint/pos_custom_domain.onnx" --fail-on medium
expect 0 "$M" export-guard --output "$D/lint/pos_custom_domain.onnx" --fail-on medium \
	--allowed-domain com.example
expect 0 "$M" export-guard --output "$D/lint/pos_const_large.onnx" --constant-threshold 1e7
expect 1 "$M" export-guard --output "$D/nope.onnx"
expect 1 "$M" export-guard --bogus
expect 1 "$M" export-guard --model "$D/chain/model.safetensors"
expect 1 "$M" export-guard --output "$D/clean_mlp.onnx" --constant-threshold -3

cp "$D/chain/model.safetensors" "$D/chain/model.onnx" "$D/chain/model.plan" "$T/"
openssl genpkey -algorithm ed25519 -out "$T/k.pem" 2>/dev/null || fail "openssl genpkey"
openssl pkey -in "$T/k.pem" -pubout -out "$T/pub.pem" 2>/dev/null || fail "openssl pkey"
expect 0 "$M" export-guard --model "$T/model.safetensors" --output "$T/model.onnx" \
	--engine "$T/model.plan" --attestation "$T/prov.json" --sign-key "$T/k.pem"
expect 0 "$M" export-guard verify --attestation "$T/prov.json" --verify-key "$T/pub.pem"
expect 0 "$M" export-guard verify --attestation "$T/prov.json" --verify-key "$T/pub.pem" \
	--json "$T/report.json"
grep -q '"status": "ok"' "$T/report.json" || fail "stage status missing from JSON"
# Artifacts moved elsewhere are found by name when given explicitly.
mkdir "$T/moved" && cp "$T/prov.json" "$T/moved/"
expect 0 "$M" export-guard verify --attestation "$T/moved/prov.json" --verify-key "$T/pub.pem" \
	"$T/model.safetensors" "$T/model.onnx" "$T/model.plan"

printf '\001' | dd of="$T/model.onnx" bs=1 seek=600 conv=notrunc 2>/dev/null
expect 2 "$M" export-guard verify --attestation "$T/prov.json" --verify-key "$T/pub.pem"
grep -q 'stage\[1\] onnx' "$T/out" || { cat "$T/out"; fail "changed stage not named"; }

expect 0 "$M" export-guard --output "$D/clean_mlp.onnx" --attestation "$T/unsigned.json"
expect 2 "$M" export-guard verify --attestation "$T/unsigned.json" --verify-key "$T/pub.pem" \
	"$D/clean_mlp.onnx"
grep -q EXPORT-ATTEST-UNSIGNED "$T/out" || fail "unsigned not reported"
expect 1 "$M" export-guard verify --attestation "$T/unsigned.json" --verify-key "$T/nope.pem"
# An artifact named on the command line that no stage covers was silently
# ignored (exit 0): the caller believes it was verified. Critical now.
expect 0 "$M" export-guard verify --attestation "$T/unsigned.json" "$D/clean_mlp.onnx"
expect 2 "$M" export-guard verify --attestation "$T/unsigned.json" "$D/clean_mlp.onnx" \
	"$T/model.safetensors"
grep -q EXPORT-ATTEST-UNATTESTED "$T/out" || fail "unattested artifact not reported"
# Two files of the same name: only the first would be checked.
mkdir "$T/other" && cp "$D/clean_cnn.onnx" "$T/other/clean_mlp.onnx"
expect 2 "$M" export-guard verify --attestation "$T/unsigned.json" "$D/clean_mlp.onnx" \
	"$T/other/clean_mlp.onnx"
grep -q EXPORT-ATTEST-UNATTESTED "$T/out" || fail "same-name artifact not reported"
expect 1 "$M" export-guard verify
# A truncated ONNX is EXPORT-MALFORMED (exit 2) with or without an
# attestation, never a tool error; no attestation is written for it.
head -c 100 "$D/clean_mlp.onnx" >"$T/trunc.onnx"
expect 2 "$M" export-guard --output "$T/trunc.onnx"
expect 2 "$M" export-guard --output "$T/trunc.onnx" --attestation "$T/trunc.json"
grep -q EXPORT-MALFORMED "$T/out" || fail "truncated ONNX not reported malformed"
[ ! -e "$T/trunc.json" ] || fail "attestation written for a malformed ONNX"
echo "export-guard CLI: ok"
