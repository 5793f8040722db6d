/* mlf_gemm.h: float32 GEMM, C[M,N] = A[M,K] @ B[K,N], for the C backend.
 *
 * A is read through strides (rsa, csa), so A or A^T work unpacked. Two forms:
 *  - broadcast form (most shapes): a register tile of mr x 16*nv (mr <= 6,
 *    nv <= 4; 6x64 = 24 zmm accumulators on AVX-512; targets with 16 or narrower
 *    registers, AVX2 and below, run each 64-column panel in slices of at most 12
 *    accumulators, 6x16 for full tiles). B is read in place when its rows are
 *    contiguous, N is a multiple of 16 and K*N <= 1M floats (a k block of a
 *    64-column panel then stays in L2 across the row tiles; packing such a B
 *    measured 5-13% slower, e.g. 128x784x512); otherwise it is packed into
 *    zero-padded [K][64] panels in `work`.
 *    Edge tiles run the same code specialized for their mr and nv.
 *  - dot form (N < 16 with A rows contiguous, e.g. logits [128x512]@[512x10]):
 *    B^T is packed to [N][K] and each C element is a dot product along K in
 *    vectors of the target's width, so no lane is wasted on padding columns;
 *    tiles of 2 rows by all N columns read A once and keep B^T in L1.
 * `work` holds at least mlf_sgemm_work_floats(K, N) floats when
 * mlf_sgemm_packs(M, N, K, csb) is true (emit_contraction.py mirrors both).
 * Threads split C into T balanced blocks of whole tiles (rows, or column
 * panels when M is small); every C element is summed over k in the same order
 * whatever the thread count.
 */
#ifndef MLF_GEMM_H
#define MLF_GEMM_H

#define MLF_MR 6
#define MLF_NR 64 /* also the panel width aot/passes/weight_packing.py (PANEL) prepacks constants in */
#define MLF_KC 384      /* most k in a block when A is read along its columns (A^T) */
#define MLF_KC_ROWS 512 /* most k in a block when A's rows are contiguous (csa == 1) */
#define MLF_INLINE static inline __attribute__((always_inline))

/* One SIMD register of float lanes on the target (a GCC vector type), loadable from any
 * float address: the unit of the micro-kernels' register tiles. */
#if defined(__AVX512F__)
#define MLF_DOT_LANES 16
#elif defined(__AVX__)
#define MLF_DOT_LANES 8
#else
#define MLF_DOT_LANES 4
#endif
typedef float mlf_vdot __attribute__((vector_size(4 * MLF_DOT_LANES), aligned(4)));

static inline long mlf_sgemm_work_floats(long K, long N) {
  return K * ((N + MLF_NR - 1) / MLF_NR) * MLF_NR;
}
static inline int mlf_sgemm_dot_form(long N, long K, long csa) { return N < 16 && csa == 1 && K >= 16; }
/* Few rows (M <= 6, e.g. batch-1 inference) read B in place whatever its size: packing
 * would copy as many floats as the product reads; columns past N/16*16 run a plain loop. */
static inline int mlf_sgemm_packs(long M, long N, long K, long csb) {
  return !(csb == 1 && ((N % 16 == 0 && K * N <= 1024L * 1024) || M <= MLF_MR));
}

/* Few rows of A times a B whose columns are its contiguous rows of K floats (B^T stored
 * dense [N][K]: a tied output projection x @ table^T at batch 1) run as dot products along
 * K on B^T in place: packing would transpose all of B on every call to read it once. */
static inline int mlf_sgemm_bt_rows(long M, long K, long csa, long rsb, long csb) {
  return M <= MLF_MR && csa == 1 && rsb == 1 && csb == K && K >= 16;
}

/* ---- broadcast form ---------------------------------------------------------------- */

/* C[mr x ncols] (+)= A[mr x kc] @ B[kc x 16nv]; mr and nv are constants once inlined.
 * Accumulators are native-width vectors (mlf_vdot), so the register tile is explicit. */
