/*
 * cmd_poison.c - `mlsec poison-monitor monitor|listen|simulate`: the shell
 * around the poison engine (services/poison/engine). Parses flags into a
 * detector config, feeds records from a log directory or UDP datagrams,
 * prints alarms, draws the optional gnuplot chart and maps the outcome to
 * exit codes (0 clean, 1 could not run, 2 alarm).
 */
#define _GNU_SOURCE /* recvmmsg */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mlsec/alloc.h"
#include "mlsec/poison.h"

#define CMD "poison-monitor"
#define PLOT_BUCKETS 1024 /* points per worker in a chart, whatever the run length */
#define PLOT_MAX_RANKS 64 /* workers drawn (the rest are still monitored) */
#define PLOT_MAX_MARKS 2000
#define LISTEN_BATCH 64          /* datagrams per recvmmsg */
#define LISTEN_POLL_MS 100       /* signal / timeout check interval */
#define LISTEN_RCVBUF (32 << 20) /* absorbs ~30k datagrams of burst */

/* ---- flag helpers ---- */

static int parse_double(const char *flag, const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (!*v || *end || errno || !isfinite(d))
		return mlsec_cli_fail(CMD, "%s needs a number (got '%s')", flag, v), -1;
	*out = d;
	return 0;
}

static int parse_long(const char *flag, const char *v, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < lo || n > hi)
		return mlsec_cli_fail(CMD, "%s needs an integer in [%lld, %lld] (got '%s')", flag,
		                      lo, hi, v),
		       -1;
	*out = n;
	return 0;
}

/* Detector flags shared by monitor and listen. 1 consumed, 0 not ours, -1 bad. */
static int detector_flag(mlsec_poison_config *c, int argc, char **argv, int *i)
{
	static const struct {
		const char *name;
		int kind; /* 0 double, 1 unsigned */
		long long hi;
	} flags[] = {
	        {"--threshold", 0, 0},
	        {"--cusum-threshold", 0, 0},
	        {"--cusum-drift", 0, 0},
	        {"--expected-workers", 1, MLSEC_POISON_MAX_RANK + 1},
	        {"--window", 1, MLSEC_POISON_MAX_WINDOW},
	        {"--warmup", 1, 1000000},
	        {"--silent-steps", 1, 1000000000},
	};
	for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
		int missing;
		const char *v = mlsec_cli_flag_value(flags[k].name, argc, argv, i, &missing);
		if (missing)
			return mlsec_cli_fail(CMD, "%s needs a value", flags[k].name), -1;
		if (!v)
			continue;
		double d = 0;
		long long n = 0;
		if (flags[k].kind == 0 ? parse_double(flags[k].name, v, &d)
		                       : parse_long(flags[k].name, v, 0, flags[k].hi, &n))
			return -1;
		switch (k) {
		case 0:
			c->spike_z = d;
			break;
		case 1:
			c->cusum_h = d;
			break;
		case 2:
			c->cusum_k = d;
			break;
		case 3:
			c->expected_workers = (unsigned)n;
			break;
		case 4:
			c->window = (unsigned)n;
			break;
		case 5:
			c->warmup = (unsigned)n;
			break;
		case 6:
			c->silent_steps = (unsigned)n;
			break;
		}
		return 1;
	}
	return 0;
}

static const char detector_help[] =
        "detection:\n"
        "  --threshold Z          spike rule: robust |z| above Z (default 7)\n"
        "  --cusum-threshold H    CUSUM alarm level, in robust scale units (default 10)\n"
        "  --cusum-drift K        CUSUM allowance per step, scale units (default 1)\n"
        "  --expected-workers N   workers per step (monitor: number of log files)\n"
        "  --window N             steps a step waits for late workers (default 64)\n"
        "  --warmup N             steps used to learn the scale before deciding (default 50)\n"
        "  --silent-steps N       a worker absent N steps is reported silent (default 100)\n";

/* ---- plot: per-worker series decimated into a fixed number of buckets ---- */

