/*
 * test_triton_rules.c - each Triton rule fires on a config (or launch
 * command) that has the problem and stays silent on one that does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/triton.h"

/* A config that trips nothing. */
#define GOOD                                                                                       \
	"name: \"good\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"                      \
	"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] } ]\n"                   \
	"output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 10 ] label_filename: \"labels.txt\" " \
	"} ]\n"                                                                                    \
	"instance_group [ { count: 2 kind: KIND_GPU rate_limiter { resources [ { name: \"r\" "     \
	"count: 1 } ] } } ]\n"

static mlsec_report *R;
static mlsec_triton_auditor *A;

static int setup(void **state)
{
	(void)state;
	R = mlsec_report_new("triton");
	A = mlsec_triton_auditor_new();
	return R && A ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	mlsec_report_free(R);
	mlsec_triton_auditor_free(A);
	return 0;
}

/* Audits text as a fresh config; returns how many findings have rule id. */
static size_t count_rule(const char *text, const char *id, const mlsec_finding **first)
{
	mlsec_report_free(R);
	mlsec_triton_auditor_free(A);
	R = mlsec_report_new("triton");
	A = mlsec_triton_auditor_new();
	mlsec_error e;
	assert_int_equal(
	        mlsec_triton_audit_text(A, R, "models/m/config.pbtxt", text, strlen(text), &e),
	        MLSEC_OK);
	mlsec_artifact *a = mlsec_report_artifact(R, 0);
	size_t n = 0;
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++) {
		const mlsec_finding *f = mlsec_artifact_finding(a, i);
		if (!strcmp(f->rule_id, id)) {
			if (!n && first)
				*first = f;
			n++;
		}
	}
	return n;
}

static size_t total(void)
{
	return mlsec_artifact_finding_count(mlsec_report_artifact(R, 0));
}

static void test_good_is_silent(void **state)
{
	(void)state;
	count_rule(GOOD, "none", NULL);
	for (size_t i = 0; i < total(); i++)
		print_error("unexpected %s\n",
		            mlsec_artifact_finding(mlsec_report_artifact(R, 0), i)->rule_id);
	assert_int_equal(total(), 0);
	/* max_batch_size 0 (no batching) is valid, not a finding */
	count_rule(GOOD "max_batch_size: 0\n", "none", NULL);
	assert_int_equal(total(), 0);
}

static void test_malformed(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(count_rule("name: \"x\"\nbogus_field: 1\n", "TRITON-MALFORMED", &f), 1);
	assert_int_equal(f->severity, MLSEC_SEV_HIGH);
	assert_int_equal(f->line, 2);
	assert_int_equal(f->column, 1);
	assert_non_null(strstr(f->detail, "bogus_field"));
	assert_int_equal(count_rule(GOOD "max_batch_size: -1\n", "TRITON-MALFORMED", &f), 1);
	assert_string_equal(f->field, "max_batch_size");
	assert_int_equal(
	        count_rule(GOOD "input { name: \"z\" dims: [ -2 ] }", "TRITON-MALFORMED", &f), 1);
	assert_int_equal(count_rule(GOOD "ensemble_scheduling { }", "TRITON-MALFORMED", &f), 1);
	assert_non_null(strstr(f->detail, "platform"));
	assert_int_equal(
	        count_rule(
	                "platform: \"ensemble\" ensemble_scheduling { max_inflight_requests: 2 }",
	                "TRITON-MALFORMED", &f),
	        1);
	assert_non_null(strstr(f->detail, "at least one step"));
	assert_int_equal(
	        count_rule("input { name: \"z\" \"unterminated }", "TRITON-MALFORMED", NULL), 1);
}

static void test_op_library(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(
	        count_rule(GOOD
	                   "model_operations { op_library_filename: [\"a.so\", \"/tmp/b.so\"] }",
	                   "TRITON-OP-LIBRARY", &f),
	        2);
	assert_int_equal(f->severity, MLSEC_SEV_CRITICAL);
	assert_string_equal(f->field, "model_operations.op_library_filename[0]");
	assert_int_equal(f->line, 7);
	assert_non_null(f->remediation);
	assert_int_equal(count_rule(GOOD, "TRITON-OP-LIBRARY", NULL), 0);
}

