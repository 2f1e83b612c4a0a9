// Contract between the chart and the programs: every MLSEC_* variable the
// chart sets must be one the services read (their --help lists "env NAME"),
// or a librdkafka pass-through (MLSEC_KAFKA_<property>), or one of the names
// proposed for the harness and not implemented yet (printed as NOTE, so a
// rename on either side fails here instead of in a cluster). Every program
// a Deployment starts must exist in the build.
// Usage: node env_contract.mjs BIN_DIR rendered.yaml...
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadManifests, Report } from "./lib.mjs";

// Proposed to the service harness with the chart (see docs/deploy.md).
const PROPOSED = new Set([]);

const [binDir, ...files] = process.argv.slice(2);
const r = new Report("env");
const helpCache = new Map();

function envOf(program) {
  if (!helpCache.has(program)) {
    const path = join(binDir, program);
    let names = null;
    if (existsSync(path)) {
      try {
        const out = execFileSync(path, ["--help"], { encoding: "utf8", timeout: 10000 });
        names = new Set([...out.matchAll(/env (MLSEC_[A-Za-z0-9_]+)/g)].map((m) => m[1]));
      } catch (e) {
        names = new Set();
      }
    }
    helpCache.set(program, names);
  }
  return helpCache.get(program);
}

// NOTE lines, aggregated: what -> programs.
const notes = new Map();
function note(what, program) {
  if (!notes.has(what)) notes.set(what, new Set());
  notes.get(what).add(program);
}

const passThrough = (name) => name.startsWith("MLSEC_KAFKA_") && /[a-z.]/.test(name.slice(12));

for (const file of files) {
  const objs = loadManifests(file);
  const configMaps = new Map(objs.filter((o) => o.kind === "ConfigMap").map((c) => [c.metadata.name, c]));
  for (const d of objs.filter((o) => o.kind === "Deployment")) {
    for (const c of d.spec.template.spec.containers) {
      const program = (c.args || [])[0];
      const known = envOf(program);
      if (!known) {
        note("not in this build (Deployment will fail to start)", program);
        continue;
      }
      r.check(known.size > 0, `${file}: ${program} --help lists its environment`);
      const names = new Set((c.env || []).map((e) => e.name));
      for (const ef of c.envFrom || []) {
        const cm = ef.configMapRef && configMaps.get(ef.configMapRef.name);
        if (cm) Object.keys(cm.data || {}).forEach((k) => names.add(k));
      }
      for (const n of [...names].sort()) {
        if (!n.startsWith("MLSEC_")) continue;
        if (passThrough(n)) continue;
        if (!known.has(n) && PROPOSED.has(n)) {
          note(`${n} proposed, not read yet by`, program);
          continue;
        }
        r.check(known.has(n), `${file}: ${program} reads ${n}`, "the chart sets it, the program ignores it");
      }
    }
  }
}
for (const [what, programs] of notes) console.log(`NOTE ${what}: ${[...programs].sort().join(", ")}`);
r.done();
