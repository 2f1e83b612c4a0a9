/*
 * blas.c - OpenBLAS, loaded on the first matrix product instead of linked.
 *
 * Linking OpenBLAS into every mlsec program costs all of them, even those
 * that never multiply a matrix (`mlsec triton`, the orchestrator): ~16k
 * relocations at start-up, a pthread pool that spins in sched_yield, and
 * libgfortran/libquadmath, whose printf hooks send every printf in the
 * process down glibc's slow path. So the library is dlopen()ed once, on
 * first use, with OPENBLAS_NUM_THREADS=1 unless the user set it (the tensor
 * engine runs its own worker threads, each calling BLAS single-threaded).
 * Without OpenBLAS (or with MLSEC_BLAS=builtin) a plain, correct C kernel
 * is used.
 *
 * OpenBLAS picks its kernels by CPU model, and a release older than the
 * CPU falls back to generic SSE3 ones (Debian 12's 0.3.21 runs Sapphire and
 * Emerald Rapids as "Prescott", 2-3x slower). Unless the user set
 * OPENBLAS_CORETYPE, it is set from the CPU's features before loading:
 * AVX-512 F/BW/DQ/VL -> SkylakeX, AVX2+FMA -> Haswell; otherwise OpenBLAS
 * decides.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mlsec/tensor.h"
#include "tensor_internal.h"

/* CBLAS constants (cblas.h), so that no BLAS header is needed at build time. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef void (*set_threads_fn)(int n);
typedef char *(*corename_fn)(void);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static sgemm_fn blas_sgemm;
static set_threads_fn blas_set_threads;
static corename_fn blas_corename;

const char *tensor_blas_core_for_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
#endif
	return NULL;
}

static void blas_load(void)
{
	/* MLSEC_BLAS=builtin forces the C kernel (tests check it against PyTorch too). */
	const char *force = getenv("MLSEC_BLAS");
	if (force && strcmp(force, "builtin") == 0)
		return;
	setenv("OPENBLAS_NUM_THREADS", "1", 0);
	const char *core = tensor_blas_core_for_cpu();
	if (core)
		setenv("OPENBLAS_CORETYPE", core, 0);
	static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (!h)
			continue;
		/* dlsym returns void *; the cast through a union keeps -Wpedantic quiet. */
		union {
			void *p;
			sgemm_fn f;
		} g = {dlsym(h, "cblas_sgemm")};
		union {
			void *p;
			set_threads_fn f;
		} t = {dlsym(h, "openblas_set_num_threads")};
		union {
			void *p;
			corename_fn f;
		} c = {dlsym(h, "openblas_get_corename")};
		if (!g.p) {
			dlclose(h);
			continue;
		}
		blas_sgemm = g.f;
		blas_set_threads = t.f;
		blas_corename = c.f;
		return; /* the handle stays open for the life of the process */
	}
}

static void blas_init(void)
{
	pthread_once(&blas_once, blas_load);
}

void mlsec_tensor_set_threads(int threads)
{
	blas_init();
	if (blas_set_threads)
		blas_set_threads(threads < 1 ? 1 : threads);
}

const char *mlsec_tensor_blas_core(void)
{
	blas_init();
	if (!blas_sgemm)
		return "none (built-in kernel)";
	return blas_corename ? blas_corename() : "unknown";
}

/* C = alpha * op(A) * op(B) + beta * C, row-major; the fallback kernel. */
static void sgemm_plain(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc)
{
	for (int64_t i = 0; i < m; i++) {
		float *ci = c + i * ldc;
		for (int64_t j = 0; j < n; j++)
			ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
		for (int64_t p = 0; p < k; p++) {
			float av = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
			if (av == 0.0f)
				continue;
			if (tb)
				for (int64_t j = 0; j < n; j++)
					ci[j] += av * b[j * ldb + p];
			else
				for (int64_t j = 0; j < n; j++)
					ci[j] += av * b[p * ldb + j];
		}
	}
}

void tensor_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	if (m == 0 || n == 0)
		return;
	blas_init();
	if (!blas_sgemm) {
		sgemm_plain(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	blas_sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
	           tb ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
	           (int)ldb, beta, c, (int)ldc);
}
