/* mlf_bits.h: bitwise and shift helpers, bit casts and nextafter, with XLA's edge cases.
 *
 * Shift amounts are read as unsigned (a negative amount is a huge one): from the bit
 * width on, shift_left and shift_right_logical give 0 and shift_right_arithmetic the
 * sign fill, as XLA. Bit casts go through each type's bits (`mlf_bits_<tag>`,
 * `mlf_from_bits_<tag>`; half types are computed in float and keep their uint16_t bits).
 */
#ifndef MLF_BITS_H
#define MLF_BITS_H

/* tag, type, unsigned type, signed type, bit width */
#define MLF_DEFINE_INT_BITS(tag, T, U, S, W) \
  static inline T mlf_not_##tag(T x) { return (T)~(U)x; } \
  static inline T mlf_shl_##tag(T x, T y) { \
    return (U)y >= (U)W ? (T)0 : (T)((U)((U)x << (U)y)); } \
  static inline T mlf_shr_logical_##tag(T x, T y) { \
    return (U)y >= (U)W ? (T)0 : (T)((U)x >> (U)y); } \
  static inline T mlf_shr_arithmetic_##tag(T x, T y) { \
    return (T)((S)x >> ((U)y >= (U)W ? W - 1 : (int)(U)y)); } \
  static inline T mlf_popcount_##tag(T x) { return (T)__builtin_popcountll((U)x); } \
  static inline T mlf_clz_##tag(T x) { \
    return (U)x == 0 ? (T)W : (T)(__builtin_clzll((U)x) - (64 - W)); } \
  static inline U mlf_bits_##tag(T x) { return (U)x; } \
  static inline T mlf_from_bits_##tag(U u) { return (T)u; }

MLF_DEFINE_INT_BITS(i8, int8_t, uint8_t, int8_t, 8)
MLF_DEFINE_INT_BITS(i16, int16_t, uint16_t, int16_t, 16)
MLF_DEFINE_INT_BITS(i32, int32_t, uint32_t, int32_t, 32)
MLF_DEFINE_INT_BITS(i64, int64_t, uint64_t, int64_t, 64)
MLF_DEFINE_INT_BITS(u8, uint8_t, uint8_t, int8_t, 8)
MLF_DEFINE_INT_BITS(u16, uint16_t, uint16_t, int16_t, 16)
MLF_DEFINE_INT_BITS(u32, uint32_t, uint32_t, int32_t, 32)
MLF_DEFINE_INT_BITS(u64, uint64_t, uint64_t, int64_t, 64)

/* bool: not is logical; its bits are 0 or 1 */
static inline uint8_t mlf_not_b8(uint8_t x) { return (uint8_t)!x; }
static inline uint8_t mlf_bits_b8(uint8_t x) { return x; }
static inline uint8_t mlf_from_bits_b8(uint8_t u) { return u; }

static inline uint32_t mlf_bits_f32(float x) { return mlf_f32_to_bits(x); }
static inline float mlf_from_bits_f32(uint32_t u) { return mlf_bits_to_f32(u); }
static inline uint64_t mlf_bits_f64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double mlf_from_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint16_t mlf_bits_f16(float x) { return mlf_store_f16(x); }
static inline float mlf_from_bits_f16(uint16_t u) { return mlf_load_f16(u); }
static inline uint16_t mlf_bits_bf16(float x) { return mlf_store_bf16(x); }
static inline float mlf_from_bits_bf16(uint16_t u) { return mlf_load_bf16(u); }

/* bitcast between two tags of equal width: mlf_bitcast_f32_i32(x) and so on */
#define mlf_bitcast(S, T, x) mlf_from_bits_##T(mlf_bits_##S(x))
#define MLF_DEFINE_BITCAST(S, CS, T, CT) \
  static inline CT mlf_bitcast_##S##_##T(CS x) { return mlf_bitcast(S, T, x); }
