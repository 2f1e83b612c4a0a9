/*
 * convert.c - --convert-safetensors: writes <stem>.safetensors next to the
 * input, bit-exactly from the extracted tensors (row-major, as torch.load
 * would materialise them), through a temporary file renamed into place.
 * Refused (with an info finding saying why) when the checkpoint has a
 * finding at or above the gate, when it could not be fully read, or when
 * the target exists without --overwrite.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "mlsec/alloc.h"
#include "mlsec/safetensors.h"

static void refuse(ckpt_scan *s, const char *why)
{
	mlsec_finding *f = mlsec_artifact_add_finding(s->a, "CKPT-CONVERT-REFUSED", MLSEC_SEV_INFO,
	                                              "safetensors conversion refused", "%s", why);
	(void)f;
	json_object_set_new(s->det, "conversion",
	                    json_pack("{s:s, s:s}", "status", "refused", "reason", why));
}

static const ckpt_scan *sort_scan;
static int by_name(const void *a, const void *b)
{
	return strcmp(sort_scan->tl.t[*(const size_t *)a].name,
	              sort_scan->tl.t[*(const size_t *)b].name);
}

static int write_sink(void *c, const uint8_t *d, size_t n, uint64_t pos)
{
	(void)pos;
	return fwrite(d, 1, n, c) == n ? 0 : 1;
}

mlsec_err ckpt_convert(ckpt_scan *s, mlsec_error *err)
{
	char why[512];
	for (size_t i = 0; i < mlsec_artifact_finding_count(s->a); i++) {
		const mlsec_finding *f = mlsec_artifact_finding(s->a, i);
		if (f->severity >= s->o->gate) {
			snprintf(why, sizeof why,
			         "the checkpoint has a %s finding (%s); fix or accept "
			         "it before converting",
			         mlsec_severity_name(f->severity), f->rule_id);
			refuse(s, why);
			return MLSEC_OK;
		}
	}
	if (!s->tl.n) {
		refuse(s, "no tensors were found");
		return MLSEC_OK;
	}
	for (size_t i = 0; i < s->tl.n; i++) {
		const mlsec_tensor_ref *t = &s->tl.t[i];
		if (!t->located || !mlsec_dtype_st_name(t->dtype)) {
			snprintf(why, sizeof why,
			         "tensor '%s' has no readable data or no safetensors dtype",
			         t->name);
			refuse(s, why);
			return MLSEC_OK;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->tl.t[j].name, t->name)) {
				snprintf(why, sizeof why, "tensor name '%s' appears twice",
				         t->name);
				refuse(s, why);
				return MLSEC_OK;
			}
	}
	char *out = ckpt_stem_path(NULL, s->path, ".safetensors");
	if (!out)
		return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
	if (!strcmp(out, s->path)) {
		refuse(s, "the input already is the .safetensors target");
		mlsec_free(out);
		return MLSEC_OK;
	}
	if (!s->o->overwrite && access(out, F_OK) == 0) {
		snprintf(why, sizeof why, "%s exists (use --overwrite)", out);
		refuse(s, why);
		mlsec_free(out);
		return MLSEC_OK;
	}
	size_t n = s->tl.n;
	size_t *order = mlsec_calloc(n, sizeof(size_t));
	mlsec_tensor_list view = {mlsec_calloc(n, sizeof(mlsec_tensor_ref)), n, n, NULL, 0};
	char *tmp = mlsec_sprintf("%s.tmp.XXXXXX", out);
	mlsec_err rc = MLSEC_OK;
	if (!order || !view.t || !tmp) {
		rc = mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	sort_scan = s;
	qsort(order, n, sizeof(size_t), by_name);
	for (size_t i = 0; i < n; i++)
		view.t[i] = s->tl.t[order[i]]; /* shallow: names stay owned by s->tl */
	json_t *meta = json_pack("{s:s, s:s}", "format", "pt", "converted_by",
	                         MLSEC_TOOL_NAME " " MLSEC_VERSION);
	uint8_t *hdr;
	size_t hl;
	rc = mlsec_safetensors_header(&view, meta, &hdr, &hl, err);
	json_decref(meta);
	if (rc != MLSEC_OK)
		goto done;
	int fd = mkstemp(tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		mlsec_free(hdr);
		rc = mlsec_error_set(err, MLSEC_ERR_IO, "cannot create %s: %s", tmp,
		                     strerror(errno));
		goto done;
	}
	int bad = fwrite(hdr, 1, hl, f) != hl;
	mlsec_free(hdr);
	for (size_t i = 0; i < n && !bad; i++)
		if (ckpt_tensor_stream(s, order[i], write_sink, f, err) != MLSEC_OK || ferror(f))
			bad = 1;
	bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (!bad && chmod(tmp, 0644) == 0 && rename(tmp, out) == 0) {
		json_object_set_new(s->det, "conversion",
		                    json_pack("{s:s, s:s, s:I}", "status", "written", "path", out,
		                              "tensors", (json_int_t)n));
	} else {
		unlink(tmp);
		rc = mlsec_error_set(err, MLSEC_ERR_IO, "writing %s failed", out);
	}
done:
	mlsec_free(tmp);
	mlsec_free(order);
	mlsec_free(view.t);
	mlsec_free(out);
	return rc;
}
