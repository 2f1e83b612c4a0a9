// Writes the spec of every PrometheusRule in rendered manifests as a plain
// Prometheus rules file (stdout), for `promtool check rules`.
// Usage: node extract_rules.mjs rendered.yaml... > rules.yaml
import { stringify } from "yaml";
import { loadManifests } from "./lib.mjs";

const groups = [];
for (const f of process.argv.slice(2))
  for (const o of loadManifests(f)) if (o.kind === "PrometheusRule") groups.push(...o.spec.groups);
process.stdout.write(stringify({ groups }));