MLF_INLINE void mlf_sgemm_micro(const int mr, const int nv, long kc, const float* MLF_RESTRICT A,
                                long rsa, long csa, const float* MLF_RESTRICT B, long ldb,
                                float* MLF_RESTRICT C, long ldc, int accumulate, long ncols) {
  const int L = MLF_DOT_LANES, nq = 16 * nv / MLF_DOT_LANES;
  mlf_vdot acc[MLF_MR][MLF_NR / MLF_DOT_LANES];
  for (int i = 0; i < mr; i++)
    for (int q = 0; q < nq; q++) acc[i][q] = (mlf_vdot){0};
  for (long p = 0; p < kc; p++) {
    mlf_vdot b[MLF_NR / MLF_DOT_LANES];
    for (int q = 0; q < nq; q++) b[q] = *(const mlf_vdot*)(B + p * ldb + q * L);
    for (int i = 0; i < mr; i++) {
      const float a = A[i * rsa + p * csa];
      for (int q = 0; q < nq; q++) acc[i][q] += a * b[q];
    }
  }
  if (ncols == 16 * nv) {
    for (int i = 0; i < mr; i++)
      for (int q = 0; q < nq; q++) {
        mlf_vdot* c = (mlf_vdot*)(C + i * ldc + q * L);
        *c = accumulate ? *c + acc[i][q] : acc[i][q];
      }
  } else {  /* an edge tile: the row through a buffer, then the columns that exist */
    for (int i = 0; i < mr; i++) {
      float row[MLF_NR];
      memcpy(row, acc[i], sizeof(mlf_vdot) * nq);
      for (long j = 0; j < ncols && j < 16 * nv; j++)
        C[i * ldc + j] = accumulate ? C[i * ldc + j] + row[j] : row[j];
    }
  }
}

#define MLF_MICRO_CASE(m, v) \
  case (m) * 8 + (v): mlf_sgemm_micro(m, v, kc, A, rsa, csa, B, ldb, C, ldc, accumulate, ncols); break;
#define MLF_SLICE_CASE(m, v) case (m) * 8 + (v): \
  mlf_sgemm_micro(m, v, kc, A, rsa, csa, B + j, ldb, C + j, ldc, accumulate, w); break;
#define MLF_MICRO_ROW(m) MLF_MICRO_CASE(m, 1) MLF_MICRO_CASE(m, 2) MLF_MICRO_CASE(m, 3) MLF_MICRO_CASE(m, 4)

/* gcc 12 clones the tile for call sites with constant arguments; a clone for ldb == 64
 * (prepacked panels, mlf_sgemm_panels) kept its accumulators in memory and ran 2.7x
 * slower, so the tile is not specialized per call site (no loss measured elsewhere). */
#if defined(__GNUC__) && !defined(__clang__)
#define MLF_NOIPA __attribute__((unused, noipa))
#else
#define MLF_NOIPA __attribute__((unused, noinline))
#endif

/* One tile of mr <= 6 rows and ncols <= 64 columns (B padded to a multiple of 16). */
static MLF_NOIPA void mlf_sgemm_tile(int mr, long ncols, long kc, const float* MLF_RESTRICT A, long rsa,
                           long csa, const float* MLF_RESTRICT B, long ldb, float* MLF_RESTRICT C,
                           long ldc, int accumulate) {
#if MLF_DOT_LANES == 16
  int nv = (int)((ncols + 15) / 16);
  switch (mr * 8 + nv) {
    MLF_MICRO_ROW(1) MLF_MICRO_ROW(2) MLF_MICRO_ROW(3)
    MLF_MICRO_ROW(4) MLF_MICRO_ROW(5) MLF_MICRO_ROW(6)
    default: break;
  }
#else  /* 16 vector registers or narrower ones: the panel in slices of at most 8
        * accumulators per row pair (64 columns for 1 row, 32 for 2, 16 for more) */
  const long slice = mr == 1 ? 64 : (mr == 2 ? 32 : 16);
  for (long j = 0; j < ncols; j += slice) {
    const long w = ncols - j < slice ? ncols - j : slice;
    switch (mr * 8 + (int)((w + 15) / 16)) {
      MLF_SLICE_CASE(1, 1) MLF_SLICE_CASE(1, 2) MLF_SLICE_CASE(1, 3) MLF_SLICE_CASE(1, 4)
      MLF_SLICE_CASE(2, 1) MLF_SLICE_CASE(2, 2) MLF_SLICE_CASE(3, 1) MLF_SLICE_CASE(4, 1)
      MLF_SLICE_CASE(5, 1) MLF_SLICE_CASE(6, 1)
      default: break;
    }
  }
#endif
}

