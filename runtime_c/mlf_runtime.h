/* mlf_runtime.h: what every generated mlframework kernel file includes.
 *
 * Status codes, element types and their conversions (float16 and bfloat16 are
 * stored as uint16_t and computed in float), the scalar helpers named by the
 * op table's C expressions, and the thread-count knob. Everything is
 * `static inline`, so a generated file compiles on its own with any C99
 * compiler; OpenMP pragmas compile away where OpenMP is absent.
 */
#ifndef MLF_RUNTIME_H
#define MLF_RUNTIME_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Status codes returned by entry points. */
enum { MLF_OK = 0, MLF_ERR_NULL = 1, MLF_ERR_ALIGNMENT = 2, MLF_ERR_WEIGHTS = 3, MLF_ERR_SIZE = 5 };

#define MLF_RESTRICT __restrict__
/* Linkage of a kernel function compiled in a translation unit of its own (the c
 * backend's parallel build): visible to the entry point's unit, not outside the library. */
#define MLF_UNIT_KERNEL __attribute__((visibility("hidden")))

/* Linkage of the runtime's large entry points (GEMM, conv; mlf_entries.h lists them).
 * In a self-contained file they are static. The c backend's parallel build compiles
 * them once per machine and flags, in the runtime unit (mlf_runtime_unit.c, which
 * defines MLF_RUNTIME_UNIT), and its kernel units only declare them. */
#ifdef MLF_RUNTIME_UNIT
#define MLF_ENTRY __attribute__((visibility("hidden"), noinline))
#else
#define MLF_ENTRY static __attribute__((unused, noinline))
#endif

#define MLF_ALIGN 64
#define MLF_PARALLEL_MIN_WORK 65536 /* elements (or FLOPs/8) below which a loop stays serial */

/* ---- threads ---------------------------------------------------------- */

/* An OpenMP directive that vanishes without -fopenmp (no unknown-pragma warning):
 * MLF_OMP(omp parallel for schedule(static)) stands where `#pragma omp ...` would. */
#ifdef _OPENMP
#define MLF_OMP(...) _Pragma(#__VA_ARGS__)
#else
#define MLF_OMP(...)
#endif

/* This thread's index in its team and the team's size (0 and 1 outside a parallel
 * region or without OpenMP). */