#define MLF_DEFINE_BITCASTS_4(A, CA, B, CB, C, CC, D, CD) \
  MLF_DEFINE_BITCAST(A, CA, A, CA) MLF_DEFINE_BITCAST(A, CA, B, CB) \
  MLF_DEFINE_BITCAST(A, CA, C, CC) MLF_DEFINE_BITCAST(A, CA, D, CD) \
  MLF_DEFINE_BITCAST(B, CB, A, CA) MLF_DEFINE_BITCAST(B, CB, B, CB) \
  MLF_DEFINE_BITCAST(B, CB, C, CC) MLF_DEFINE_BITCAST(B, CB, D, CD) \
  MLF_DEFINE_BITCAST(C, CC, A, CA) MLF_DEFINE_BITCAST(C, CC, B, CB) \
  MLF_DEFINE_BITCAST(C, CC, C, CC) MLF_DEFINE_BITCAST(C, CC, D, CD) \
  MLF_DEFINE_BITCAST(D, CD, A, CA) MLF_DEFINE_BITCAST(D, CD, B, CB) \
  MLF_DEFINE_BITCAST(D, CD, C, CC) MLF_DEFINE_BITCAST(D, CD, D, CD)
MLF_DEFINE_BITCAST(b8, uint8_t, b8, uint8_t)
MLF_DEFINE_BITCAST(i8, int8_t, i8, int8_t) MLF_DEFINE_BITCAST(i8, int8_t, u8, uint8_t)
MLF_DEFINE_BITCAST(u8, uint8_t, i8, int8_t) MLF_DEFINE_BITCAST(u8, uint8_t, u8, uint8_t)
MLF_DEFINE_BITCASTS_4(i16, int16_t, u16, uint16_t, f16, float, bf16, float)
MLF_DEFINE_BITCAST(i32, int32_t, i32, int32_t) MLF_DEFINE_BITCAST(i32, int32_t, u32, uint32_t)
MLF_DEFINE_BITCAST(i32, int32_t, f32, float) MLF_DEFINE_BITCAST(u32, uint32_t, i32, int32_t)
MLF_DEFINE_BITCAST(u32, uint32_t, u32, uint32_t) MLF_DEFINE_BITCAST(u32, uint32_t, f32, float)
MLF_DEFINE_BITCAST(f32, float, i32, int32_t) MLF_DEFINE_BITCAST(f32, float, u32, uint32_t)
MLF_DEFINE_BITCAST(f32, float, f32, float)
MLF_DEFINE_BITCAST(i64, int64_t, i64, int64_t) MLF_DEFINE_BITCAST(i64, int64_t, u64, uint64_t)
MLF_DEFINE_BITCAST(i64, int64_t, f64, double) MLF_DEFINE_BITCAST(u64, uint64_t, i64, int64_t)
MLF_DEFINE_BITCAST(u64, uint64_t, u64, uint64_t) MLF_DEFINE_BITCAST(u64, uint64_t, f64, double)
MLF_DEFINE_BITCAST(f64, double, i64, int64_t) MLF_DEFINE_BITCAST(f64, double, u64, uint64_t)
MLF_DEFINE_BITCAST(f64, double, f64, double)

/* nextafter of the half types, on their bits: x is a value of the type, computed in float */
#define MLF_DEFINE_HALF_NEXTAFTER(tag) \
  static inline float mlf_nextafter_##tag(float x, float y) { \
    if (x != x || y != y) return x + y; \
    if (x == y) return y; \
    uint16_t h = mlf_bits_##tag(x); \
    if (x == 0) h = (uint16_t)((y > 0 ? 0 : 0x8000) | 1); \
    else if ((y > x) == (x > 0)) h++; \
    else h--; \
    return mlf_from_bits_##tag(h); }
MLF_DEFINE_HALF_NEXTAFTER(f16)
MLF_DEFINE_HALF_NEXTAFTER(bf16)
static inline float mlf_nextafter_f32(float x, float y) { return nextafterf(x, y); }
static inline double mlf_nextafter_f64(double x, double y) { return nextafter(x, y); }

#endif /* MLF_BITS_H */
