/*
 * simulate.c - synthetic DDP gradient logs for demos, tests and the
 * calibration of the defaults.
 *
 * Every value is a pure function of (seed, rank, step) through a
 * counter-based generator, so records can be produced in any order (tests
 * shuffle them) and a run of any length costs no memory.
 *
 * The model: all workers share the training dynamics (LR warm-up over 200
 * steps, norm decay over ~5,000 steps, batch-to-batch common noise of 15%
 * on the norms); each worker adds its own noise (8% on global_l2, 13% on
 * global_linf, 6% on std, correlated with l2 as in a real batch; the mean
 * gradient is 5% of std with 2% per-worker noise). Poisoning modes act on
 * one rank from poison_start.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mlsec/alloc.h"
#include "mlsec/poison.h"

#define SIM_PARAMS INT64_C(11689512) /* a ResNet-18 */
#define SIM_SPIKE_NORM 5.0
#define SIM_SPIKE_STD 3.0

void mlsec_poison_sim_init(mlsec_poison_sim *s)
{
	memset(s, 0, sizeof *s);
	s->workers = 4;
	s->steps = 100;
	s->seed = 1;
	s->mode = MLSEC_POISON_SIM_NONE;
	s->poison_rank = 0;
	s->poison_start = -1; /* = steps / 2 */
	s->rate = 0.0015;
}

mlsec_err mlsec_poison_sim_mode_parse(const char *name, mlsec_poison_sim_mode *out)
{
	static const char *const names[] = {"none", "slow", "spike", "sign", "silent"};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(name, names[i])) {
			*out = (mlsec_poison_sim_mode)i;
			return MLSEC_OK;
		}
	return MLSEC_ERR_INVALID_ARG;
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Standard normal for (seed, rank, step, stream); rank -1 = shared. */
static double gauss(uint64_t seed, int64_t rank, int64_t step, unsigned stream)
{
	uint64_t h = mix(seed ^ mix((uint64_t)(rank + 1) ^ mix((uint64_t)step * 8 + stream)));
	uint64_t h2 = mix(h);
	double u1 = ((double)(h >> 11) + 0.5) * 0x1.0p-53;
	double u2 = (double)(h2 >> 11) * 0x1.0p-53;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int mlsec_poison_sim_record(const mlsec_poison_sim *s, int64_t rank, int64_t step,
                            mlsec_poison_record *out)
{
	int64_t start = s->poison_start >= 0 ? s->poison_start : s->steps / 2;
	int poisoned = rank == s->poison_rank && step >= start;
	if (poisoned && s->mode == MLSEC_POISON_SIM_SILENT)
		return 0;
	double t = (double)step;
	double warm = t + 1 < 200 ? (t + 1) / 200 : 1;
	double shared = log(5.0 * (0.3 + 0.7 * exp(-t / 5000)) * (0.5 + 0.5 * warm)) +
	                0.15 * gauss(s->seed, -1, step, 0);
	double e1 = gauss(s->seed, rank, step, 1), e2 = gauss(s->seed, rank, step, 2);
	double e3 = gauss(s->seed, rank, step, 3), e4 = gauss(s->seed, rank, step, 4);
	double log_l2 = shared + 0.08 * e1;
	double log_linf =
	        shared + log(0.12) + 0.1 * gauss(s->seed, -1, step, 1) + 0.05 * e1 + 0.12 * e3;
	double log_std = shared - 0.5 * log((double)SIM_PARAMS) + 0.05 * e1 + 0.04 * e2;
	double std_shared = exp(shared - 0.5 * log((double)SIM_PARAMS));
	double mean = std_shared * (0.05 * (1 + 0.3 * gauss(s->seed, -1, step, 2)) + 0.02 * e4);

	if (poisoned) {
		switch (s->mode) {
		case MLSEC_POISON_SIM_SLOW: {
			double f = (double)(step - start) * log1p(s->rate);
			log_l2 += f;
			log_linf += f;
			log_std += f;
			break;
		}
		case MLSEC_POISON_SIM_SPIKE:
			if (step == start) {
				log_l2 += log(SIM_SPIKE_NORM);
				log_linf += log(SIM_SPIKE_NORM);
				log_std += log(SIM_SPIKE_STD);
			}
			break;
		case MLSEC_POISON_SIM_SIGN:
			mean = -mean;
			break;
		default:
			break;
		}
	}
	out->rank = rank;
	out->step = step;
	out->global_l2 = exp(log_l2);
	out->global_linf = exp(log_linf);
	out->std = exp(log_std);
	out->mean = mean;
	out->parameter_count = SIM_PARAMS;
	return 1;
}

mlsec_err mlsec_poison_sim_write(const mlsec_poison_sim *s, const char *dir, mlsec_error *err)
{
	if (s->workers < 1 || s->workers > MLSEC_POISON_MAX_RANK + 1 || s->steps < 0 ||
	    s->steps > MLSEC_POISON_MAX_STEP)
		return mlsec_error_set(err, MLSEC_ERR_INVALID_ARG, "workers/steps out of range");
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", dir, strerror(errno));
	char line[512];
	for (unsigned r = 0; r < s->workers; r++) {
		char *path = mlsec_sprintf("%s/worker_%u.jsonl", dir, r);
		if (!path)
			return mlsec_error_set(err, MLSEC_ERR_NOMEM, "out of memory");
		FILE *f = fopen(path, "w");
		if (!f) {
			mlsec_error_set(err, MLSEC_ERR_IO, "%s: %s", path, strerror(errno));
			mlsec_free(path);
			return MLSEC_ERR_IO;
		}
		static char buf[1 << 16];
		setvbuf(f, buf, _IOFBF, sizeof buf);
		for (int64_t t = 0; t < s->steps; t++) {
			mlsec_poison_record rec;
			if (!mlsec_poison_sim_record(s, r, t, &rec))
				continue;
			int n = mlsec_poison_record_format(&rec, line, sizeof line - 1);
			line[n] = '\n';
			fwrite(line, 1, (size_t)n + 1, f);
		}
		int bad = ferror(f);
		bad |= fclose(f) != 0;
		if (bad) {
			mlsec_error_set(err, MLSEC_ERR_IO, "%s: write failed", path);
			mlsec_free(path);
			return MLSEC_ERR_IO;
		}
		mlsec_free(path);
	}
	return MLSEC_OK;
}
