/* mlf_gemm.h: float32 GEMM, C[M,N] (=|+=) A[M,K] @ B[K,N], for the C backend.
 *
 * A is read through strides (rsa, csa), so A or A^T work unpacked. B is read
 * in place when its rows are contiguous and it fits in about half of L2
 * ("unpacked", best for small and medium shapes); otherwise it is packed into
 * zero-padded [K][64] panels in `work` (at least mlf_sgemm_work_floats(K, N)
 * floats). The register tile is 6x64: 24 accumulators of 16 floats, which gcc
 * -O3 keeps in zmm registers on AVX-512 (48 ymm-sized halves on AVX2 spill a
 * little but stay correct). Rows are split over threads in equal blocks of
 * whole tiles, and every C element is summed over k in the same order whatever
 * the thread count.
 */
#ifndef MLF_GEMM_H
#define MLF_GEMM_H

#define MLF_MR 6
#define MLF_NR 64
#define MLF_KC 384

static inline long mlf_sgemm_work_floats(long K, long N) {
  return K * ((N + MLF_NR - 1) / MLF_NR) * MLF_NR;
}

/* One MR x NR tile over k in [0, kc): full tile, B rows `ldb` apart. */
static inline void mlf_sgemm_tile(long kc, const float* MLF_RESTRICT A, long rsa, long csa,
                                  const float* MLF_RESTRICT B, long ldb,
                                  float* MLF_RESTRICT C, long ldc, int accumulate) {
  float acc[MLF_MR][MLF_NR];
  for (int i = 0; i < MLF_MR; i++)
    for (int j = 0; j < MLF_NR; j++) acc[i][j] = accumulate ? C[i * ldc + j] : 0.0f;
  for (long p = 0; p < kc; p++) {
    const float* MLF_RESTRICT b = B + p * ldb;
    for (int i = 0; i < MLF_MR; i++) {
      float a = A[i * rsa + p * csa];
      for (int j = 0; j < MLF_NR; j++) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MLF_MR; i++)
    for (int j = 0; j < MLF_NR; j++) C[i * ldc + j] = acc[i][j];
}

/* Any tile up to MR x NR (edges): same arithmetic order, bounds checked. */
static inline void mlf_sgemm_edge(long mr, long nr, long kc, const float* MLF_RESTRICT A, long rsa,
                                  long csa, const float* MLF_RESTRICT B, long ldb,
                                  float* MLF_RESTRICT C, long ldc, int accumulate) {
  float acc[MLF_MR][MLF_NR];
  for (long i = 0; i < mr; i++)
    for (long j = 0; j < nr; j++) acc[i][j] = accumulate ? C[i * ldc + j] : 0.0f;
  for (long p = 0; p < kc; p++) {
    const float* MLF_RESTRICT b = B + p * ldb;
    for (long i = 0; i < mr; i++) {
      float a = A[i * rsa + p * csa];
      for (long j = 0; j < nr; j++) acc[i][j] += a * b[j];
    }
  }
  for (long i = 0; i < mr; i++)
    for (long j = 0; j < nr; j++) C[i * ldc + j] = acc[i][j];
}

/* Packs B (rows rsb apart, columns csb apart) into [N/NR][K][NR] zero-padded panels. */
static inline void mlf_sgemm_pack_b(long K, long N, const float* MLF_RESTRICT B, long rsb, long csb,
                                    float* MLF_RESTRICT work, int parallel) {
  long panels = (N + MLF_NR - 1) / MLF_NR;
  (void)parallel;
#pragma omp parallel for schedule(static) if (parallel)
  for (long jp = 0; jp < panels; jp++) {
    float* MLF_RESTRICT dst = work + jp * K * MLF_NR;
    long j0 = jp * MLF_NR, nr = N - j0 < MLF_NR ? N - j0 : MLF_NR;
    for (long p = 0; p < K; p++)
      for (long j = 0; j < MLF_NR; j++)
        dst[p * MLF_NR + j] = j < nr ? B[p * rsb + (j0 + j) * csb] : 0.0f;
  }
}

/* Rows [i0, i1) of C: k blocks of KC, then 64-column panels, then 6-row tiles. */
static inline void mlf_sgemm_rows(long i0, long i1, long N, long K, const float* MLF_RESTRICT A,
                                  long rsa, long csa, const float* MLF_RESTRICT B, long ldb,
                                  long panel_stride, float* MLF_RESTRICT C, long ldc) {
  for (long p0 = 0; p0 < K; p0 += MLF_KC) {
    long kc = K - p0 < MLF_KC ? K - p0 : MLF_KC;
    int accumulate = p0 > 0;
    for (long j0 = 0; j0 < N; j0 += MLF_NR) {
      long nr = N - j0 < MLF_NR ? N - j0 : MLF_NR;
      const float* b = panel_stride ? B + (j0 / MLF_NR) * panel_stride + p0 * ldb
                                    : B + p0 * ldb + j0;
      for (long i = i0; i < i1; i += MLF_MR) {
        long mr = i1 - i < MLF_MR ? i1 - i : MLF_MR;
        const float* a = A + i * rsa + p0 * csa;
        float* c = C + i * ldc + j0;
        if (mr == MLF_MR && (nr == MLF_NR || panel_stride)) {
          if (nr == MLF_NR) mlf_sgemm_tile(kc, a, rsa, csa, b, ldb, c, ldc, accumulate);
          else {  /* packed edge panel: compute the padded tile, keep nr columns */
            float tile[MLF_MR * MLF_NR];
            if (accumulate)
              for (long r = 0; r < MLF_MR; r++)
                for (long j = 0; j < nr; j++) tile[r * MLF_NR + j] = c[r * ldc + j];
            mlf_sgemm_tile(kc, a, rsa, csa, b, ldb, tile, MLF_NR, accumulate);
            for (long r = 0; r < MLF_MR; r++)
              for (long j = 0; j < nr; j++) c[r * ldc + j] = tile[r * MLF_NR + j];
          }
        } else {
          mlf_sgemm_edge(mr, nr, kc, a, rsa, csa, b, ldb, c, ldc, accumulate);
        }
      }
    }
  }
}

/* C = A @ B. `work` may be NULL when B is read unpacked (csb == 1 and K*N small). */
static inline void mlf_sgemm(long M, long N, long K, const float* MLF_RESTRICT A, long rsa, long csa,
                             const float* MLF_RESTRICT B, long rsb, long csb,
                             float* MLF_RESTRICT C, long ldc, float* MLF_RESTRICT work) {
  if (K == 0) {
    for (long i = 0; i < M; i++) for (long j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
    return;
  }
  int parallel = M * N * K >= 64L * 64 * 64 * 4 && mlf_num_threads() > 1 && M >= 2 * MLF_MR;
  int packed = !(csb == 1 && K * N <= 128L * 1024) && work != 0;
  const float* b = B;
  long ldb = rsb, panel_stride = 0;
  if (packed) {
    mlf_sgemm_pack_b(K, N, B, rsb, csb, work, parallel);
    b = work; ldb = MLF_NR; panel_stride = K * MLF_NR;
  }
  if (!parallel) {
    mlf_sgemm_rows(0, M, N, K, A, rsa, csa, b, ldb, panel_stride, C, ldc);
    return;
  }
#pragma omp parallel
  {
#ifdef _OPENMP
    long t = omp_get_thread_num(), T = omp_get_num_threads();
#else
    long t = 0, T = 1;
#endif
    long tiles = (M + MLF_MR - 1) / MLF_MR;
    long i0 = (tiles * t / T) * MLF_MR, i1 = (tiles * (t + 1) / T) * MLF_MR;
    if (i1 > M) i1 = M;
    if (i0 < i1) mlf_sgemm_rows(i0, i1, N, K, A, rsa, csa, b, ldb, panel_stride, C, ldc);
  }
}

#endif /* MLF_GEMM_H */
