/*
 * cpus.h - how many threads a parallel pass over files should use.
 */
#ifndef MLSEC_CPUS_H
#define MLSEC_CPUS_H

/*
 * The CPUs this process may run on (its affinity mask), at most max; 1
 * when other work keeps every one of them busy right now. MLSEC_THREADS,
 * when set, is taken instead (tests and benchmarks). "Busy" is the
 * kernel's count of runnable tasks at this instant (/proc/loadavg), less
 * the caller: unlike the 1-minute load average it does not count this
 * process's own threads of a moment ago, which made back-to-back runs
 * fall back to one thread.
 */
int mlsec_cpus_for_work(int max);

#endif
