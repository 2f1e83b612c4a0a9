/*
 * triton_engine.c - the auditor object (one read buffer and one parser
 * arena for a whole batch of files) and the mlsec_engine glue used by the
 * stage service.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/cpus.h"
#include "mlsec/fsutil.h"
#include "mlsec/sha256.h"
#include "triton_int.h"

#define READ_INITIAL_CAP (64u << 10)

mlsec_triton_auditor *mlsec_triton_auditor_new(void)
{
	mlsec_triton_auditor *a = mlsec_calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->parser = mlsec_pbtxt_new(NULL);
	if (!a->parser) {
		mlsec_free(a);
		return NULL;
	}
	a->max_instances = MLSEC_TRITON_DEFAULT_MAX_INSTANCES;
	a->base_fd = -1;
	return a;
}

void mlsec_triton_auditor_free(mlsec_triton_auditor *a)
{
	if (!a)
		return;
	mlsec_pbtxt_free(a->parser);
	if (a->base_fd >= 0)
		close(a->base_fd);
	mlsec_free(a->buf);
	mlsec_free(a);
}

void mlsec_triton_auditor_set_max_instances(mlsec_triton_auditor *a, long n)
{
	a->max_instances = n > 0 ? n : MLSEC_TRITON_DEFAULT_MAX_INSTANCES;
}

/*
 * Reads path (or name in the directory dirfd, when dirfd >= 0) into the
 * auditor's buffer (grown, never shrunk). Returns MLSEC_ERR_LIMIT when
 * larger than max (then *len holds the real size). Refuses non-regular
 * files without blocking on FIFOs.
 */
static mlsec_err read_file(mlsec_triton_auditor *a, int dirfd, const char *name, const char *path,
                           size_t max, size_t *len, mlsec_error *err)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd = dirfd >= 0 ? openat(dirfd, name, flags | O_NOFOLLOW)
	         : a->base_fd >= 0 && !strncmp(path, a->base, a->base_len) &&
	                         path[a->base_len] != '\0'
	                 ? openat(a->base_fd, path + a->base_len, flags)
	                 : open(path, flags);
	if (fd < 0)
		return mlsec_error_set(err, errno == ENOENT ? MLSEC_ERR_NOT_FOUND : MLSEC_ERR_IO,
		                       "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		*len = (size_t)st.st_size;
		return mlsec_error_set(err, MLSEC_ERR_LIMIT,
		                       "file of %lld bytes exceeds the %zu-byte limit",
		                       (long long)st.st_size, max);
	}
	size_t want = (size_t)st.st_size + 1;
	if (want > a->cap) {
		size_t cap = a->cap ? a->cap : READ_INITIAL_CAP;
		while (cap < want)
			cap *= 2;
		char *nb = mlsec_realloc(a->buf, cap);
		if (!nb) {
			close(fd);
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		}
		a->buf = nb;
		a->cap = cap;
	}
	/* The file may change size under us: never read past the buffer. */
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, a->buf + n, a->cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		/* Stop at the size fstat reported: saves the EOF read per file. We
		 * audit (and hash) exactly the bytes read, so a file growing under
		 * us cannot make the digest and the findings disagree. */
		if (n == (size_t)st.st_size && n > 0)
			break;
		if (n == a->cap - 1) {
			if (n >= max + 1) {
				close(fd);
				*len = n;
				return mlsec_error_set(err, MLSEC_ERR_LIMIT,
				                       "file grew past the %zu-byte limit", max);
			}
			char *nb = mlsec_realloc(a->buf, a->cap * 2);
			if (!nb) {
				close(fd);
				return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			}
			a->buf = nb;
			a->cap *= 2;
		}
	}
	close(fd);
	if (n > max) {
		*len = n;
		return mlsec_error_set(err, MLSEC_ERR_LIMIT, "file exceeds the %zu-byte limit",
		                       max);
	}
	a->buf[n] = '\0';
	*len = n;
	return MLSEC_OK;
}

/*
 * The artifact details, kept as a flat record and turned into JSON only
 * if a JSON report is written (mlsec_artifact_set_details_fill): a table
 * run never builds the eight JSON values per config.
 */