typedef struct plot_data {
	int64_t base, stride; /* bucket b covers [base + b*stride, base + (b+1)*stride) */
	int started;
	size_t nranks;
	float z[PLOT_BUCKETS][PLOT_MAX_RANKS];     /* max |z| over metrics */
	float cusum[PLOT_BUCKETS][PLOT_MAX_RANKS]; /* max CUSUM */
	unsigned char has[PLOT_BUCKETS][PLOT_MAX_RANKS];
	struct {
		int64_t step, rank;
		double stat;
		int cusum;
	} marks[PLOT_MAX_MARKS];
	size_t nmarks;
} plot_data;

static void plot_halve(plot_data *p)
{
	for (size_t b = 0; b < PLOT_BUCKETS / 2; b++)
		for (size_t r = 0; r < PLOT_MAX_RANKS; r++) {
			size_t a = 2 * b, c = 2 * b + 1;
			p->z[b][r] =
			        fmaxf(p->has[a][r] ? p->z[a][r] : 0, p->has[c][r] ? p->z[c][r] : 0);
			p->cusum[b][r] = fmaxf(p->has[a][r] ? p->cusum[a][r] : 0,
			                       p->has[c][r] ? p->cusum[c][r] : 0);
			p->has[b][r] = p->has[a][r] | p->has[c][r];
		}
	memset(p->has[PLOT_BUCKETS / 2], 0, sizeof p->has[0] * (PLOT_BUCKETS / 2));
	p->stride *= 2;
}

static void plot_step(void *ctx, int64_t step, size_t nranks, const unsigned char *present,
                      const double *z, const double *cusum)
{
	plot_data *p = ctx;
	if (!p->started) {
		p->started = 1;
		p->base = step;
		p->stride = 1;
	}
	if (step < p->base)
		return;
	while ((step - p->base) / p->stride >= PLOT_BUCKETS)
		plot_halve(p);
	size_t b = (size_t)((step - p->base) / p->stride);
	if (nranks > PLOT_MAX_RANKS)
		nranks = PLOT_MAX_RANKS;
	if (nranks > p->nranks)
		p->nranks = nranks;
	for (size_t r = 0; r < nranks; r++) {
		if (!present[r])
			continue;
		double zm = 0;
		for (int m = 0; m < MLSEC_POISON_M__COUNT; m++) {
			double v = fabs(z[r * MLSEC_POISON_M__COUNT + m]);
			if (v > zm) /* NaN (warm-up) compares false */
				zm = v;
		}
		if (!p->has[b][r] || zm > p->z[b][r])
			p->z[b][r] = (float)zm;
		if (!p->has[b][r] || cusum[r] > p->cusum[b][r])
			p->cusum[b][r] = (float)cusum[r];
		p->has[b][r] = 1;
	}
}

static void plot_mark(plot_data *p, const mlsec_poison_event *ev)
{
	if (!mlsec_poison_event_is_alarm(ev->kind) || p->nmarks >= PLOT_MAX_MARKS)
		return;
	p->marks[p->nmarks].step = ev->alarm_step;
	p->marks[p->nmarks].rank = ev->rank;
	p->marks[p->nmarks].stat = fabs(ev->statistic);
	p->marks[p->nmarks].cusum = ev->kind == MLSEC_POISON_EV_CUSUM;
	p->nmarks++;
}