static void test_python(void **state)
{
	(void)state;
	const char *py = GOOD "backend: \"python\"\n";
	assert_int_equal(count_rule(py, "TRITON-PYTHON-BACKEND", NULL), 1);
	assert_int_equal(count_rule(GOOD, "TRITON-PYTHON-BACKEND", NULL), 0);
	char buf[2048];
	snprintf(buf, sizeof buf,
	         "%sparameters { key: \"EXECUTION_ENV_PATH\" value { string_value: \"%s\" } }", py,
	         "/opt/envs/x.tar.gz");
	assert_int_equal(count_rule(buf, "TRITON-PYTHON-EXEC-ENV", NULL), 1);
	snprintf(buf, sizeof buf,
	         "%sparameters { key: \"EXECUTION_ENV_PATH\" value { string_value: \"%s\" } }", py,
	         "$$TRITON_MODEL_DIRECTORY/../other/x.tar.gz");
	assert_int_equal(count_rule(buf, "TRITON-PYTHON-EXEC-ENV", NULL), 1);
	snprintf(buf, sizeof buf,
	         "%sparameters { key: \"EXECUTION_ENV_PATH\" value { string_value: \"%s\" } }", py,
	         "$$TRITON_MODEL_DIRECTORY/envs/x.tar.gz");
	assert_int_equal(count_rule(buf, "TRITON-PYTHON-EXEC-ENV", NULL), 0);
	assert_int_equal(count_rule(buf, "TRITON-PATH-ESCAPE", NULL), 0);
}

static void test_repo_agent(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(count_rule(GOOD
	                            "model_repository_agents { agents [ { name: \"checksum\" } ] }",
	                            "TRITON-REPO-AGENT", &f),
	                 1);
	assert_int_equal(f->severity, MLSEC_SEV_INFO);
	assert_int_equal(count_rule(GOOD, "TRITON-REPO-AGENT", NULL), 0);
}

static void test_paths(void **state)
{
	(void)state;
	const char *bad[] = {
	        "default_model_filename: \"/etc/model.onnx\"",
	        "default_model_filename: \"../../x.onnx\"",
	        "cc_model_filenames { key: \"sm_80\" value: \"../../../a.plan\" }",
	        "output { name: \"o\" label_filename: \"../labels.txt\" }",
	        "model_warmup { name: \"w\" inputs { key: \"x\" value { data_type: TYPE_FP32 dims: "
	        "1 "
	        "input_data_file: \"/etc/passwd\" } } }",
	        "sequence_batching { state { input_name: \"a\" output_name: \"b\" initial_state { "
	        "name: \"s\" data_file: \"../../s.bin\" } } }",
	        "parameters { key: \"vocab_file\" value { string_value: \"/data/vocab.txt\" } }",
	        "parameters { key: \"x\" value { string_value: "
	        "\"$$TRITON_MODEL_DIRECTORY/../../up\" } }",
	        "parameters { key: \"tokenizer_dir\" value { string_value: \"~/tok\" } }",
	};
	char buf[2048];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(buf, sizeof buf, "%s%s\n", GOOD, bad[i]);
		const mlsec_finding *f = NULL;
		if (count_rule(buf, "TRITON-PATH-ESCAPE", &f) != 1)
			print_error("not flagged: %s\n", bad[i]);
		assert_int_equal(count_rule(buf, "TRITON-PATH-ESCAPE", &f), 1);
		assert_int_equal(f->severity, MLSEC_SEV_HIGH);
		assert_true(f->line > 0);
	}
	const char *ok[] = {
	        "default_model_filename: \"model.onnx\"",
	        "default_model_filename: \"../1/model.onnx\"", /* version dir -> model dir */
	        "cc_model_filenames { key: \"sm_80\" value: \"sub/./a.plan\" }",
	        "parameters { key: \"vocab_file\" value { string_value: \"vocab.txt\" } }",
	        "parameters { key: \"x\" value { string_value: \"$$TRITON_MODEL_DIRECTORY/a/../b\" "
	        "} }",
	        "parameters { key: \"endpoint\" value { string_value: \"https://h/a/../b\" } }",
	        "model_warmup { name: \"w\" inputs { key: \"x\" value { data_type: TYPE_FP32 dims: "
	        "1 "
	        "input_data_file: \"x.bin\" } } }",
	};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		snprintf(buf, sizeof buf, "%s%s\n", GOOD, ok[i]);
		if (count_rule(buf, "TRITON-PATH-ESCAPE", NULL) != 0)
			print_error("false positive: %s\n", ok[i]);
		assert_int_equal(count_rule(buf, "TRITON-PATH-ESCAPE", NULL), 0);
	}
}