static inline long mlf_thread_index(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

static inline long mlf_team_size(void) {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

static inline int mlf_num_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static inline void mlf_set_num_threads(int n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

/* ---- half types -------------------------------------------------------- */

static inline float mlf_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t mlf_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float mlf_load_bf16(uint16_t h) { return mlf_bits_to_f32((uint32_t)h << 16); }
static inline uint16_t mlf_store_bf16(float f) {  /* round to nearest even; NaN stays NaN */
  uint32_t u = mlf_f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* A float rounded to the half type and back: what a float16/bfloat16 op yields, so a
 * fused chain rounds after every op as XLA does. */
#define MLF_NARROW_F16(x) mlf_load_f16(mlf_store_f16(x))
#define MLF_NARROW_BF16(x) mlf_load_bf16(mlf_store_bf16(x))

#if defined(__FLT16_MAX__)
static inline float mlf_load_f16(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
static inline uint16_t mlf_store_f16(float x) { _Float16 f = (_Float16)x; uint16_t h; memcpy(&h, &f, 2); return h; }
#else  /* portable IEEE half conversion, round to nearest even */
static inline float mlf_load_f16(uint16_t h) {
  uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return mlf_bits_to_f32(s | 0x7f800000u | (m << 13));
  if (e == 0) { float r = (float)m * 5.9604644775390625e-8f; return s ? -r : r; }
  return mlf_bits_to_f32(s | ((e + 112) << 23) | (m << 13));
}
static inline uint16_t mlf_store_f16(float x) {
  uint32_t u = mlf_f32_to_bits(x), s = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00);
  if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00);
  if (a < 0x38800000u) {  /* subnormal or zero */
    float r = mlf_bits_to_f32(a) * 16777216.0f; uint32_t m = (uint32_t)r;
    float rem = r - (float)m; if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
    return (uint16_t)(s | m);
  }
  uint32_t m = a + 0xc8000fffu + ((a >> 13) & 1);
  return (uint16_t)(s | (m >> 13));
}
#endif

/* ---- integer arithmetic with XLA's edge cases (compiled with -fwrapv) ---- */

#define MLF_DEFINE_INT_COMMON(tag, T) \
  static inline T mlf_max_##tag(T x, T y) { return x > y ? x : y; } \
  static inline T mlf_min_##tag(T x, T y) { return x < y ? x : y; } \
  static inline T mlf_neg_##tag(T x) { return (T)(0 - (uint64_t)x); }

#define MLF_DEFINE_SIGNED(tag, T) MLF_DEFINE_INT_COMMON(tag, T) \
  static inline T mlf_div_##tag(T x, T y) { \
    if (y == 0) return (T)-1; \
    if (y == (T)-1) return (T)(0 - (uint64_t)x); \
    return (T)(x / y); } \
  static inline T mlf_rem_##tag(T x, T y) { return (y == 0) ? x : (y == (T)-1 ? 0 : (T)(x % y)); } \
  static inline T mlf_abs_##tag(T x) { return x < 0 ? (T)(0 - (uint64_t)x) : x; } \
  static inline T mlf_sign_##tag(T x) { return (T)((x > 0) - (x < 0)); }

#define MLF_DEFINE_UNSIGNED(tag, T) MLF_DEFINE_INT_COMMON(tag, T) \
  static inline T mlf_div_##tag(T x, T y) { return y == 0 ? (T)-1 : (T)(x / y); } \
  static inline T mlf_rem_##tag(T x, T y) { return y == 0 ? x : (T)(x % y); } \
  static inline T mlf_abs_##tag(T x) { return x; } \
  static inline T mlf_sign_##tag(T x) { return (T)(x > 0); }

MLF_DEFINE_SIGNED(i8, int8_t) MLF_DEFINE_SIGNED(i16, int16_t)
MLF_DEFINE_SIGNED(i32, int32_t) MLF_DEFINE_SIGNED(i64, int64_t)
MLF_DEFINE_UNSIGNED(u8, uint8_t) MLF_DEFINE_UNSIGNED(u16, uint16_t)
MLF_DEFINE_UNSIGNED(u32, uint32_t) MLF_DEFINE_UNSIGNED(u64, uint64_t)
MLF_DEFINE_UNSIGNED(b8, uint8_t)

/* ---- float helpers ------------------------------------------------------ */

#define MLF_DEFINE_FLOAT(tag, T, SUF, U) \
  static inline T mlf_div_##tag(T x, T y) { return x / y; } \
  static inline T mlf_rem_##tag(T x, T y) { return fmod##SUF(x, y); } \
  /* NaN if either is NaN; +0.0 is above -0.0 (as XLA). Branch-free, so that loops over \
   * random data vectorize (a branchy max pool ran 25x slower): the two orders of a \
   * compare-select differ only on NaNs and on zeros of both signs, whose bits AND (max) \
   * or OR (min) to the zero XLA gives. */ \
  static inline T mlf_max_##tag(T x, T y) { \
    T a = x > y ? x : y, b = y > x ? y : x; U ua, ub; \
    memcpy(&ua, &a, sizeof a); memcpy(&ub, &b, sizeof b); ua &= ub; memcpy(&a, &ua, sizeof a); \
    return isunordered(x, y) ? x + y : a; } \
  static inline T mlf_min_##tag(T x, T y) { \
    T a = x < y ? x : y, b = y < x ? y : x; U ua, ub; \
    memcpy(&ua, &a, sizeof a); memcpy(&ub, &b, sizeof b); ua |= ub; memcpy(&a, &ua, sizeof a); \
    return isunordered(x, y) ? x + y : a; } \
  static inline T mlf_abs_##tag(T x) { return fabs##SUF(x); } \
  static inline T mlf_neg_##tag(T x) { return -x; } \
  static inline T mlf_sign_##tag(T x) { return x > 0 ? (T)1 : (x < 0 ? (T)-1 : x); } \
  static inline int mlf_is_finite_##tag(T x) { return (x - x) == (x - x); } \
  static inline T mlf_sqrt_##tag(T x) { return sqrt##SUF(x); } \
  static inline T mlf_rsqrt_##tag(T x) { return (T)1 / sqrt##SUF(x); } \
  static inline T mlf_floor_##tag(T x) { return floor##SUF(x); } \
  static inline T mlf_ceil_##tag(T x) { return ceil##SUF(x); } \
  static inline T mlf_round_##tag(T x) { return rint##SUF(x); } \
  static inline T mlf_sin_##tag(T x) { return sin##SUF(x); } \
  static inline T mlf_cos_##tag(T x) { return cos##SUF(x); } \
  static inline T mlf_expm1_##tag(T x) { return expm1##SUF(x); } \
  static inline T mlf_log1p_##tag(T x) { return log1p##SUF(x); } \
  /* pow, also where gcc's vectorizer turns pow(x, 0.5) into sqrt(x): -0 and -inf keep \
   * pow's +0 and +inf. */ \
  static inline T mlf_pow_##tag(T x, T y) { \
    T r = pow##SUF(x, y); \
    return y == (T)0.5 ? (x == 0 ? (T)0 : (x == -(T)INFINITY ? (T)INFINITY : r)) : r; } \
  static inline T mlf_atan2_##tag(T x, T y) { return atan2##SUF(x, y); } \
  static inline int mlf_is_inf_##tag(T x) { return x == (T)INFINITY || x == -(T)INFINITY; } \
  static inline T mlf_tan_##tag(T x) { return tan##SUF(x); } \
  static inline T mlf_asin_##tag(T x) { return asin##SUF(x); } \
  static inline T mlf_acos_##tag(T x) { return acos##SUF(x); } \
  static inline T mlf_atan_##tag(T x) { return atan##SUF(x); } \
  static inline T mlf_sinh_##tag(T x) { return sinh##SUF(x); } \
  static inline T mlf_cosh_##tag(T x) { return cosh##SUF(x); } \
  static inline T mlf_asinh_##tag(T x) { return asinh##SUF(x); } \
  static inline T mlf_acosh_##tag(T x) { return acosh##SUF(x); } \
  static inline T mlf_atanh_##tag(T x) { return atanh##SUF(x); } \
  static inline T mlf_cbrt_##tag(T x) { return cbrt##SUF(x); } \
  static inline T mlf_exp2_##tag(T x) { return exp2##SUF(x); } \
  static inline T mlf_log2_##tag(T x) { return log2##SUF(x); } \
  /* +inf at the poles (0, -1, -2, ...) and at -inf, as XLA */ \
  static inline T mlf_lgamma_##tag(T x) { return lgamma##SUF(x); } \
  /* log(e**x + e**y) without overflow; -inf + -inf and inf + inf stay as they are */ \
  static inline T mlf_logaddexp_##tag(T x, T y) { \
    T m = mlf_max_##tag(x, y), d = x - y; \
    return d != d ? x + y : m + log1p##SUF(exp##SUF(-fabs##SUF(d))); }
MLF_DEFINE_FLOAT(f32, float, f, uint32_t)
MLF_DEFINE_FLOAT(f64, double, , uint64_t)

#include "mlf_math.h"
#include "mlf_convert.h"
#include "mlf_bits.h"

#endif /* MLF_RUNTIME_H */
