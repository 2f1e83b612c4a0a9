/*
 * triton_rules.c - the catalogue of Triton rules (stable ids, severities,
 * titles, remediations) and the helper that turns a rule hit into a
 * located finding. docs/triton.md mirrors this table.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "triton_int.h"

static const mlsec_triton_rule rules[R__COUNT] = {
        [R_MALFORMED] = {"TRITON-MALFORMED", MLSEC_SEV_HIGH,
                         "Config cannot be parsed or Triton would reject it",
                         "Fix the syntax/schema error; never deploy a config mlsec cannot parse."},
        [R_OP_LIBRARY] = {"TRITON-OP-LIBRARY", MLSEC_SEV_CRITICAL,
                          "Custom op library is loaded into the server process",
                          "Remove model_operations.op_library_filename, or build the ops into a "
                          "reviewed backend image; a shared library here runs native code inside "
                          "tritonserver with all its privileges."},
        [R_PYTHON_EXEC_ENV] =
                {"TRITON-PYTHON-EXEC-ENV", MLSEC_SEV_HIGH,
                 "Python execution environment outside the model directory",
                 "Ship the conda-pack archive inside the model directory and reference "
                 "it as $$TRITON_MODEL_DIRECTORY/<file>.tar.gz."},
        [R_PYTHON_BACKEND] = {"TRITON-PYTHON-BACKEND", MLSEC_SEV_INFO,
                              "Python backend executes model.py from the repository",
                              "Review model.py like application code and keep the repository "
                              "read-only to everyone but the release pipeline."},
        [R_REPO_AGENT] = {"TRITON-REPO-AGENT", MLSEC_SEV_INFO,
                          "Repository agent runs on model load",
                          "Confirm the agent library is part of the reviewed server image."},
        [R_PATH_ESCAPE] =
                {"TRITON-PATH-ESCAPE", MLSEC_SEV_HIGH,
                 "File path is absolute or escapes the model directory",
                 "Use a plain relative file name inside the model (or version) directory; "
                 "no absolute paths and no '..'."},
        [R_PLAINTEXT_SECRET] = {"TRITON-PLAINTEXT-SECRET", MLSEC_SEV_HIGH,
                                "Credential in plaintext config parameters",
                                "Remove the secret from config.pbtxt, rotate it, and inject it at "
                                "run time (environment or a mounted secret)."},
        [R_INPUT_UNBOUNDED] = {"TRITON-INPUT-UNBOUNDED", MLSEC_SEV_MEDIUM,
                               "Variable-size string or ragged input has no bound",
                               "Give every dimension a fixed size, or enforce a maximum length in "
                               "the client gateway or model; cap request size at the ingress."},
        [R_INPUT_DYNAMIC_DIM] =
                {"TRITON-INPUT-DYNAMIC-DIM", MLSEC_SEV_LOW, "Input dimension accepts any size (-1)",
                 "Use fixed dimensions where the model allows it, or bound the size "
                 "in front of Triton."},
        [R_QUEUE_UNBOUNDED] =
                {"TRITON-QUEUE-UNBOUNDED", MLSEC_SEV_MEDIUM,
                 "Dynamic batching queue has no size limit",
                 "Set dynamic_batching.default_queue_policy.max_queue_size (and on each "
                 "priority_queue_policy) so overload is rejected, not buffered."},
        [R_QUEUE_DELAY_NO_TIMEOUT] =
                {"TRITON-QUEUE-DELAY-NO-TIMEOUT", MLSEC_SEV_MEDIUM,
                 "Queue policy DELAY without a timeout",
                 "Set default_timeout_microseconds (and disallow overrides) or "
                 "use timeout_action: REJECT."},
        [R_ENSEMBLE_INFLIGHT] =
                {"TRITON-ENSEMBLE-INFLIGHT-UNBOUNDED", MLSEC_SEV_MEDIUM,
                 "Ensemble has no in-flight request limit",
                 "Set ensemble_scheduling.max_inflight_requests to bound memory held "
                 "by intermediate tensors."},
        [R_NO_RATE_LIMITER] = {"TRITON-NO-RATE-LIMITER", MLSEC_SEV_LOW,
                               "No rate limiter on any instance group",
                               "Add instance_group.rate_limiter resources and run tritonserver "
                               "with --rate-limit=execution_count (rate limiters are ignored "
                               "otherwise)."},
        [R_INSTANCE_COUNT] = {"TRITON-INSTANCE-COUNT", MLSEC_SEV_LOW,
                              "Excessive model instance count",
                              "Lower instance_group.count to what the hardware can serve; each "
                              "instance holds its own copy of the model in memory."},
        [R_VERSION_POLICY_ALL] = {"TRITON-VERSION-POLICY-ALL", MLSEC_SEV_LOW,
                                  "Every model version in the repository is served",
                                  "Use version_policy latest or specific so retired (possibly "
                                  "vulnerable) versions stop being served."},
        [R_AUTH_UNKNOWN] = {"TRITON-AUTH-UNKNOWN", MLSEC_SEV_INFO,
                            "Authentication cannot be judged from config.pbtxt alone",
                            "Run again with --launch-args FILE (the tritonserver arguments or the "
                            "Kubernetes manifest) to audit API restrictions, TLS and exposure."},
        [R_LAUNCH_MODEL_CONTROL] =
                {"TRITON-LAUNCH-MODEL-CONTROL", MLSEC_SEV_HIGH,
                 "Model control lets clients change what the server runs",
                 "Use --model-control-mode=none, or restrict the model-repository "
                 "API with --grpc-restricted-protocol / --http-restricted-api "
                 "(key=value header) on every enabled protocol."},
        [R_LAUNCH_API_UNRESTRICTED] =
                {"TRITON-LAUNCH-API-UNRESTRICTED", MLSEC_SEV_HIGH,
                 "Sensitive API category open without authentication",
                 "Add --grpc-restricted-protocol=<categories>:<key>=<value> and "
                 "--http-restricted-api=<categories>:<key>=<value> covering "
                 "model-repository, shared-memory, logging and trace."},
        [R_LAUNCH_HTTP_EXPOSED] =
                {"TRITON-LAUNCH-HTTP-EXPOSED", MLSEC_SEV_MEDIUM, "Plaintext HTTP endpoint exposed",
                 "Disable HTTP (--allow-http=false) or bind it to loopback behind a "
                 "TLS-terminating, authenticating proxy."},
        [R_LAUNCH_METRICS_EXPOSED] =
                {"TRITON-LAUNCH-METRICS-EXPOSED", MLSEC_SEV_LOW,
                 "Metrics endpoint exposed on all interfaces",
                 "Set --allow-metrics=false or --metrics-address=127.0.0.1 and "
                 "scrape through a sidecar or network policy."},
        [R_LAUNCH_GRPC_NO_TLS] = {"TRITON-LAUNCH-GRPC-NO-TLS", MLSEC_SEV_MEDIUM,
                                  "gRPC endpoint without TLS",
                                  "Enable --grpc-use-ssl (or --grpc-use-ssl-mutual) with "
                                  "--grpc-server-cert/--grpc-server-key/--grpc-root-cert."},
        [R_LAUNCH_EXIT_ON_ERROR] = {"TRITON-LAUNCH-EXIT-ON-ERROR", MLSEC_SEV_LOW,
                                    "Server keeps running when models fail to load",
                                    "Leave --exit-on-error=true so a broken or tampered repository "
                                    "stops the rollout instead of serving a partial set."},
        [R_LAUNCH_RATE_LIMIT_OFF] = {"TRITON-LAUNCH-RATE-LIMIT-OFF", MLSEC_SEV_MEDIUM,
                                     "Configs declare rate limiters but the server ignores them",
                                     "Start tritonserver with --rate-limit=execution_count."},
};

size_t mlsec_triton_rule_count(void)
{
	return R__COUNT;
}

const mlsec_triton_rule *mlsec_triton_rule_at(size_t i)
{
	return i < R__COUNT ? &rules[i] : NULL;
}

const mlsec_triton_rule *mlsec_triton_rule_find(const char *id)
{
	for (size_t i = 0; i < R__COUNT; i++)
		if (!strcmp(rules[i].id, id))
			return &rules[i];
	return NULL;
}

/* The conversions fmt_detail handles itself (length in *len); 0 for others. */
static int simple_spec(const char *f, size_t *len)
{
	switch (f[0]) {
	case '%':
	case 's':
	case 'd':
	case 'u':
		*len = 1;
		return 1;
	case 'z':
		*len = 2;
		return f[1] == 'u';
	case 'l':
		if (f[1] == 'd' || f[1] == 'u') {
			*len = 2;
			return 1;
		}
		*len = 3;
		return f[1] == 'l' && (f[2] == 'd' || f[2] == 'u');
	default:
		return 0;
	}
}

