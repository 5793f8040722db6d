/* mlf_kernels.h: hand-written pieces that single-op kernels call: index
 * clamping, threefry-2x32 (bit-exact with jax.random.bits), a stable merge
 * argsort; mlf_conv.h adds the direct 2-d convolution, mlf_conv_oc.h the small-image one. */
#ifndef MLF_KERNELS_H
#define MLF_KERNELS_H

static inline int64_t mlf_clamp_index(int64_t i, int64_t hi) { return i < 0 ? 0 : (i > hi ? hi : i); }
/* An unsigned index (uint64 of 2**63 and above included) clamped into [0, hi]. */
static inline int64_t mlf_clamp_uindex(uint64_t i, int64_t hi) { return i > (uint64_t)hi ? hi : (int64_t)i; }
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
  MLF_OMP(omp parallel for schedule(static) if (n >= 65536))
  for (long i = 0; i < n; i++) {
    uint32_t x0 = (uint32_t)((uint64_t)i >> 32), x1 = (uint32_t)i;
    mlf_threefry2x32(key[0], key[1], &x0, &x1);
    out[i] = x0 ^ x1;
  }
}

/* XLA's total order of floats as integers: -NaN < -inf < ... < -0.0 < +0.0 < ... < NaN. */
static inline int64_t mlf_total_order_f32(float x) {
  int32_t b; memcpy(&b, &x, 4);
  return b < 0 ? -(int64_t)(b & 0x7fffffff) - 1 : (int64_t)b;
}
static inline int64_t mlf_total_order_f64(double x) {
  int64_t b; memcpy(&b, &x, 8);
  return b < 0 ? -(b & INT64_MAX) - 1 : b;
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

#ifndef MLF_RUNTIME_LINKED
#include "mlf_conv.h" /* the direct 2-d convolution */
#endif
#include "mlf_conv_oc.h" /* small images, vectors over the output channels (always inlined) */
#include "mlf_attention.h" /* fused attention: online softmax over key blocks (always inlined) */

#endif /* MLF_KERNELS_H */