#if defined(__AVX512F__) && defined(__GNUC__)
#include <immintrin.h>
/* r[q] = row q of a 16x16 block of floats -> r[q] = its column q. */
MLF_INLINE void mlf_transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xDD);
    }
  for (int j = 0; j < 8; j++) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
  }
}

/* mlf_sgemm_pack_b for a B whose columns are contiguous (B^T stored dense, rsb == 1: the
 * backward pass's dY @ W^T): 16 columns of 16 k values each are loaded as rows and
 * transposed in registers, so the panels are written in whole vectors. 512x512: 39 us
 * instead of 75 us for the scalar 16x64 blocks. */
static inline void mlf_sgemm_pack_bt(long K, long N, long j0, long j1, const float* MLF_RESTRICT B,
                                     long csb, float* MLF_RESTRICT work) {
  for (long jp = j0; jp < j1; jp += MLF_NR) {
    float* MLF_RESTRICT dst = work + (jp / MLF_NR) * K * MLF_NR;
    for (long p0 = 0; p0 < K; p0 += 16) {
      const long pe = K - p0 < 16 ? K - p0 : 16;
      const __mmask16 km = (__mmask16)((1u << pe) - 1);
      for (long jj = 0; jj < MLF_NR; jj += 16) {
        __m512 r[16];
        for (int q = 0; q < 16; q++) {
          const long j = jp + jj + q;  /* columns past N are the panel's zero padding */
          r[q] = j < N ? _mm512_maskz_loadu_ps(km, B + j * csb + p0) : _mm512_setzero_ps();
        }
        mlf_transpose16(r);
        for (long p = 0; p < pe; p++) _mm512_storeu_ps(dst + (p0 + p) * MLF_NR + jj, r[p]);
      }
    }
  }
}
#endif

/* Packs columns [j0, j1) of B (rows rsb apart, columns csb apart) into [K][64] panels. */
static inline void mlf_sgemm_pack_b(long K, long N, long j0, long j1, const float* MLF_RESTRICT B,
                             long rsb, long csb, float* MLF_RESTRICT work) {
#if defined(__AVX512F__) && defined(__GNUC__)
  if (rsb == 1 && csb != 1) {
    mlf_sgemm_pack_bt(K, N, j0, j1, B, csb, work);
    return;
  }
#endif
  for (long jp = j0; jp < j1; jp += MLF_NR) {
    float* MLF_RESTRICT dst = work + (jp / MLF_NR) * K * MLF_NR;
    long nr = N - jp < MLF_NR ? N - jp : MLF_NR;
    if (csb == 1) {
      for (long p = 0; p < K; p++)
        for (long j = 0; j < MLF_NR; j++) dst[p * MLF_NR + j] = j < nr ? B[p * rsb + jp + j] : 0.0f;
    } else {  /* B^T rows: read along k, write 16x64 blocks that stay in L1 */
      for (long p0 = 0; p0 < K; p0 += 16) {
        long pe = K - p0 < 16 ? K - p0 : 16;
        for (long j = 0; j < MLF_NR; j++)
          for (long p = 0; p < pe; p++)
            dst[(p0 + p) * MLF_NR + j] = j < nr ? B[(p0 + p) * rsb + (jp + j) * csb] : 0.0f;
      }
    }
  }
}

