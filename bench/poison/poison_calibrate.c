/*
 * poison_calibrate.c - the simulation behind the poison monitor's defaults
 * (docs/poison.md quotes its output).
 *
 * 1. In-control: long clean simulated runs, CUSUM false-alarm rate per
 *    chart-step at small thresholds h (where alarms are frequent enough to
 *    count), next to Siegmund's approximation for N(0,1) input. Agreement
 *    there is what licenses extrapolating to the default h, whose run
 *    length is far beyond what can be simulated.
 * 2. Detection: steps from onset to the first CUSUM alarm for slow drifts
 *    of 0.05%..0.2% per step (5..20% per 100 steps) and for candidate
 *    (k, h) pairs with a similar in-control run length.
 *
 * usage: poison_calibrate [steps_in_control (default 400000)] [seeds (default 10)]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/poison.h"

#define WORKERS 8
#define CHARTS_PER_WORKER MLSEC_POISON_M__COUNT

typedef struct counts {
	unsigned long cusum, spike;
	long first_cusum; /* alarm step of the first CUSUM alarm, -1 none */
	int64_t rank;
} counts;

static void on_event(void *ctx, const mlsec_poison_event *ev)
{
	counts *c = ctx;
	if (ev->kind == MLSEC_POISON_EV_CUSUM) {
		c->cusum++;
		if (c->first_cusum < 0) {
			c->first_cusum = (long)ev->alarm_step;
			c->rank = ev->rank;
		}
	} else if (ev->kind == MLSEC_POISON_EV_SPIKE) {
		c->spike++;
	}
}

static void run(const mlsec_poison_sim *s, double h, double k, double spike, counts *c)
{
	mlsec_poison_config cfg;
	mlsec_poison_config_init(&cfg);
	cfg.cusum_h = h;
	cfg.cusum_k = k;
	cfg.spike_z = spike;
	cfg.expected_workers = s->workers;
	memset(c, 0, sizeof *c);
	c->first_cusum = -1;
	mlsec_poison_detector *d = mlsec_poison_detector_new(&cfg, on_event, c, NULL);
	if (!d)
		exit(1);
	for (int64_t t = 0; t < s->steps; t++)
		for (unsigned r = 0; r < s->workers; r++) {
			mlsec_poison_record rec;
			if (mlsec_poison_sim_record(s, r, t, &rec))
				mlsec_poison_detector_feed(d, &rec, NULL);
		}
	mlsec_poison_detector_flush(d, NULL);
	mlsec_poison_detector_free(d);
}

/* Siegmund: one-sided ARL of a CUSUM on N(0,1) with allowance k, threshold h. */
static double siegmund(double k, double h)
{
	double b = h + 1.166, x = 2 * k * b;
	return (exp(x) - x - 1) / (2 * k * k);
}

int main(int argc, char **argv)
{
	int64_t steps = argc > 1 ? atoll(argv[1]) : 400000;
	int seeds = argc > 2 ? atoi(argv[2]) : 10;

	printf("# 1. in-control: %d workers x %lld steps, k = 1, spike rule off\n", WORKERS,
	       (long long)steps);
	printf("%6s %14s %16s %16s\n", "h", "alarms", "ARL/chart (sim)", "ARL/chart (N01)");
	static const double hs[] = {3, 4, 5, 6};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
		mlsec_poison_sim s;
		mlsec_poison_sim_init(&s);
		s.workers = WORKERS;
		s.steps = steps;
		s.seed = 1000 + i;
		counts c;
		run(&s, hs[i], 1.0, 1e6, &c);
		double chart_steps = (double)WORKERS * CHARTS_PER_WORKER * (double)steps;
		double two_sided = siegmund(1.0, hs[i]) / 2;
		printf("%6.1f %14lu %16.0f %16.0f\n", hs[i], c.cusum,
		       c.cusum ? chart_steps / (double)c.cusum : INFINITY, two_sided);
	}
	printf("# default h = %.0f, k = %.0f: N(0,1) two-sided ARL per chart %.3g steps;\n"
	       "# with %d charts (8 workers x 4 metrics) one false alarm per %.3g steps\n",
	       MLSEC_POISON_DEFAULT_CUSUM_H, MLSEC_POISON_DEFAULT_CUSUM_K,
	       siegmund(MLSEC_POISON_DEFAULT_CUSUM_K, MLSEC_POISON_DEFAULT_CUSUM_H) / 2,
	       WORKERS * CHARTS_PER_WORKER,
	       siegmund(MLSEC_POISON_DEFAULT_CUSUM_K, MLSEC_POISON_DEFAULT_CUSUM_H) / 2 /
	               (WORKERS * CHARTS_PER_WORKER));
	{
		mlsec_poison_sim s;
		mlsec_poison_sim_init(&s);
		s.workers = WORKERS;
		s.steps = steps;
		s.seed = 2000;
		counts c;
		run(&s, MLSEC_POISON_DEFAULT_CUSUM_H, MLSEC_POISON_DEFAULT_CUSUM_K,
		    MLSEC_POISON_DEFAULT_SPIKE_Z, &c);
		printf("# defaults on %lld clean steps: %lu CUSUM, %lu spike alarms\n",
		       (long long)steps, c.cusum, c.spike);
	}

	printf("\n# 2. detection delay (steps from onset to first CUSUM alarm), slow drift on\n"
	       "#    one of 8 workers from step 1000, mean [max] over %d seeds; wrong-rank\n"
	       "#    first alarms counted in 'bad'\n",
	       seeds);
	static const struct {
		double k, h;
	} pairs[] = {{0.5, 17}, {1.0, 10}, {1.5, 7.5}, {2.0, 6}};
	static const double rates[] = {0.0005, 0.001, 0.0015, 0.002};
	printf("%5s %5s %12s", "k", "h", "ARL(N01)");
	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
		printf("   %6.2f%%/step", rates[r] * 100);
	printf("   bad\n");
	for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
		printf("%5.1f %5.1f %12.3g", pairs[p].k, pairs[p].h,
		       siegmund(pairs[p].k, pairs[p].h) / 2);
		int bad = 0;
		for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
			double sum = 0;
			long worst = 0;
			for (int sd = 0; sd < seeds; sd++) {
				mlsec_poison_sim s;
				mlsec_poison_sim_init(&s);
				s.workers = WORKERS;
				s.steps = 3000;
				s.seed = 3000 + (uint64_t)sd;
				s.mode = MLSEC_POISON_SIM_SLOW;
				s.poison_rank = sd % WORKERS;
				s.poison_start = 1000;
				s.rate = rates[r];
				counts c;
				run(&s, pairs[p].h, pairs[p].k, 1e6, &c);
				long delay = c.first_cusum < 0 ? 2000 : c.first_cusum - 1000;
				if (c.first_cusum < 1000 || c.rank != s.poison_rank)
					bad++;
				sum += (double)delay;
				if (delay > worst)
					worst = delay;
			}
			printf("   %5.0f [%4ld]", sum / seeds, worst);
		}
		printf("   %3d\n", bad);
	}
	return 0;
}
