/* mlf_gemm_bf16.h: C[M,N] = A[M,K] @ W[K,N] with float32 A and C and the constant weights
 * W stored as bfloat16 pair panels (`aotc export --weight-storage bfloat16`, packed by
 * aot/passes/weight_packing.py): half the bytes of float32, for products bound by reading W.
 *
 * Layout: NP = ceil(N/32)*32 columns (zero past N) in blocks of 32, block-major: block
 * b holds rows 0..K-1 of its 32 columns contiguously (64 bytes, one cache line, a row),
 * so the few-rows path reads a handful of sequential streams (a row-major [K][NP]
 * layout strode NP*2 bytes between rows: a page per row for the 50257-column output
 * projection of GPT-2). In each row of a block the 32-bit word q (0..15) holds column
 * q in its low half and column 16+q in its high half, so one vector load of words
 * yields two vectors of columns with one shift and one mask (bfloat16 is the high half
 * of a float32). Every product and sum is float32
 * and widening is exact: the result is the float32 GEMM of A and the rounded weights,
 * summed over k in order whatever the thread count.
 *
 *  - few rows (M <= 6, batch-1 inference): W is streamed once, in place; threads split
 *    the 32-column blocks.
 *  - more rows: W is widened once into `work` ([K][N] floats) and mlf_sgemm runs on it,
 *    with the rest of `work` as its own (mlf_sgemm_bf16p_work_floats floats in all;
 *    emit_contraction.py mirrors it).
 */
#ifndef MLF_GEMM_BF16_H
#define MLF_GEMM_BF16_H

#include "mlf_gemm.h"

#define MLF_BF16_BLOCK 32 /* columns per block: 16 words */
#define MLF_BF16_HALF (16 / MLF_DOT_LANES) /* vectors of words per block */

typedef uint32_t mlf_vwords __attribute__((vector_size(4 * MLF_DOT_LANES), aligned(4)));

static inline long mlf_sgemm_bf16p_work_floats(long M, long N, long K) {
  if (M <= MLF_MR) return 0;
  return K * N + (mlf_sgemm_packs(M, N, K, 1) ? mlf_sgemm_work_floats(K, N) : 0);
}

/* W[p][j] of the K-row packed W, widened to float32. */
static inline float mlf_bf16p_at(const uint16_t* MLF_RESTRICT W, long K, long p, long j) {
  long b = j / MLF_BF16_BLOCK, c = j % MLF_BF16_BLOCK;
  return mlf_load_bf16(W[(b * K + p) * MLF_BF16_BLOCK + 2 * (c % 16) + c / 16]);
}

/* C[mr x 32nb] = A[mr x K] @ W[K x 32nb], W pointing at the first of nb blocks; mr and
 * nb are constants once inlined. */
MLF_INLINE void mlf_bf16p_micro(const int mr, const int nb, long K, const float* MLF_RESTRICT A,
                                long rsa, long csa, const uint16_t* MLF_RESTRICT W,
                                float* MLF_RESTRICT C, long ldc) {
  const int L = MLF_DOT_LANES, H = MLF_BF16_HALF;
  mlf_vdot acc[MLF_MR][4][2][MLF_BF16_HALF];
  for (int i = 0; i < mr; i++)
    for (int b = 0; b < nb; b++)
      for (int h = 0; h < H; h++) acc[i][b][0][h] = acc[i][b][1][h] = (mlf_vdot){0};
  for (long p = 0; p < K; p++) {
    mlf_vdot lo[4][MLF_BF16_HALF], hi[4][MLF_BF16_HALF];
    for (int b = 0; b < nb; b++)
      for (int h = 0; h < H; h++) {
        mlf_vwords w = *(const mlf_vwords*)(W + (b * K + p) * MLF_BF16_BLOCK + 2 * h * L);
        lo[b][h] = (mlf_vdot)(w << 16);
        hi[b][h] = (mlf_vdot)(w & 0xffff0000u);
      }
    for (int i = 0; i < mr; i++) {
      const float a = A[i * rsa + p * csa];
      for (int b = 0; b < nb; b++)
        for (int h = 0; h < H; h++) {
          acc[i][b][0][h] += a * lo[b][h];
          acc[i][b][1][h] += a * hi[b][h];
        }
    }
  }
  for (int i = 0; i < mr; i++)
    for (int b = 0; b < nb; b++)
      for (int h = 0; h < H; h++) {
        memcpy(C + i * ldc + b * MLF_BF16_BLOCK + h * L, &acc[i][b][0][h], sizeof(mlf_vdot));
        memcpy(C + i * ldc + b * MLF_BF16_BLOCK + 16 + h * L, &acc[i][b][1][h], sizeof(mlf_vdot));
      }
}

