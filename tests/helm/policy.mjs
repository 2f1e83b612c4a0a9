// Policy test over rendered manifests: what docs/deploy.md promises about
// every workload, checked on the objects themselves.
//  - restricted Pod Security Standard (non-root, no privilege escalation,
//    drop ALL, seccomp, read-only root + writable /tmp emptyDir, allowed
//    volume types, no host namespaces/ports/paths, no SA token);
//  - gRPC liveness/readiness probes on a declared port (plain text port
//    when TLS is on: kubelet probes cannot speak TLS), except in `helm
//    test` pods, which run to completion;
//  - CPU and memory requests and limits;
//  - NetworkPolicy coverage: default deny for ingress and egress, egress
//    only on named ports, gRPC ingress only into the orchestrator (stages
//    only through an explicit stage policy);
//  - stage services mount the artifact volume read-only;
//  - one PDB and one Service per Deployment; HPAs target real Deployments
//    that leave replicas to them; no secret values in the ConfigMap.
// Usage: node policy.mjs rendered.yaml...
import { id, loadManifests, Report, selects } from "./lib.mjs";

const ALLOWED_VOLUMES = new Set([
  "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
]);
const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"]);

function podTemplate(o) {
  if (o.kind === "Pod") return o;
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template;
  return o.spec.template;
}

function volumeType(v) {
  return Object.keys(v).find((k) => k !== "name");
}

function portNumber(container, port) {
  if (typeof port === "number") return port;
  const p = (container.ports || []).find((cp) => cp.name === port);
  return p ? p.containerPort : undefined;
}

