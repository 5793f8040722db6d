/* mlf_gemm_s8.h: C[M,N] (int32) = A[M,K] (int8) @ B[K,N] (int8), exactly, for the
 * `aotc export --quantize int8` products (int8 activations times constant int8 weights,
 * int32 accumulation; aot/passes/quantization.py builds them, aot/passes/weight_packing.py
 * packs B). No saturation anywhere: every result is the exact sum while
 * K * 255 * 128 < 2^31 (K < 65793; pack_weights refuses larger K).
 *
 * The packed B ("s8_panels"), for NP = N rounded up to 64 and G = ceil(K / 4) groups:
 *  - int32 comp[NP]: 128 * sum_k B[k, n] (0 past N);
 *  - int8 panels [NP/64][G][64][4]: B[4g + t, 64p + c] at ((p * G + g) * 64 + c) * 4 + t,
 *    zero past K and N. One group of a panel is 256 bytes: four 16-lane registers whose
 *    32-bit lanes hold 4 consecutive k of one column.
 * vpdpbusd multiplies unsigned bytes by signed ones, so A is shifted to unsigned
 * (a + 128 = a ^ 0x80) and the shift's share, 128 * sum_k B[k, n], taken off at the end.
 *
 * Paths, chosen at compile time: AVX-512 VNNI (__AVX512VNNI__ with __AVX512BW__):
 * up to 4 rows x 64 columns of int32 sums in 16 zmm registers; AVX-VNNI (__AVXVNNI__,
 * 256-bit): one row x 64 columns in 8 ymm registers; otherwise a portable loop over the
 * same layout, which gcc vectorizes. All give the same int32 results (all are exact).
 * -DMLF_NO_VNNI forces the portable loop; -DMLF_S8_YMM the 256-bit path on an AVX-512
 * VNNI machine (with the EVEX form of the same instruction): the tests compare all three.
 * mlf_conv_s8.h runs the 2-d int8 convolutions on the same instruction.
 */
#ifndef MLF_GEMM_S8_H
#define MLF_GEMM_S8_H

#include "mlf_runtime.h"
#include "mlf_gemm.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && !defined(MLF_NO_VNNI) \
    && !defined(MLF_S8_YMM)
#include <immintrin.h>
#define MLF_S8_VNNI 512
#elif defined(__AVXVNNI__) && !defined(MLF_NO_VNNI)
#include <immintrin.h>
#define MLF_S8_VNNI 256
#define mlf_dpbusd256 _mm256_dpbusd_avx_epi32 /* AVX-VNNI (VEX) */
#elif defined(MLF_S8_YMM) && defined(__AVX512VNNI__) && defined(__AVX512VL__) \
    && !defined(MLF_NO_VNNI)
#include <immintrin.h>
#define MLF_S8_VNNI 256
#define mlf_dpbusd256 _mm256_dpbusd_epi32 /* the same operation, EVEX: tests the path */
#endif

#define MLF_S8_NR 64 /* columns per panel */
#define MLF_S8_MR 4  /* rows per register tile */

/* A's group g (bytes 4g..4g+3 of row a, zeros past K) shifted to unsigned, in memory order. */
static inline uint32_t mlf_s8_word(const int8_t* MLF_RESTRICT a, long g, long K) {
  uint32_t w = 0;
  if (4 * g + 4 <= K) {
    memcpy(&w, a + 4 * g, 4);
  } else {
    uint8_t b[4] = {0, 0, 0, 0};
    for (long t = 0; 4 * g + t < K; t++) b[t] = (uint8_t)a[4 * g + t];
    memcpy(&w, b, 4);
  }
  return w ^ 0x80808080u;
}

/* Rows [0, mr) x columns [0, w) of one panel: C = A @ B (w <= 64). */
static inline __attribute__((always_inline)) void mlf_s8_tile(
    const int mr, long K, const int8_t* MLF_RESTRICT A, long lda, const int8_t* MLF_RESTRICT P,
    const int32_t* MLF_RESTRICT comp, int32_t* MLF_RESTRICT C, long ldc, long w) {
  const long G = (K + 3) / 4;
#if MLF_S8_VNNI == 512
  __m512i acc[MLF_S8_MR][4];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_si512();
  for (long g = 0; g < G; g++) {
    const int8_t* MLF_RESTRICT b = P + g * 4 * MLF_S8_NR;
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
    const __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
    for (int i = 0; i < mr; i++) {
      const __m512i a = _mm512_set1_epi32((int)mlf_s8_word(A + i * lda, g, K));
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], a, b1);
      acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], a, b2);
      acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], a, b3);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < 4; j++) {
      const long left = w - 16 * j;
      if (left <= 0) break;
      const __m512i v = _mm512_sub_epi32(acc[i][j], _mm512_loadu_si512(comp + 16 * j));
      const __mmask16 keep = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
      _mm512_mask_storeu_epi32(C + i * ldc + 16 * j, keep, v);
    }
