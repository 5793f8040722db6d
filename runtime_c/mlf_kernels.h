/* mlf_kernels.h: hand-written pieces that single-op kernels call: index
 * clamping, threefry-2x32 (bit-exact with jax.random.bits), a stable merge
 * argsort, and the implicit-GEMM 2-d convolution. */
#ifndef MLF_KERNELS_H
#define MLF_KERNELS_H

static inline int64_t mlf_clamp_index(int64_t i, int64_t hi) { return i < 0 ? 0 : (i > hi ? hi : i); }
/* A dynamic_slice start: negative counts from the end (as jax), then clamped into [0, hi]. */
static inline int64_t mlf_start_index(int64_t i, int64_t dim, int64_t hi) {
  return mlf_clamp_index(i < 0 ? i + dim : i, hi);
}

/* ---- threefry-2x32, 20 rounds (Salmon et al. 2011), as jax's threefry2x32_p ---- */
static inline uint32_t mlf_rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static inline void mlf_threefry2x32(uint32_t k0, uint32_t k1, uint32_t* x0p, uint32_t* x1p) {
  static const int rot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  uint32_t x0 = *x0p + ks[0], x1 = *x1p + ks[1];
  for (int block = 0; block < 5; block++) {
    for (int r = 0; r < 4; r++) {
      x0 += x1;
      x1 = mlf_rotl32(x1, rot[block & 1][r]);
      x1 ^= x0;
    }
    x0 += ks[(block + 1) % 3];
    x1 += ks[(block + 2) % 3] + (uint32_t)(block + 1);
  }
  *x0p = x0; *x1p = x1;
}

/* bits[i] = x0 ^ x1 of threefry((k0, k1), (i >> 32, i & 0xffffffff)): jax's partitionable layout. */
static inline void mlf_rng_bits(const uint32_t* key, uint32_t* MLF_RESTRICT out, long n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (long i = 0; i < n; i++) {
    uint32_t x0 = (uint32_t)((uint64_t)i >> 32), x1 = (uint32_t)i;
    mlf_threefry2x32(key[0], key[1], &x0, &x1);
    out[i] = x0 ^ x1;
  }
}

/* ---- stable argsort: bottom-up merge sort of indices by keys ---------------------
 * Floats order NaN after everything (before, descending); -0.0 equals 0.0. */
#define MLF_DEFINE_ARGSORT(tag, T) \
  static inline int mlf_before_##tag(T a, T b, int descending) { \
    if (descending) return a > b || (a != a && b == b); \
    return a < b || (b != b && a == a); } \
  static inline void mlf_argsort_##tag(const T* keys, long n, int64_t* idx, int64_t* tmp, \
                                       int descending) { \
    for (long i = 0; i < n; i++) idx[i] = i; \
    for (long width = 1; width < n; width *= 2) { \
      for (long lo = 0; lo < n; lo += 2 * width) { \
        long mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n; \
        long i = lo, j = mid, o = lo; \
        while (i < mid && j < hi) \
          tmp[o++] = mlf_before_##tag(keys[idx[j]], keys[idx[i]], descending) ? idx[j++] : idx[i++]; \
        while (i < mid) tmp[o++] = idx[i++]; \
        while (j < hi) tmp[o++] = idx[j++]; \
      } \
      for (long i = 0; i < n; i++) idx[i] = tmp[i]; \
    } }
MLF_DEFINE_ARGSORT(i8, int8_t) MLF_DEFINE_ARGSORT(i16, int16_t) MLF_DEFINE_ARGSORT(i32, int32_t)
MLF_DEFINE_ARGSORT(i64, int64_t) MLF_DEFINE_ARGSORT(u8, uint8_t) MLF_DEFINE_ARGSORT(u16, uint16_t)
MLF_DEFINE_ARGSORT(u32, uint32_t) MLF_DEFINE_ARGSORT(u64, uint64_t) MLF_DEFINE_ARGSORT(b8, uint8_t)
MLF_DEFINE_ARGSORT(f32, float) MLF_DEFINE_ARGSORT(f64, double)

