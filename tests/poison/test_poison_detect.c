/*
 * test_poison_detect.c - the streaming detector on simulated runs: no
 * false alarms on clean seeds, slow drift / spike / sign flip / silent
 * workers found with the right rank and step, disorder and duplicates
 * handled, state resumable through JSON, allocation failures survived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlsec/alloc.h"
#include "mlsec/poison.h"

#define MAX_EVENTS 256

typedef struct events {
	mlsec_poison_event ev[MAX_EVENTS];
	size_t n;
	size_t dropped;
} events;

static void collect(void *ctx, const mlsec_poison_event *ev)
{
	events *e = ctx;
	if (e->n < MAX_EVENTS)
		e->ev[e->n++] = *ev;
	else
		e->dropped++;
}

static size_t count_alarms(const events *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->n; i++)
		n += mlsec_poison_event_is_alarm(e->ev[i].kind);
	return n;
}

static mlsec_poison_detector *new_det(events *e, unsigned expected)
{
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	c.expected_workers = expected;
	mlsec_error err;
	mlsec_poison_detector *d = mlsec_poison_detector_new(&c, collect, e, &err);
	assert_non_null(d);
	return d;
}

/* Feeds steps [from, to) of the simulation in step order. */
static void feed_range(mlsec_poison_detector *d, const mlsec_poison_sim *s, int64_t from,
                       int64_t to)
{
	for (int64_t t = from; t < to; t++)
		for (unsigned r = 0; r < s->workers; r++) {
			mlsec_poison_record rec;
			if (mlsec_poison_sim_record(s, r, t, &rec))
				assert_int_equal(mlsec_poison_detector_feed(d, &rec, NULL),
				                 MLSEC_OK);
		}
}

static void run_sim(const mlsec_poison_sim *s, events *e)
{
	memset(e, 0, sizeof *e);
	mlsec_poison_detector *d = new_det(e, s->workers);
	feed_range(d, s, 0, s->steps);
	assert_int_equal(mlsec_poison_detector_flush(d, NULL), MLSEC_OK);
	mlsec_poison_detector_free(d);
}

static mlsec_poison_sim sim(mlsec_poison_sim_mode mode, uint64_t seed, int64_t rank)
{
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	s.workers = 8;
	s.steps = 3000;
	s.seed = seed;
	s.mode = mode;
	s.poison_rank = rank;
	s.poison_start = 1000;
	return s;
}

static void test_clean_seeds_no_alarm(void **state)
{
	(void)state;
	static events e;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		mlsec_poison_sim s = sim(MLSEC_POISON_SIM_NONE, seed, 0);
		run_sim(&s, &e);
		if (e.n)
			fail_msg("seed %llu: %zu events, first %s rank %lld step %lld",
			         (unsigned long long)seed, e.n,
			         mlsec_poison_event_rule(e.ev[0].kind), (long long)e.ev[0].rank,
			         (long long)e.ev[0].alarm_step);
	}
}

static void test_slow_drift_found(void **state)
{
	(void)state;
	static events e;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		int64_t rank = (int64_t)(seed % 8);
		mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SLOW, seed, rank);
		run_sim(&s, &e);
		int64_t first = -1;
		for (size_t i = 0; i < e.n; i++) {
			assert_int_equal(e.ev[i].rank, rank); /* nobody else accused */
			if (e.ev[i].kind == MLSEC_POISON_EV_CUSUM && first < 0) {
				first = e.ev[i].alarm_step;
				assert_int_equal(e.ev[i].direction, 1);
				/* the onset estimate lies between the true onset and the alarm */
				assert_true(e.ev[i].onset_step >= 1000);
				assert_true(e.ev[i].onset_step <= e.ev[i].alarm_step);
			}
		}
		assert_true(first >= 1000);
		assert_true(first - 1000 <= 300);
	}
}

static void test_spike_at_its_step(void **state)
{
	(void)state;
	static events e;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SPIKE, 5, 2);
	s.poison_start = 1777;
	run_sim(&s, &e);
	assert_true(e.n >= 1);
	int l2 = 0;
	for (size_t i = 0; i < e.n; i++) {
		assert_int_equal(e.ev[i].kind, MLSEC_POISON_EV_SPIKE);
		assert_int_equal(e.ev[i].rank, 2);
		assert_int_equal(e.ev[i].alarm_step, 1777);
		l2 |= e.ev[i].metric == MLSEC_POISON_M_L2;
	}
	assert_true(l2);
}

