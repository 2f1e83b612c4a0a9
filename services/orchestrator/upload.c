/*
 * upload.c - Upload: a client stream of chunks stored content-addressed
 * under <root>/uploads/<sha256>/<name>. Bytes go to a temporary file in
 * <root>/uploads/.tmp while being hashed; the file is renamed into place
 * only when complete and (when declared) matching its sha256, so a reader
 * never sees a partial artifact. The same content under the same name is
 * stored once (deduplicated = true).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"
#include "mlsec/jobproto.h"
#include "mlsec/log.h"
#include "mlsec/sha256.h"
#include "orchestrator.h"

/* A safe base name: [A-Za-z0-9._-], no leading dot, bounded; else "artifact". */
static void safe_name(const char *in, char out[ORCH_MAX_UPLOAD_NAME + 1])
{
	const char *base = in ? strrchr(in, '/') : NULL;
	base = base ? base + 1 : (in ? in : "");
	size_t n = 0;
	for (; base[n] && n < ORCH_MAX_UPLOAD_NAME; n++) {
		char ch = base[n];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			break;
		out[n] = ch;
	}
	out[n] = '\0';
	if (n == 0 || base[n] || out[0] == '.')
		snprintf(out, ORCH_MAX_UPLOAD_NAME + 1, "artifact");
}

static int mkdir_p(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

int orch_upload_clean_stale(orch *o, long long older_than_s)
{
	char *tmpdir = mlsec_sprintf("%s/%s/.tmp", o->root_real, ORCH_UPLOAD_DIR);
	if (!tmpdir)
		return 0;
	DIR *d = opendir(tmpdir);
	int n = 0;
	time_t now = time(NULL);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		/* only our own temporary names: nothing else is ours to delete */
		if (strncmp(de->d_name, "up-", 3))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode) || (long long)(now - sb.st_mtime) < older_than_s)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	}
	if (d)
		closedir(d);
	if (n)
		MLSEC_LOGI("upload: removed %d stale temporary file(s) from %s", n, tmpdir);
	mlsec_free(tmpdir);
	return n;
}

