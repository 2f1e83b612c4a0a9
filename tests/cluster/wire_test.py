#!/usr/bin/python3
"""wire_test.py - an independent gRPC client (Debian python3-grpcio, stubs
generated at test time with grpc_tools.protoc from proto/) proving wire
compatibility with mlsec's C-core services.

  wire_test.py --endpoint H:P --proto-out DIR full URI     Submit/Watch/Get/Upload/health/errors
  wire_test.py --endpoint H:P --proto-out DIR bad-sha URI  Submit with a wrong sha256 is refused
  wire_test.py --endpoint H:P --proto-out DIR analyze STAGE_ENDPOINT
"""
import argparse
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def gen_stubs(out):
    from grpc_tools import protoc
    os.makedirs(out, exist_ok=True)
    files = ["mlsec/v1/common.proto", "mlsec/v1/orchestrator.proto", "mlsec/v1/analyzer.proto"]
    rc = protoc.main(["protoc", "-I" + PROTO_ROOT, "--python_out=" + out, "--grpc_python_out=" + out]
                     + [os.path.join(PROTO_ROOT, f) for f in files])
    if rc != 0:
        sys.exit("protoc failed")
    # Generated under another module path: "grpc.health" would clash with
    # the grpcio package itself (the wire name grpc.health.v1 is unchanged).
    src = os.path.join(out, "protos", "mlsechealth")
    os.makedirs(src, exist_ok=True)
    with open("/usr/share/grpc-proto/grpc/health/v1/health.proto") as f:
        text = f.read()
    with open(os.path.join(src, "health.proto"), "w") as f:
        f.write(text)
    rc = protoc.main(["protoc", "-I" + os.path.join(out, "protos"), "--python_out=" + out,
                      "--grpc_python_out=" + out, os.path.join(src, "health.proto")])
    if rc != 0:
        sys.exit("protoc (health) failed")
    sys.path.insert(0, out)


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def expect_code(fn, code, what):
    import grpc
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "%s: expected %s, got %s (%s)" % (what, code, e.code(), e.details()))
        return
    sys.exit("FAIL: %s: call succeeded" % what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--proto-out", required=True)
    ap.add_argument("mode")
    ap.add_argument("arg")
    a = ap.parse_args()
    gen_stubs(a.proto_out)
    import grpc
    from mlsec.v1 import analyzer_pb2, analyzer_pb2_grpc, common_pb2, orchestrator_pb2
    from mlsec.v1 import orchestrator_pb2_grpc
    from mlsechealth import health_pb2, health_pb2_grpc

    ch = grpc.insecure_channel(a.endpoint)
    orch = orchestrator_pb2_grpc.OrchestratorStub(ch)

    if a.mode == "bad-sha":
        req = orchestrator_pb2.SubmitRequest(
            artifacts=[common_pb2.Artifact(uri=a.arg, sha256="0" * 64)], stages=["triton"])
        expect_code(lambda: orch.Submit(req, timeout=10), grpc.StatusCode.FAILED_PRECONDITION,
                    "sha256 mismatch")
        print("bad-sha refused")
        return

    if a.mode == "analyze":
        sch = grpc.insecure_channel(a.arg)
        hs = health_pb2_grpc.HealthStub(sch)
        r = hs.Check(health_pb2.HealthCheckRequest(service="mlsec.v1.Analyzer"), timeout=20)
        check(r.status == health_pb2.HealthCheckResponse.SERVING, "stage health")
        an = analyzer_pb2_grpc.AnalyzerStub(sch)
        expect_code(lambda: an.Analyze(common_pb2.StageRequest(), timeout=20),
                    grpc.StatusCode.INVALID_ARGUMENT, "Analyze without artifacts")
        # outside the root: an ERROR result, not a crash
        res = an.Analyze(common_pb2.StageRequest(
            job_id="direct", stage="triton", artifacts=[common_pb2.Artifact(uri="/etc/passwd")]),
            timeout=20)
        check(res.status == common_pb2.STAGE_STATUS_ERROR, "outside root must be an error")
        check("outside" in res.error, "error text: " + res.error)
        sch.close()
        print("analyze ok")
        return

    if a.mode == "replicas":
        # Submit through one orchestrator, Watch and Get through another:
        # the job state lives in Redis, not in a replica.
        other = grpc.insecure_channel(a.arg)
        orch2 = orchestrator_pb2_grpc.OrchestratorStub(other)
        for i in range(5):
            data = b'name: "r%d"\n' % i
            up = orch.Upload(iter([orchestrator_pb2.UploadChunk(name="config.pbtxt", data=data)]),
                             timeout=10)
            resp = orch.Submit(orchestrator_pb2.SubmitRequest(
                artifacts=[common_pb2.Artifact(uri=up.artifact.uri)]), timeout=10)
            verdict = None
            for ev in orch2.Watch(orchestrator_pb2.WatchRequest(job_id=resp.job_id), timeout=30):
                if ev.type == orchestrator_pb2.EVENT_TYPE_VERDICT:
                    verdict = ev.verdict
            check(verdict is not None and verdict.exit_code == 0, "verdict via replica 2")
            g1 = orch.Get(orchestrator_pb2.GetRequest(job_id=resp.job_id), timeout=10)
            g2 = orch2.Get(orchestrator_pb2.GetRequest(job_id=resp.job_id), timeout=10)
            check(g1 == g2 and g1.state == common_pb2.JOB_STATE_DONE, "Get agrees")
        other.close()
        print("replicas ok")
        return

    check(a.mode == "full", "unknown mode")
    hs = health_pb2_grpc.HealthStub(ch)
    r = hs.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(r.status == health_pb2.HealthCheckResponse.SERVING, "health SERVING")
    expect_code(lambda: hs.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10),
                grpc.StatusCode.NOT_FOUND, "health of unknown service")

    # Malformed bytes on the wire: INVALID_ARGUMENT, not a crash.
    raw = ch.unary_unary("/mlsec.v1.Orchestrator/Submit")
    expect_code(lambda: raw(b"\xff\xff\xff\xff", timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                "garbage SubmitRequest")
    expect_code(lambda: orch.Submit(orchestrator_pb2.SubmitRequest(), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT, "empty SubmitRequest")
    expect_code(lambda: orch.Get(orchestrator_pb2.GetRequest(job_id="../x"), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT, "bad job id")
    expect_code(lambda: orch.Get(orchestrator_pb2.GetRequest(job_id="f" * 32), timeout=10),
                grpc.StatusCode.NOT_FOUND, "unknown job")
    expect_code(lambda: ch.unary_unary("/mlsec.v1.Orchestrator/Nope")(b"", timeout=10),
                grpc.StatusCode.UNIMPLEMENTED, "unknown method")

    # Submit by reference, then Watch until the verdict.
    resp = orch.Submit(orchestrator_pb2.SubmitRequest(
        artifacts=[common_pb2.Artifact(uri=a.arg)], stages=["auto"],
        gate=common_pb2.SEVERITY_HIGH, has_gate=True, timeout_ms=30000), timeout=10)
    check(len(resp.job_id) == 32, "job id")
    check(list(resp.stages) == ["triton"], "auto stages: %s" % list(resp.stages))
    check(len(resp.artifacts[0].sha256) == 64, "sha256 computed")
    types = []
    verdict = None
    for ev in orch.Watch(orchestrator_pb2.WatchRequest(job_id=resp.job_id), timeout=30):
        types.append(ev.type)
        check(ev.id != "", "event ids")
        if ev.type == orchestrator_pb2.EVENT_TYPE_VERDICT:
            verdict = ev.verdict
    check(types[0] == orchestrator_pb2.EVENT_TYPE_SUBMITTED, "first event SUBMITTED")
    check(orchestrator_pb2.EVENT_TYPE_STAGE_DONE in types, "a STAGE_DONE event")
    check(verdict is not None and verdict.exit_code == 2, "verdict 2: %s" % verdict)
    g = orch.Get(orchestrator_pb2.GetRequest(job_id=resp.job_id), timeout=10)
    check(g.state == common_pb2.JOB_STATE_DONE and g.exit_code == 2, "Get: %s" % g)
    check(g.stages[0].findings[0].rule_id == "FAKE-EVIL", "finding via Get")
    # Watch of a finished job replays to the verdict at once.
    n = sum(1 for _ in orch.Watch(orchestrator_pb2.WatchRequest(job_id=resp.job_id), timeout=10))
    check(n == len(types), "replay")

    # Upload (client streaming): content-addressed, deduplicated.
    data = b'name: "up"\n' * 1000
    sha = hashlib.sha256(data).hexdigest()

    def chunks():
        yield orchestrator_pb2.UploadChunk(name="config.pbtxt", sha256=sha, data=data[:5000])
        yield orchestrator_pb2.UploadChunk(data=data[5000:])

    u1 = orch.Upload(chunks(), timeout=10)
    u2 = orch.Upload(chunks(), timeout=10)
    check(u1.artifact.sha256 == sha and u1.artifact.size == len(data), "upload digest")
    check(u1.artifact.uri == "uploads/%s/config.pbtxt" % sha, "upload uri " + u1.artifact.uri)
    check(not u1.deduplicated and u2.deduplicated, "dedup")

    def bad_chunks():
        yield orchestrator_pb2.UploadChunk(name="../../x", sha256="1" * 64, data=b"abc")

    expect_code(lambda: orch.Upload(bad_chunks(), timeout=10), grpc.StatusCode.INVALID_ARGUMENT,
                "upload sha256 mismatch")
    ch.close()
    print("python wire test ok")


if __name__ == "__main__":
    main()