static void test_secrets(void **state)
{
	(void)state;
	const char *bad[] = {
	        "parameters { key: \"hf_token\" value { string_value: \"abcdefgh12345\" } }",
	        "parameters { key: \"DB_PASSWORD\" value { string_value: \"hunter2!\" } }",
	        "parameters { key: \"apiKey\" value { string_value: \"k-123456\" } }",
	        "parameters { key: \"x\" value { string_value: \"AKIAIOSFODNN7EXAMPLE\" } }",
	        "parameters { key: \"x\" value { string_value: "
	        "\"ghp_0123456789abcdefghijklmnopqrstuvwxyz\" } }",
	        "parameters { key: \"x\" value { string_value: \"https://u:p4ss@db.example/x\" } }",
	        "parameters { key: \"x\" value { string_value: \"-----BEGIN RSA PRIVATE KEY-----\" "
	        "} }",
	        "model_repository_agents { agents { name: \"a\" parameters { key: \"secret_key\" "
	        "value: \"xyzzy123\" } } }",
	};
	char buf[2048];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(buf, sizeof buf, "%s%s\n", GOOD, bad[i]);
		const mlsec_finding *f = NULL;
		if (count_rule(buf, "TRITON-PLAINTEXT-SECRET", &f) != 1)
			print_error("not flagged: %s\n", bad[i]);
		assert_int_equal(count_rule(buf, "TRITON-PLAINTEXT-SECRET", &f), 1);
		/* the secret itself never reaches the report */
		char *ev = json_dumps(f->evidence, 0);
		assert_null(strstr(ev, "hunter2"));
		assert_null(strstr(ev, "IOSFODNN7EXAMPLE"));
		free(ev);
		assert_null(strstr(f->detail, "hunter2"));
	}
	const char *ok[] = {
	        "parameters { key: \"max_tokens\" value { string_value: \"512\" } }",
	        "parameters { key: \"tokenizer_dir\" value { string_value: \"tok\" } }",
	        "parameters { key: \"hf_token\" value { string_value: \"${HF_TOKEN}\" } }",
	        "parameters { key: \"use_auth_token\" value { string_value: \"true\" } }",
	        "parameters { key: \"password_file\" value { string_value: \"/run/secrets/pw\" } }",
	};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		snprintf(buf, sizeof buf, "%s%s\n", GOOD, ok[i]);
		if (count_rule(buf, "TRITON-PLAINTEXT-SECRET", NULL) != 0)
			print_error("false positive: %s\n", ok[i]);
		assert_int_equal(count_rule(buf, "TRITON-PLAINTEXT-SECRET", NULL), 0);
	}
}

