// Shared helpers for the chart checks: load rendered manifests, match
// label selectors, print PASS/FAIL lines that tests/ci/helm.sh counts.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

export function loadManifests(file) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: YAML error: ${d.errors[0].message}`);
    const o = d.toJS();
    if (o) out.push(o);
  }
  return out;
}

export function id(o) {
  return `${o.kind}/${o.metadata?.name ?? "?"}`;
}

// Does a LabelSelector (matchLabels + matchExpressions) select labels?
export function selects(sel, labels) {
  if (!sel) return false;
  labels = labels || {};
  for (const [k, v] of Object.entries(sel.matchLabels || {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case "In": if (!has || !e.values.includes(labels[e.key])) return false; break;
      case "NotIn": if (has && e.values.includes(labels[e.key])) return false; break;
      case "Exists": if (!has) return false; break;
      case "DoesNotExist": if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

export class Report {
  constructor(prefix) { this.prefix = prefix; this.passed = 0; this.failed = 0; }
  check(ok, what, why = "") {
    if (ok) { this.passed++; console.log(`PASS ${this.prefix}: ${what}`); }
    else { this.failed++; console.log(`FAIL ${this.prefix}: ${what}${why ? ": " + why : ""}`); }
    return ok;
  }
  done() { process.exitCode = this.failed ? 1 : 0; }
}
