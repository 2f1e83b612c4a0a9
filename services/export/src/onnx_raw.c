/*
 * onnx_raw.c - the export guard's own decode of an ONNX file: bounded read,
 * a descriptor-driven pre-scan of the protobuf wire format that bounds
 * nesting depth and message count BEFORE protobuf-c recurses (protobuf-c
 * itself has no depth limit), then protobuf-c unpack.
 *
 * Why not the tensor engine's mlsec_onnx_model_load(): it rejects models
 * whose external data escapes the model directory or whose tensors disagree
 * with their dims. Those are exactly what the lint must report (as
 * critical/high findings naming the tensor), so the lint needs the
 * undecorated message. Everything semantic is checked by lint.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "export_internal.h"
#include "export_onnx.h"
#include "mlsec/alloc.h"
#include "mlsec/fsutil.h"

#define RAW_MAX_DEPTH 64          /* protobuf nesting (graphs nest ~4 levels each) */
#define RAW_MAX_MESSAGES 4000000u /* submessages in one file */

typedef struct scan {
	size_t messages;
	const char *why;
	int limit; /* why names a bound we enforce, not broken bytes */
} scan;

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return 0;
		uint8_t b = p[(*pos)++];
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 1;
		}
	}
	return 0;
}

static const ProtobufCFieldDescriptor *field_by_number(const ProtobufCMessageDescriptor *d,
                                                       unsigned num)
{
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].id == num)
			return &d->fields[i];
	return NULL;
}

/* Walks one message's fields, recursing into submessage fields only. */
static int scan_message(scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                        unsigned depth)
{
	if (depth > RAW_MAX_DEPTH) {
		s->why = "protobuf nesting deeper than the limit";
		s->limit = 1;
		return 0;
	}
	if (++s->messages > RAW_MAX_MESSAGES) {
		s->why = "too many protobuf messages";
		s->limit = 1;
		return 0;
	}
	size_t pos = 0;
	while (pos < len) {
		uint64_t key, v;
		if (!varint(p, len, &pos, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) {
			s->why = "bad protobuf field key";
			return 0;
		}
		switch (key & 7) {
		case 0:
			if (!varint(p, len, &pos, &v)) {
				s->why = "truncated varint";
				return 0;
			}
			break;
		case 1:
			if (len - pos < 8) {
				s->why = "truncated fixed64";
				return 0;
			}
			pos += 8;
			break;
		case 5:
			if (len - pos < 4) {
				s->why = "truncated fixed32";
				return 0;
			}
			pos += 4;
			break;
		case 2: {
			if (!varint(p, len, &pos, &v) || v > len - pos) {
				s->why = "length-delimited field runs past its message";
				return 0;
			}
			const ProtobufCFieldDescriptor *f =
			        d ? field_by_number(d, (unsigned)(key >> 3)) : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    !scan_message(s, f->descriptor, p + pos, (size_t)v, depth + 1))
				return 0;
			pos += (size_t)v;
			break;
		}
		default:
			s->why = "unsupported protobuf wire type (groups)";
			return 0;
		}
	}
	return 1;
}

mlsec_err export_onnx_decode(const uint8_t *data, size_t len, Onnx__ModelProto **out,
                             mlsec_error *err)
{
	*out = NULL;
	scan s = {0, NULL, 0};
	/* (Not strstr(why, "limit"): "length-delimited" contains it.) */
	if (!scan_message(&s, &onnx__model_proto__descriptor, data, len, 0))
		return mlsec_error_set(err, s.limit ? MLSEC_ERR_LIMIT : MLSEC_ERR_PARSE, "%s",
		                       s.why ? s.why : "invalid protobuf");
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
	if (!mp)
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "not a valid ONNX ModelProto");
	if (!mp->graph) {
		onnx__model_proto__free_unpacked(mp, NULL);
		return mlsec_error_set(err, MLSEC_ERR_PARSE, "ModelProto has no graph");
	}
	*out = mp;
	return MLSEC_OK;
}

mlsec_err export_onnx_load(const char *path, Onnx__ModelProto **out, mlsec_error *err)
{
	*out = NULL;
	char *buf = NULL;
	size_t len = 0;
	mlsec_err rc = mlsec_file_read_all(path, MLSEC_EXPORT_MAX_ONNX_BYTES, &buf, &len, err);
	if (rc != MLSEC_OK)
		return rc;
	rc = export_onnx_decode((const uint8_t *)buf, len, out, err);
	mlsec_free(buf);
	return rc;
}