static void test_inputs(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(count_rule(GOOD
	                            "input { name: \"s\" data_type: TYPE_STRING dims: [ -1 ] }",
	                            "TRITON-INPUT-UNBOUNDED", &f),
	                 1);
	assert_int_equal(f->severity, MLSEC_SEV_MEDIUM);
	assert_string_equal(f->field, "input[1].dims[0]");
	assert_int_equal(count_rule(GOOD "input { name: \"r\" data_type: TYPE_FP32 dims: [ 4, -1 ] "
	                                 "allow_ragged_batch: true }",
	                            "TRITON-INPUT-UNBOUNDED", &f),
	                 1);
	assert_string_equal(f->field, "input[1].dims[1]");
	assert_int_equal(count_rule(GOOD
	                            "input { name: \"v\" data_type: TYPE_FP32 dims: [ -1, 3 ] }",
	                            "TRITON-INPUT-UNBOUNDED", NULL),
	                 0);
	assert_int_equal(count_rule(GOOD
	                            "input { name: \"v\" data_type: TYPE_FP32 dims: [ -1, 3 ] }",
	                            "TRITON-INPUT-DYNAMIC-DIM", &f),
	                 1);
	assert_int_equal(f->severity, MLSEC_SEV_LOW);
	assert_int_equal(count_rule(GOOD
	                            "input { name: \"s\" data_type: TYPE_STRING dims: [ 16 ] }",
	                            "TRITON-INPUT-UNBOUNDED", NULL),
	                 0);
}

static void test_queues(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(count_rule(GOOD "dynamic_batching { }", "TRITON-QUEUE-UNBOUNDED", &f), 1);
	assert_int_equal(f->line, 7);
	assert_int_equal(
	        count_rule(GOOD "dynamic_batching { default_queue_policy { max_queue_size: 0 } }",
	                   "TRITON-QUEUE-UNBOUNDED", NULL),
	        1);
	assert_int_equal(
	        count_rule(GOOD "dynamic_batching { default_queue_policy { max_queue_size: 10 } "
	                        "priority_queue_policy { key: 1 value { } } }",
	                   "TRITON-QUEUE-UNBOUNDED", &f),
	        1);
	assert_string_equal(f->field, "dynamic_batching.priority_queue_policy[1].max_queue_size");
	assert_int_equal(
	        count_rule(GOOD "dynamic_batching { default_queue_policy { max_queue_size: 10 } }",
	                   "TRITON-QUEUE-UNBOUNDED", NULL),
	        0);
	assert_int_equal(count_rule(GOOD
	                            "dynamic_batching { default_queue_policy { max_queue_size: 10 "
	                            "timeout_action: DELAY } }",
	                            "TRITON-QUEUE-DELAY-NO-TIMEOUT", NULL),
	                 1);
	assert_int_equal(count_rule(GOOD
	                            "dynamic_batching { default_queue_policy { max_queue_size: 10 "
	                            "timeout_action: DELAY default_timeout_microseconds: 1000 } }",
	                            "TRITON-QUEUE-DELAY-NO-TIMEOUT", NULL),
	                 0);
#define ENS                                                                                        \
	"name: \"e\" platform: \"ensemble\" max_batch_size: 4 "                                    \
	"ensemble_scheduling { step [ { model_name: \"a\" model_version: -1 "                      \
	"input_map { key: \"x\" value: \"y\" } } ] %s }"
	char buf[1024];
	snprintf(buf, sizeof buf, ENS, "");
	assert_int_equal(count_rule(buf, "TRITON-ENSEMBLE-INFLIGHT-UNBOUNDED", NULL), 1);
	assert_int_equal(count_rule(buf, "TRITON-NO-RATE-LIMITER", NULL),
	                 0); /* ensembles have no instances */
	snprintf(buf, sizeof buf, ENS, "max_inflight_requests: 16");
	assert_int_equal(count_rule(buf, "TRITON-ENSEMBLE-INFLIGHT-UNBOUNDED", NULL), 0);
}

