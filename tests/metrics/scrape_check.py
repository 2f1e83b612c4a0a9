#!/usr/bin/env python3
"""metrics_scrape: scrape a live /metrics endpoint over loopback and check it
with independent tools: the official Python client's exposition parser
(prometheus_client, Debian python3-prometheus-client) and Prometheus'
`promtool check metrics` (Debian prometheus) when installed. Counters,
the histogram and label escaping are checked before and after a job.

Usage: scrape_check.py METRICS_DEMO_BINARY
Exit: 0 pass, 1 fail, 77 skipped (neither tool installed).
"""
import shutil
import subprocess
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - depends on the machine
    text_string_to_metric_families = None

PROMTOOL = shutil.which("promtool")
TIMEOUT_S = 10

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what} {detail}".rstrip())


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT_S) as r:
        check(r.status == 200, "status 200")
        check(r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), "content type")
        return r.read().decode("utf-8")


def samples(text):
    """{(name, frozenset(labels)): value} plus {family: type}."""
    out, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out, types


def promtool(text):
    if not PROMTOOL:
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
          "promtool check metrics", (p.stdout + p.stderr).strip())


def main():
    if text_string_to_metric_families is None and not PROMTOOL:
        print("metrics_scrape: SKIP (install python3-prometheus-client and/or prometheus)")
        return 77
    demo = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = demo.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            print("FAIL demo did not start")
            return 1
        port = int(first[1])

        def cmd(line):
            demo.stdin.write(line + "\n")
            demo.stdin.flush()
            return demo.stdout.readline().strip()

        text = scrape(port)
        promtool(text)
        job = ("mlsec_jobs_total", frozenset({("stage", "inspect"), ("outcome", "alert")}))
        if text_string_to_metric_families:
            s, types = samples(text)
            check(types.get("mlsec_jobs") == "counter", "jobs is a counter", str(types.get("mlsec_jobs")))
            check(types.get("mlsec_analysis_duration_seconds") == "histogram", "duration is a histogram")
            check(types.get("mlsec_kafka_consumer_lag") == "gauge", "lag is a gauge")
            check(job not in s, "no job series before a job")
            weird = ("mlsec_findings_total",
                     frozenset({("stage", 'we"ird\\stage\nname'), ("severity", "low")}))
            check(s.get(weird) == 1.0, "label value with \" \\ and newline round-trips")

        check(cmd("job inspect alert 0.25") == "ok", "job accepted")
        check(cmd("findings inspect high 3") == "ok", "findings accepted")
        check(cmd("grpc /mlsec.v1.Analyzer/Analyze 16") == "ok", "grpc accepted")
        check(cmd("job inspect") == "err", "bad command refused")
        text = scrape(port)
        promtool(text)
        if text_string_to_metric_families:
            s, _ = samples(text)
            check(s.get(job) == 1.0, "jobs counter moved to 1", str(s.get(job)))
            lbl = lambda **kw: frozenset(kw.items())
            dur = "mlsec_analysis_duration_seconds"
            check(s.get((dur + "_count", lbl(stage="inspect"))) == 1.0, "histogram count 1")
            check(s.get((dur + "_sum", lbl(stage="inspect"))) == 0.25, "histogram sum 0.25")
            check(s.get((dur + "_bucket", lbl(stage="inspect", le="0.25"))) == 1.0, "le=0.25 bucket holds it")
            check(s.get((dur + "_bucket", lbl(stage="inspect", le="0.1"))) == 0.0, "le=0.1 bucket empty")
            check(s.get((dur + "_bucket", lbl(stage="inspect", le="+Inf"))) == 1.0, "+Inf bucket")
            check(s.get(("mlsec_findings_total", lbl(stage="inspect", severity="high"))) == 3.0, "findings 3")
            check(s.get(("mlsec_grpc_requests_total",
                         lbl(method="/mlsec.v1.Analyzer/Analyze", code="UNAUTHENTICATED"))) == 1.0,
                  "grpc code by name")
        cmd("job inspect alert 1.5")
        if text_string_to_metric_families:
            s, _ = samples(scrape(port))
            check(s.get(job) == 2.0, "jobs counter moved to 2")
        cmd("quit")
        check(demo.wait(timeout=TIMEOUT_S) == 0, "demo exits cleanly")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    tools = ", ".join(t for t, ok in (("prometheus_client", text_string_to_metric_families), ("promtool", PROMTOOL)) if ok)
    print(f"metrics_scrape ({tools}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