/* ---- 2-d convolution, stride 1, as an implicit GEMM -------------------------------
 * out[n, o, h, w] = sum_{c, kh, kw} W[o, c, kh, kw] * xpad[c, h + kh, w + kw].
 * With q = h * wp + w over the padded width, the input row of (c, kh, kw) is the
 * padded image shifted by c*hp*wp + kh*wp + kw: a GEMM [O] x [C*KH*KW] @ [C*KH*KW] x [ho*wp]
 * whose B rows are shifted views (columns w >= wo are computed and dropped). */
static inline void mlf_conv_tile(long mr, long kk, const float* MLF_RESTRICT A, long lda,
                                 const float* MLF_RESTRICT B, const long* MLF_RESTRICT boff,
                                 float* MLF_RESTRICT C, long ldc) {
  float acc[MLF_MR][MLF_NR];
  for (int i = 0; i < MLF_MR; i++)
    for (int j = 0; j < MLF_NR; j++) acc[i][j] = 0.0f;
  if (mr == MLF_MR) {
    for (long p = 0; p < kk; p++) {
      const float* MLF_RESTRICT b = B + boff[p];
      for (int i = 0; i < MLF_MR; i++) {
        float a = A[i * lda + p];
        for (int j = 0; j < MLF_NR; j++) acc[i][j] += a * b[j];
      }
    }
  } else {
    for (long p = 0; p < kk; p++) {
      const float* MLF_RESTRICT b = B + boff[p];
      for (long i = 0; i < mr; i++) {
        float a = A[i * lda + p];
        for (int j = 0; j < MLF_NR; j++) acc[i][j] += a * b[j];
      }
    }
  }
  for (long i = 0; i < mr; i++)
    for (int j = 0; j < MLF_NR; j++) C[i * ldc + j] = acc[i][j];
}

static inline void mlf_conv2d(long N, long Ci, long H, long W, long O, long KH, long KW, long ph,
                              long pw, long hp, long wp, long ho, long wo,
                              const float* MLF_RESTRICT x, const float* MLF_RESTRICT w,
                              float* MLF_RESTRICT out, float* MLF_RESTRICT work) {
  long kk = Ci * KH * KW, q = ho * wp, qt = (q + MLF_NR - 1) / MLF_NR, ldo = qt * MLF_NR;
  float* xpad = work;
  long xsize = Ci * hp * wp + 2 * MLF_NR + KW;
  float* opad = work + xsize;
  long boff[kk];
  for (long c = 0; c < Ci; c++)
    for (long a = 0; a < KH; a++)
      for (long b = 0; b < KW; b++) boff[(c * KH + a) * KW + b] = c * hp * wp + a * wp + b;
  long ot = (O + MLF_MR - 1) / MLF_MR;
  int parallel = O * q * kk >= 65536 * 8;
  (void)parallel;
  for (long n = 0; n < N; n++) {
    const float* xn = x + n * Ci * H * W;
    for (long i = 0; i < xsize; i++) xpad[i] = 0.0f;
    for (long c = 0; c < Ci; c++)
      for (long h = 0; h < H; h++)
        memcpy(xpad + c * hp * wp + (h + ph) * wp + pw, xn + (c * H + h) * W, W * sizeof(float));
#pragma omp parallel for schedule(static) if (parallel)
    for (long t = 0; t < qt; t++)
      for (long o = 0; o < ot; o++) {
        long mr = O - o * MLF_MR < MLF_MR ? O - o * MLF_MR : MLF_MR;
        mlf_conv_tile(mr, kk, w + o * MLF_MR * kk, kk, xpad + t * MLF_NR, boff,
                      opad + o * MLF_MR * ldo + t * MLF_NR, ldo);
      }
    float* on = out + n * O * ho * wo;
    for (long o = 0; o < O; o++)
      for (long h = 0; h < ho; h++)
        memcpy(on + (o * ho + h) * wo, opad + o * ldo + h * wp, wo * sizeof(float));
  }
}

#endif /* MLF_KERNELS_H */