static void test_sign_flip_found(void **state)
{
	(void)state;
	static events e;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SIGN, 9, 6);
	run_sim(&s, &e);
	assert_true(count_alarms(&e) >= 1);
	for (size_t i = 0; i < e.n; i++) {
		assert_int_equal(e.ev[i].rank, 6);
		assert_int_equal(e.ev[i].metric, MLSEC_POISON_M_MEAN);
		assert_int_equal(e.ev[i].direction, -1);
	}
	assert_true(e.ev[0].alarm_step >= 1000 && e.ev[0].alarm_step <= 1020);
}

/* The one finding of the given rule and rank in a report artifact. */
static const mlsec_finding *finding_for(mlsec_artifact *a, const char *rule, const char *field)
{
	for (size_t i = 0; i < mlsec_artifact_finding_count(a); i++) {
		const mlsec_finding *f = mlsec_artifact_finding(a, i);
		if (!strcmp(f->rule_id, rule) && f->field && !strcmp(f->field, field))
			return f;
	}
	return NULL;
}

/*
 * One worker whose gradient norm drops to zero while its peers train (the
 * Python emitter also writes NaN norms as 0) is taken out of every
 * comparison on that metric: the NONFINITE event is then the only trace,
 * so it must reach the default gate (high). Zero norms on every worker at
 * once are a property of the run (frozen step, logging quirk): medium.
 */
static void test_zero_norm_on_one_worker(void **state)
{
	(void)state;
	static events e;
	memset(&e, 0, sizeof e);
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_NONE, 5, 0);
	s.steps = 400;
	mlsec_poison_detector *d = new_det(&e, s.workers);
	for (int64_t t = 0; t < s.steps; t++)
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			if (!mlsec_poison_sim_record(&s, r, t, &rec))
				continue;
			if (r == 3 && t >= 200)
				rec.global_l2 = 0; /* rank 3 goes dark on l2 */
			if (t == 300)
				rec.global_linf = 0; /* everyone at once */
			assert_int_equal(mlsec_poison_detector_feed(d, &rec, NULL), MLSEC_OK);
		}
	assert_int_equal(mlsec_poison_detector_flush(d, NULL), MLSEC_OK);
	mlsec_poison_detector_free(d);

	mlsec_report *rep = mlsec_report_new("poison");
	mlsec_artifact *a = mlsec_report_add_artifact(rep, "logs", "gradient-logs");
	size_t l2_events = 0;
	for (size_t i = 0; i < e.n; i++) {
		assert_int_equal(mlsec_poison_report_event(a, &e.ev[i]), MLSEC_OK);
		l2_events += e.ev[i].kind == MLSEC_POISON_EV_NONFINITE &&
		             e.ev[i].metric == MLSEC_POISON_M_L2;
	}
	assert_int_equal(l2_events, 1); /* reported once, not every step */
	const mlsec_finding *f = finding_for(a, "POISON-NONFINITE", "rank=3/global_l2");
	assert_non_null(f);
	assert_int_equal(f->severity, MLSEC_SEV_HIGH);
	f = finding_for(a, "POISON-NONFINITE", "rank=0/global_linf");
	assert_non_null(f);
	assert_int_equal(f->severity, MLSEC_SEV_MEDIUM);
	mlsec_report_free(rep);
}

/*
 * One record far in the future (a buggy emitter's step counter, a stray
 * datagram) must not close every window below it: the live detector would
 * then count every later record as late and check nothing more. A jump
 * past the window needs most known workers to have reached it.
 */