static void test_instances(void **state)
{
	(void)state;
	const char *base = "name: \"m\" max_batch_size: 1\n";
	char buf[1024];
	snprintf(buf, sizeof buf, "%sinstance_group { count: 2 }", base);
	assert_int_equal(count_rule(buf, "TRITON-NO-RATE-LIMITER", NULL), 1);
	snprintf(buf, sizeof buf, "%s", base);
	assert_int_equal(count_rule(buf, "TRITON-NO-RATE-LIMITER", NULL), 1);
	assert_int_equal(count_rule(GOOD, "TRITON-NO-RATE-LIMITER", NULL), 0);
	const mlsec_finding *f = NULL;
	snprintf(buf, sizeof buf, "%sinstance_group { count: 9 gpus: [0, 1] }", base);
	assert_int_equal(count_rule(buf, "TRITON-INSTANCE-COUNT", &f), 1);
	assert_non_null(strstr(f->detail, "18 instances"));
	snprintf(buf, sizeof buf, "%sinstance_group { count: 8 gpus: [0, 1] }", base);
	assert_int_equal(count_rule(buf, "TRITON-INSTANCE-COUNT", NULL), 0);
	assert_int_equal(
	        count_rule(GOOD "version_policy { all { } }", "TRITON-VERSION-POLICY-ALL", NULL),
	        1);
	assert_int_equal(count_rule(GOOD "version_policy { latest { num_versions: 1 } }",
	                            "TRITON-VERSION-POLICY-ALL", NULL),
	                 0);
}

/* ---- launch flags ---- */

static size_t launch_rule(const char *cfg, const char *text, int yaml, const char *id,
                          const mlsec_finding **first)
{
	mlsec_report_free(R);
	mlsec_triton_auditor_free(A);
	R = mlsec_report_new("triton");
	A = mlsec_triton_auditor_new();
	mlsec_error e;
	if (cfg)
		assert_int_equal(
		        mlsec_triton_audit_text(A, R, "m/config.pbtxt", cfg, strlen(cfg), &e),
		        MLSEC_OK);
	assert_int_equal(mlsec_triton_audit_launch_text(A, R, yaml ? "deploy.yaml" : "args.txt",
	                                                text, strlen(text), -1, &e),
	                 MLSEC_OK);
	mlsec_artifact *a = mlsec_report_artifact(R, mlsec_report_artifact_count(R) - 1);
	size_t n = 0;
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++) {
		const mlsec_finding *f = mlsec_artifact_finding(a, i);
		if (!strcmp(f->rule_id, id)) {
			if (!n && first)
				*first = f;
			n++;
		}
	}
	return n;
}

#define HARDENED                                                                                   \
	"tritonserver --model-repository=/models --model-control-mode=none \\\n"                   \
	"  --allow-http=false --metrics-address=127.0.0.1 --grpc-use-ssl=true \\\n"                \
	"  "                                                                                       \
	"--grpc-restricted-protocol=model-repository,shared-memory,logging,trace:admin-key="       \
	"s3cret\n"

static void test_launch_hardened_silent(void **state)
{
	(void)state;
	launch_rule(NULL, HARDENED, 0, "none", NULL);
	mlsec_artifact *a = mlsec_report_artifact(R, 0);
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++)
		print_error("unexpected %s\n", mlsec_artifact_finding(a, i)->rule_id);
	assert_int_equal(mlsec_artifact_finding_count(a), 0);
}

