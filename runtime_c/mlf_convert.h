/* mlf_convert.h: mlf_cvt_<from>_<to>(x) for every pair of compute types.
 *
 * float to integer saturates and maps NaN to 0 (as XLA on CPU); anything to bool
 * (b8) is x != 0; every other conversion is a C cast. Written out by hand-run
 * Python (see the git log); edit the pattern, not single lines.
 */
#ifndef MLF_CONVERT_H
#define MLF_CONVERT_H

static inline uint8_t mlf_cvt_b8_b8(uint8_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_b8_i8(uint8_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_b8_i16(uint8_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_b8_i32(uint8_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_b8_i64(uint8_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_b8_u8(uint8_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_b8_u16(uint8_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_b8_u32(uint8_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_b8_u64(uint8_t x) { return (uint64_t)x; }
static inline float mlf_cvt_b8_f32(uint8_t x) { return (float)x; }
static inline double mlf_cvt_b8_f64(uint8_t x) { return (double)x; }
static inline uint8_t mlf_cvt_i8_b8(int8_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_i8_i8(int8_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_i8_i16(int8_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_i8_i32(int8_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_i8_i64(int8_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_i8_u8(int8_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_i8_u16(int8_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_i8_u32(int8_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_i8_u64(int8_t x) { return (uint64_t)x; }
static inline float mlf_cvt_i8_f32(int8_t x) { return (float)x; }
static inline double mlf_cvt_i8_f64(int8_t x) { return (double)x; }
static inline uint8_t mlf_cvt_i16_b8(int16_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_i16_i8(int16_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_i16_i16(int16_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_i16_i32(int16_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_i16_i64(int16_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_i16_u8(int16_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_i16_u16(int16_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_i16_u32(int16_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_i16_u64(int16_t x) { return (uint64_t)x; }
static inline float mlf_cvt_i16_f32(int16_t x) { return (float)x; }
static inline double mlf_cvt_i16_f64(int16_t x) { return (double)x; }
static inline uint8_t mlf_cvt_i32_b8(int32_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_i32_i8(int32_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_i32_i16(int32_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_i32_i32(int32_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_i32_i64(int32_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_i32_u8(int32_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_i32_u16(int32_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_i32_u32(int32_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_i32_u64(int32_t x) { return (uint64_t)x; }
static inline float mlf_cvt_i32_f32(int32_t x) { return (float)x; }
static inline double mlf_cvt_i32_f64(int32_t x) { return (double)x; }
static inline uint8_t mlf_cvt_i64_b8(int64_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_i64_i8(int64_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_i64_i16(int64_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_i64_i32(int64_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_i64_i64(int64_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_i64_u8(int64_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_i64_u16(int64_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_i64_u32(int64_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_i64_u64(int64_t x) { return (uint64_t)x; }
static inline float mlf_cvt_i64_f32(int64_t x) { return (float)x; }
static inline double mlf_cvt_i64_f64(int64_t x) { return (double)x; }
static inline uint8_t mlf_cvt_u8_b8(uint8_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_u8_i8(uint8_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_u8_i16(uint8_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_u8_i32(uint8_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_u8_i64(uint8_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_u8_u8(uint8_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_u8_u16(uint8_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_u8_u32(uint8_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_u8_u64(uint8_t x) { return (uint64_t)x; }
static inline float mlf_cvt_u8_f32(uint8_t x) { return (float)x; }
static inline double mlf_cvt_u8_f64(uint8_t x) { return (double)x; }
static inline uint8_t mlf_cvt_u16_b8(uint16_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_u16_i8(uint16_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_u16_i16(uint16_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_u16_i32(uint16_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_u16_i64(uint16_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_u16_u8(uint16_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_u16_u16(uint16_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_u16_u32(uint16_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_u16_u64(uint16_t x) { return (uint64_t)x; }
static inline float mlf_cvt_u16_f32(uint16_t x) { return (float)x; }
static inline double mlf_cvt_u16_f64(uint16_t x) { return (double)x; }
static inline uint8_t mlf_cvt_u32_b8(uint32_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_u32_i8(uint32_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_u32_i16(uint32_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_u32_i32(uint32_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_u32_i64(uint32_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_u32_u8(uint32_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_u32_u16(uint32_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_u32_u32(uint32_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_u32_u64(uint32_t x) { return (uint64_t)x; }
static inline float mlf_cvt_u32_f32(uint32_t x) { return (float)x; }
static inline double mlf_cvt_u32_f64(uint32_t x) { return (double)x; }
static inline uint8_t mlf_cvt_u64_b8(uint64_t x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_u64_i8(uint64_t x) { return (int8_t)x; }
static inline int16_t mlf_cvt_u64_i16(uint64_t x) { return (int16_t)x; }
static inline int32_t mlf_cvt_u64_i32(uint64_t x) { return (int32_t)x; }
static inline int64_t mlf_cvt_u64_i64(uint64_t x) { return (int64_t)x; }
static inline uint8_t mlf_cvt_u64_u8(uint64_t x) { return (uint8_t)x; }
static inline uint16_t mlf_cvt_u64_u16(uint64_t x) { return (uint16_t)x; }
static inline uint32_t mlf_cvt_u64_u32(uint64_t x) { return (uint32_t)x; }
static inline uint64_t mlf_cvt_u64_u64(uint64_t x) { return (uint64_t)x; }
static inline float mlf_cvt_u64_f32(uint64_t x) { return (float)x; }
static inline double mlf_cvt_u64_f64(uint64_t x) { return (double)x; }
static inline uint8_t mlf_cvt_f32_b8(float x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_f32_i8(float x) { return x != x ? 0 : (x <= (float)-128.0 ? (int8_t)INT8_MIN : (x >= (float)128.0 ? (int8_t)INT8_MAX : (int8_t)x)); }
static inline int16_t mlf_cvt_f32_i16(float x) { return x != x ? 0 : (x <= (float)-32768.0 ? (int16_t)INT16_MIN : (x >= (float)32768.0 ? (int16_t)INT16_MAX : (int16_t)x)); }
static inline int32_t mlf_cvt_f32_i32(float x) { return x != x ? 0 : (x <= (float)-2147483648.0 ? (int32_t)INT32_MIN : (x >= (float)2147483648.0 ? (int32_t)INT32_MAX : (int32_t)x)); }
static inline int64_t mlf_cvt_f32_i64(float x) { return x != x ? 0 : (x <= (float)-9223372036854775808.0 ? (int64_t)INT64_MIN : (x >= (float)9223372036854775808.0 ? (int64_t)INT64_MAX : (int64_t)x)); }
static inline uint8_t mlf_cvt_f32_u8(float x) { return x != x ? 0 : (x <= (float)0.0 ? (uint8_t)0 : (x >= (float)256.0 ? (uint8_t)UINT8_MAX : (uint8_t)x)); }
static inline uint16_t mlf_cvt_f32_u16(float x) { return x != x ? 0 : (x <= (float)0.0 ? (uint16_t)0 : (x >= (float)65536.0 ? (uint16_t)UINT16_MAX : (uint16_t)x)); }
static inline uint32_t mlf_cvt_f32_u32(float x) { return x != x ? 0 : (x <= (float)0.0 ? (uint32_t)0 : (x >= (float)4294967296.0 ? (uint32_t)UINT32_MAX : (uint32_t)x)); }
static inline uint64_t mlf_cvt_f32_u64(float x) { return x != x ? 0 : (x <= (float)0.0 ? (uint64_t)0 : (x >= (float)18446744073709551616.0 ? (uint64_t)UINT64_MAX : (uint64_t)x)); }
static inline float mlf_cvt_f32_f32(float x) { return (float)x; }
static inline double mlf_cvt_f32_f64(float x) { return (double)x; }
static inline uint8_t mlf_cvt_f64_b8(double x) { return (uint8_t)(x != 0); }
static inline int8_t mlf_cvt_f64_i8(double x) { return x != x ? 0 : (x <= (double)-128.0 ? (int8_t)INT8_MIN : (x >= (double)128.0 ? (int8_t)INT8_MAX : (int8_t)x)); }
static inline int16_t mlf_cvt_f64_i16(double x) { return x != x ? 0 : (x <= (double)-32768.0 ? (int16_t)INT16_MIN : (x >= (double)32768.0 ? (int16_t)INT16_MAX : (int16_t)x)); }
static inline int32_t mlf_cvt_f64_i32(double x) { return x != x ? 0 : (x <= (double)-2147483648.0 ? (int32_t)INT32_MIN : (x >= (double)2147483648.0 ? (int32_t)INT32_MAX : (int32_t)x)); }
static inline int64_t mlf_cvt_f64_i64(double x) { return x != x ? 0 : (x <= (double)-9223372036854775808.0 ? (int64_t)INT64_MIN : (x >= (double)9223372036854775808.0 ? (int64_t)INT64_MAX : (int64_t)x)); }
static inline uint8_t mlf_cvt_f64_u8(double x) { return x != x ? 0 : (x <= (double)0.0 ? (uint8_t)0 : (x >= (double)256.0 ? (uint8_t)UINT8_MAX : (uint8_t)x)); }
static inline uint16_t mlf_cvt_f64_u16(double x) { return x != x ? 0 : (x <= (double)0.0 ? (uint16_t)0 : (x >= (double)65536.0 ? (uint16_t)UINT16_MAX : (uint16_t)x)); }
static inline uint32_t mlf_cvt_f64_u32(double x) { return x != x ? 0 : (x <= (double)0.0 ? (uint32_t)0 : (x >= (double)4294967296.0 ? (uint32_t)UINT32_MAX : (uint32_t)x)); }
static inline uint64_t mlf_cvt_f64_u64(double x) { return x != x ? 0 : (x <= (double)0.0 ? (uint64_t)0 : (x >= (double)18446744073709551616.0 ? (uint64_t)UINT64_MAX : (uint64_t)x)); }
static inline float mlf_cvt_f64_f32(double x) { return (float)x; }
static inline double mlf_cvt_f64_f64(double x) { return (double)x; }

#endif /* MLF_CONVERT_H */