static void test_future_step_does_not_blind(void **state)
{
	(void)state;
	static events e;
	memset(&e, 0, sizeof e);
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SPIKE, 5, 2);
	s.workers = 6;
	s.steps = 900;
	s.poison_start = 700;
	mlsec_poison_detector *d = new_det(&e, 0);
	for (int64_t t = 0; t < s.steps; t++) {
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			if (mlsec_poison_sim_record(&s, r, t, &rec))
				assert_int_equal(mlsec_poison_detector_feed(d, &rec, NULL),
				                 MLSEC_OK);
		}
		if (t == 300) {
			mlsec_poison_record rec;
			assert_true(mlsec_poison_sim_record(&s, 5, t, &rec));
			rec.step = MLSEC_POISON_MAX_STEP;
			mlsec_poison_detector_feed(d, &rec, NULL);
		}
	}
	assert_int_equal(mlsec_poison_detector_flush(d, NULL), MLSEC_OK);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(d, &st);
	mlsec_poison_detector_free(d);
	assert_true(st.late < 10);
	int spike = 0;
	for (size_t i = 0; i < e.n; i++)
		spike |= e.ev[i].kind == MLSEC_POISON_EV_SPIKE && e.ev[i].rank == 2 &&
		         e.ev[i].alarm_step == 700;
	assert_true(spike);

	/* A real jump (the whole run resumed further on) is followed. */
	memset(&e, 0, sizeof e);
	d = new_det(&e, 0);
	for (int64_t t = 0; t < 400; t++)
		for (unsigned r = 0; r < s.workers; r++) {
			mlsec_poison_record rec;
			if (mlsec_poison_sim_record(&s, r, t, &rec)) {
				if (t >= 200)
					rec.step += 1000000;
				mlsec_poison_detector_feed(d, &rec, NULL);
			}
		}
	assert_int_equal(mlsec_poison_detector_flush(d, NULL), MLSEC_OK);
	mlsec_poison_detector_stats(d, &st);
	mlsec_poison_detector_free(d);
	assert_true(st.steps >= 390);
}

static void test_silent_worker(void **state)
{
	(void)state;
	static events e;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SILENT, 3, 4);
	run_sim(&s, &e);
	assert_int_equal(count_alarms(&e), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.ev[0].kind, MLSEC_POISON_EV_SILENT);
	assert_int_equal(e.ev[0].rank, 4);
	assert_int_equal(e.ev[0].onset_step, 999); /* last record */
}

static void test_missing_worker(void **state)
{
	(void)state;
	static events e;
	memset(&e, 0, sizeof e);
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_NONE, 1, 0);
	s.workers = 7;
	s.steps = 300;
	mlsec_poison_detector *d = new_det(&e, 8); /* rank 7 never reports */
	feed_range(d, &s, 0, s.steps);
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(d, &st);
	mlsec_poison_detector_free(d);
	assert_int_equal(st.steps, 300); /* steps still closed, by the window */
	assert_int_equal(e.n, 1);
	assert_int_equal(e.ev[0].kind, MLSEC_POISON_EV_MISSING);
	assert_int_equal(e.ev[0].rank, 7);
}

/* Records shuffled within blocks of 16 steps and each sent twice give the
 * same events as the ordered stream. */
static void test_disorder_and_duplicates(void **state)
{
	(void)state;
	static events ordered, shuffled;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SPIKE, 11, 3);
	s.steps = 1500;
	run_sim(&s, &ordered);
	assert_true(ordered.n >= 1);

	memset(&shuffled, 0, sizeof shuffled);
	mlsec_poison_detector *d = new_det(&shuffled, 0); /* window closes steps */
	enum { BLOCK = 16 };
	mlsec_poison_record recs[BLOCK * 8];
	uint64_t x = 12345;
	for (int64_t b = 0; b < s.steps; b += BLOCK) {
		size_t n = 0;
		for (int64_t t = b; t < b + BLOCK && t < s.steps; t++)
			for (unsigned r = 0; r < 8; r++)
				mlsec_poison_sim_record(&s, r, t, &recs[n++]);
		for (size_t i = n; i > 1; i--) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t j = (size_t)(x >> 33) % i;
			mlsec_poison_record t = recs[i - 1];
			recs[i - 1] = recs[j];
			recs[j] = t;
		}
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(mlsec_poison_detector_feed(d, &recs[i], NULL), MLSEC_OK);
			assert_int_equal(mlsec_poison_detector_feed(d, &recs[i], NULL), MLSEC_OK);
		}
	}
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(d, &st);
	mlsec_poison_detector_free(d);
	/* every original accepted; a copy arriving after its step completed
	 * is indistinguishable from a late record */
	assert_int_equal(st.records, (uint64_t)s.steps * 8);
	assert_int_equal(st.duplicates + st.late, (uint64_t)s.steps * 8);
	assert_true(st.duplicates > 0);
	assert_true(st.out_of_order > 0);
	assert_int_equal(st.steps, (uint64_t)s.steps);
	assert_int_equal(shuffled.n, ordered.n);
	for (size_t i = 0; i < ordered.n; i++) {
		assert_int_equal(shuffled.ev[i].kind, ordered.ev[i].kind);
		assert_int_equal(shuffled.ev[i].rank, ordered.ev[i].rank);
		assert_int_equal(shuffled.ev[i].alarm_step, ordered.ev[i].alarm_step);
	}
}

