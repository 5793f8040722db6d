/* mlf_entries.h: the runtime's large entry points (GEMM, conv) as declarations only.
 *
 * The c backend's parallel build includes this instead of mlf_gemm.h, mlf_gemm_bf16.h,
 * mlf_gemm_s8.h and mlf_conv.h in its kernel and entry units (which define MLF_RUNTIME_LINKED), and
 * links the one object of mlf_runtime_unit.c that defines them: gcc compiles the GEMM
 * once per machine and flags instead of once per model. A self-contained file (an
 * `aotc export`) includes the full headers instead and never sees this one.
 */
#ifndef MLF_ENTRIES_H
#define MLF_ENTRIES_H

#include "mlf_runtime.h"

#define MLF_HIDDEN __attribute__((visibility("hidden")))

/* mlf_gemm.h */
MLF_HIDDEN int mlf_sgemm_threads(long M, long N, long K, long csa, long csb, const float* work);
MLF_HIDDEN void mlf_sgemm_part(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT B, long rsb, long csb, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work, long* r0, long* r1);
MLF_HIDDEN void mlf_sgemm(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT B, long rsb, long csb, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work);
MLF_HIDDEN void mlf_sgemm_panels(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT P, float* MLF_RESTRICT C, long ldc);
/* mlf_gemm_bf16.h */
MLF_HIDDEN void mlf_sgemm_bf16p(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const uint16_t* MLF_RESTRICT W, float* MLF_RESTRICT C, long ldc,
    float* MLF_RESTRICT work);
/* mlf_gemm_i8.h */
MLF_HIDDEN void mlf_sgemm_i8w(long M, long N, long K, const float* MLF_RESTRICT A, long rsa,
    long csa, const float* MLF_RESTRICT scales, const int8_t* MLF_RESTRICT Q,
    float* MLF_RESTRICT C, long ldc, float* MLF_RESTRICT work);
/* mlf_gemm_s8.h */
MLF_HIDDEN void mlf_gemm_s8(long M, long N, long K, const int8_t* MLF_RESTRICT A, long lda,
    const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT C, long ldc);
/* mlf_conv_s8.h */
MLF_HIDDEN void mlf_conv2d_s8(long N, long C, long H, long W, long O, long KH, long KW, long sh,
    long sw, long dh, long dw, long ph, long pw, long ho, long wo, const int8_t* MLF_RESTRICT x,
    const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT out, uint8_t* MLF_RESTRICT work);
MLF_HIDDEN void mlf_conv2d_s8_f32(long N, long C, long H, long W, long O, long KH, long KW,
    long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo,
    const float* MLF_RESTRICT x, float inv, const int8_t* MLF_RESTRICT packed,
    int32_t* MLF_RESTRICT out, uint8_t* MLF_RESTRICT work);
/* mlf_conv.h */
MLF_HIDDEN void mlf_conv2d(long N, long C, long H, long W, long O, long KH, long KW, long ph,
    long pw, long hp, long wp, long ho, long wo, const float* MLF_RESTRICT x,
    const float* MLF_RESTRICT w, float* MLF_RESTRICT out, float* MLF_RESTRICT work);
MLF_HIDDEN void mlf_conv2d_im2col(long N, long C, long H, long W, long O, long KH, long KW,
    long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo,
    const float* MLF_RESTRICT x, const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
    float* MLF_RESTRICT work);

#endif /* MLF_ENTRIES_H */