/* C rows [i0, i1) x column panels [j0, j1): k blocks, then 64-column panels, then 6-row tiles.
 * Every k block after the first reads and writes C again (from L3 once C outgrows L2), so an A
 * with contiguous rows takes blocks of up to 512 k: K = 512 in one block ran 512x512x512 4-5%
 * faster on one core than two blocks of 256. An A^T tile reads one cache line per k (6 floats
 * of it), and its blocks stay at 384 (512 was no faster for 784x512x512, up to 4% slower). */
static inline void mlf_sgemm_block(long i0, long i1, long j0, long j1, long N, long K,
                            const float* MLF_RESTRICT A, long rsa, long csa,
                            const float* MLF_RESTRICT B, long ldb, long panel_stride,
                            float* MLF_RESTRICT C, long ldc) {
  const long kmax = csa == 1 ? MLF_KC_ROWS : MLF_KC;
  long nk = (K + kmax - 1) / kmax, kc0 = (K + nk - 1) / nk;  /* equal k blocks */
  for (long p0 = 0; p0 < K; p0 += kc0) {
    long kc = K - p0 < kc0 ? K - p0 : kc0;
    for (long j = j0; j < j1; j += MLF_NR) {
      long nr = N - j < MLF_NR ? N - j : MLF_NR;
      const float* b = panel_stride ? B + (j / MLF_NR) * panel_stride + p0 * ldb : B + p0 * ldb + j;
      for (long i = i0; i < i1; i += MLF_MR) {
        int mr = (int)(i1 - i < MLF_MR ? i1 - i : MLF_MR);
        mlf_sgemm_tile(mr, nr, kc, A + i * rsa + p0 * csa, rsa, csa, b, ldb, C + i * ldc + j, ldc,
                       p0 > 0);
      }
    }
  }
}

/* ---- dot form (N < 16) --------------------------------------------------------------- */

/* C[ib x jb] = A[ib rows, lda apart] . Bt[jb rows, ldbt apart], one SIMD register of
 * lanes along k (a GCC vector type of the target's native width). */

/* Keeps a loaded B vector in a register: otherwise gcc folds its load into each of the
 * ib FMAs that use it, and the loop becomes load-bound. */
#if defined(__AVX512F__) && defined(__GNUC__)
#define MLF_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define MLF_IN_REGISTER(v) (void)0
#endif

/* Sum of the lanes in a fixed pairwise order: lanes q + q+L/2, then q + q+L/4, ... */
static inline float mlf_hsum(mlf_vdot v) {
#if MLF_DOT_LANES == 16 && (defined(__clang__) || __GNUC__ >= 12)
  typedef float v8 __attribute__((vector_size(32)));
  typedef float v4 __attribute__((vector_size(16)));
  v8 h8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
          __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  v4 h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
  v4 h2 = h4 + __builtin_shufflevector(h4, h4, 2, 3, 0, 1);
  return h2[0] + h2[1];
#else
  float l[MLF_DOT_LANES];
  memcpy(l, &v, sizeof v);
  for (int w = MLF_DOT_LANES / 2; w >= 1; w /= 2)
    for (int q = 0; q < w; q++) l[q] += l[q + w];
  return l[0];
#endif
}

/* Adds the k tail [k0, K) of a dot tile to C: plain loops, one copy for every tile shape. */
static __attribute__((unused, noinline)) void mlf_sdot_tail(int ib, int jb, long k0, long K,
                                                    const float* MLF_RESTRICT A, long lda,
                                                    const float* MLF_RESTRICT Bt, long ldbt,
                                                    float* MLF_RESTRICT C, long ldc) {
  for (int i = 0; i < ib; i++)
    for (int j = 0; j < jb; j++) {
      float s = 0.0f;
      for (long p = k0; p < K; p++) s += A[i * lda + p] * Bt[j * ldbt + p];
      C[i * ldc + j] += s;
    }
}

