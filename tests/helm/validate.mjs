// Validate every object of rendered manifests against the Kubernetes API
// schemas, offline:
//  1. kubernetes-models' compiled OpenAPI validators (types, required
//     fields, formats, enums) for core kinds, Prometheus Operator and
//     Gateway API kinds;
//  2. an unknown-field walk over @kubernetes/client-node's type map, since
//     the OpenAPI schemas accept any extra key while `kubectl apply`
//     (strict field validation) rejects it: a typo like `readOnlyRootFilesytem`
//     would otherwise pass every check and silently weaken the pod.
// Usage: node validate.mjs rendered.yaml...
import * as K from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import { id, loadManifests, Report } from "./lib.mjs";

const MODULES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = MODULES[group] ?? "kubernetes-models";
  const path = group ? `${pkg}/${group}/${version}/${kind}` : `${pkg}/${version}/${kind}`;
  const mod = await import(path);
  return mod[kind];
}

// client-node class for a top-level kind: V1Deployment, V2HorizontalPodAutoscaler...
function typeFor(apiVersion, kind) {
  const version = apiVersion.split("/").pop();
  const name = version.charAt(0).toUpperCase() + version.slice(1) + kind;
  return K[name]?.getAttributeTypeMap ? name : null;
}

const SCALARS = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString"]);

// Reports every key of obj unknown to type (recursively). Returns paths.
function unknownFields(obj, type, path, out) {
  if (obj === null || obj === undefined || SCALARS.has(type)) return out;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(obj)) obj.forEach((v, i) => unknownFields(v, m[1], `${path}[${i}]`, out));
    return out;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof obj === "object") for (const [k, v] of Object.entries(obj)) unknownFields(v, m[1], `${path}.${k}`, out);
    return out;
  }
  const cls = K[type];
  if (!cls?.getAttributeTypeMap || typeof obj !== "object" || Array.isArray(obj)) return out;
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(obj)) {
    if (!attrs.has(k)) out.push(`${path}.${k}`);
    else unknownFields(v, attrs.get(k), `${path}.${k}`, out);
  }
  return out;
}

const report = new Report("schema");
for (const file of process.argv.slice(2)) {
  const objects = loadManifests(file);
  report.check(objects.length > 0, `${file}: rendered objects`, "none");
  for (const o of objects) {
    const what = `${file}: ${id(o)}`;
    if (!o.apiVersion || !o.kind) {
      report.check(false, what, "no apiVersion/kind");
      continue;
    }
    let Model;
    try {
      Model = await modelFor(o.apiVersion, o.kind);
    } catch (e) {
      report.check(false, what, `no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    let err = "";
    try {
      new Model(o).validate();
    } catch (e) {
      err = e.message;
    }
    const t = typeFor(o.apiVersion, o.kind);
    if (!err && t) {
      const extra = unknownFields(o, t, "", []);
      if (extra.length) err = `unknown field(s) ${extra.join(", ")}`;
    }
    report.check(!err, what + (t ? "" : " (OpenAPI only)"), err);
  }
}
report.done();
