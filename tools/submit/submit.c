/*
 * submit.c - mlsec-submit: run mlsec stages on the cluster. Uploads local
 * files (content-addressed, deduplicated) or sends paths under the shared
 * artifact root (--by-reference), submits the job, shows progress as each
 * stage finishes, prints the merged report exactly like `mlsec` and exits
 * with the verdict (0 clean, 1 error/timeout, 2 finding >= --fail-on).
 *
 *   mlsec-submit [options] ARTIFACT...
 *   mlsec-submit triton models/ --summary     (the original mlsec's form)
 *   mlsec-submit --health [--endpoint H:P]    (exit 0 when SERVING)
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/jobproto.h"
#include "mlsec/rpc.h"
#include "mlsec/sha256.h"
#include "mlsec/v1/orchestrator.pb-c.h"

#define PROG "mlsec-submit"
#define DEFAULT_ENDPOINT "127.0.0.1:50051"
#define DEFAULT_TIMEOUT_S 120
#define MAX_TIMEOUT_S 3600
#define UPLOAD_CHUNK (256 * 1024)
#define CALL_TIMEOUT_MS 15000
#define WATCH_RETRY_MS 300
#define MAX_STAGES 16

typedef struct opts {
	const char *endpoint;
	const char *token_file;
	const char *stages;
	const char *tls_ca, *tls_cert, *tls_key, *server_name;
	int tls;
	long timeout_s;
	int by_reference;
	int health;
	const char *health_service;
	const char *baseline_export; /* MODEL */
	const char *baseline_import; /* FILE */
	mlsec_cli_output out;
	const char **targets;
	size_t ntargets;
	json_t *options; /* --option NAME=VALUE, passed to every stage */
} opts;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return MLSEC_EXIT_ERROR;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " PROG " [options] ARTIFACT...\n"
	        "       " PROG " STAGE [options] ARTIFACT...   (e.g. " PROG
	        " triton models/ --summary)\n"
	        "       " PROG " --health [--endpoint H:P] [--service NAME]\n"
	        "       " PROG " --baseline-export MODEL | --baseline-import FILE\n\n"
	        "Runs mlsec stages on the cluster and exits with the verdict.\n\n"
	        "cluster:\n"
	        "  --endpoint H:P     orchestrator address (env MLSEC_ENDPOINT, "
	        "default " DEFAULT_ENDPOINT ")\n"
	        "  --token-file F     bearer token file (env MLSEC_TOKEN_FILE)\n"
	        "  --stages LIST|auto comma-separated stages, or auto by artifact type (default)\n"
	        "  --timeout SECS     give up waiting for the verdict after SECS (default %d)\n"
	        "  --by-reference     ARTIFACTs are paths under the cluster's artifact root;\n"
	        "                     default: upload local files\n"
	        "  --option NAME=VALUE  stage option (repeatable), e.g. --option threshold=100;\n"
	        "                     numbers, true/false and JSON are passed as such\n"
	        "  --tls              TLS with the system roots; --tls-ca F: with these roots\n"
	        "  --tls-cert F --tls-key F   client certificate (mutual TLS)\n"
	        "  --tls-server-name N        expected server name (testing)\n"
	        "  --health           health check only: exit 0 when SERVING\n"
	        "  --baseline-export MODEL  print the adversarial baseline stored for MODEL\n"
	        "                     (the JSON of `mlsec adversarial --baseline FILE`)\n"
	        "  --baseline-import FILE   store every model of that JSON baseline file\n\n%s",
	        DEFAULT_TIMEOUT_S, mlsec_cli_output_help);
}

/* The original mlsec's subcommand names -> cluster stage names. */
static const char *stage_alias(const char *a)
{
	static const char *const map[][2] = {
	        {"triton", "triton"},           {"checkpoint", "checkpoint"},
	        {"adversarial", "adversarial"}, {"inspect", "inspect"},
	        {"export-guard", "export"},     {"export", "export"},
	        {"poison-monitor", "poison"},   {"poison", "poison"}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(a, map[i][0]))
			return map[i][1];
	return NULL;
}