/* Blocks per register tile: 4 for one row (8 accumulators hide the FMA latency), fewer
 * for more rows so that the accumulators stay in registers. */
static inline int mlf_bf16p_tile_blocks(long mr) { return mr == 1 ? 4 : mr <= 3 ? 2 : 1; }

#define MLF_BF16P_CASE(m, b) \
  case (m) * 8 + (b): mlf_bf16p_micro(m, b, K, A, rsa, csa, W, C, ldc); break;

static __attribute__((unused, noinline)) void mlf_bf16p_tile(
    int mr, int nb, long K, const float* MLF_RESTRICT A, long rsa, long csa,
    const uint16_t* MLF_RESTRICT W, float* MLF_RESTRICT C, long ldc) {
  switch (mr * 8 + nb) {
    MLF_BF16P_CASE(1, 1) MLF_BF16P_CASE(1, 2) MLF_BF16P_CASE(1, 3) MLF_BF16P_CASE(1, 4)
    MLF_BF16P_CASE(2, 1) MLF_BF16P_CASE(2, 2) MLF_BF16P_CASE(3, 1) MLF_BF16P_CASE(3, 2)
    MLF_BF16P_CASE(4, 1) MLF_BF16P_CASE(5, 1) MLF_BF16P_CASE(6, 1)
    default: break;
  }
}

/* Columns [j0, j1) (j0 a multiple of 32) of C for M <= 6 rows. A tile reaching past N
 * writes into `edge` (6 x 128 floats) and copies the columns that exist. */
static inline void mlf_bf16p_columns(long M, long N, long K, long j0, long j1,
                                     const float* MLF_RESTRICT A, long rsa, long csa,
                                     const uint16_t* MLF_RESTRICT W, float* MLF_RESTRICT C,
                                     long ldc) {
  const int per_tile = mlf_bf16p_tile_blocks(M);
  float edge[MLF_MR * 4 * MLF_BF16_BLOCK];
  for (long j = j0; j < j1; j += per_tile * MLF_BF16_BLOCK) {
    long nb = (j1 - j + MLF_BF16_BLOCK - 1) / MLF_BF16_BLOCK;
    nb = nb < per_tile ? nb : per_tile;
    long width = nb * MLF_BF16_BLOCK;
    const uint16_t* blocks = W + j * K;  /* block j / 32 starts at (j / 32) * K * 32 */
    if (j + width <= N) {
      mlf_bf16p_tile((int)M, (int)nb, K, A, rsa, csa, blocks, C + j, ldc);
    } else {
      mlf_bf16p_tile((int)M, (int)nb, K, A, rsa, csa, blocks, edge, width);
      for (long i = 0; i < M; i++)
        for (long c = j; c < N; c++) C[i * ldc + c] = edge[i * width + c - j];
    }
  }
}

/* C = A @ W for packed W; `work` may be NULL when M <= 6. */
MLF_ENTRY void mlf_sgemm_bf16p(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const uint16_t* MLF_RESTRICT W, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work) {
  const long np = (N + MLF_BF16_BLOCK - 1) / MLF_BF16_BLOCK * MLF_BF16_BLOCK;
  if (M == 0 || N == 0) return;
  if (M > MLF_MR) {
    for (long j0 = 0; j0 < N; j0 += MLF_BF16_BLOCK)  /* block by block, as stored */
      for (long p = 0; p < K; p++)
        for (long j = j0; j < j0 + MLF_BF16_BLOCK && j < N; j++)
          work[p * N + j] = mlf_bf16p_at(W, K, p, j);
    mlf_sgemm(M, N, K, A, rsa, csa, work, N, 1, C, ldc, work + K * N);
    return;
  }
  const long blocks = np / MLF_BF16_BLOCK;
  int T = M * N * K >= 64L * 64 * 64 && blocks >= 2 ? mlf_num_threads() : 1;
  if (T == 1) {
    mlf_bf16p_columns(M, N, K, 0, N, A, rsa, csa, W, C, ldc);
    return;
  }
  MLF_OMP(omp parallel num_threads(T))
  {
    long t = mlf_thread_index(), nt = mlf_team_size();
    long lo, hi;
    mlf_share(blocks, MLF_BF16_BLOCK, N, t, nt, &lo, &hi);
    if (lo < hi) mlf_bf16p_columns(M, N, K, lo, hi, A, rsa, csa, W, C, ldc);
  }
}

#endif /* MLF_GEMM_BF16_H */