MLF_INLINE void mlf_sdot_micro(const int ib, const int jb, long K, const float* MLF_RESTRICT A,
                               long lda, const float* MLF_RESTRICT Bt, long ldbt,
                               float* MLF_RESTRICT C, long ldc) {
  const int L = MLF_DOT_LANES;
  mlf_vdot acc[4][8];
  for (int i = 0; i < ib; i++)
    for (int j = 0; j < jb; j++) acc[i][j] = (mlf_vdot){0};
  long kv = K / L * L;
  for (long p = 0; p < kv; p += L) {
    mlf_vdot a[4];
    for (int i = 0; i < ib; i++) a[i] = *(const mlf_vdot*)(A + i * lda + p);
    for (int j = 0; j < jb; j++) {
      mlf_vdot b = *(const mlf_vdot*)(Bt + j * ldbt + p);
      MLF_IN_REGISTER(b);
      for (int i = 0; i < ib; i++) acc[i][j] += a[i] * b;
    }
  }
  for (int i = 0; i < ib; i++)
    for (int j = 0; j < jb; j++) C[i * ldc + j] = mlf_hsum(acc[i][j]);
  if (kv < K) mlf_sdot_tail(ib, jb, kv, K, A, lda, Bt, ldbt, C, ldc);
}

/* Tiles: all N columns in one or two groups of jb <= 8, by 2 rows (4 rows when jb <= 2),
 * so that A is read from L2 once or twice and B^T stays in L1. */
#define MLF_DOT_CASE(i, j) case (i) * 16 + (j): mlf_sdot_micro(i, j, K, A, lda, Bt, ldbt, C, ldc); break;
#define MLF_DOT_NARROW(j) MLF_DOT_CASE(1, j) MLF_DOT_CASE(2, j) MLF_DOT_CASE(3, j) MLF_DOT_CASE(4, j)
#define MLF_DOT_WIDE(j) MLF_DOT_CASE(1, j) MLF_DOT_CASE(2, j)

static __attribute__((unused, noinline)) void mlf_sdot_tile(int ib, int jb, long K, const float* MLF_RESTRICT A, long lda,
                          const float* MLF_RESTRICT Bt, long ldbt, float* MLF_RESTRICT C, long ldc) {
  switch (ib * 16 + jb) {
    MLF_DOT_NARROW(1) MLF_DOT_NARROW(2)
    MLF_DOT_WIDE(3) MLF_DOT_WIDE(4) MLF_DOT_WIDE(5) MLF_DOT_WIDE(6) MLF_DOT_WIDE(7) MLF_DOT_WIDE(8)
    default: break;
  }
}

static inline void mlf_sdot_rows(long i0, long i1, long N, long K, const float* MLF_RESTRICT A, long lda,
                          const float* MLF_RESTRICT Bt, float* MLF_RESTRICT C, long ldc) {
  long groups = (N + 7) / 8, jb = (N + groups - 1) / groups;
  int ib = jb <= 2 ? 4 : 2;
  for (long i = i0; i < i1; i += ib)
    for (long j = 0; j < N; j += jb)
      mlf_sdot_tile((int)(i1 - i < ib ? i1 - i : ib), (int)(N - j < jb ? N - j : jb), K, A + i * lda,
                    lda, Bt + j * K, K, C + i * ldc + j, ldc);
}

/* ---- driver ------------------------------------------------------------------------- */

/* Thread t's share [*lo, *hi) of `units` units of `step` items, clipped to `total`. */
static inline void mlf_share(long units, long step, long total, long t, long T, long* lo, long* hi) {
  *lo = units * t / T * step;
  *hi = units * (t + 1) / T * step;
  if (*hi > total) *hi = total;
}