typedef struct triton_details {
	int64_t max_batch_size;
	size_t inputs, outputs, groups;
	const char *sched; /* a string literal */
	size_t name_len, backend_len;
	char strings[]; /* name\0backend\0platform\0 */
} triton_details;

static mlsec_err fill_details(json_t *d, const void *data)
{
	const triton_details *t = data;
	const char *name = t->strings, *backend = name + t->name_len + 1,
	           *platform = backend + t->backend_len + 1;
	if (json_object_set_new(d, "model", json_string(name)) ||
	    json_object_set_new(d, "backend", json_string(backend)) ||
	    json_object_set_new(d, "platform", json_string(platform)) ||
	    json_object_set_new(d, "max_batch_size", json_integer(t->max_batch_size)) ||
	    json_object_set_new(d, "inputs", json_integer((json_int_t)t->inputs)) ||
	    json_object_set_new(d, "outputs", json_integer((json_int_t)t->outputs)) ||
	    json_object_set_new(d, "instance_groups", json_integer((json_int_t)t->groups)) ||
	    json_object_set_new(d, "scheduling", json_string(t->sched)))
		return MLSEC_ERR_NOMEM;
	return MLSEC_OK;
}

static void set_details(mlsec_artifact *art, const Inference__ModelConfig *cfg, triton_ctx *c)
{
	const char *sched = "none";
	switch (cfg->scheduling_choice_case) {
	case INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING:
		sched = "dynamic_batching";
		break;
	case INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_SEQUENCE_BATCHING:
		sched = "sequence_batching";
		break;
	case INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_ENSEMBLE_SCHEDULING:
		sched = "ensemble_scheduling";
		break;
	default:
		break;
	}
	size_t nl = strlen(cfg->name), bl = strlen(cfg->backend), pl = strlen(cfg->platform);
	size_t size = sizeof(triton_details) + nl + bl + pl + 3;
	union {
		triton_details t;
		char bytes[1024];
	} local;
	triton_details *t = size <= sizeof local ? &local.t : mlsec_malloc(size);
	if (!t) {
		c->rc = MLSEC_ERR_NOMEM;
		return;
	}
	t->max_batch_size = cfg->max_batch_size;
	t->inputs = cfg->n_input;
	t->outputs = cfg->n_output;
	t->groups = cfg->n_instance_group;
	t->sched = sched;
	t->name_len = nl;
	t->backend_len = bl;
	memcpy(t->strings, cfg->name, nl + 1);
	memcpy(t->strings + nl + 1, cfg->backend, bl + 1);
	memcpy(t->strings + nl + 1 + bl + 1, cfg->platform, pl + 1);
	if (mlsec_artifact_set_details_fill(art, fill_details, t, size) != MLSEC_OK)
		c->rc = MLSEC_ERR_NOMEM;
	if (t != &local.t)
		mlsec_free(t);
}

/* Parses and checks text already read; art is the artifact to fill. */
static mlsec_err audit_loaded(mlsec_triton_auditor *a, mlsec_artifact *art, const char *path,
                              const char *text, size_t len)
{
	triton_ctx c = {.aud = a, .art = art, .path = path, .rc = MLSEC_OK};
	ProtobufCMessage *msg = NULL;
	mlsec_error perr;
	mlsec_error_clear(&perr);
	a->configs++;
	mlsec_err rc = mlsec_pbtxt_parse(a->parser, &inference__model_config__descriptor, text, len,
	                                 &msg, &perr);
	if (rc == MLSEC_ERR_NOMEM)
		return rc;
	if (rc != MLSEC_OK) {
		snprintf(perr.file, sizeof perr.file, "%s", path);
		return mlsec_artifact_add_malformed(art, MLSEC_TRITON_RULE_PREFIX, &perr)
		               ? MLSEC_OK
		               : MLSEC_ERR_NOMEM;
	}
	const Inference__ModelConfig *cfg = (const Inference__ModelConfig *)msg;
	set_details(art, cfg, &c);
	triton_check_config(&c, cfg);
	return c.rc;
}