static void put(char *buf, size_t n, size_t *o, const char *s, size_t len)
{
	if (*o + 1 >= n)
		return;
	if (len > n - 1 - *o)
		len = n - 1 - *o;
	memcpy(buf + *o, s, len);
	*o += len;
}

static void put_num(char *buf, size_t n, size_t *o, unsigned long long v, int neg)
{
	char d[24];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		d[--i] = '-';
	put(buf, n, o, d + i, sizeof d - i);
}

/*
 * vsnprintf for the plain %s/%d/%u/%zu... details the rules use (same
 * output, same truncation); anything else goes to vsnprintf. Details are
 * formatted for every finding, and in the mlsec binary each printf call
 * takes glibc's slow positional path (libquadmath registers printf hooks).
 */
__attribute__((format(printf, 3, 0))) static void fmt_detail(char *buf, size_t n, const char *fmt,
                                                             va_list ap)
{
	size_t len = 0;
	for (const char *f = strchr(fmt, '%'); f; f = strchr(f + 1 + len, '%')) {
		if (!simple_spec(f + 1, &len)) {
			vsnprintf(buf, n, fmt, ap);
			return;
		}
	}
	size_t o = 0;
	for (const char *f = fmt; *f;) {
		const char *pc = strchr(f, '%');
		if (!pc) {
			put(buf, n, &o, f, strlen(f));
			break;
		}
		put(buf, n, &o, f, (size_t)(pc - f));
		simple_spec(pc + 1, &len);
		const char *spec = pc + 1;
		if (spec[0] == '%') {
			put(buf, n, &o, "%", 1);
		} else if (spec[0] == 's') {
			const char *sv = va_arg(ap, const char *);
			if (!sv)
				sv = "(null)";
			put(buf, n, &o, sv, strlen(sv));
		} else if (spec[0] == 'd') {
			long long v = va_arg(ap, int);
			put_num(buf, n, &o,
			        v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v,
			        v < 0);
		} else if (spec[0] == 'u') {
			put_num(buf, n, &o, va_arg(ap, unsigned), 0);
		} else if (spec[0] == 'z') {
			put_num(buf, n, &o, va_arg(ap, size_t), 0);
		} else if (len == 2) { /* ld, lu */
			if (spec[1] == 'd') {
				long long v = va_arg(ap, long);
				put_num(buf, n, &o,
				        v < 0 ? 0ull - (unsigned long long)v
				              : (unsigned long long)v,
				        v < 0);
			} else {
				put_num(buf, n, &o, va_arg(ap, unsigned long), 0);
			}
		} else { /* lld, llu */
			if (spec[2] == 'd') {
				long long v = va_arg(ap, long long);
				put_num(buf, n, &o,
				        v < 0 ? 0ull - (unsigned long long)v
				              : (unsigned long long)v,
				        v < 0);
			} else {
				put_num(buf, n, &o, va_arg(ap, unsigned long long), 0);
			}
		}
		f = pc + 1 + len;
	}
	if (n)
		buf[o] = '\0';
}

