/* mlf_gemm_i8.h: C[M,N] = A[M,K] @ (Q[K,N] * s[N]) with float32 A and C and constant weights
 * stored as int8 with one float32 scale per output column (`aotc export --quantize
 * int8-weights`, quantized and packed by aot/passes/weight_packing.py): a quarter of the
 * bytes of float32, for products bound by reading the weights.
 *
 * The packed constant is the N scales (float32) followed by Q row-major.
 *  - few rows (M <= 6, batch-1 inference): Q is streamed in place, 64 columns at a time
 *    with their sums in registers; each column's sum over k (in order) of a * q is scaled
 *    once at the end. Threads split the 64-column blocks.
 *  - more rows: Q is widened and scaled into `work` ([K][N] floats) and mlf_sgemm runs
 *    on it, with the rest of `work` as its own (mlf_sgemm_i8w_work_floats floats in all;
 *    aot/passes/layouts.py mirrors it).
 */
#ifndef MLF_GEMM_I8_H
#define MLF_GEMM_I8_H

#include "mlf_gemm.h"

#define MLF_I8_BLOCK 64 /* columns whose sums stay in registers */

static inline long mlf_sgemm_i8w_work_floats(long M, long N, long K) {
  if (M <= MLF_MR) return 0;
  return K * N + (mlf_sgemm_packs(M, N, K, 1) ? mlf_sgemm_work_floats(K, N) : 0);
}

/* Columns [j0, j1) of C for M <= 6 rows. */
static inline void mlf_i8w_columns(long M, long N, long K, long j0, long j1,
                                   const float* MLF_RESTRICT A, long rsa, long csa,
                                   const float* MLF_RESTRICT scales,
                                   const int8_t* MLF_RESTRICT Q, float* MLF_RESTRICT C, long ldc) {
  for (long i = 0; i < M; i++)
    for (long j = j0; j < j1; j += MLF_I8_BLOCK) {
      const long width = j1 - j < MLF_I8_BLOCK ? j1 - j : MLF_I8_BLOCK;
      float acc[MLF_I8_BLOCK] = {0.0f};
      if (width == MLF_I8_BLOCK) {
        for (long p = 0; p < K; p++) {
          const float a = A[i * rsa + p * csa];
          const int8_t* MLF_RESTRICT q = Q + p * N + j;
          for (int c = 0; c < MLF_I8_BLOCK; c++) acc[c] += a * (float)q[c];
        }
      } else {
        for (long p = 0; p < K; p++) {
          const float a = A[i * rsa + p * csa];
          const int8_t* MLF_RESTRICT q = Q + p * N + j;
          for (long c = 0; c < width; c++) acc[c] += a * (float)q[c];
        }
      }
      for (long c = 0; c < width; c++) C[i * ldc + j + c] = acc[c] * scales[j + c];
    }
}

/* C = A @ (Q * scales); `work` may be NULL when M <= 6. */
MLF_ENTRY void mlf_sgemm_i8w(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT scales, const int8_t* MLF_RESTRICT Q,
    float* MLF_RESTRICT C, long ldc, float* MLF_RESTRICT work) {
  if (M == 0 || N == 0) return;
  if (M > MLF_MR) {
    int W = M * N * K >= 64L * 64 * 64 && K >= 2 ? mlf_num_threads() : 1;
    (void)W;
    MLF_OMP(omp parallel for num_threads(W) if (W > 1) schedule(static))
    for (long p = 0; p < K; p++)
      for (long j = 0; j < N; j++) work[p * N + j] = (float)Q[p * N + j] * scales[j];
    mlf_sgemm(M, N, K, A, rsa, csa, work, N, 1, C, ldc,
              mlf_sgemm_packs(M, N, K, 1) ? work + K * N : 0);
    return;
  }
  const long blocks = (N + MLF_I8_BLOCK - 1) / MLF_I8_BLOCK;
  int T = M * N * K >= 64L * 64 * 64 && blocks >= 2 ? mlf_num_threads() : 1;
  if (T == 1) {
    mlf_i8w_columns(M, N, K, 0, N, A, rsa, csa, scales, Q, C, ldc);
    return;
  }
  MLF_OMP(omp parallel num_threads(T))
  {
    long t = mlf_thread_index(), nt = mlf_team_size();
    long lo, hi;
    mlf_share(blocks, MLF_I8_BLOCK, N, t, nt, &lo, &hi);
    if (lo < hi) mlf_i8w_columns(M, N, K, lo, hi, A, rsa, csa, scales, Q, C, ldc);
  }
}

#endif /* MLF_GEMM_I8_H */