mlsec_err mlsec_triton_audit_text(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                                  const char *text, size_t len, mlsec_error *err)
{
	mlsec_artifact *art =
	        mlsec_report_add_artifact(rep, path, mlsec_format_name(MLSEC_FMT_TRITON_CONFIG));
	if (!art)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = audit_loaded(a, art, path, text, len);
	if (rc != MLSEC_OK)
		return mlsec_error_set(err, rc, "%s: %s", path, mlsec_strerror(rc));
	return MLSEC_OK;
}

/* Audits path, opened as name in dirfd when dirfd >= 0. */
static mlsec_err audit_file_at(mlsec_triton_auditor *a, mlsec_report *rep, int dirfd,
                               const char *name, const char *path, mlsec_error *err)
{
	size_t len = 0;
	mlsec_error rerr;
	mlsec_error_clear(&rerr);
	mlsec_err rc = read_file(a, dirfd, name, path, MLSEC_TRITON_MAX_CONFIG, &len, &rerr);
	if (rc == MLSEC_ERR_NOMEM)
		return mlsec_error_set(err, rc, "out of memory");
	if (rc != MLSEC_OK && rc != MLSEC_ERR_LIMIT) {
		/* Unreadable is not "clean": it is a report error (exit 1). */
		if (mlsec_report_add_error(rep, "%s", rerr.text) != MLSEC_OK)
			return MLSEC_ERR_NOMEM;
		if (err)
			*err = rerr;
		return rc;
	}
	mlsec_artifact *art =
	        mlsec_report_add_artifact(rep, path, mlsec_format_name(MLSEC_FMT_TRITON_CONFIG));
	if (!art)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (rc == MLSEC_ERR_LIMIT) {
		snprintf(rerr.file, sizeof rerr.file, "%s", path);
		rerr.offset = -1;
		return mlsec_artifact_add_malformed(art, MLSEC_TRITON_RULE_PREFIX, &rerr)
		               ? MLSEC_OK
		               : mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	char hex[MLSEC_SHA256_HEX_LEN];
	mlsec_sha256_buf(a->buf, len, hex);
	if (mlsec_artifact_set_digest(art, hex, len) != MLSEC_OK)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	rc = audit_loaded(a, art, path, a->buf, len);
	if (rc != MLSEC_OK)
		return mlsec_error_set(err, rc, "%s: %s", path, mlsec_strerror(rc));
	return MLSEC_OK;
}

mlsec_err mlsec_triton_audit_file(mlsec_triton_auditor *a, mlsec_report *rep, const char *path,
                                  mlsec_error *err)
{
	return audit_file_at(a, rep, -1, NULL, path, err);
}

mlsec_err mlsec_triton_audit_launch_args(mlsec_triton_auditor *a, mlsec_report *rep,
                                         const char *path, mlsec_error *err)
{
	size_t len = 0;
	mlsec_error rerr;
	mlsec_error_clear(&rerr);
	a->auth_noted = 1; /* launch flags given: auth is judged there */
	mlsec_err rc = read_file(a, -1, NULL, path, MLSEC_TRITON_MAX_LAUNCH_FILE, &len, &rerr);
	if (rc == MLSEC_ERR_LIMIT) {
		mlsec_artifact *art = mlsec_report_add_artifact(rep, path, "triton-launch-args");
		snprintf(rerr.file, sizeof rerr.file, "%s", path);
		rerr.offset = -1;
		if (!art || !mlsec_artifact_add_malformed(art, MLSEC_TRITON_RULE_PREFIX, &rerr))
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		return MLSEC_OK;
	}
	if (rc != MLSEC_OK) {
		/* The user named this file: not being able to read it is a tool error. */
		if (err)
			*err = rerr;
		return rc;
	}
	return triton_launch_audit(a, rep, path, a->buf, len, -1, err);
}

mlsec_err mlsec_triton_audit_launch_text(mlsec_triton_auditor *a, mlsec_report *rep,
                                         const char *path, const char *text, size_t len,
                                         int is_yaml, mlsec_error *err)
{
	a->auth_noted = 1;
	return triton_launch_audit(a, rep, path, text, len, is_yaml, err);
}

mlsec_err mlsec_triton_note_auth_unknown(mlsec_triton_auditor *a, mlsec_report *rep)
{
	if (a->auth_noted || mlsec_report_artifact_count(rep) == 0)
		return MLSEC_OK;
	a->auth_noted = 1;
	triton_ctx c = {.aud = a, .art = mlsec_report_artifact(rep, 0), .rc = MLSEC_OK};
	c.path = mlsec_artifact_path(c.art);
	triton_add_at(&c, R_AUTH_UNKNOWN, 0, 0, "tritonserver command line",
	              "config.pbtxt says nothing about authentication, TLS or which APIs are "
	              "exposed; those are tritonserver flags (--grpc-restricted-protocol, "
	              "--http-restricted-api, --grpc-use-ssl, --allow-http). Reported once "
	              "for the run.");
	return c.rc;
}

/* ---- the generic engine ---- */

/*
 * Opens the deepest directory that contains every file of the (sorted)
 * list, so that each file is opened relative to it. Best effort: without
 * it files are opened by their full path, with the same results.
 */
static void set_base_dir(mlsec_triton_auditor *a, const mlsec_strlist *files)
{
	if (files->count < 2)
		return;
	/* In a sorted list the common prefix of all is that of first and last. */
	const char *f = files->items[0], *l = files->items[files->count - 1];
	size_t n = 0, slash = 0;
	while (f[n] && f[n] == l[n]) {
		if (f[n] == '/')
			slash = n + 1;
		n++;
	}
	if (slash == 0)
		return;
	char dir[4096];
	if (slash >= sizeof dir)
		return;
	memcpy(dir, f, slash);
	dir[slash] = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	a->base_fd = fd;
	a->base = f; /* the list outlives the auditor's use of it */
	a->base_len = slash;
}

/*
 * Many files are audited by a few threads, one batch of TRITON_CHUNK files
 * at a time into a report per batch; the batches are then joined in file
 * order, so the result is the same as the sequential loop's. Each thread
 * has its own auditor (parser arena, read buffer). Below
 * TRITON_PARALLEL_MIN files, or when the caller wants per-file progress,
 * the sequential loop runs.
 */
#define TRITON_CHUNK 32
#define TRITON_PARALLEL_MIN 256
#define TRITON_MAX_THREADS 16
#define TRITON_AUTO_THREADS 4 /* past this, the directory walk dominates */

typedef struct chunk_result {
	mlsec_report *rep;
	size_t configs, rate_limited;
	char first_rate_limited[512];
	mlsec_err rc;
	mlsec_error err;
	int done;
} chunk_result;

typedef struct par_ctx {
	const mlsec_engine_request *req;
	const mlsec_strlist *files;
	const char *stage;
	long max_instances;
	chunk_result *res;
	size_t nchunks;
	atomic_size_t next;
	atomic_int stop; /* cancel or out of memory: take no more batches */
} par_ctx;

static int auto_threads(size_t nfiles)
{
	if (nfiles < TRITON_PARALLEL_MIN)
		return 1;
	return mlsec_cpus_for_work(TRITON_AUTO_THREADS);
}

static void *par_worker(void *arg)
{
	par_ctx *pc = arg;
	mlsec_triton_auditor *a = mlsec_triton_auditor_new();
	if (a) {
		mlsec_triton_auditor_set_max_instances(a, pc->max_instances);
		set_base_dir(a, pc->files);
	}
	for (;;) {
		if (atomic_load(&pc->stop))
			break;
		size_t ci = atomic_fetch_add(&pc->next, 1);
		if (ci >= pc->nchunks)
			break;
		chunk_result *cr = &pc->res[ci];
		mlsec_error_clear(&cr->err);
		cr->rep = a ? mlsec_report_new(pc->stage) : NULL;
		if (!cr->rep) {
			cr->rc = mlsec_error_set(&cr->err, MLSEC_ERR_NOMEM, "out of memory");
			atomic_store(&pc->stop, 1);
			break;
		}
		a->configs = a->rate_limited_configs = 0;
		a->first_rate_limited[0] = '\0';
		size_t end = (ci + 1) * TRITON_CHUNK;
		if (end > pc->files->count)
			end = pc->files->count;
		for (size_t i = ci * TRITON_CHUNK; i < end; i++) {
			if (pc->req->cancel && *pc->req->cancel) {
				cr->rc = MLSEC_ERR_TIMEOUT;
				atomic_store(&pc->stop, 1);
				break;
			}
			if (mlsec_triton_audit_file(a, cr->rep, pc->files->items[i], &cr->err) ==
			    MLSEC_ERR_NOMEM) {
				cr->rc = MLSEC_ERR_NOMEM;
				atomic_store(&pc->stop, 1);
				break;
			}
		}
		cr->configs = a->configs;
		cr->rate_limited = a->rate_limited_configs;
		memcpy(cr->first_rate_limited, a->first_rate_limited,
		       sizeof cr->first_rate_limited);
		cr->done = cr->rc == MLSEC_OK;
	}
	mlsec_triton_auditor_free(a);
	return NULL;
}

static void *par_thread(void *arg)
{
	mlsec_thread_private_fds(); /* opens and closes only its own files */
	return par_worker(arg);
}

static mlsec_err audit_parallel(mlsec_triton_auditor *a, const mlsec_engine_request *req,
                                mlsec_report *rep, const mlsec_strlist *files, int nthreads,
                                mlsec_error *err)
{
	par_ctx pc = {.req = req,
	              .files = files,
	              .stage = mlsec_report_stage(rep),
	              .max_instances = a->max_instances,
	              .nchunks = (files->count + TRITON_CHUNK - 1) / TRITON_CHUNK};
	atomic_init(&pc.next, 0);
	atomic_init(&pc.stop, 0);
	pc.res = mlsec_calloc(pc.nchunks, sizeof *pc.res);
	pthread_t tid[TRITON_MAX_THREADS];
	if (!pc.res)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	int started = 0;
	for (int t = 1; t < nthreads && t < TRITON_MAX_THREADS; t++) {
		if (pthread_create(&tid[started], NULL, par_thread, &pc) != 0)
			break; /* fewer threads: the batches still all get done */
		started++;
	}
	par_worker(&pc); /* this thread works too */
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	/* Join in file order; stop at the first batch that did not finish. */
	mlsec_err rc = MLSEC_OK;
	size_t done_files = 0;
	for (size_t ci = 0; ci < pc.nchunks; ci++) {
		chunk_result *cr = &pc.res[ci];
		if (rc == MLSEC_OK && !cr->done) {
			if (cr->rc == MLSEC_ERR_NOMEM) {
				if (err)
					*err = cr->err;
				rc = MLSEC_ERR_NOMEM;
			} else {
				rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT,
				                     "cancelled after %zu of %zu files", done_files,
				                     files->count);
			}
		}
		if (rc != MLSEC_OK) {
			mlsec_report_free(cr->rep);
			continue;
		}
		a->configs += cr->configs;
		a->rate_limited_configs += cr->rate_limited;
		if (!a->first_rate_limited[0] && cr->first_rate_limited[0])
			memcpy(a->first_rate_limited, cr->first_rate_limited,
			       sizeof a->first_rate_limited);
		if (mlsec_report_adopt(rep, cr->rep) != MLSEC_OK) {
			mlsec_report_free(cr->rep);
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
			continue;
		}
		done_files += cr->configs;
	}
	mlsec_free(pc.res);
	return rc;
}