/* Draws the chart with gnuplot, the data piped into its stdin. */
static int plot_write(const plot_data *p, const char *png, const mlsec_poison_config *cfg)
{
	int fds[2];
	if (pipe(fds) != 0)
		return mlsec_cli_fail(CMD, "--plot: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		return mlsec_cli_fail(CMD, "--plot: fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		close(fds[1]);
		execlp("gnuplot", "gnuplot", (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	FILE *g = fdopen(fds[1], "w");
	if (!g) {
		close(fds[1]);
		waitpid(pid, NULL, 0);
		return mlsec_cli_fail(CMD, "--plot: fdopen failed");
	}
	size_t nmarks[2] = {0, 0};
	/* The file name goes into a gnuplot string: the caller refused quotes
	 * and newlines rather than escape them. */
	fprintf(g, "set terminal pngcairo size 1400,900 noenhanced\n");
	fprintf(g, "set output '%s'\n", png);
	fprintf(g, "set multiplot layout 2,1 title 'mlsec poison-monitor'\n"
	           "set key outside right top\nset grid\nset xlabel 'step'\n");
	for (int panel = 0; panel < 2; panel++) {
		for (size_t r = 0; r < p->nranks; r++) {
			fprintf(g, "$w%d_%zu << EOD\n", panel, r);
			for (size_t b = 0; b < PLOT_BUCKETS; b++)
				if (p->has[b][r])
					fprintf(g, "%lld %.4g\n",
					        (long long)(p->base + (int64_t)b * p->stride),
					        panel ? p->cusum[b][r] : p->z[b][r]);
			fprintf(g, "EOD\n");
		}
		fprintf(g, "$m%d << EOD\n", panel);
		for (size_t k = 0; k < p->nmarks; k++)
			if (p->marks[k].cusum == panel) {
				fprintf(g, "%lld %.4g %lld\n", (long long)p->marks[k].step,
				        panel ? cfg->cusum_h : p->marks[k].stat,
				        (long long)p->marks[k].rank);
				nmarks[panel]++;
			}
		fprintf(g, "EOD\n");
	}
	for (int panel = 0; panel < 2; panel++) {
		fprintf(g, "set ylabel '%s'\n",
		        panel ? "CUSUM (max over metrics and sides)"
		              : "robust |z| (max over metrics)");
		/* Sums keep growing after an alarm: cap the axis so the in-control
		 * band stays readable. */
		fprintf(g, "set yrange [0:*<%g]\n", panel ? 3 * cfg->cusum_h : 5 * cfg->spike_z);
		fprintf(g, "plot ");
		for (size_t r = 0; r < p->nranks; r++)
			fprintf(g, "$w%d_%zu using 1:2 with lines title 'rank %zu', ", panel, r, r);
		fprintf(g, "%g with lines dt 2 lc rgb 'red' title '%s'",
		        panel ? cfg->cusum_h : cfg->spike_z,
		        panel ? "cusum threshold" : "spike threshold");
		/* gnuplot 5.4 crashes on "with labels" over an empty block */
		if (nmarks[panel])
			fprintf(g,
			        ", $m%d using 1:2 with points pt 7 ps 1.5 lc rgb 'red' title "
			        "'alarm', "
			        "$m%d using 1:2:(sprintf('r%%d', $3)) with labels offset 0,1 "
			        "notitle",
			        panel, panel);
		fprintf(g, "\n");
	}
	fprintf(g, "unset multiplot\n");
	int werr = ferror(g);
	werr |= fclose(g) != 0;
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || werr)
		return mlsec_cli_fail(CMD, "--plot: gnuplot failed (is gnuplot installed?)");
	return 0;
}

/* ---- monitor ---- */

typedef struct monitor_ctx {
	mlsec_artifact *a;
	plot_data *plot;
	int failed;
} monitor_ctx;

static void monitor_event(void *p, const mlsec_poison_event *ev)
{
	monitor_ctx *c = p;
	if (mlsec_poison_report_event(c->a, ev))
		c->failed = 1;
	if (c->plot)
		plot_mark(c->plot, ev);
}

static int usage_monitor(FILE *out)
{
	fprintf(out,
	        "usage: mlsec poison-monitor monitor --log-dir DIR [options]\n\n"
	        "Reads DIR/worker_<rank>.jsonl gradient logs (merged by step) and reports\n"
	        "workers whose gradient statistics drift from or spike against their peers.\n\n"
	        "  --log-dir DIR          directory of worker_*.jsonl (or one .jsonl file)\n"
	        "  --plot FILE.png        chart of per-worker statistics and alarms (gnuplot)\n"
	        "%s%s",
	        detector_help, mlsec_cli_output_help);
	return out == stdout ? MLSEC_EXIT_CLEAN : MLSEC_EXIT_ERROR;
}

static int cmd_monitor(int argc, char **argv)
{
	mlsec_cli_output o;
	mlsec_cli_output_init(&o);
	mlsec_poison_config cfg;
	mlsec_poison_config_init(&cfg);
	const char *dir = NULL, *png = NULL;
	for (int i = 1; i < argc; i++) {
		int missing, r;
		const char *v;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage_monitor(stdout);
		if ((r = mlsec_cli_output_flag(&o, CMD, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
		if ((r = detector_flag(&cfg, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--log-dir", argc, argv, &i, &missing)) || missing) {
			if (!v)
				return mlsec_cli_fail(CMD, "--log-dir needs a directory");
			dir = v;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--plot", argc, argv, &i, &missing)) || missing) {
			if (!v || !*v || strpbrk(v, "'\"\n\\"))
				return mlsec_cli_fail(CMD,
				                      "--plot needs a file name without quotes");
			png = v;
			continue;
		}
		return mlsec_cli_fail(CMD, "monitor: unknown argument '%s' (see --help)", argv[i]);
	}
	if (!dir)
		return mlsec_cli_fail(CMD, "monitor: --log-dir is required");
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_poison_config_check(&cfg, &err))
		return mlsec_cli_fail(CMD, "%s", err.text);

	mlsec_report *rep = mlsec_report_new("poison");
	mlsec_artifact *a = rep ? mlsec_report_add_artifact(rep, dir, "gradient-logs") : NULL;
	plot_data *plot = png ? mlsec_calloc(1, sizeof *plot) : NULL;
	if (!a || (png && !plot)) {
		mlsec_free(plot);
		mlsec_report_free(rep);
		return mlsec_cli_fail(CMD, "out of memory");
	}
	monitor_ctx ctx = {a, plot, 0};
	mlsec_poison_stats st;
	memset(&st, 0, sizeof st);
	mlsec_err rc = mlsec_poison_monitor_dir(dir, &cfg, monitor_event, &ctx,
	                                        plot ? plot_step : NULL, plot, NULL, &st, &err);
	int code;
	if (rc) {
		char buf[1200];
		code = mlsec_cli_fail(CMD, "%s", mlsec_error_format(&err, buf, sizeof buf));
	} else if (ctx.failed || mlsec_poison_report_stats(a, &cfg, &st)) {
		code = mlsec_cli_fail(CMD, "out of memory");
	} else {
		code = mlsec_cli_emit(rep, &o, CMD);
		if (plot && plot_write(plot, png, &cfg))
			code = code == MLSEC_EXIT_FINDING ? code : MLSEC_EXIT_ERROR;
	}
	mlsec_free(plot);
	mlsec_report_free(rep);
	return code;
}

/* ---- simulate ---- */

static int cmd_simulate(int argc, char **argv)
{
	mlsec_poison_sim s;
	mlsec_poison_sim_init(&s);
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		int missing;
		const char *v;
		long long n;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: mlsec poison-monitor simulate --log-dir DIR [--workers 4] "
			       "[--steps 100]\n"
			       "       [--poison-mode none|slow|spike|sign|silent] [--poison-rank "
			       "R]\n"
			       "       [--poison-start S (default steps/2)] [--poison-rate 0.0015] "
			       "[--seed N]\n\n"
			       "Writes realistic synthetic DDP gradient logs: shared training "
			       "dynamics\n"
			       "(warm-up, decay, batch noise) plus per-worker noise; one rank "
			       "poisoned.\n");
			return MLSEC_EXIT_CLEAN;
		}
#define LONGFLAG(name, lo, hi, dst)                                                                \
	if ((v = mlsec_cli_flag_value(name, argc, argv, &i, &missing)) || missing) {               \
		if (!v)                                                                            \
			return mlsec_cli_fail(CMD, "%s needs a value", name);                      \
		if (parse_long(name, v, lo, hi, &n))                                               \
			return MLSEC_EXIT_ERROR;                                                   \
		dst = n;                                                                           \
		continue;                                                                          \
	}
		LONGFLAG("--workers", 1, MLSEC_POISON_MAX_RANK + 1, s.workers)
		LONGFLAG("--steps", 0, 100000000, s.steps)
		LONGFLAG("--poison-rank", 0, MLSEC_POISON_MAX_RANK, s.poison_rank)
		LONGFLAG("--poison-start", 0, MLSEC_POISON_MAX_STEP, s.poison_start)
		LONGFLAG("--seed", 0, INT64_MAX, s.seed)
#undef LONGFLAG
		if ((v = mlsec_cli_flag_value("--poison-rate", argc, argv, &i, &missing)) ||
		    missing) {
			if (!v || parse_double("--poison-rate", v, &s.rate))
				return mlsec_cli_fail(CMD, "--poison-rate needs a number");
			continue;
		}
		if ((v = mlsec_cli_flag_value("--poison-mode", argc, argv, &i, &missing)) ||
		    missing) {
			if (!v || mlsec_poison_sim_mode_parse(v, &s.mode))
				return mlsec_cli_fail(CMD, "--poison-mode needs none, slow, spike, "
				                           "sign or silent");
			continue;
		}
		if ((v = mlsec_cli_flag_value("--log-dir", argc, argv, &i, &missing)) || missing) {
			if (!v)
				return mlsec_cli_fail(CMD, "--log-dir needs a directory");
			dir = v;
			continue;
		}
		return mlsec_cli_fail(CMD, "simulate: unknown argument '%s' (see --help)", argv[i]);
	}
	if (!dir)
		return mlsec_cli_fail(CMD, "simulate: --log-dir is required");
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_poison_sim_write(&s, dir, &err))
		return mlsec_cli_fail(CMD, "%s", err.text);
	fprintf(stderr, "mlsec %s: wrote %u workers x %lld steps to %s\n", CMD, s.workers,
	        (long long)s.steps, dir);
	return MLSEC_EXIT_CLEAN;
}

/* ---- listen ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

typedef struct listen_ctx {
	mlsec_artifact *a;
	int json;
	int failed;
} listen_ctx;

static void listen_event(void *p, const mlsec_poison_event *ev)
{
	listen_ctx *c = p;
	if (mlsec_poison_report_event(c->a, ev))
		c->failed = 1;
	if (c->json) {
		json_t *j = mlsec_poison_event_to_json(ev);
		if (j) {
			json_dumpf(j, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(j);
		}
	} else {
		printf("%s rank %lld %s%s onset %lld alarm %lld statistic %.2f %s\n",
		       mlsec_poison_event_rule(ev->kind), (long long)ev->rank,
		       ev->kind == MLSEC_POISON_EV_SILENT || ev->kind == MLSEC_POISON_EV_MISSING
		               ? ""
		               : mlsec_poison_metric_name(ev->metric),
		       ev->kind == MLSEC_POISON_EV_SILENT || ev->kind == MLSEC_POISON_EV_MISSING
		               ? "-"
		               : "",
		       (long long)ev->onset_step, (long long)ev->alarm_step, ev->statistic,
		       ev->direction > 0   ? "up"
		       : ev->direction < 0 ? "down"
		                           : "");
	}
	fflush(stdout);
}

static int open_udp(const char *host, const char *port, char *bound, size_t bsize)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai)
		return mlsec_cli_fail(CMD, "listen: %s:%s: %s", host, port, gai_strerror(gai)), -1;
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		int sz = LISTEN_RCVBUF;
		/* Bigger kernel buffer = no loss during bursts; RCVBUFFORCE needs
		 * CAP_NET_ADMIN, plain RCVBUF is capped by net.core.rmem_max. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof ss;
			char h[NI_MAXHOST], s[NI_MAXSERV];
			if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
			    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, s, sizeof s,
			                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
				snprintf(bound, bsize, "%s:%s", h, s);
			break;
		}
		close(fd);
		fd = -1;
	}
	int e = errno;
	freeaddrinfo(res);
	if (fd < 0)
		return mlsec_cli_fail(CMD, "listen: cannot bind %s:%s: %s", host, port,
		                      strerror(e)),
		       -1;
	return fd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage_listen(FILE *out)
{
	fprintf(out,
	        "usage: mlsec poison-monitor listen --port P [--host 127.0.0.1] [options]\n\n"
	        "Receives one gradient record per UDP datagram and prints alarms as they\n"
	        "happen (JSON lines with --json). Stops on SIGINT/SIGTERM or after\n"
	        "--inactivity-timeout seconds without data, prints a summary and exits 2 if\n"
	        "any alarm was raised. Malformed and oversized datagrams are counted.\n\n"
	        "  --host H               address to bind (default 127.0.0.1)\n"
	        "  --port P               UDP port (0 = any; the bound address is printed on "
	        "stderr)\n"
	        "  --inactivity-timeout S stop after S seconds without datagrams (default: never)\n"
	        "%s%s",
	        detector_help, mlsec_cli_output_help);
	return out == stdout ? MLSEC_EXIT_CLEAN : MLSEC_EXIT_ERROR;
}

static int cmd_listen(int argc, char **argv)
{
	mlsec_cli_output o;
	mlsec_cli_output_init(&o);
	mlsec_poison_config cfg;
	mlsec_poison_config_init(&cfg);
	const char *host = "127.0.0.1", *port = NULL;
	double idle = 0;
	for (int i = 1; i < argc; i++) {
		int missing, r;
		const char *v;
		long long n;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage_listen(stdout);
		if ((r = mlsec_cli_output_flag(&o, CMD, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
		if ((r = detector_flag(&cfg, argc, argv, &i)) != 0) {
			if (r < 0)
				return MLSEC_EXIT_ERROR;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--host", argc, argv, &i, &missing)) || missing) {
			if (!v || !*v)
				return mlsec_cli_fail(CMD, "--host needs an address");
			host = v;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--port", argc, argv, &i, &missing)) || missing) {
			if (!v || parse_long("--port", v, 0, 65535, &n))
				return mlsec_cli_fail(CMD, "--port needs a port number");
			port = v;
			continue;
		}
		if ((v = mlsec_cli_flag_value("--inactivity-timeout", argc, argv, &i, &missing)) ||
		    missing) {
			if (!v || parse_double("--inactivity-timeout", v, &idle) || idle < 0)
				return mlsec_cli_fail(CMD,
				                      "--inactivity-timeout needs seconds >= 0");
			continue;
		}
		return mlsec_cli_fail(CMD, "listen: unknown argument '%s' (see --help)", argv[i]);
	}
	if (!port)
		return mlsec_cli_fail(CMD, "listen: --port is required");
	mlsec_error err;
	mlsec_error_clear(&err);
	if (mlsec_poison_config_check(&cfg, &err))
		return mlsec_cli_fail(CMD, "%s", err.text);

	char bound[NI_MAXHOST + NI_MAXSERV + 2] = "?";
	int fd = open_udp(host, port, bound, sizeof bound);
	if (fd < 0)
		return MLSEC_EXIT_ERROR;

	int stream_json = o.json && !o.json_path;
	mlsec_report *rep = mlsec_report_new("poison");
	char *label = mlsec_sprintf("udp://%s", bound);
	mlsec_artifact *a =
	        rep && label ? mlsec_report_add_artifact(rep, label, "gradient-stream") : NULL;
	mlsec_free(label);
	listen_ctx ctx = {a, stream_json, 0};
	mlsec_poison_detector *det =
	        a ? mlsec_poison_detector_new(&cfg, listen_event, &ctx, &err) : NULL;
	static char bufs[LISTEN_BATCH][MLSEC_POISON_MAX_RECORD + 1];
	struct mmsghdr msgs[LISTEN_BATCH];
	struct iovec iov[LISTEN_BATCH];
	if (!det) {
		close(fd);
		mlsec_report_free(rep);
		return mlsec_cli_fail(CMD, "out of memory");
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "mlsec %s: listening on udp %s\n", CMD, bound);

	uint64_t datagrams = 0, malformed = 0, oversized = 0, rejected = 0;
	double last = now_s();
	int timed_out = 0;
	while (!stop_signal) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, LISTEN_POLL_MS);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0) {
			if (idle > 0 && now_s() - last >= idle) {
				timed_out = 1;
				break;
			}
			continue;
		}
		for (;;) {
			for (int k = 0; k < LISTEN_BATCH; k++) {
				iov[k].iov_base = bufs[k];
				iov[k].iov_len = sizeof bufs[k];
				memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
				msgs[k].msg_hdr.msg_iov = &iov[k];
				msgs[k].msg_hdr.msg_iovlen = 1;
			}
			int got = recvmmsg(fd, msgs, LISTEN_BATCH, MSG_DONTWAIT, NULL);
			if (got <= 0)
				break;
			last = now_s();
			for (int k = 0; k < got; k++) {
				datagrams++;
				size_t len = msgs[k].msg_len;
				/* a full buffer or MSG_TRUNC means the datagram was longer */
				if ((msgs[k].msg_hdr.msg_flags & MSG_TRUNC) ||
				    len > MLSEC_POISON_MAX_RECORD) {
					oversized++;
					continue;
				}
				mlsec_poison_record rec;
				if (mlsec_poison_record_parse(bufs[k], len, &rec, NULL)) {
					malformed++;
					continue;
				}
				if (mlsec_poison_detector_feed(det, &rec, NULL))
					rejected++;
			}
			if (got < LISTEN_BATCH)
				break;
		}
	}
	close(fd);
	mlsec_poison_detector_flush(det, NULL);
	mlsec_poison_stats st;
	mlsec_poison_detector_stats(det, &st);
	mlsec_poison_detector_free(det);
	json_t *details = mlsec_artifact_details(a);
	json_object_set_new(details, "datagrams", json_integer((json_int_t)datagrams));
	json_object_set_new(details, "malformed", json_integer((json_int_t)malformed));
	json_object_set_new(details, "oversized", json_integer((json_int_t)oversized));
	if (mlsec_poison_report_stats(a, &cfg, &st))
		ctx.failed = 1;
	const char *why = stop_signal == SIGINT    ? "SIGINT"
	                  : stop_signal == SIGTERM ? "SIGTERM"
	                  : timed_out              ? "inactivity timeout"
	                                           : "socket error";
	if (stream_json) {
		json_t *sum = json_pack(
		        "{s:{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "summary",
		        "stopped_by", why, "datagrams", (json_int_t)datagrams, "malformed",
		        (json_int_t)malformed, "oversized", (json_int_t)oversized, "rejected",
		        (json_int_t)rejected, "records", (json_int_t)st.records, "steps",
		        (json_int_t)st.steps, "late", (json_int_t)st.late, "duplicates",
		        (json_int_t)st.duplicates, "alarms", (json_int_t)st.alarms, "events",
		        (json_int_t)st.events);
		if (sum) {
			json_dumpf(sum, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(sum);
		}
	} else {
		printf("summary: stopped by %s; %llu datagrams (%llu malformed, %llu oversized, "
		       "%llu rejected), %llu records, %llu steps evaluated, %llu late, "
		       "%llu duplicates, %llu alarms, %llu events\n",
		       why, (unsigned long long)datagrams, (unsigned long long)malformed,
		       (unsigned long long)oversized, (unsigned long long)rejected,
		       (unsigned long long)st.records, (unsigned long long)st.steps,
		       (unsigned long long)st.late, (unsigned long long)st.duplicates,
		       (unsigned long long)st.alarms, (unsigned long long)st.events);
	}
	fflush(stdout);
	/* Alarms were printed live; the report goes only to the files asked for. */
	mlsec_cli_output fo = o;
	fo.quiet = 1;
	if (stream_json)
		fo.json = 0;
	int code = mlsec_cli_emit(rep, &fo, CMD);
	if (ctx.failed && code != MLSEC_EXIT_FINDING)
		code = mlsec_cli_fail(CMD, "out of memory while recording events");
	mlsec_report_free(rep);
	return code;
}

int mlsec_cmd_poison(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		FILE *out = argc < 2 ? stderr : stdout;
		fprintf(out, "usage: mlsec poison-monitor monitor|listen|simulate [options]\n\n"
		             "  monitor   analyse worker_*.jsonl gradient logs\n"
		             "  listen    watch live gradient records over UDP\n"
		             "  simulate  write synthetic logs (demos, tests)\n\n"
		             "'mlsec poison-monitor <mode> --help' for options.\n");
		return argc < 2 ? MLSEC_EXIT_ERROR : MLSEC_EXIT_CLEAN;
	}
	if (!strcmp(argv[1], "monitor"))
		return cmd_monitor(argc - 1, argv + 1);
	if (!strcmp(argv[1], "listen"))
		return cmd_listen(argc - 1, argv + 1);
	if (!strcmp(argv[1], "simulate"))
		return cmd_simulate(argc - 1, argv + 1);
	return mlsec_cli_fail(CMD, "unknown mode '%s' (monitor, listen or simulate)", argv[1]);
}