/* Threads for C = A @ B (1 when the product is too small to pay for a parallel region). */
MLF_ENTRY int mlf_sgemm_threads(long M, long N, long K, long csa, long csb, const float* work) {
  int dot = mlf_sgemm_dot_form(N, K, csa) && work != 0;
  long tiles = (M + MLF_MR - 1) / MLF_MR, panels = (N + MLF_NR - 1) / MLF_NR;
  /* few rows are bound by streaming B: two cores pull it from L2/L3 twice as fast */
  long min_work = dot || M <= MLF_MR ? 64L * 64 * 64 : 64L * 64 * 64 * 4;
  int T = M * N * K >= min_work ? mlf_num_threads() : 1;
  if (T > 1 && tiles < 2 && panels < 2) T = 1;
  int bt = M <= MLF_MR && csa == 1 && csb == K && K >= 16;  /* mlf_sgemm_bt_rows, rsb aside */
  if (M == 0 || N == 0 || K == 0 || (work == 0 && !bt && mlf_sgemm_packs(M, N, K, csb))) T = 1;
  return T;
}

/* Thread t's tiles of C[:, :n16] = A @ b (b in place, ldb apart, or in panels panel_stride
 * apart): whole row tiles in nt balanced blocks when there are at least nt, else column
 * panels. Returns 1 when rows were split ([*lo, *hi) are this thread's rows). */
static inline int mlf_sgemm_tiles(long t, long nt, long M, long n16, long K,
                                  const float* MLF_RESTRICT A, long rsa, long csa,
                                  const float* MLF_RESTRICT b, long ldb, long panel_stride,
                                  float* MLF_RESTRICT C, long ldc, long* lo, long* hi) {
  long tiles = (M + MLF_MR - 1) / MLF_MR;
  if (tiles >= nt) {
    mlf_share(tiles, MLF_MR, M, t, nt, lo, hi);
    if (*lo < *hi && n16)
      mlf_sgemm_block(*lo, *hi, 0, n16, n16, K, A, rsa, csa, b, ldb, panel_stride, C, ldc);
    return 1;
  }
  mlf_share((n16 + MLF_NR - 1) / MLF_NR, MLF_NR, n16, t, nt, lo, hi);
  if (*lo < *hi) mlf_sgemm_block(0, M, *lo, *hi, n16, K, A, rsa, csa, b, ldb, panel_stride, C, ldc);
  return 0;
}

/* One thread's part of C = A @ B, called by every thread of a parallel region (or
 * outside one). Sets [*r0, *r1) to rows of C that are final and owned by this thread
 * alone, so that a fused epilogue can run on them before the region ends; the row
 * ranges of all threads cover C. `work` may be NULL when mlf_sgemm_packs is false. */