static void test_launch_rules(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	const char *open_ =
	        "tritonserver --model-repository=/m \\\n  --model-control-mode explicit\n";
	assert_int_equal(launch_rule(NULL, open_, 0, "TRITON-LAUNCH-MODEL-CONTROL", &f), 1);
	assert_int_equal(f->line, 2);
	assert_int_equal(f->column, 3);
	assert_int_equal(launch_rule(NULL, open_, 0, "TRITON-LAUNCH-API-UNRESTRICTED", NULL), 4);
	assert_int_equal(launch_rule(NULL, open_, 0, "TRITON-LAUNCH-HTTP-EXPOSED", NULL), 1);
	assert_int_equal(launch_rule(NULL, open_, 0, "TRITON-LAUNCH-METRICS-EXPOSED", NULL), 1);
	assert_int_equal(launch_rule(NULL, open_, 0, "TRITON-LAUNCH-GRPC-NO-TLS", NULL), 1);
	/* restricting only one protocol still leaves the other open */
	const char *half = "--model-control-mode=poll "
	                   "--grpc-restricted-protocol=model-repository:k=v --allow-metrics=false";
	assert_int_equal(launch_rule(NULL, half, 0, "TRITON-LAUNCH-MODEL-CONTROL", &f), 1);
	assert_non_null(strstr(f->detail, "HTTP"));
	assert_null(strstr(f->detail, "gRPC"));
	/* a restriction without key=value does not count */
	assert_int_equal(launch_rule(NULL, "--grpc-restricted-protocol=logging --allow-http=0", 0,
	                             "TRITON-LAUNCH-API-UNRESTRICTED", NULL),
	                 4);
	assert_int_equal(launch_rule(NULL, HARDENED " --exit-on-error=false", 0,
	                             "TRITON-LAUNCH-EXIT-ON-ERROR", NULL),
	                 1);
	/* rate limiters declared in configs but --rate-limit off */
	assert_int_equal(launch_rule(GOOD, HARDENED, 0, "TRITON-LAUNCH-RATE-LIMIT-OFF", NULL), 1);
	assert_int_equal(launch_rule(GOOD, HARDENED " --rate-limit=execution_count", 0,
	                             "TRITON-LAUNCH-RATE-LIMIT-OFF", NULL),
	                 0);
	assert_int_equal(
	        launch_rule("name: \"x\"", HARDENED, 0, "TRITON-LAUNCH-RATE-LIMIT-OFF", NULL), 0);
}

static void test_launch_yaml(void **state)
{
	(void)state;
	const char *y =
	        "# rendered by helm\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
	        "---\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n"
	        "      containers:\n        - name: sidecar\n          image: busybox\n"
	        "          args: [\"sleep\", \"1\"]\n"
	        "        - name: triton\n          image: nvcr.io/nvidia/tritonserver:24.05-py3\n"
	        "          command: [\"tritonserver\"]\n          args:\n"
	        "            - --model-repository=/models\n"
	        "            - --model-control-mode=explicit\n";
	const mlsec_finding *f = NULL;
	assert_int_equal(launch_rule(NULL, y, 1, "TRITON-LAUNCH-MODEL-CONTROL", &f), 1);
	assert_int_equal(f->line, 21);
	assert_non_null(strstr(f->field, "containers[name=triton]"));
	assert_int_equal(launch_rule(NULL, y, 1, "TRITON-MALFORMED", NULL), 0);
	/* a shell wrapper: sh -c "tritonserver ..." */
	const char *sh =
	        "spec:\n  containers:\n  - name: t\n    image: my/triton\n"
	        "    command: [\"/bin/sh\", \"-c\"]\n"
	        "    args: [\"tritonserver --model-repository=/m --grpc-use-ssl=true "
	        "--allow-http=false --allow-metrics=false "
	        "--grpc-restricted-protocol=model-repository,shared-memory,logging,trace:k=v\"]\n";
	launch_rule(NULL, sh, 1, "none", NULL);
	assert_int_equal(mlsec_artifact_finding_count(mlsec_report_artifact(R, 0)), 0);
	/* bare args for the Triton image's entrypoint */
	const char *bare =
	        "spec:\n  containers:\n  - name: t\n    image: nvcr.io/nvidia/tritonserver:24.05\n"
	        "    args: [\"--model-repository=/m\"]\n";
	assert_int_equal(launch_rule(NULL, bare, 1, "TRITON-LAUNCH-GRPC-NO-TLS", NULL), 1);
}