static void test_late_and_rejected(void **state)
{
	(void)state;
	events e;
	memset(&e, 0, sizeof e);
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	c.window = 4;
	mlsec_poison_detector *d = mlsec_poison_detector_new(&c, collect, &e, NULL);
	mlsec_poison_record r = {0, 100, 1, 0.1, 0, 0.01, 10};
	assert_int_equal(mlsec_poison_detector_feed(d, &r, NULL), MLSEC_OK);
	r.step = 1000000; /* a jump far ahead closes the window in O(window) */
	assert_int_equal(mlsec_poison_detector_feed(d, &r, NULL), MLSEC_OK);
	r.step = 101;
	assert_int_equal(mlsec_poison_detector_feed(d, &r, NULL), MLSEC_OK);
	r.rank = MLSEC_POISON_MAX_RANK + 1;
	mlsec_error err;
	assert_int_equal(mlsec_poison_detector_feed(d, &r, &err), MLSEC_ERR_INVALID_ARG);
	r.rank = 0;
	r.step = -1;
	assert_int_equal(mlsec_poison_detector_feed(d, &r, &err), MLSEC_ERR_INVALID_ARG);
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(d, &st);
	assert_int_equal(st.late, 1);
	assert_int_equal(st.rejected, 2);
	assert_int_equal(st.records, 2);
	assert_int_equal(st.steps_thin, 2); /* steps 100 and 1000000 had one worker */
	mlsec_poison_detector_free(d);
}

static void test_two_workers_is_thin(void **state)
{
	(void)state;
	static events e;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SPIKE, 2, 1);
	s.workers = 2;
	run_sim(&s, &e);
	assert_int_equal(e.n, 0); /* no centre to compare against: no accusation */
}

/* Stop half-way, serialise, restore from the JSON text, continue: the
 * events and stats are those of an uninterrupted run. */
static void test_state_round_trip(void **state)
{
	(void)state;
	static events whole, first, second;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SLOW, 4, 5);
	s.steps = 2000;
	s.poison_start = 900;
	run_sim(&s, &whole);
	assert_true(count_alarms(&whole) >= 1);

	memset(&first, 0, sizeof first);
	memset(&second, 0, sizeof second);
	mlsec_poison_detector *d = new_det(&first, 8);
	feed_range(d, &s, 0, 1003);
	/* leave a partially filled step in the window */
	mlsec_poison_record rec;
	mlsec_poison_sim_record(&s, 0, 1003, &rec);
	mlsec_poison_detector_feed(d, &rec, NULL);
	json_t *j = mlsec_poison_detector_to_json(d);
	assert_non_null(j);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	mlsec_poison_detector_free(d);
	json_error_t je;
	json_t *back = json_loads(text, 0, &je);
	free(text);
	assert_non_null(back);
	mlsec_error err;
	d = mlsec_poison_detector_from_json(back, collect, &second, &err);
	json_decref(back);
	assert_non_null(d);
	for (unsigned r = 1; r < 8; r++) {
		mlsec_poison_sim_record(&s, r, 1003, &rec);
		mlsec_poison_detector_feed(d, &rec, NULL);
	}
	feed_range(d, &s, 1004, s.steps);
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(d, &st);
	mlsec_poison_detector_free(d);
	assert_int_equal(st.records, 2000 * 8);
	assert_int_equal(first.n + second.n, whole.n);
	for (size_t i = 0; i < whole.n; i++) {
		const mlsec_poison_event *a = &whole.ev[i];
		const mlsec_poison_event *b = i < first.n ? &first.ev[i] : &second.ev[i - first.n];
		assert_int_equal(a->kind, b->kind);
		assert_int_equal(a->rank, b->rank);
		assert_int_equal(a->metric, b->metric);
		assert_int_equal(a->onset_step, b->onset_step);
		assert_int_equal(a->alarm_step, b->alarm_step);
		assert_true(a->statistic == b->statistic);
	}
}