static int want_config(const char *path, const char *base, void *ctx)
{
	(void)path;
	(void)ctx;
	return strcmp(base, MLSEC_TRITON_CONFIG_NAME) == 0;
}

/*
 * A model repository given as one directory is walked and audited in one
 * pass (mlsec_dir_visit): each walker audits the configs it finds into its
 * own report, opening each relative to the directory it just read; the
 * reports are then joined and put in path order, so the result is that of
 * the list-then-audit loop. Saves a second set of threads, the list, and a
 * path lookup per file.
 */
typedef struct visit_state {
	mlsec_triton_auditor *a;
	mlsec_report *rep;
	char pad[64 - 2 * sizeof(void *)]; /* one cache line per walker */
} visit_state;

typedef struct visit_ctx {
	const mlsec_engine_request *req;
	const char *stage;
	long max_instances;
	visit_state w[MLSEC_WALK_THREADS_MAX];
} visit_ctx;

static mlsec_err visit_config(void *ctx, unsigned worker, int dirfd, const char *name,
                              const char *path, mlsec_error *err)
{
	visit_ctx *vc = ctx;
	visit_state *vs = &vc->w[worker]; /* only this walker touches it */
	if (vc->req->cancel && *vc->req->cancel)
		return mlsec_error_set(err, MLSEC_ERR_TIMEOUT, "cancelled after %zu files",
		                       vs->a ? vs->a->configs : 0);
	if (!vs->a) {
		if (!(vs->a = mlsec_triton_auditor_new()))
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		mlsec_triton_auditor_set_max_instances(vs->a, vc->max_instances);
	}
	if (!vs->rep && !(vs->rep = mlsec_report_new(vc->stage)))
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	mlsec_err rc = audit_file_at(vs->a, vs->rep, dirfd, name, path, err);
	/* Unreadable files are already report errors: only a lack of memory
	 * stops the walk. */
	return rc == MLSEC_ERR_NOMEM ? rc : MLSEC_OK;
}