static int parse_args(opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	mlsec_cli_output_init(&o->out);
	o->endpoint = getenv("MLSEC_ENDPOINT");
	o->token_file = getenv("MLSEC_TOKEN_FILE");
	o->timeout_s = DEFAULT_TIMEOUT_S;
	o->targets = mlsec_calloc((size_t)argc + 1, sizeof(char *));
	if (!o->targets)
		return fail("out of memory");
	int i = 1;
	if (argc > 1 && stage_alias(argv[1])) {
		o->stages = stage_alias(argv[1]);
		i = 2;
	}
	int only_targets = 0;
	for (; i < argc; i++) {
		const char *a = argv[i];
		int missing = 0;
		const char *v;
		if (only_targets || a[0] != '-' || !strcmp(a, "-")) {
			o->targets[o->ntargets++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_targets = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return -2;
		}
		int r = mlsec_cli_output_flag(&o->out, "submit", argc, argv, &i);
		if (r < 0)
			return MLSEC_EXIT_ERROR;
		if (r > 0)
			continue;
#define STR_FLAG(name, field)                                                                      \
	if ((v = mlsec_cli_flag_value(name, argc, argv, &i, &missing)) || missing) {               \
		if (missing)                                                                       \
			return fail("%s needs a value", name);                                     \
		o->field = v;                                                                      \
		continue;                                                                          \
	}
		STR_FLAG("--endpoint", endpoint)
		STR_FLAG("--baseline-export", baseline_export)
		STR_FLAG("--baseline-import", baseline_import)
		STR_FLAG("--token-file", token_file)
		STR_FLAG("--stages", stages)
		STR_FLAG("--tls-ca", tls_ca)
		STR_FLAG("--tls-cert", tls_cert)
		STR_FLAG("--tls-key", tls_key)
		STR_FLAG("--tls-server-name", server_name)
		STR_FLAG("--service", health_service)
#undef STR_FLAG
		if ((v = mlsec_cli_flag_value("--timeout", argc, argv, &i, &missing)) || missing) {
			char *end = NULL;
			o->timeout_s = v ? strtol(v, &end, 10) : 0;
			if (missing || !end || *end || o->timeout_s < 1 ||
			    o->timeout_s > MAX_TIMEOUT_S)
				return fail("--timeout needs 1..%d seconds", MAX_TIMEOUT_S);
			continue;
		}
		if ((v = mlsec_cli_flag_value("--option", argc, argv, &i, &missing)) || missing) {
			const char *eq = v ? strchr(v, '=') : NULL;
			if (missing || !eq || eq == v || eq - v > 64)
				return fail("--option needs NAME=VALUE");
			char name[65];
			memcpy(name, v, (size_t)(eq - v));
			name[eq - v] = '\0';
			json_error_t je;
			json_t *val = json_loads(eq + 1, JSON_DECODE_ANY, &je);
			if (!val)
				val = json_string(eq + 1);
			if (!o->options)
				o->options = json_object();
			if (!o->options || !val || json_object_set_new(o->options, name, val))
				return fail("out of memory");
			continue;
		}
		if (!strcmp(a, "--by-reference")) {
			o->by_reference = 1;
			continue;
		}
		if (!strcmp(a, "--tls")) {
			o->tls = 1;
			continue;
		}
		if (!strcmp(a, "--health")) {
			o->health = 1;
			/* `--health H:P` is accepted as a shorthand */
			if (i + 1 < argc && argv[i + 1][0] != '-' && strchr(argv[i + 1], ':'))
				o->endpoint = argv[++i];
			continue;
		}
		return fail("unknown option '%s' (see --help)", a);
	}
	if (!o->endpoint || !*o->endpoint)
		o->endpoint = DEFAULT_ENDPOINT;
	if (o->baseline_export && o->baseline_import)
		return fail("--baseline-export and --baseline-import exclude each other");
	if ((o->baseline_export || o->baseline_import) && !o->health && o->ntargets == 0)
		return 0;
	if (!o->health && o->ntargets == 0)
		return fail("no artifacts given (see --help)");
	return 0;
}

static mlsec_err client_open(const opts *o, mlsec_rpc_client **c, char **token)
{
	mlsec_error err;
	mlsec_error_clear(&err);
	*token = NULL;
	if (!o->health && o->token_file && *o->token_file &&
	    mlsec_rpc_token_read(o->token_file, token, &err) != MLSEC_OK) {
		fail("token file: %s", err.text);
		return err.code ? err.code : MLSEC_ERR_INVALID_ARG;
	}
	mlsec_rpc_client_opts co = {0};
	co.target = o->endpoint;
	co.tls = o->tls;
	co.ca_file = o->tls_ca;
	co.cert_file = o->tls_cert;
	co.key_file = o->tls_key;
	co.server_name = o->server_name;
	co.token = *token;
	mlsec_err e = mlsec_rpc_client_new(&co, c, &err);
	if (e != MLSEC_OK)
		fail("%s", err.text);
	return e;
}

/* One line for a failed call, naming what the user can fix. */
static int call_fail(const opts *o, const char *what, const mlsec_rpc_status *st)
{
	switch (st->code) {
	case GRPC_STATUS_UNAVAILABLE:
		return fail("cannot reach the cluster at %s (%s)", o->endpoint,
		            st->message[0] ? st->message : "unavailable");
	case GRPC_STATUS_UNAUTHENTICATED:
		return fail(
		        "authentication failed at %s: %s (check --token-file / MLSEC_TOKEN_FILE)",
		        o->endpoint, st->message);
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return fail("%s timed out (%s)", what, o->endpoint);
	default:
		return fail("%s failed: %s: %s", what, mlsec_rpc_status_name(st->code),
		            st->message);
	}
}

static int do_health(const opts *o)
{
	mlsec_rpc_client *c = NULL;
	char *token = NULL;
	if (client_open(o, &c, &token) != MLSEC_OK)
		return MLSEC_EXIT_ERROR;
	int serving = 0;
	mlsec_rpc_status st = {0};
	mlsec_err e = mlsec_rpc_health_check(c, o->health_service ? o->health_service : "",
	                                     (int)(o->timeout_s < 10 ? o->timeout_s * 1000 : 5000),
	                                     &serving, &st);
	mlsec_rpc_client_free(c);
	mlsec_free(token);
	if (e != MLSEC_OK)
		return call_fail(o, "health check", &st);
	printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
	return serving ? 0 : MLSEC_EXIT_ERROR;
}

/* A local file and the uri the cluster knows it by. */
typedef struct local_art {
	char *path;
	char *uri;
	char sha[MLSEC_SHA256_HEX_LEN];
} local_art;

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int upload_one(const opts *o, mlsec_rpc_client *c, local_art *a)
{
	mlsec_error err;
	uint64_t size = 0;
	if (mlsec_sha256_file(a->path, a->sha, &size, &err) != MLSEC_OK)
		return fail("%s", err.text);
	int fd = open(a->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("cannot open %s", a->path);
	mlsec_rpc_stream *s = NULL;
	if (mlsec_rpc_client_open(c, "/mlsec.v1.Orchestrator/Upload", MLSEC_RPC_CLIENT_STREAM, NULL,
	                          0, (int)(o->timeout_s * 1000), &s, &err) != MLSEC_OK) {
		close(fd);
		return fail("%s", err.text);
	}
	uint8_t *buf = mlsec_malloc(UPLOAD_CHUNK);
	int first = 1, rc = 0;
	for (;;) {
		ssize_t n = buf ? read(fd, buf, UPLOAD_CHUNK) : -1;
		if (n < 0) {
			rc = fail("cannot read %s", a->path);
			break;
		}
		if (n == 0 && !first)
			break;
		Mlsec__V1__UploadChunk ch = MLSEC__V1__UPLOAD_CHUNK__INIT;
		if (first) {
			ch.name = (char *)base_name(a->path);
			ch.sha256 = a->sha;
		}
		ch.data.data = buf;
		ch.data.len = (size_t)n;
		uint8_t *msg = NULL;
		size_t len = 0;
		if (mlsec_jobproto_pack(&ch.base, &msg, &len) != MLSEC_OK) {
			rc = fail("out of memory");
			break;
		}
		mlsec_err e = mlsec_rpc_stream_send(s, msg, len);
		mlsec_free(msg);
		first = 0;
		if (e != MLSEC_OK || n == 0)
			break; /* a failed send: the status below says why */
	}
	close(fd);
	mlsec_free(buf);
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	mlsec_rpc_status st = {0};
	mlsec_err e = mlsec_rpc_stream_finish(s, &resp, &resp_len, &st);
	mlsec_rpc_stream_free(s);
	if (rc)
		return rc;
	if (e != MLSEC_OK)
		return call_fail(o, "upload", &st);
	Mlsec__V1__UploadResponse *r = mlsec__v1__upload_response__unpack(NULL, resp_len, resp);
	mlsec_free(resp);
	if (!r || !r->artifact || !r->artifact->uri || !*r->artifact->uri) {
		if (r)
			mlsec__v1__upload_response__free_unpacked(r, NULL);
		return fail("upload: malformed response");
	}
	a->uri = mlsec_strdup(r->artifact->uri);
	mlsec__v1__upload_response__free_unpacked(r, NULL);
	return a->uri ? 0 : fail("out of memory");
}

/* Replaces every string equal to a cluster uri by the local path, so the
 * report names the files the user gave. */
static void json_map_paths(json_t *j, const local_art *arts, size_t n)
{
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		void *tmp;
		json_object_foreach_safe(j, tmp, k, v)
		{
			if (json_is_string(v)) {
				for (size_t i = 0; i < n; i++)
					if (arts[i].uri &&
					    !strcmp(json_string_value(v), arts[i].uri)) {
						json_object_set_new(j, k,
						                    json_string(arts[i].path));
						break;
					}
			} else {
				json_map_paths(v, arts, n);
			}
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) json_map_paths(v, arts, n);
	}
}

static const char *status_word(Mlsec__V1__StageStatus s)
{
	switch (s) {
	case MLSEC__V1__STAGE_STATUS__STAGE_STATUS_OK:
		return "ok";
	case MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ALERT:
		return "ALERT";
	case MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ERROR:
		return "ERROR";
	default:
		return "unknown";
	}
}

/* Builds the merged report from the verdict and emits it like `mlsec`. */
static int emit_verdict(const opts *o, const Mlsec__V1__Verdict *v, const local_art *arts, size_t n)
{
	mlsec_report *rep = mlsec_report_new("cluster");
	if (!rep)
		return fail("out of memory");
	for (size_t i = 0; i < v->n_stages; i++) {
		const Mlsec__V1__StageResult *r = v->stages[i];
		json_t *j = NULL;
		if (r->report_json && *r->report_json) {
			json_error_t je;
			j = json_loads(r->report_json, 0, &je);
		}
		mlsec_error err;
		mlsec_error_clear(&err);
		if (j) {
			json_map_paths(j, arts, n);
			if (mlsec_report_merge_json(rep, j, &err) != MLSEC_OK)
				mlsec_report_add_error(rep, "stage %s: unreadable report (%s)",
				                       r->stage, err.text);
		} else if (r->n_findings == 0 &&
		           r->status != MLSEC__V1__STAGE_STATUS__STAGE_STATUS_OK) {
			mlsec_report_add_error(rep, "stage %s: %s", r->stage,
			                       r->error && *r->error ? r->error : "no report");
		} else if (r->n_findings) {
			/* findings without a report (oversized): keep them visible */
			for (size_t k = 0; k < r->n_findings; k++) {
				const Mlsec__V1__Finding *f = r->findings[k];
				mlsec_artifact *a =
				        mlsec_report_add_artifact(rep, f->artifact, NULL);
				if (a) {
					mlsec_artifact_set_stage(a, r->stage);
					mlsec_artifact_add_finding(
					        a, f->rule_id,
					        mlsec_jobproto_severity_from_pb(f->severity),
					        f->title, "%s", f->detail);
				}
			}
		}
		json_decref(j);
		/* a stage error that the report itself does not carry */
		if (j && r->status == MLSEC__V1__STAGE_STATUS__STAGE_STATUS_ERROR && r->error &&
		    *r->error && mlsec_report_error_count(rep) == 0)
			mlsec_report_add_error(rep, "stage %s: %s", r->stage, r->error);
	}
	for (size_t i = 0; i < v->n_pending_stages; i++)
		mlsec_report_add_error(rep, "stage %s: no result", v->pending_stages[i]);
	int code = mlsec_cli_emit(rep, &o->out, "submit");
	mlsec_report_free(rep);
	/* The verdict's rule (2 beats 1 beats 0) applied once more, so that
	 * a local output failure turns a clean verdict into an error. */
	return v->exit_code > code ? v->exit_code : code;
}

/* Directory walk filter: keep the files some requested stage analyses
 * (all stages in auto mode), like the orchestrator's auto selection;
 * a stage without known formats takes every file. */
typedef struct walk_filter {
	const char *const *stages;
	size_t n;
} walk_filter;

static int walk_accept(const char *path, const char *base, void *ctx)
{
	const walk_filter *wf = ctx;
	const char *st = mlsec_jobproto_stage_for_format(mlsec_format_sniff(path));
	if (wf->n == 0)
		return st != NULL;
	for (size_t i = 0; i < wf->n; i++) {
		if (!mlsec_jobproto_stage_has_formats(wf->stages[i]))
			return 1;
		if (st && !strcmp(st, wf->stages[i]))
			return 1;
	}
	return 0;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Watches the job until its verdict, resuming after broken streams (an
 * orchestrator restart) until the deadline. *verdict receives the final
 * verdict (unpacked; caller frees). */
static int watch_job(const opts *o, mlsec_rpc_client *c, const char *job_id, long long until,
                     Mlsec__V1__Verdict **verdict)
{
	char after[64] = "";
	int tty = isatty(STDERR_FILENO) && !o->out.quiet;
	char seen[MAX_STAGES][40];
	size_t nseen = 0;
	mlsec_rpc_status last = {0};
	*verdict = NULL;
	while (mono_ms() < until) {
		Mlsec__V1__WatchRequest wr = MLSEC__V1__WATCH_REQUEST__INIT;
		wr.job_id = (char *)job_id;
		wr.after_id = after;
		uint8_t *buf = NULL;
		size_t len = 0;
		if (mlsec_jobproto_pack(&wr.base, &buf, &len) != MLSEC_OK)
			return fail("out of memory");
		mlsec_rpc_stream *s = NULL;
		mlsec_error err;
		mlsec_err e = mlsec_rpc_client_open(c, "/mlsec.v1.Orchestrator/Watch",
		                                    MLSEC_RPC_SERVER_STREAM, buf, len,
		                                    (int)(until - mono_ms()), &s, &err);
		mlsec_free(buf);
		if (e != MLSEC_OK)
			return fail("%s", err.text);
		int spin = 0;
		for (;;) {
			uint8_t *msg = NULL;
			size_t mlen = 0;
			int r = mlsec_rpc_stream_recv(s, tty ? 200 : 0, &msg, &mlen);
			if (r == -2) {
				static const char frames[] = "|/-\\";
				fprintf(stderr, "\r%c waiting for job %.12s...", frames[spin++ % 4],
				        job_id);
				continue;
			}
			if (r != 1)
				break;
			Mlsec__V1__JobEvent *ev = mlsec__v1__job_event__unpack(NULL, mlen, msg);
			mlsec_free(msg);
			if (!ev)
				continue;
			if (ev->id && *ev->id)
				snprintf(after, sizeof(after), "%s", ev->id);
			if (tty)
				fputs("\r\033[K", stderr);
			if (ev->type == MLSEC__V1__EVENT_TYPE__EVENT_TYPE_SUBMITTED &&
			    !o->out.quiet) {
				fprintf(stderr, PROG ": job %s: %zu stage(s):", job_id,
				        ev->n_stages);
				for (size_t i = 0; i < ev->n_stages; i++)
					fprintf(stderr, " %s", ev->stages[i]);
				fputc('\n', stderr);
			} else if (ev->type == MLSEC__V1__EVENT_TYPE__EVENT_TYPE_STAGE_DONE &&
			           ev->result) {
				int dup = 0;
				for (size_t i = 0; i < nseen; i++)
					dup |= !strcmp(seen[i], ev->stage ? ev->stage : "");
				if (!dup && nseen < MAX_STAGES)
					snprintf(seen[nseen++], sizeof(seen[0]), "%s",
					         ev->stage ? ev->stage : "");
				if (!dup && !o->out.quiet) {
					const Mlsec__V1__StageResult *res = ev->result;
					fprintf(stderr,
					        PROG ": %-11s %-5s %zu finding(s), %lld ms%s%s\n",
					        res->stage, status_word(res->status),
					        res->n_findings, (long long)res->duration_ms,
					        res->error && *res->error ? ": " : "",
					        res->error ? res->error : "");
				}
			} else if (ev->type == MLSEC__V1__EVENT_TYPE__EVENT_TYPE_VERDICT &&
			           ev->verdict) {
				*verdict = ev->verdict;
				ev->verdict = NULL; /* keep it past the event */
			}
			mlsec__v1__job_event__free_unpacked(ev, NULL);
			if (*verdict)
				break;
		}
		mlsec_rpc_stream_finish(s, NULL, NULL, &last);
		mlsec_rpc_stream_free(s);
		if (*verdict)
			return 0;
		if (last.code == GRPC_STATUS_UNAUTHENTICATED ||
		    last.code == GRPC_STATUS_NOT_FOUND ||
		    last.code == GRPC_STATUS_INVALID_ARGUMENT ||
		    last.code == GRPC_STATUS_PERMISSION_DENIED)
			return call_fail(o, "watch", &last);
		/* broken stream (restart, network): resume after the last event */
		usleep(WATCH_RETRY_MS * 1000);
	}
	if (tty)
		fputs("\r\033[K", stderr);
	return fail("timed out after %ld s waiting for the verdict of job %s", o->timeout_s,
	            job_id);
}

/* google.protobuf.StringValue: field 1, length-delimited. */
static uint8_t *sv_encode(const char *s, size_t n, size_t *out_len)
{
	uint8_t *b = mlsec_malloc(n + 11);
	if (!b)
		return NULL;
	size_t i = 0;
	b[i++] = 0x0a;
	size_t v = n;
	do {
		b[i++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	memcpy(b + i, s, n);
	*out_len = i + n;
	return b;
}

/* The string of a StringValue answer (borrowed from in); -1 if malformed. */
static int sv_decode(const uint8_t *in, size_t len, const uint8_t **s, size_t *n)
{
	*s = (const uint8_t *)"";
	*n = 0;
	if (len == 0)
		return 0;
	if (in[0] != 0x0a)
		return -1;
	size_t i = 1, l = 0;
	int shift = 0;
	do {
		if (i >= len || shift > 56)
			return -1;
		l |= (size_t)(in[i] & 0x7f) << shift;
		shift += 7;
	} while (in[i++] & 0x80);
	if (l > len - i)
		return -1;
	*s = in + i;
	*n = l;
	return 0;
}

#define BASELINE_MAX_FILE (4u * 1024 * 1024)

/* --baseline-export MODEL / --baseline-import FILE via mlsec.v1.Baselines. */
static int do_baseline(const opts *o)
{
	char *body = NULL;
	size_t body_len = 0;
	mlsec_error err;
	mlsec_error_clear(&err);
	if (o->baseline_import) {
		if (mlsec_file_read_all(o->baseline_import, BASELINE_MAX_FILE, &body, &body_len,
		                        &err) != MLSEC_OK)
			return fail("%s: %s", o->baseline_import, err.text);
		json_error_t je;
		json_t *j = json_loadb(body, body_len, JSON_REJECT_DUPLICATES, &je);
		int ok = json_is_object(j);
		json_decref(j);
		if (!ok) {
			mlsec_free(body);
			return fail("%s: not a JSON baseline object (line %d: %s)",
			            o->baseline_import, je.line, je.text);
		}
	}
	const char *arg = o->baseline_import ? body : o->baseline_export;
	size_t req_len = 0;
	uint8_t *req = sv_encode(arg, o->baseline_import ? body_len : strlen(arg), &req_len);
	mlsec_free(body);
	if (!req)
		return fail("out of memory");
	mlsec_rpc_client *c = NULL;
	char *token = NULL;
	if (client_open(o, &c, &token) != MLSEC_OK) {
		mlsec_free(req);
		return MLSEC_EXIT_ERROR;
	}
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	mlsec_rpc_status st = {0};
	mlsec_err e = mlsec_rpc_client_unary(
	        c, o->baseline_import ? "/mlsec.v1.Baselines/Set" : "/mlsec.v1.Baselines/Get", req,
	        req_len, (int)(o->timeout_s < 60 ? o->timeout_s * 1000 : 60000), &resp, &resp_len,
	        &st);
	mlsec_free(req);
	mlsec_rpc_client_free(c);
	if (token) {
		memset(token, 0, strlen(token));
		mlsec_free(token);
	}
	if (e != MLSEC_OK)
		return call_fail(o, o->baseline_import ? "baseline import" : "baseline export",
		                 &st);
	const uint8_t *s;
	size_t n;
	int rc = 0;
	if (sv_decode(resp, resp_len, &s, &n) != 0)
		rc = fail("malformed answer from %s", o->endpoint);
	else if (o->baseline_import)
		fprintf(stderr, PROG ": baselines stored for %.*s model(s)\n", (int)n,
		        (const char *)s);
	else
		printf("%.*s\n", (int)n, (const char *)s);
	mlsec_free(resp);
	return rc;
}

int main(int argc, char **argv)
{
	opts o;
	int rc = parse_args(&o, argc, argv);
	if (!rc && !o.health && (o.baseline_export || o.baseline_import)) {
		rc = do_baseline(&o);
		mlsec_free(o.targets);
		json_decref(o.options);
		return rc;
	}
	if (rc || o.health) {
		if (o.health && !rc)
			rc = do_health(&o);
		mlsec_free(o.targets);
		json_decref(o.options);
		return rc == -2 ? 0 : rc;
	}
	long long until = mono_ms() + o.timeout_s * 1000;
	mlsec_rpc_client *c = NULL;
	char *token = NULL;
	local_art *arts = NULL;
	size_t narts = 0;
	mlsec_strlist files = {0};
	Mlsec__V1__Verdict *verdict = NULL;
	Mlsec__V1__SubmitResponse *sr = NULL;
	char *stages_copy = NULL;
	const char *stage_list[MAX_STAGES];
	size_t nstages = 0;
	rc = MLSEC_EXIT_ERROR;
	if (client_open(&o, &c, &token) != MLSEC_OK)
		goto out;

	if (o.stages && *o.stages) {
		stages_copy = mlsec_strdup(o.stages);
		char *save = NULL;
		for (char *t = stages_copy ? strtok_r(stages_copy, ",", &save) : NULL; t;
		     t = strtok_r(NULL, ",", &save)) {
			if (nstages == MAX_STAGES) {
				fail("too many stages");
				goto out;
			}
			stage_list[nstages++] = stage_alias(t) ? stage_alias(t) : t;
		}
	}

	mlsec_error err;
	mlsec_error_clear(&err);
	if (o.by_reference) {
		arts = mlsec_calloc(o.ntargets, sizeof(*arts));
		if (!arts)
			goto out;
		for (size_t i = 0; i < o.ntargets; i++) {
			arts[i].path = mlsec_strdup(o.targets[i]);
			arts[i].uri = mlsec_strdup(o.targets[i]);
			narts++;
		}
	} else {
		int is_auto = nstages == 1 && !strcmp(stage_list[0], "auto");
		walk_filter wf = {stage_list, is_auto ? 0 : nstages};
		if (mlsec_targets_expand(o.targets, o.ntargets, walk_accept, &wf, &files, &err) !=
		    MLSEC_OK) {
			fail("%s", err.text);
			goto out;
		}
		arts = mlsec_calloc(files.count ? files.count : 1, sizeof(*arts));
		if (!arts)
			goto out;
		for (size_t i = 0; i < files.count; i++) {
			arts[narts].path = mlsec_strdup(files.items[i]);
			narts++;
			if (upload_one(&o, c, &arts[narts - 1]) != 0)
				goto out;
		}
	}

	Mlsec__V1__SubmitRequest req = MLSEC__V1__SUBMIT_REQUEST__INIT;
	Mlsec__V1__Artifact *pa = mlsec_calloc(narts ? narts : 1, sizeof(*pa));
	Mlsec__V1__Artifact **pp = mlsec_calloc(narts ? narts : 1, sizeof(*pp));
	if (!pa || !pp) {
		mlsec_free(pa);
		mlsec_free(pp);
		goto out;
	}
	for (size_t i = 0; i < narts; i++) {
		mlsec__v1__artifact__init(&pa[i]);
		pa[i].uri = arts[i].uri;
		pa[i].sha256 = arts[i].sha;
		pp[i] = &pa[i];
	}
	req.artifacts = pp;
	req.n_artifacts = narts;
	req.stages = (char **)stage_list;
	req.n_stages = nstages;
	req.gate = mlsec_jobproto_severity_to_pb(o.out.gate);
	req.has_gate = 1;
	/* The cluster's deadline ends slightly before ours, so that a stage
	 * that never answers is reported as such rather than as our timeout. */
	req.timeout_ms = (uint32_t)(o.timeout_s * 1000 > 2000 ? o.timeout_s * 1000 - 1000
	                                                      : o.timeout_s * 1000);
	char *options_text = o.options ? json_dumps(o.options, JSON_COMPACT) : NULL;
	req.options_json = options_text ? options_text : "";
	const char *user = getenv("USER");
	req.submitter = (char *)(user ? user : "");
	uint8_t *buf = NULL, *resp = NULL;
	size_t len = 0, resp_len = 0;
	mlsec_rpc_status st = {0};
	mlsec_err e = mlsec_jobproto_pack(&req.base, &buf, &len);
	free(options_text);
	mlsec_free(pa);
	mlsec_free(pp);
	if (e != MLSEC_OK)
		goto out;
	e = mlsec_rpc_client_unary(c, "/mlsec.v1.Orchestrator/Submit", buf, len, CALL_TIMEOUT_MS,
	                           &resp, &resp_len, &st);
	mlsec_free(buf);
	if (e != MLSEC_OK) {
		call_fail(&o, "submit", &st);
		goto out;
	}
	sr = mlsec__v1__submit_response__unpack(NULL, resp_len, resp);
	mlsec_free(resp);
	if (!sr || !sr->job_id || !*sr->job_id) {
		fail("submit: malformed response");
		goto out;
	}
	if (watch_job(&o, c, sr->job_id, until + 1000, &verdict) != 0)
		goto out;
	rc = emit_verdict(&o, verdict, arts, narts);
out:
	if (verdict)
		mlsec__v1__verdict__free_unpacked(verdict, NULL);
	if (sr)
		mlsec__v1__submit_response__free_unpacked(sr, NULL);
	for (size_t i = 0; i < narts; i++) {
		mlsec_free(arts[i].path);
		mlsec_free(arts[i].uri);
	}
	mlsec_free(arts);
	mlsec_strlist_free(&files);
	mlsec_free(stages_copy);
	mlsec_rpc_client_free(c);
	if (token) {
		memset(token, 0, strlen(token));
		mlsec_free(token);
	}
	mlsec_free(o.targets);
	json_decref(o.options);
	return rc;
}