function checkFile(file, r) {
  const objs = loadManifests(file);
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const workloads = objs.filter((o) => WORKLOAD_KINDS.has(o.kind));
  const policies = byKind("NetworkPolicy");
  const configMaps = byKind("ConfigMap");
  const tlsOn = configMaps.some((c) => c.data && c.data.MLSEC_TLS_CERT);
  const healthListen = configMaps.map((c) => c.data?.MLSEC_HEALTH_LISTEN).find(Boolean);

  r.check(workloads.length > 0, `${file}: has workloads`);

  for (const w of workloads) {
    const W = `${file}: ${id(w)}`;
    const tpl = podTemplate(w);
    const spec = tpl.spec;
    const labels = tpl.metadata?.labels || {};
    const psc = spec.securityContext || {};

    r.check(spec.automountServiceAccountToken === false, `${W} no service-account token`);
    // Service links would inject MLSEC_<SERVICE>_* variables (see deployment.yaml).
    r.check(spec.enableServiceLinks === false, `${W} no service-link environment`);
    r.check(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${W} no host namespaces`);
    const vols = spec.volumes || [];
    const badVols = vols.filter((v) => !ALLOWED_VOLUMES.has(volumeType(v)));
    r.check(badVols.length === 0, `${W} only restricted-PSS volume types`, badVols.map((v) => v.name).join(","));
    r.check(psc.runAsNonRoot === true, `${W} pod runAsNonRoot`);
    r.check(psc.runAsUser === undefined || psc.runAsUser > 0, `${W} pod runAsUser non-zero`);
    r.check(["RuntimeDefault", "Localhost"].includes(psc.seccompProfile?.type), `${W} pod seccomp RuntimeDefault`);

    const containers = [...(spec.initContainers || []), ...(spec.containers || [])];
    for (const c of containers) {
      const C = `${W} container ${c.name}`;
      const sc = c.securityContext || {};
      r.check(sc.allowPrivilegeEscalation === false, `${C} allowPrivilegeEscalation=false`);
      r.check(sc.privileged !== true, `${C} not privileged`);
      r.check((sc.capabilities?.drop || []).includes("ALL"), `${C} drops ALL capabilities`);
      const added = (sc.capabilities?.add || []).filter((x) => x !== "NET_BIND_SERVICE");
      r.check(added.length === 0, `${C} adds no capabilities`, added.join(","));
      r.check(sc.readOnlyRootFilesystem === true, `${C} read-only root filesystem`);
      r.check(sc.runAsNonRoot !== false && (sc.runAsUser === undefined || sc.runAsUser > 0), `${C} non-root`);
      r.check(!sc.seccompProfile || ["RuntimeDefault", "Localhost"].includes(sc.seccompProfile.type), `${C} seccomp`);
      const tmp = (c.volumeMounts || []).find((m) => m.mountPath === "/tmp");
      const tmpVol = tmp && vols.find((v) => v.name === tmp.name);
      r.check(!!tmpVol?.emptyDir, `${C} writable /tmp is an emptyDir`);
      r.check(!!tmpVol?.emptyDir?.sizeLimit, `${C} /tmp has a size limit`);
      r.check(!(c.ports || []).some((p) => p.hostPort), `${C} no hostPort`);
      r.check(/(@sha256:[0-9a-f]{64}|:[^:/@]+)$/.test(c.image) && !/:latest$/.test(c.image), `${C} image pinned`, c.image);

      const literal = (c.env || []).filter((e) => /(PASSWORD|TOKEN|SECRET)/i.test(e.name) && !e.valueFrom?.secretKeyRef);
      r.check(literal.length === 0, `${C} secrets in env only by secretKeyRef`, literal.map((e) => e.name).join(","));
      const urlPw = (c.env || []).find((e) => e.name === "MLSEC_REDIS_URL" && e.value && /:[^$@/]+@/.test(e.value.replace(/^redis:\/\//, "")));
      r.check(!urlPw, `${C} no literal password in MLSEC_REDIS_URL`);

      const res = c.resources || {};
      r.check(!!(res.limits?.cpu && res.limits?.memory), `${C} cpu+memory limits`);
      r.check(!!(res.requests?.cpu && res.requests?.memory), `${C} cpu+memory requests`);

      // Init containers and `helm test` pods run to completion: no probes.
      const hookTest = (w.metadata.annotations || {})["helm.sh/hook"] === "test";
      if ((spec.initContainers || []).includes(c) || hookTest) continue;
      for (const kind of ["livenessProbe", "readinessProbe"]) {
        const p = c[kind];
        const port = p?.grpc ? portNumber(c, p.grpc.port) : undefined;
        const declared = (c.ports || []).some((cp) => cp.containerPort === port);
        r.check(!!p?.grpc && declared, `${C} ${kind} is gRPC on a declared port`);
        if (tlsOn) {
          const healthPort = Number(String(healthListen || "").split(":").pop());
          r.check(port === healthPort, `${C} ${kind} uses the plain-text health port under TLS`, `${port} vs ${healthPort}`);
        }
      }

      // Stage services read artifacts, never write them.
      if (labels["mlsec-role"] === "stage") {
        const am = (c.volumeMounts || []).find((m) => m.name === "artifacts");
        const av = vols.find((v) => v.name === "artifacts");
        r.check(!!am && am.readOnly === true, `${C} artifact mount read-only`);
        if (av?.persistentVolumeClaim) r.check(av.persistentVolumeClaim.readOnly === true, `${C} artifact PVC read-only`);
      }
    }

    // NetworkPolicy coverage.
    const mine = policies.filter((p) => selects(p.spec.podSelector, labels));
    const types = (p) => p.spec.policyTypes || ["Ingress"];
    const denyAll = mine.find((p) => types(p).includes("Ingress") && types(p).includes("Egress") && !p.spec.ingress && !p.spec.egress);
    r.check(!!denyAll, `${W} default-deny NetworkPolicy (ingress+egress)`);
    const egressRules = mine.filter((p) => types(p).includes("Egress")).flatMap((p) => p.spec.egress || []);
    r.check(egressRules.length > 0, `${W} has egress rules (Kafka/Redis/DNS)`);
    r.check(egressRules.every((e) => (e.ports || []).length > 0), `${W} every egress rule names its ports`);
    const ingressRules = mine.filter((p) => types(p).includes("Ingress")).flatMap((p) =>
      (p.spec.ingress || []).map((rule) => ({ rule, policy: p })));
    r.check(ingressRules.every(({ rule }) => (rule.ports || []).length > 0 && (rule.from || []).length > 0),
      `${W} every ingress rule names ports and peers`);
    const grpcIn = ingressRules.filter(({ rule }) => rule.ports.some((p) => p.port === "grpc" || p.port === 50051));
    if (labels["mlsec-role"] === "orchestrator") {
      r.check(grpcIn.length > 0, `${W} orchestrator reachable on gRPC`);
    } else {
      const explicit = grpcIn.every(({ policy }) => policy.spec.podSelector.matchLabels?.["mlsec-role"] === "stage");
      r.check(explicit, `${W} no gRPC ingress except an explicit stage policy`);
    }

    if (w.kind === "Deployment") {
      const pdbs = byKind("PodDisruptionBudget").filter((p) => selects(p.spec.selector, labels));
      r.check(pdbs.length === 1, `${W} exactly one PodDisruptionBudget`, `${pdbs.length}`);
      const svcs = byKind("Service").filter((s) => s.spec.selector &&
        selects({ matchLabels: s.spec.selector }, labels) && s.spec.ports.some((p) => p.name === "grpc"));
      r.check(svcs.length === 1, `${W} exactly one gRPC Service`, `${svcs.length}`);
      const hpa = byKind("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === w.metadata.name);
      if (hpa) r.check(w.spec.replicas === undefined, `${W} leaves replicas to its HPA`);
    }
  }

  for (const h of byKind("HorizontalPodAutoscaler")) {
    const target = byKind("Deployment").find((d) => d.metadata.name === h.spec.scaleTargetRef.name);
    r.check(!!target, `${file}: ${id(h)} targets an existing Deployment`);
    r.check(h.spec.minReplicas <= h.spec.maxReplicas, `${file}: ${id(h)} min <= max`);
  }

  for (const cm of configMaps) {
    const leaks = Object.keys(cm.data || {}).filter((k) =>
      /(PASSWORD|TOKEN|SECRET|sasl\.password|ssl\.key\.password)$/i.test(k) && !/_FILE$/.test(k));
    r.check(leaks.length === 0, `${file}: ${id(cm)} holds no secret values`, leaks.join(","));
  }
  for (const sa of byKind("ServiceAccount"))
    r.check(sa.automountServiceAccountToken === false, `${file}: ${id(sa)} automount off`);
}

const report = new Report("policy");
for (const f of process.argv.slice(2)) checkFile(f, report);
report.done();