static void test_state_rejects_bad_json(void **state)
{
	(void)state;
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	mlsec_poison_detector *d = mlsec_poison_detector_new(&c, NULL, NULL, NULL);
	mlsec_poison_record rec = {3, 7, 1, 0.1, 0, 0.01, 10};
	mlsec_poison_detector_feed(d, &rec, NULL);
	json_t *good = mlsec_poison_detector_to_json(d);
	mlsec_poison_detector_free(d);
	static const char *const edits[][2] = {
	        {"version", "2"},
	        {"next_step", "-5"},
	        {"scale", "[1,2]"},
	        {"workers", "[{\"rank\": 99999}]"},
	        {"pending", "[{\"step\": 999999, \"records\": []}]"},
	        {"config", "{\"window\": 0}"},
	        {"pools", "[[-1],[],[],[]]"},
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		json_t *bad = json_deep_copy(good);
		json_object_set_new(bad, edits[i][0],
		                    json_loads(edits[i][1], JSON_DECODE_ANY, NULL));
		mlsec_error err;
		mlsec_error_clear(&err);
		mlsec_poison_detector *r = mlsec_poison_detector_from_json(bad, NULL, NULL, &err);
		if (r)
			fail_msg("accepted bad %s", edits[i][0]);
		assert_int_not_equal(err.code, MLSEC_OK);
		json_decref(bad);
	}
	d = mlsec_poison_detector_from_json(good, NULL, NULL, NULL);
	assert_non_null(d);
	mlsec_poison_detector_free(d);
	json_decref(good);
}

static void test_config_checked(void **state)
{
	(void)state;
	mlsec_poison_config c;
	mlsec_poison_config_init(&c);
	assert_int_equal(mlsec_poison_config_check(&c, NULL), MLSEC_OK);
	c.window = 0;
	assert_int_equal(mlsec_poison_config_check(&c, NULL), MLSEC_ERR_INVALID_ARG);
	mlsec_poison_config_init(&c);
	c.cusum_h = -1;
	assert_null(mlsec_poison_detector_new(&c, NULL, NULL, NULL));
	mlsec_poison_config_init(&c);
	json_t *o =
	        json_pack("{s:f, s:s, s:i}", "threshold", 5.0, "cusum-drift", "0.5", "window", 16);
	assert_int_equal(mlsec_poison_config_from_options(&c, o, NULL), MLSEC_OK);
	assert_true(c.spike_z == 5.0 && c.cusum_k == 0.5 && c.window == 16);
	json_object_set_new(o, "window", json_real(1.5));
	assert_int_equal(mlsec_poison_config_from_options(&c, o, NULL), MLSEC_ERR_INVALID_ARG);
	json_decref(o);
}

/* Fail each allocation in turn: no crash, no leak (ASan/valgrind). */
static void test_alloc_failures(void **state)
{
	(void)state;
	mlsec_poison_sim s = sim(MLSEC_POISON_SIM_SPIKE, 1, 0);
	s.steps = 80;
	s.poison_start = 70;
	for (long n = 0; n < 200; n++) {
		mlsec_alloc_fail_after(n);
		mlsec_poison_config c;
		mlsec_poison_config_init(&c);
		mlsec_poison_detector *d = mlsec_poison_detector_new(&c, NULL, NULL, NULL);
		if (d) {
			for (int64_t t = 0; t < s.steps; t++)
				for (unsigned r = 0; r < s.workers; r++) {
					mlsec_poison_record rec;
					mlsec_poison_sim_record(&s, r, t, &rec);
					mlsec_poison_detector_feed(d, &rec, NULL);
				}
			json_t *j = mlsec_poison_detector_to_json(d);
			mlsec_poison_detector *d2 =
			        j ? mlsec_poison_detector_from_json(j, NULL, NULL, NULL) : NULL;
			mlsec_poison_detector_free(d2);
			json_decref(j);
			mlsec_poison_detector_flush(d, NULL);
			mlsec_poison_detector_free(d);
		}
		mlsec_alloc_fail_after(-1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_clean_seeds_no_alarm),
	        cmocka_unit_test(test_slow_drift_found),
	        cmocka_unit_test(test_spike_at_its_step),
	        cmocka_unit_test(test_sign_flip_found),
	        cmocka_unit_test(test_silent_worker),
	        cmocka_unit_test(test_future_step_does_not_blind),
	        cmocka_unit_test(test_zero_norm_on_one_worker),
	        cmocka_unit_test(test_missing_worker),
	        cmocka_unit_test(test_disorder_and_duplicates),
	        cmocka_unit_test(test_late_and_rejected),
	        cmocka_unit_test(test_two_workers_is_thin),
	        cmocka_unit_test(test_state_round_trip),
	        cmocka_unit_test(test_state_rejects_bad_json),
	        cmocka_unit_test(test_config_checked),
	        cmocka_unit_test(test_alloc_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