static mlsec_err audit_dir(mlsec_triton_auditor *a, const mlsec_engine_request *req,
                           mlsec_report *rep, const char *dir, int threads, mlsec_error *err)
{
	visit_ctx vc = {
	        .req = req, .stage = mlsec_report_stage(rep), .max_instances = a->max_instances};
	size_t first_artifact = mlsec_report_artifact_count(rep),
	       first_error = mlsec_report_error_count(rep);
	mlsec_err rc = mlsec_dir_visit(dir, want_config, NULL, threads, visit_config, &vc, err);
	for (int t = 0; t < MLSEC_WALK_THREADS_MAX; t++) {
		visit_state *vs = &vc.w[t];
		if (vs->a) {
			a->configs += vs->a->configs;
			a->rate_limited_configs += vs->a->rate_limited_configs;
			/* The first in path order: each walker meets its files in
			 * path order, so its first is its smallest. */
			if (vs->a->first_rate_limited[0] &&
			    (!a->first_rate_limited[0] ||
			     strcmp(vs->a->first_rate_limited, a->first_rate_limited) < 0))
				memcpy(a->first_rate_limited, vs->a->first_rate_limited,
				       sizeof a->first_rate_limited);
			mlsec_triton_auditor_free(vs->a);
		}
		if (!vs->rep)
			continue;
		if (rc == MLSEC_OK && mlsec_report_adopt(rep, vs->rep) == MLSEC_OK)
			continue; /* adopt frees it */
		if (rc == MLSEC_OK)
			rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		mlsec_report_free(vs->rep);
	}
	if (rc == MLSEC_OK && mlsec_report_sort(rep, first_artifact, first_error) != MLSEC_OK)
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	return rc;
}