#elif MLF_S8_VNNI == 256
  /* 16 ymm registers: one row at a time, its 64 sums in 8 of them */
  for (int i = 0; i < mr; i++) {
    __m256i acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_si256();
    for (long g = 0; g < G; g++) {
      const int8_t* MLF_RESTRICT b = P + g * 4 * MLF_S8_NR;
      const __m256i a = _mm256_set1_epi32((int)mlf_s8_word(A + i * lda, g, K));
      for (int j = 0; j < 8; j++)
        acc[j] = mlf_dpbusd256(acc[j], a, _mm256_loadu_si256((const __m256i*)(b + 32 * j)));
    }
    for (int j = 0; j < 8; j++) {
      const long left = w - 8 * j;
      if (left <= 0) break;
      const __m256i v = _mm256_sub_epi32(
          acc[j], _mm256_loadu_si256((const __m256i*)(const void*)(comp + 8 * j)));
      if (left >= 8) {
        _mm256_storeu_si256((__m256i*)(void*)(C + i * ldc + 8 * j), v);
      } else {
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i*)(void*)lanes, v);
        memcpy(C + i * ldc + 8 * j, lanes, (size_t)left * sizeof(int32_t));
      }
    }
  }
#else
  int32_t acc[MLF_S8_MR][MLF_S8_NR];
  for (int i = 0; i < mr; i++)
    for (int c = 0; c < MLF_S8_NR; c++) acc[i][c] = 0;
  for (long g = 0; g < G; g++) {
    const int8_t* MLF_RESTRICT b = P + g * 4 * MLF_S8_NR;
    for (int i = 0; i < mr; i++) {
      const uint32_t word = mlf_s8_word(A + i * lda, g, K);
      uint8_t a[4];
      memcpy(a, &word, 4);
      for (int c = 0; c < MLF_S8_NR; c++)
        acc[i][c] += (int32_t)a[0] * b[4 * c] + (int32_t)a[1] * b[4 * c + 1]
                     + (int32_t)a[2] * b[4 * c + 2] + (int32_t)a[3] * b[4 * c + 3];
    }
  }
  for (int i = 0; i < mr; i++)
    for (long c = 0; c < w; c++) C[i * ldc + c] = acc[i][c] - comp[c];
#endif
}

/* Rows [i0, i1) x panels of columns [j0, j1) (j0 a multiple of 64). */
static inline void mlf_s8_block(long i0, long i1, long j0, long j1, long N, long K,
                                const int8_t* MLF_RESTRICT A, long lda,
                                const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT C,
                                long ldc) {
  const long NP = (N + MLF_S8_NR - 1) / MLF_S8_NR * MLF_S8_NR, G = (K + 3) / 4;
  const int32_t* MLF_RESTRICT comp = (const int32_t*)(const void*)packed;
  const int8_t* MLF_RESTRICT panels = packed + 4 * NP;
  for (long j = j0; j < j1; j += MLF_S8_NR) {
    const int8_t* MLF_RESTRICT P = panels + (j / MLF_S8_NR) * G * 4 * MLF_S8_NR;
    const long w = j1 - j < MLF_S8_NR ? j1 - j : MLF_S8_NR;
    long i = i0;
    for (; i + MLF_S8_MR <= i1; i += MLF_S8_MR)
      mlf_s8_tile(MLF_S8_MR, K, A + i * lda, lda, P, comp + j, C + i * ldc + j, ldc, w);
    switch (i1 - i) {
      case 3: mlf_s8_tile(3, K, A + i * lda, lda, P, comp + j, C + i * ldc + j, ldc, w); break;
      case 2: mlf_s8_tile(2, K, A + i * lda, lda, P, comp + j, C + i * ldc + j, ldc, w); break;
      case 1: mlf_s8_tile(1, K, A + i * lda, lda, P, comp + j, C + i * ldc + j, ldc, w); break;
      default: break;
    }
  }
}

/* C[M,N] (row stride ldc) = A[M,K] (row stride lda, columns contiguous) @ B, B packed as
 * above. Threads split the panels, or the rows when there are fewer panels than threads. */
MLF_ENTRY void mlf_gemm_s8(long M, long N, long K, const int8_t* MLF_RESTRICT A, long lda,
                           const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT C, long ldc) {
  if (M == 0 || N == 0) return;
  const long panels = (N + MLF_S8_NR - 1) / MLF_S8_NR;
  int T = M * N * K >= 64L * 64 * 256 ? mlf_num_threads() : 1;
  if (T == 1) {
    mlf_s8_block(0, M, 0, N, N, K, A, lda, packed, C, ldc);
    return;
  }
  MLF_OMP(omp parallel num_threads(T))
  {
    long t = mlf_thread_index(), nt = mlf_team_size(), lo, hi;
    if (panels >= nt) {
      mlf_share(panels, MLF_S8_NR, N, t, nt, &lo, &hi);
      if (lo < hi) mlf_s8_block(0, M, lo, hi, N, K, A, lda, packed, C, ldc);
    } else {
      mlf_share((M + MLF_S8_MR - 1) / MLF_S8_MR, MLF_S8_MR, M, t, nt, &lo, &hi);
      if (lo < hi) mlf_s8_block(lo, hi, 0, N, N, K, A, lda, packed, C, ldc);
    }
  }
}

#endif /* MLF_GEMM_S8_H */