static void test_launch_malformed(void **state)
{
	(void)state;
	const mlsec_finding *f = NULL;
	assert_int_equal(launch_rule(NULL, "spec:\n  containers: [\n", 1, "TRITON-MALFORMED", &f),
	                 1);
	assert_true(f->line >= 2);
	assert_int_equal(
	        launch_rule(NULL, "kind: ConfigMap\ndata: {a: b}\n", 1, "TRITON-MALFORMED", &f), 1);
	assert_non_null(strstr(f->detail, "no tritonserver"));
	assert_int_equal(launch_rule(NULL, "tritonserver --model-repository='/m\n", 0,
	                             "TRITON-MALFORMED", &f),
	                 1);
	assert_non_null(strstr(f->detail, "unterminated"));
	assert_int_equal(
	        launch_rule(NULL, "python serve.py --port 8000\n", 0, "TRITON-MALFORMED", NULL), 1);
	/* a self-referencing alias (recursion) is bounded, not a hang */
	assert_int_equal(launch_rule(NULL, "a: &x [*x, *x]\nspec: {containers: []}\n", 1,
	                             "TRITON-MALFORMED", NULL),
	                 1);
	/* a billion-laughs style alias fan-out is bounded */
	char bomb[4096] = "a: &a [x,x,x,x,x,x,x,x,x,x]\n";
	char prev = 'a';
	for (char c = 'b'; c <= 'j'; c++, prev++)
		snprintf(bomb + strlen(bomb), sizeof bomb - strlen(bomb),
		         "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, prev, prev,
		         prev, prev, prev, prev, prev, prev, prev, prev);
	assert_int_equal(launch_rule(NULL, bomb, 1, "TRITON-MALFORMED", &f), 1);
	assert_non_null(strstr(f->detail, "too many nodes"));
}

static void test_auth_note_once(void **state)
{
	(void)state;
	mlsec_report_free(R);
	mlsec_triton_auditor_free(A);
	R = mlsec_report_new("triton");
	A = mlsec_triton_auditor_new();
	mlsec_error e;
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		        mlsec_triton_audit_text(A, R, "m/config.pbtxt", GOOD, strlen(GOOD), &e),
		        MLSEC_OK);
	assert_int_equal(mlsec_triton_note_auth_unknown(A, R), MLSEC_OK);
	assert_int_equal(mlsec_triton_note_auth_unknown(A, R), MLSEC_OK);
	size_t n = 0;
	for (size_t k = 0; k < mlsec_report_artifact_count(R); k++) {
		mlsec_artifact *a = mlsec_report_artifact(R, k);
		for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++)
			n += !strcmp(mlsec_artifact_finding(a, i)->rule_id, "TRITON-AUTH-UNKNOWN");
	}
	assert_int_equal(n, 1);
	assert_int_equal(mlsec_report_exit_code(R, MLSEC_SEV_LOW), 0);
}

static void test_rule_catalogue(void **state)
{
	(void)state;
	assert_true(mlsec_triton_rule_count() >= 20);
	for (size_t i = 0; i < mlsec_triton_rule_count(); i++) {
		const mlsec_triton_rule *r = mlsec_triton_rule_at(i);
		assert_non_null(r->id);
		assert_int_equal(strncmp(r->id, "TRITON-", 7), 0);
		assert_non_null(r->remediation);
		assert_ptr_equal(mlsec_triton_rule_find(r->id), r);
	}
	assert_null(mlsec_triton_rule_at(mlsec_triton_rule_count()));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_good_is_silent),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_op_library),
	        cmocka_unit_test(test_python),
	        cmocka_unit_test(test_repo_agent),
	        cmocka_unit_test(test_paths),
	        cmocka_unit_test(test_secrets),
	        cmocka_unit_test(test_inputs),
	        cmocka_unit_test(test_queues),
	        cmocka_unit_test(test_instances),
	        cmocka_unit_test(test_launch_hardened_silent),
	        cmocka_unit_test(test_launch_rules),
	        cmocka_unit_test(test_launch_yaml),
	        cmocka_unit_test(test_launch_malformed),
	        cmocka_unit_test(test_auth_note_once),
	        cmocka_unit_test(test_rule_catalogue),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