/* After the configs: the launch flags if given, else the auth note. */
static mlsec_err audit_launch(mlsec_triton_auditor *a, mlsec_report *rep, const char *launch,
                              const char *launch_path, mlsec_error *err)
{
	if (launch)
		return mlsec_triton_audit_launch_args(a, rep, launch_path ? launch_path : launch,
		                                      err);
	return mlsec_triton_note_auth_unknown(a, rep);
}

/* One directory target: walk and audit in one pass (audit_dir). */
static mlsec_err analyze_dir(const mlsec_engine_request *req, mlsec_report *rep, const char *launch,
                             long max_inst, int threads, mlsec_error *err)
{
	char *launch_path = NULL;
	mlsec_err rc = MLSEC_OK;
	if (req->artifact_root) {
		/* The walk follows no symlink: a confined directory holds only
		 * confined files. */
		char *resolved = NULL;
		rc = mlsec_path_confine(req->artifact_root, req->paths[0], &resolved, err);
		mlsec_free(resolved);
		if (rc == MLSEC_OK && launch)
			rc = mlsec_path_confine(req->artifact_root, launch, &launch_path, err);
		if (rc != MLSEC_OK) {
			mlsec_free(launch_path);
			return rc;
		}
	}
	mlsec_triton_auditor *a = mlsec_triton_auditor_new();
	if (!a) {
		mlsec_free(launch_path);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	if (max_inst)
		mlsec_triton_auditor_set_max_instances(a, max_inst);
	rc = audit_dir(a, req, rep, req->paths[0], threads, err);
	if (rc == MLSEC_OK)
		rc = audit_launch(a, rep, launch, launch_path, err);
	mlsec_triton_auditor_free(a);
	mlsec_free(launch_path);
	return rc;
}

static mlsec_err engine_analyze(const mlsec_engine_request *req, mlsec_report *rep,
                                mlsec_error *err)
{
	const char *launch = NULL;
	long max_inst = 0;
	int threads = 0; /* 0 = automatic */
	const char *key;
	json_t *val;
	if (req->options && !json_is_object(req->options))
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "options must be a JSON object");
	json_object_foreach((json_t *)req->options, key, val)
	{
		if (!strcmp(key, "launch-args") && json_is_string(val))
			launch = json_string_value(val);
		else if (!strcmp(key, "max-instance-count") && json_is_integer(val) &&
		         json_integer_value(val) > 0)
			max_inst = (long)json_integer_value(val);
		else if (!strcmp(key, "threads") && json_is_integer(val) &&
		         json_integer_value(val) >= 0 &&
		         json_integer_value(val) <= TRITON_MAX_THREADS)
			threads = (int)json_integer_value(val);
		else if (!strcmp(key, "launch-args") || !strcmp(key, "max-instance-count") ||
		         !strcmp(key, "threads"))
			return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG,
			                       "bad value for option %s", key);
		/* Other keys (shared output flags) are not ours: ignore them. */
	}
	if (req->npaths == 0)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "no targets given");
	struct stat st;
	if (req->npaths == 1 && !req->progress && stat(req->paths[0], &st) == 0 &&
	    S_ISDIR(st.st_mode))
		return analyze_dir(req, rep, launch, max_inst, threads, err);
	mlsec_strlist files = {0};
	mlsec_err rc =
	        mlsec_targets_expand(req->paths, req->npaths, want_config, NULL, &files, err);
	if (rc != MLSEC_OK) {
		mlsec_strlist_free(&files);
		return rc;
	}
	char *launch_path = NULL;
	if (req->artifact_root) {
		for (size_t i = 0; i < files.count && rc == MLSEC_OK; i++) {
			char *resolved = NULL;
			rc = mlsec_path_confine(req->artifact_root, files.items[i], &resolved, err);
			mlsec_free(resolved);
		}
		if (rc == MLSEC_OK && launch)
			rc = mlsec_path_confine(req->artifact_root, launch, &launch_path, err);
		if (rc != MLSEC_OK) {
			mlsec_strlist_free(&files);
			mlsec_free(launch_path);
			return rc;
		}
	}
	mlsec_triton_auditor *a = mlsec_triton_auditor_new();
	if (!a) {
		mlsec_strlist_free(&files);
		mlsec_free(launch_path);
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	}
	if (max_inst)
		mlsec_triton_auditor_set_max_instances(a, max_inst);
	set_base_dir(a, &files);
	int nt = threads ? threads : auto_threads(files.count);
	if (nt > 1 && !req->progress && files.count > TRITON_CHUNK) {
		rc = audit_parallel(a, req, rep, &files, nt, err);
	} else {
		for (size_t i = 0; i < files.count; i++) {
			if (req->cancel && *req->cancel) {
				rc = mlsec_error_set(err, MLSEC_ERR_TIMEOUT,
				                     "cancelled after %zu of %zu files", i,
				                     files.count);
				break;
			}
			rc = mlsec_triton_audit_file(a, rep, files.items[i], err);
			if (rc == MLSEC_ERR_NOMEM)
				break;
			rc = MLSEC_OK; /* unreadable files are already report errors */
			if (req->progress)
				req->progress(req->progress_ctx, "configs", (double)(i + 1),
				              (double)files.count);
		}
	}
	if (rc == MLSEC_OK)
		rc = audit_launch(a, rep, launch, launch_path, err);
	mlsec_triton_auditor_free(a);
	mlsec_strlist_free(&files);
	mlsec_free(launch_path);
	return rc;
}

const mlsec_engine mlsec_engine_triton = {
        .stage = "triton",
        .rule_prefix = MLSEC_TRITON_RULE_PREFIX,
        .summary = "audit Triton config.pbtxt files and tritonserver launch flags",
        .analyze = engine_analyze,
};
