/*
 * test_pbtxt.c - the protobuf text-format parser against Triton's schema:
 * every grammar corner it accepts, every error path with its position,
 * limits, arena reuse and allocation failure.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/pbtxt.h"
#include "model_config.pb-c.h"

typedef Inference__ModelConfig Cfg;

static mlsec_pbtxt *P;
static mlsec_error E;

static Cfg *parse(const char *text)
{
	ProtobufCMessage *m = NULL;
	mlsec_error_clear(&E);
	mlsec_err rc = mlsec_pbtxt_parse(P, &inference__model_config__descriptor, text,
	                                 strlen(text), &m, &E);
	if (rc != MLSEC_OK)
		return NULL;
	return (Cfg *)m;
}

/* Expects a parse failure at line:col whose text contains `needle`. */
static void fails(const char *text, long line, long col, const char *needle)
{
	Cfg *c = parse(text);
	if (c || E.line != line || E.column != col || !strstr(E.text, needle))
		print_error("input: %s\ngot: %s line %ld col %ld: %s\n", text, c ? "OK" : "error",
		            E.line, E.column, E.text);
	assert_null(c);
	assert_int_equal(E.code, MLSEC_ERR_PARSE);
	assert_int_equal(E.line, line);
	assert_int_equal(E.column, col);
	assert_non_null(strstr(E.text, needle));
}

static int setup(void **state)
{
	(void)state;
	P = mlsec_pbtxt_new(NULL);
	return P ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	mlsec_pbtxt_free(P);
	return 0;
}

static void test_basic_and_comments(void **state)
{
	(void)state;
	Cfg *c = parse("# leading comment\nname: \"m\" # trailing\n"
	               "max_batch_size: 8\n  platform: 'onnxruntime_onnx'# no space\n# at EOF");
	assert_non_null(c);
	assert_string_equal(c->name, "m");
	assert_string_equal(c->platform, "onnxruntime_onnx");
	assert_int_equal(c->max_batch_size, 8);
	/* empty input is an empty message */
	c = parse("");
	assert_non_null(c);
	assert_string_equal(c->name, "");
	c = parse("   # only a comment");
	assert_non_null(c);
}

static void test_message_delimiters(void **state)
{
	(void)state;
	Cfg *c = parse("version_policy: { latest: { num_versions: 2 } }");
	assert_non_null(c);
	assert_int_equal(c->version_policy->policy_choice_case,
	                 INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST);
	assert_int_equal(c->version_policy->latest->num_versions, 2);
	c = parse("version_policy < latest < num_versions: 3 > >");
	assert_non_null(c);
	assert_int_equal(c->version_policy->latest->num_versions, 3);
	c = parse("version_policy { all {} }");
	assert_non_null(c);
	assert_non_null(c->version_policy->all);
	fails("version_policy { latest { num_versions: 1 > }", 1, 43, "mismatched '>'");
	fails("version_policy { latest { }", 1, 28, "missing '}'");
	fails("version_policy 5", 1, 16, "expected '{' or '<'");
	fails("name: \"x\" }", 1, 11, "unexpected '}'");
}

static void test_separators(void **state)
{
	(void)state;
	Cfg *c = parse("name: \"a\", max_batch_size: 2; input { name: \"x\"; dims: 1, dims: 2 },");
	assert_non_null(c);
	assert_int_equal(c->max_batch_size, 2);
	assert_int_equal(c->input[0]->n_dims, 2);
	fails("name: \"a\",, max_batch_size: 1", 1, 11, "expected a field name");
}

static void test_lists(void **state)
{
	(void)state;
	Cfg *c = parse("input [ { name: \"a\" dims: [1, -1, 3] }, { name: \"b\" dims: [] } ]\n"
	               "input { name: \"c\" dims: 4 dims: [5] }\n"
	               "output: [ { name: \"o\" } ]\ninstance_group []");
	assert_non_null(c);
	assert_int_equal(c->n_input, 3);
	assert_string_equal(c->input[1]->name, "b");
	assert_int_equal(c->input[0]->n_dims, 3);
	assert_int_equal(c->input[0]->dims[1], -1);
	assert_int_equal(c->input[1]->n_dims, 0);
	assert_int_equal(c->input[2]->n_dims, 2);
	assert_int_equal(c->input[2]->dims[1], 5);
	assert_int_equal(c->n_output, 1);
	assert_int_equal(c->n_instance_group, 0);
	fails("name: [\"a\"]", 1, 7, "non-repeated");
	fails("version_policy [ { } ]", 1, 16, "non-repeated");
	fails("input { dims: [1 2] }", 1, 18, "expected ',' or ']'");
	fails("input { dims: [1, ] }", 1, 19, "expected an integer");
	/* many elements: arrays grow past several doublings */
	char big[8192] = "input { dims: [0";
	for (int i = 1; i < 1000; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), ",%d", i);
	strcat(big, "] }");
	c = parse(big);
	assert_non_null(c);
	assert_int_equal(c->input[0]->n_dims, 1000);
	assert_int_equal(c->input[0]->dims[999], 999);
}