MLF_ENTRY void mlf_sgemm_part(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT B, long rsb, long csb, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work, long* r0, long* r1) {
  long t = mlf_thread_index(), nt = mlf_team_size();
  long lo, hi;
  *r0 = *r1 = 0;
  if (M == 0 || N == 0) return;
  if (mlf_sgemm_bt_rows(M, K, csa, rsb, csb)) {  /* threads take column ranges of C */
    mlf_share(N, 1, N, t, nt, &lo, &hi);
    if (lo < hi) mlf_sdot_rows(0, M, hi - lo, K, A, rsa, B + lo * K, C + lo, ldc);
    if (nt > 1) {
      MLF_OMP(omp barrier)
    }
    mlf_share(M, 1, M, t, nt, r0, r1);
    return;
  }
  if (K == 0 || (work == 0 && mlf_sgemm_packs(M, N, K, csb))) {  /* zeros or plain reference loop */
    if (t == 0)
      for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
          float s = 0.0f;
          for (long p = 0; p < K; p++) s += A[i * rsa + p * csa] * B[p * rsb + j * csb];
          C[i * ldc + j] = s;
        }
    if (nt > 1) {
      MLF_OMP(omp barrier)
    }
    mlf_share(M, 1, M, t, nt, r0, r1);
    return;
  }
  int dot = mlf_sgemm_dot_form(N, K, csa) && work != 0;
  int packed = mlf_sgemm_packs(M, N, K, csb) && work != 0;
  long n16 = packed ? N : N / 16 * 16;  /* columns the tiles cover */
  long panels = (N + MLF_NR - 1) / MLF_NR;
  if (dot) {
    mlf_share(N, 1, N, t, nt, &lo, &hi);
    for (long j = lo; j < hi; j++)
      for (long p = 0; p < K; p++) work[j * K + p] = B[p * rsb + j * csb];
    if (nt > 1) {
      MLF_OMP(omp barrier)
    }
    mlf_share((M + 3) / 4, 4, M, t, nt, &lo, &hi);
    if (lo < hi) mlf_sdot_rows(lo, hi, N, K, A, rsa, work, C, ldc);
    *r0 = lo; *r1 = hi > lo ? hi : lo;
    return;
  }
  const float* b = B;
  long ldb = rsb, panel_stride = 0;
  if (packed) {
    mlf_share(panels, MLF_NR, N, t, nt, &lo, &hi);
    if (lo < hi) mlf_sgemm_pack_b(K, N, lo, hi, B, rsb, csb, work);
    b = work; ldb = MLF_NR; panel_stride = K * MLF_NR;
    if (nt > 1) {
      MLF_OMP(omp barrier)
    }
  }
  int by_rows = mlf_sgemm_tiles(t, nt, M, n16, K, A, rsa, csa, b, ldb, panel_stride, C, ldc,
                                &lo, &hi);
  if (by_rows) {
    *r0 = lo; *r1 = hi > lo ? hi : lo;
  }
  if (t == nt - 1)    /* unpacked B with N % 16 < 16 columns left over (M <= 6 only) */
    for (long i = 0; i < M; i++) {
      float row[16] = {0.0f};  /* a vector along the columns, summed over k in order */
      const long nl = N - n16;
      for (long p = 0; p < K; p++) {
        const float a = A[i * rsa + p * csa];
        for (long j = 0; j < nl; j++) row[j] += a * B[p * rsb + n16 + j];
      }
      for (long j = 0; j < nl; j++) C[i * ldc + n16 + j] = row[j];
    }
  if (!by_rows || n16 < N) {  /* rows are shared between threads: wait, then split them */
    if (nt > 1) {
      MLF_OMP(omp barrier)
    }
    mlf_share(M, 1, M, t, nt, r0, r1);
  }
}

/* C = A @ B. `work` may be NULL when mlf_sgemm_packs(M, N, K, csb) is false. */
MLF_ENTRY void mlf_sgemm(long M, long N, long K, const float* MLF_RESTRICT A, long rsa, long csa,
    const float* MLF_RESTRICT B, long rsb, long csb, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work) {
  int T = mlf_sgemm_threads(M, N, K, csa, csb, work);
  long r0, r1;
  if (T == 1) {  /* no parallel region at all: libgomp's serial team still costs ~1 us */
    mlf_sgemm_part(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, work, &r0, &r1);
    return;
  }
  MLF_OMP(omp parallel num_threads(T) private(r0, r1))
  mlf_sgemm_part(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, work, &r0, &r1);
}

/* C = A @ B with B already in mlf_sgemm_pack_b's layout ([N/64][K][64], zero-padded): constant
 * weights that aot/passes/weight_packing.py packed once at compile time instead of on every call.
 * Same tiles, order of sums and thread split as mlf_sgemm. */
MLF_ENTRY void mlf_sgemm_panels(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT P, float* MLF_RESTRICT C, long ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (long i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  const int T = mlf_sgemm_threads(M, N, K, csa, 1, P);
  long lo, hi;
  if (T == 1) {
    mlf_sgemm_tiles(0, 1, M, N, K, A, rsa, csa, P, MLF_NR, K * MLF_NR, C, ldc, &lo, &hi);
    return;
  }
  MLF_OMP(omp parallel num_threads(T) private(lo, hi))
  mlf_sgemm_tiles(mlf_thread_index(), mlf_team_size(), M, N, K, A, rsa, csa, P, MLF_NR,
                  K * MLF_NR, C, ldc, &lo, &hi);
}

#endif /* MLF_GEMM_H */