grpc_status_code orch_upload(mlsec_rpc_call *c, const uint8_t *unused, size_t unused_len,
                             uint8_t **resp, size_t *resp_len, void *ctx)
{
	orch *o = ctx;
	grpc_status_code st = GRPC_STATUS_OK;
	char name[ORCH_MAX_UPLOAD_NAME + 1] = "";
	char want[MLSEC_SHA256_HEX_LEN] = "";
	char *updir = mlsec_sprintf("%s/%s", o->root_real, ORCH_UPLOAD_DIR);
	char *tmpdir = mlsec_sprintf("%s/%s/.tmp", o->root_real, ORCH_UPLOAD_DIR);
	char *tmp = mlsec_sprintf("%s/%s/.tmp/up-XXXXXX", o->root_real, ORCH_UPLOAD_DIR);
	char *dir = NULL, *final = NULL, *rel = NULL;
	int fd = -1;
	uint64_t total = 0;
	int first = 1;
	mlsec_sha256 *h = mlsec_sha256_new();
	if (!updir || !tmpdir || !tmp || !h) {
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	if (mkdir_p(updir) || mkdir_p(tmpdir) || (fd = mkstemp(tmp)) < 0) {
		MLSEC_LOGE("upload: cannot create a file under %s: %s", updir, strerror(errno));
		mlsec_rpc_call_set_message(c, "artifact storage unavailable");
		st = GRPC_STATUS_UNAVAILABLE;
		goto out;
	}
	for (;;) {
		uint8_t *msg = NULL;
		size_t len = 0;
		int r = mlsec_rpc_call_recv(c, &msg, &len);
		if (r == 0)
			break;
		if (r < 0) {
			mlsec_rpc_call_set_message(c, "upload stream failed");
			st = GRPC_STATUS_CANCELLED;
			goto out;
		}
		Mlsec__V1__UploadChunk *ch = mlsec__v1__upload_chunk__unpack(NULL, len, msg);
		mlsec_free(msg);
		if (!ch) {
			mlsec_rpc_call_set_message(c, "malformed UploadChunk");
			st = GRPC_STATUS_INVALID_ARGUMENT;
			goto out;
		}
		if (first) {
			safe_name(ch->name, name);
			if (ch->sha256 && *ch->sha256) {
				if (!mlsec_sha256_hex_valid(ch->sha256)) {
					mlsec__v1__upload_chunk__free_unpacked(ch, NULL);
					mlsec_rpc_call_set_message(
					        c, "sha256 must be 64 hex characters");
					st = GRPC_STATUS_INVALID_ARGUMENT;
					goto out;
				}
				snprintf(want, sizeof(want), "%s", ch->sha256);
			}
			first = 0;
		}
		total += ch->data.len;
		if (total > o->max_bytes) {
			mlsec__v1__upload_chunk__free_unpacked(ch, NULL);
			mlsec_rpc_call_set_message(c, "artifact larger than %llu bytes",
			                           (unsigned long long)o->max_bytes);
			st = GRPC_STATUS_RESOURCE_EXHAUSTED;
			goto out;
		}
		mlsec_sha256_update(h, ch->data.data, ch->data.len);
		size_t off = 0;
		while (off < ch->data.len) {
			ssize_t w = write(fd, ch->data.data + off, ch->data.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				mlsec__v1__upload_chunk__free_unpacked(ch, NULL);
				MLSEC_LOGE("upload: write %s: %s", tmp, strerror(errno));
				mlsec_rpc_call_set_message(c, "artifact storage failed");
				st = GRPC_STATUS_UNAVAILABLE;
				goto out;
			}
			off += (size_t)w;
		}
		mlsec__v1__upload_chunk__free_unpacked(ch, NULL);
	}
	if (first) {
		mlsec_rpc_call_set_message(c, "empty upload stream (send at least one chunk)");
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	char hex[MLSEC_SHA256_HEX_LEN];
	mlsec_sha256_final(h, NULL, hex);
	h = NULL;
	if (want[0] && strcasecmp(want, hex)) {
		mlsec_rpc_call_set_message(c, "sha256 mismatch: declared %s, received %s", want,
		                           hex);
		st = GRPC_STATUS_INVALID_ARGUMENT;
		goto out;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		mlsec_rpc_call_set_message(c, "artifact storage failed");
		st = GRPC_STATUS_UNAVAILABLE;
		goto out;
	}
	fd = -1;
	dir = mlsec_sprintf("%s/%s", updir, hex);
	final = mlsec_sprintf("%s/%s/%s", updir, hex, name);
	rel = mlsec_sprintf("%s/%s/%s", ORCH_UPLOAD_DIR, hex, name);
	if (!dir || !final || !rel) {
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
		goto out;
	}
	int dedup = 0;
	struct stat sb;
	if (lstat(final, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == total) {
		dedup = 1;
	} else if (mkdir_p(dir) != 0 || chmod(tmp, 0444) != 0 || rename(tmp, final) != 0) {
		MLSEC_LOGE("upload: store %s: %s", final, strerror(errno));
		mlsec_rpc_call_set_message(c, "artifact storage failed");
		st = GRPC_STATUS_UNAVAILABLE;
		goto out;
	}
	/* Never touch a stored file again (not even chmod on a duplicate): a
	 * stage analysing it checks its ctime afterwards (TOCTOU stamp). */
	Mlsec__V1__Artifact a = MLSEC__V1__ARTIFACT__INIT;
	a.uri = rel;
	a.sha256 = hex;
	a.size = total;
	a.media_type = (char *)mlsec_format_name(mlsec_format_sniff(final));
	Mlsec__V1__UploadResponse r = MLSEC__V1__UPLOAD_RESPONSE__INIT;
	r.artifact = &a;
	r.deduplicated = dedup;
	if (mlsec_jobproto_pack(&r.base, resp, resp_len) != MLSEC_OK)
		st = GRPC_STATUS_RESOURCE_EXHAUSTED;
	MLSEC_LOGD("upload %s (%llu bytes%s)", rel, (unsigned long long)total,
	           dedup ? ", deduplicated" : "");
out:
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp); /* no-op after a successful rename */
	if (h)
		mlsec_sha256_final(h, NULL, NULL);
	mlsec_free(updir);
	mlsec_free(tmpdir);
	mlsec_free(tmp);
	mlsec_free(dir);
	mlsec_free(final);
	mlsec_free(rel);
	return st;
}