void triton_snprintf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fmt_detail(buf, n, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 6, 0))) static mlsec_finding *add_v(triton_ctx *c, triton_rule_ix r,
                                                                  long line, long col,
                                                                  const char *fpath,
                                                                  const char *fmt, va_list ap)
{
	char detail[1024];
	const char *d = detail;
	if (!strchr(fmt, '%') && strlen(fmt) < sizeof detail)
		d = fmt; /* constant detail: nothing to format */
	else
		fmt_detail(detail, sizeof detail, fmt, ap);
	/* The rule table is static: its strings are referenced, not copied. */
	const mlsec_triton_rule *rule = &rules[r];
	mlsec_finding *f =
	        mlsec_artifact_add_finding_static(c->art, rule->id, rule->severity, rule->title, d);
	if (!f || mlsec_finding_set_location(f, c->path, line, col, fpath) != MLSEC_OK) {
		c->rc = MLSEC_ERR_NOMEM;
		return NULL;
	}
	mlsec_finding_set_remediation_static(f, rule->remediation);
	return f;
}

mlsec_finding *triton_add(triton_ctx *c, triton_rule_ix r, const void *msg, const char *field,
                          size_t index, const char *fpath, const char *fmt, ...)
{
	long line = 0, col = 0;
	if (msg && field)
		mlsec_pbtxt_locate(c->aud->parser, msg, field, index, &line, &col);
	va_list ap;
	va_start(ap, fmt);
	mlsec_finding *f = add_v(c, r, line, col, fpath, fmt, ap);
	va_end(ap);
	return f;
}

mlsec_finding *triton_add_at(triton_ctx *c, triton_rule_ix r, long line, long col,
                             const char *fpath, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mlsec_finding *f = add_v(c, r, line, col, fpath, fmt, ap);
	va_end(ap);
	return f;
}