static void test_strings(void **state)
{
	(void)state;
	Cfg *c = parse("name: \"a\" 'b'\n  \"c\"");
	assert_non_null(c);
	assert_string_equal(c->name, "abc");
	c = parse("name: \"\\n\\t\\\\\\'\\\"\\?\\a\\b\\f\\v\\r\"");
	assert_non_null(c);
	assert_string_equal(c->name, "\n\t\\'\"?\a\b\f\v\r");
	c = parse("name: \"\\101\\x42\\x4 \\7\"");
	assert_non_null(c);
	assert_string_equal(c->name, "AB\x04 \a");
	c = parse("name: \"\\u00e9\\U0001F600\\ud83d\\ude00\"");
	assert_non_null(c);
	assert_string_equal(c->name, "\xc3\xa9\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
	c = parse("name: 'it''s'");
	assert_non_null(c);
	assert_string_equal(c->name, "its");
	fails("name: \"a\\qb\"", 1, 9, "invalid escape");
	fails("name: \"abc", 1, 7, "unterminated");
	fails("name: \"ab\nc\"", 1, 7, "unterminated");
	fails("name: \"\\x\"", 1, 8, "hex digit");
	fails("name: \"\\u12\"", 1, 8, "4 hex digits");
	fails("name: \"\\ud800x\"", 1, 8, "surrogate");
	fails("name: \"\\U00110000\"", 1, 8, "code point");
	fails("name: \"\\400\"", 1, 8, "octal escape");
	fails("name: \"a\\0b\"", 1, 7, "NUL");
	fails("name: 5", 1, 7, "expected a string");
}

static void test_integers(void **state)
{
	(void)state;
	Cfg *c = parse("max_batch_size: 0x10 input { dims: 010 dims: -0x7fffffffffffffff "
	               "dims: -9223372036854775808 }");
	assert_non_null(c);
	assert_int_equal(c->max_batch_size, 16);
	assert_int_equal(c->input[0]->dims[0], 8);
	assert_true(c->input[0]->dims[1] == -INT64_MAX);
	assert_true(c->input[0]->dims[2] == INT64_MIN);
	c = parse("max_batch_size: -2147483648");
	assert_non_null(c);
	assert_int_equal(c->max_batch_size, INT32_MIN);
	c = parse("dynamic_batching { default_queue_policy { default_timeout_microseconds: "
	          "18446744073709551615 max_queue_size: 4294967295 } }");
	assert_non_null(c);
	assert_true(c->dynamic_batching->default_queue_policy->default_timeout_microseconds ==
	            UINT64_MAX);
	assert_true(c->dynamic_batching->default_queue_policy->max_queue_size == UINT32_MAX);
	c = parse("max_batch_size: - 3");
	assert_non_null(c);
	assert_int_equal(c->max_batch_size, -3);
	fails("max_batch_size: 2147483648", 1, 17, "out of range");
	fails("max_batch_size: -2147483649", 1, 18, "out of range");
	fails("dynamic_batching { default_queue_policy { max_queue_size: 4294967296 } }", 1, 59,
	      "out of range");
	fails("dynamic_batching { default_queue_policy { max_queue_size: -1 } }", 1, 59,
	      "negative value for unsigned");
	fails("dynamic_batching { priority_levels: 18446744073709551616 }", 1, 37, "out of range");
	fails("max_batch_size: 1.5", 1, 17, "expected an integer");
	fails("max_batch_size: 09", 1, 17, "octal");
	fails("max_batch_size: 0x", 1, 17, "hex digits");
	fails("max_batch_size: 12abc", 1, 19, "need space");
	fails("max_batch_size: \"1\"", 1, 17, "expected an integer");
	fails("max_batch_size: true", 1, 17, "expected an integer");
}

static void test_floats(void **state)
{
	(void)state;
	Cfg *c = parse("sequence_batching { direct { minimum_slot_utilization: 2.5f } }");
	assert_non_null(c);
	assert_true(c->sequence_batching->direct->minimum_slot_utilization == 2.5f);
	c = parse("model_metrics { metric_control { histogram_options { buckets: [1, .5, 1e-3, "
	          "2.5E2, inf, -Infinity, nan, -0x10, 7F, 99999999999999999999999] } } }");
	assert_non_null(c);
	double *b = c->model_metrics->metric_control[0]->histogram_options->buckets;
	assert_int_equal(c->model_metrics->metric_control[0]->histogram_options->n_buckets, 10);
	assert_true(b[0] == 1.0 && b[1] == 0.5 && b[2] == 1e-3 && b[3] == 250.0);
	assert_true(isinf(b[4]) && b[4] > 0);
	assert_true(isinf(b[5]) && b[5] < 0);
	assert_true(isnan(b[6]));
	assert_true(b[7] == -16.0 && b[8] == 7.0 && b[9] > 9e22);
	fails("model_metrics { metric_control { histogram_options { buckets: foo } } }", 1, 63,
	      "expected a number");
	fails("model_metrics { metric_control { histogram_options { buckets: 1e } } }", 1, 63,
	      "exponent");
	fails("model_metrics { metric_control { histogram_options { buckets: 1.2.3 } } }", 1, 66,
	      "need space");
}

static void test_enums_and_bools(void **state)
{
	(void)state;
	Cfg *c = parse("input { data_type: TYPE_STRING format: 2 allow_ragged_batch: true "
	               "optional: t is_shape_tensor: True }\n"
	               "input { data_type: 11 allow_ragged_batch: false optional: f "
	               "is_shape_tensor: False is_non_linear_format_io: 1 }\n"
	               "input { allow_ragged_batch: 0 }");
	assert_non_null(c);
	assert_int_equal(c->input[0]->data_type, INFERENCE__DATA_TYPE__TYPE_STRING);
	assert_int_equal(c->input[0]->format, INFERENCE__MODEL_INPUT__FORMAT__FORMAT_NCHW);
	assert_true(c->input[0]->allow_ragged_batch && c->input[0]->optional &&
	            c->input[0]->is_shape_tensor);
	assert_int_equal(c->input[1]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
	assert_true(!c->input[1]->allow_ragged_batch && !c->input[1]->optional &&
	            !c->input[1]->is_shape_tensor && c->input[1]->is_non_linear_format_io);
	fails("input { data_type: TYPE_NOPE }", 1, 20, "unknown value");
	fails("input { data_type: 99 }", 1, 20, "is not a value of enum");
	fails("input { data_type: \"TYPE_FP32\" }", 1, 20, "expected an enum");
	fails("input { optional: 2 }", 1, 19, "expected true or false");
	fails("input { optional: yes }", 1, 19, "expected true or false");
	fails("input { optional: -1 }", 1, 19, "negative value");
}

static void test_maps(void **state)
{
	(void)state;
	Cfg *c =
	        parse("parameters { key: \"a\" value { string_value: \"1\" } }\n"
	              "parameters: [ { key: \"b\", value: { string_value: \"2\" } },"
	              " { key: \"c\" } ]\n"
	              "cc_model_filenames [ { key: \"sm_80\" value: \"a.plan\" } ]\n"
	              "dynamic_batching { priority_queue_policy { key: 2 value { max_queue_size: 9 "
	              "} } }");
	assert_non_null(c);
	assert_int_equal(c->n_parameters, 3);
	assert_string_equal(c->parameters[1]->key, "b");
	assert_string_equal(c->parameters[1]->value->string_value, "2");
	assert_null(c->parameters[2]->value);
	assert_string_equal(c->cc_model_filenames[0]->value, "a.plan");
	assert_true(c->dynamic_batching->priority_queue_policy[0]->key == 2);
	assert_int_equal(c->dynamic_batching->priority_queue_policy[0]->value->max_queue_size, 9);
	fails("parameters { key: \"a\" value: \"x\" }", 1, 30, "expected '{' or '<'");
}

static void test_oneof_and_merging(void **state)
{
	(void)state;
	fails("dynamic_batching { }\nsequence_batching { }", 2, 1,
	      "another member of the same oneof");
	fails("version_policy { latest {} all {} }", 1, 28, "\"all\" is set along with \"latest\"");
	fails("model_warmup { inputs { key: \"x\" value { zero_data: true random_data: true } } }",
	      1, 58, "oneof");
	/* the same member twice merges; singular scalars: last wins */
	Cfg *c = parse("dynamic_batching { max_queue_delay_microseconds: 5 }\n"
	               "dynamic_batching { preserve_ordering: true }\nname: \"a\" name: \"b\"");
	assert_non_null(c);
	assert_true(c->dynamic_batching->max_queue_delay_microseconds == 5);
	assert_true(c->dynamic_batching->preserve_ordering);
	assert_string_equal(c->name, "b");
}

static void test_field_errors(void **state)
{
	(void)state;
	fails("nme: \"x\"", 1, 1, "unknown field 'nme' in inference.ModelConfig");
	fails("input {\n  name: \"x\"\n  dimz: [1]\n}", 3, 3,
	      "unknown field 'dimz' in inference.ModelInput");
	fails("name \"x\"", 1, 6, "expected ':' after scalar field");
	fails("[inference.ext]: 1", 1, 1, "extension");
	fails("5: 1", 1, 1, "expected a field name");
	fails("name: \"x\" @", 1, 11, "unexpected character '@'");
	fails("name: \"x\"\n\x01", 2, 1, "unexpected byte 0x01");
	char longname[300];
	memset(longname, 'a', 200);
	strcpy(longname + 200, ": 1");
	fails(longname, 1, 1, "unknown field");
}

static void test_locate(void **state)
{
	(void)state;
	Cfg *c = parse("name: \"m\"\ninput [\n  { name: \"a\" dims: [ 1,\n  -1 ] }\n]\n");
	assert_non_null(c);
	long l = 0, col = 0;
	assert_true(mlsec_pbtxt_locate(P, c, "name", 0, &l, &col));
	assert_int_equal(l, 1);
	assert_int_equal(col, 7);
	assert_true(mlsec_pbtxt_locate(P, c->input[0], "dims", 1, &l, &col));
	assert_int_equal(l, 4);
	assert_int_equal(col, 3);
	assert_true(mlsec_pbtxt_locate(P, c, "input", 0, &l, &col));
	assert_int_equal(l, 3);
	assert_false(mlsec_pbtxt_locate(P, c, "platform", 0, &l, &col));
	assert_false(mlsec_pbtxt_locate(P, c, "no_such_field", 0, &l, &col));
}

static void test_limits(void **state)
{
	(void)state;
	mlsec_pbtxt_limits lim = {.max_depth = 2, .max_values = 5, .max_input = 64};
	mlsec_pbtxt *p = mlsec_pbtxt_new(&lim);
	assert_non_null(p);
	ProtobufCMessage *m;
	mlsec_error e;
	const char *deep = "optimization { cuda { graph_spec { } } }";
	assert_int_equal(mlsec_pbtxt_parse(p, &inference__model_config__descriptor, deep,
	                                   strlen(deep), &m, &e),
	                 MLSEC_ERR_LIMIT);
	assert_int_equal(e.column, 34);
	const char *many = "input { dims: [1,2,3,4,5,6] }";
	assert_int_equal(mlsec_pbtxt_parse(p, &inference__model_config__descriptor, many,
	                                   strlen(many), &m, &e),
	                 MLSEC_ERR_LIMIT);
	char big[100];
	memset(big, ' ', sizeof big);
	assert_int_equal(
	        mlsec_pbtxt_parse(p, &inference__model_config__descriptor, big, sizeof big, &m, &e),
	        MLSEC_ERR_LIMIT);
	assert_null(m);
	mlsec_pbtxt_free(p);
	/* a memory cap stops amplification ({} is 2 bytes, a ModelInput far more) */
	mlsec_pbtxt_limits lm = {.max_memory = 4096};
	p = mlsec_pbtxt_new(&lm);
	char amp[4000] = "input [ {}";
	for (int i = 0; i < 300; i++)
		strcat(amp, ",{}");
	strcat(amp, "]");
	assert_int_equal(mlsec_pbtxt_parse(p, &inference__model_config__descriptor, amp,
	                                   strlen(amp), &m, &e),
	                 MLSEC_ERR_LIMIT);
	assert_non_null(strstr(e.text, "memory"));
	mlsec_pbtxt_free(p);
}

static void test_not_nul_terminated_and_reuse(void **state)
{
	(void)state;
	const char buf[] = {'n', 'a', 'm', 'e', ':', ' ', '1', '2'}; /* "name: 12" unterminated */
	ProtobufCMessage *m;
	assert_int_equal(mlsec_pbtxt_parse(P, &inference__model_config__descriptor, buf, 6, &m, &E),
	                 MLSEC_ERR_PARSE); /* "name: " then EOF */
	assert_non_null(strstr(E.text, "end of input"));
	Cfg *c = parse("name: \"first\"");
	assert_non_null(c);
	size_t used = mlsec_pbtxt_memory_used(P);
	assert_true(used > 0);
	for (int i = 0; i < 100; i++)
		assert_non_null(parse("name: \"again\" input { dims: [1,2] }"));
	assert_true(mlsec_pbtxt_memory_used(P) < 4096); /* reset each time */
}

/* The name cache keys on length, first, middle and last bytes: names that
 * share them must still be told apart (fields and enum values), and names
 * over 16 bytes, or at the very end of the input, compare in full. */
static void test_name_cache_collisions(void **state)
{
	(void)state;
	Cfg *c = parse("instance_group [ { count: 2 kind: KIND_GPU } ]");
	assert_non_null(c);
	assert_int_equal(c->instance_group[0]->count, 2);
	fails("instance_group [ { caust: 2 } ]", 1, 20, "unknown field");
	fails("instance_group [ { kind: KIXD_GPU } ]", 1, 26, "unknown value");
	assert_non_null(parse("instance_group [ { kind: KIND_CPU } ]"));
	assert_non_null(parse("output [ { label_filename: \"x\" } ]"));
	fails("output [ { label_fileName: \"x\" } ]", 1, 12, "unknown field"); /* byte 10 */
	c = parse("dynamic_batching { max_queue_delay_microseconds: 7 }");
	assert_non_null(c);
	assert_int_equal(c->dynamic_batching->max_queue_delay_microseconds, 7);
	fails("dynamic_batching { max_queue_Delay_microseconds: 7 }", 1, 20, "unknown field");
	/* A field name as the last bytes of the input (no 16 bytes to load). */
	const char tail[] = {'n', 'a', 'm', 'e'};
	ProtobufCMessage *m;
	assert_int_equal(mlsec_pbtxt_parse(P, &inference__model_config__descriptor, tail,
	                                   sizeof tail, &m, &E),
	                 MLSEC_ERR_PARSE);
	assert_non_null(strstr(E.text, "end of input"));
}

static void test_alloc_failure(void **state)
{
	(void)state;
	const char *text = "name: \"m\" input [ { name: \"a\" dims: [1,2,3] } ] "
	                   "parameters { key: \"k\" value { string_value: \"v\" } }";
	/* Fail the Nth allocation for every N until the parse succeeds. */
	for (long n = 0; n < 50; n++) {
		mlsec_pbtxt *p = mlsec_pbtxt_new(NULL);
		mlsec_alloc_fail_after(n);
		ProtobufCMessage *m = NULL;
		mlsec_error e;
		mlsec_err rc = p ? mlsec_pbtxt_parse(p, &inference__model_config__descriptor, text,
		                                     strlen(text), &m, &e)
		                 : MLSEC_ERR_NOMEM;
		mlsec_alloc_fail_after(-1);
		assert_true(rc == MLSEC_OK || rc == MLSEC_ERR_NOMEM);
		if (rc == MLSEC_OK)
			assert_string_equal(((Cfg *)m)->input[0]->name, "a");
		mlsec_pbtxt_free(p);
		if (rc == MLSEC_OK && n > 3)
			break;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_basic_and_comments),
	        cmocka_unit_test(test_message_delimiters),
	        cmocka_unit_test(test_separators),
	        cmocka_unit_test(test_lists),
	        cmocka_unit_test(test_strings),
	        cmocka_unit_test(test_integers),
	        cmocka_unit_test(test_floats),
	        cmocka_unit_test(test_enums_and_bools),
	        cmocka_unit_test(test_maps),
	        cmocka_unit_test(test_oneof_and_merging),
	        cmocka_unit_test(test_field_errors),
	        cmocka_unit_test(test_locate),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_not_nul_terminated_and_reuse),
	        cmocka_unit_test(test_name_cache_collisions),
	        cmocka_unit_test(test_alloc_failure),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
