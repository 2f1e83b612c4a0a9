/*
 * bench_checkpoint.c - times the checkpoint engine in-process on one file:
 * best of N runs (warm page cache), GB/s over the file size, findings
 * count and peak RSS. Used by bench/checkpoint/run.sh, which runs the
 * Python peers in the same invocation and prints the ratios.
 *
 *   bench_checkpoint FILE [RUNS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "mlsec/bytesrc.h"
#include "mlsec/checkpoint.h"
#include "mlsec/tensorstats.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU time of this thread: on a loaded shared machine wall time measures
 * the neighbours, this measures the kernel. */
static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int stats_sink(void *ctx, const uint8_t *d, size_t n, uint64_t pos)
{
	(void)pos;
	mlsec_tstats_update(ctx, d, n);
	return 0;
}

/* The statistics kernel alone over the file's bytes taken as float32, read
 * the way the engine reads them (mapped windows), without CRC or parsing. */
static double kernel_seconds(const char *path, uint64_t size, double *cpu_best)
{
	*cpu_best = 1e30;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	mlsec_src src;
	mlsec_src_init_fd(&src, fd, size);
	mlsec_tstats *ts = malloc(sizeof(*ts));
	double best = 1e30;
	for (int r = 0; ts && r < 3; r++) {
		mlsec_tstats_init(ts, MLSEC_TS_F32);
		double t0 = now(), c0 = cpu_now();
		mlsec_src_stream(&src, 0, size & ~(uint64_t)3, stats_sink, ts, NULL, NULL);
		mlsec_tstats_summary m;
		mlsec_tstats_finish(ts, &m);
		double t = now() - t0, c = cpu_now() - c0;
		best = t < best ? t : best;
		*cpu_best = c < *cpu_best ? c : *cpu_best;
	}
	free(ts);
	close(fd);
	return best;
}

/* Bytes of the file read into memory for the in-memory kernel timing. */
#define MEM_KERNEL_MAX (256u << 20)

/* The statistics kernel alone over bytes already in memory (the first
 * MEM_KERNEL_MAX bytes of the file as float32): no mapping, no CRC. */
static double kernel_mem_gbps(const char *path, uint64_t size, double *cpu_gbps)
{
	double cbest = 1e30;
	*cpu_gbps = 0;
	size_t n = size < MEM_KERNEL_MAX ? (size_t)size : MEM_KERNEL_MAX;
	n &= ~(size_t)3;
	int fd = open(path, O_RDONLY);
	uint8_t *b = n ? malloc(n) : NULL;
	mlsec_tstats *ts = malloc(sizeof(*ts));
	double best = 1e30;
	if (fd >= 0 && b && ts) {
		mlsec_src src;
		mlsec_src_init_fd(&src, fd, size);
		if (mlsec_src_read(&src, 0, b, n, NULL) == MLSEC_OK) {
			for (int r = 0; r < 5; r++) {
				mlsec_tstats_init(ts, MLSEC_TS_F32);
				double t0 = now(), c0 = cpu_now();
				mlsec_tstats_update(ts, b, n);
				mlsec_tstats_summary m;
				mlsec_tstats_finish(ts, &m);
				double t = now() - t0, c = cpu_now() - c0;
				best = t < best ? t : best;
				cbest = c < cbest ? c : cbest;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	free(b);
	free(ts);
	if (cbest < 1e30)
		*cpu_gbps = (double)n / cbest / 1e9;
	return best < 1e30 ? (double)n / best / 1e9 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_checkpoint FILE [RUNS]\n");
		return 1;
	}
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	struct stat st;
	if (stat(argv[1], &st) != 0) {
		perror(argv[1]);
		return 1;
	}
	double best = 1e30, best_cpu = 1e30;
	int nohash = getenv("BENCH_NO_HASH") != NULL;
	size_t findings = 0, tensors = 0;
	for (int r = 0; r < runs; r++) {
		mlsec_report *rep = mlsec_report_new("checkpoint");
		mlsec_ckpt_opts o;
		mlsec_ckpt_opts_init(&o);
		o.no_hash = nohash;
		mlsec_error e;
		struct rusage r0, r1;
		getrusage(RUSAGE_SELF, &r0);
		double t0 = now();
		if (mlsec_checkpoint_scan_file(argv[1], &o, rep, &e) != MLSEC_OK) {
			fprintf(stderr, "scan failed: %s\n", e.text);
			return 1;
		}
		double t = now() - t0;
		getrusage(RUSAGE_SELF, &r1);
		double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
		             (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
		             (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
		             (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
		best = t < best ? t : best;
		best_cpu = cpu < best_cpu ? cpu : best_cpu;
		mlsec_artifact *a = mlsec_report_artifact(rep, 0);
		findings = mlsec_artifact_finding_count(a);
		tensors = (size_t)json_integer_value(
		        json_object_get(mlsec_artifact_details(a), "tensor_count"));
		mlsec_report_free(rep);
	}
	/* peak RSS of the triage, before the kernel timings below allocate */
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	if (getenv("BENCH_KERNEL")) {
		double kc, mc;
		double k = kernel_seconds(argv[1], (uint64_t)st.st_size, &kc);
		double mg = kernel_mem_gbps(argv[1], (uint64_t)st.st_size, &mc);
		printf("stats_kernel_seconds=%.4f stats_kernel_gbps=%.3f "
		       "stats_kernel_cpu_gbps=%.3f "
		       "stats_kernel_mem_gbps=%.3f stats_kernel_mem_cpu_gbps=%.3f\n",
		       k, (double)st.st_size / k / 1e9, (double)st.st_size / kc / 1e9, mg, mc);
	}
	printf("mlsec_seconds=%.4f mlsec_cpu_seconds=%.4f mlsec_gbps=%.3f bytes=%lld tensors=%zu "
	       "findings=%zu peak_rss_mib=%.1f sha256=%s\n",
	       best, best_cpu, (double)st.st_size / best / 1e9, (long long)st.st_size, tensors,
	       findings, (double)ru.ru_maxrss / 1024.0, nohash ? "skipped" : "computed");
	return 0;
}
