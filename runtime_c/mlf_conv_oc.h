/* mlf_conv_oc.h: float32 2-d convolution of one small image, vectorized over the output
 * channels (a ResNet's 8- to 64-channel convs on 4x4 to 16x16 images, strided or not).
 *
 * out[o, i, j] = sum_{c, kh, kw} W[o, c, kh, kw] * xp[c, i*sh + kh*dh, j*sw + kw*dw]
 *
 * with xp the input zero-padded by (ph, pw) at the top and left. Vectors along an output
 * row (mlf_conv_small.h) fill 4 of 16 lanes on a 4x4 image; here a vector holds V output
 * channels (V = 8 for O <= 8, else 16; nv = ceil(O / V) <= 4 vectors, OP = nv * V) and a
 * register tile is rt output rows x wt output columns x nv vectors (at most
 * MLF_CONV_OC_ACC accumulators). For every (c, kh, kw) the tile loads its nv weight
 * vectors wk[c][kh][kw][0..OP) once and broadcasts one input pixel into each row of
 * accumulators (an FMA with a broadcast memory operand). The weights are packed
 * [C][KH][KW][OP] (zero past O) at compile time by aot/passes/weight_packing.py
 * ("oc_channels"), or per call by mlf_conv_oc_pack into the workspace. The tile is
 * transposed into NCHW as it is stored.
 *
 * mlf_conv2d_oc is always inlined: the generated kernel calls it with literal sizes, so
 * gcc unrolls the tile with constant offsets and keeps the accumulators in registers. It
 * takes one image (the kernel's loop over the batch may run in parallel: `work` then
 * holds one padded image per image). Each output sums in (c, kh, kw) order.
 * aot/passes/layouts.py mirrors the workspace size (mlf_conv_oc_work_floats).
 */
#ifndef MLF_CONV_OC_H
#define MLF_CONV_OC_H

#define MLF_OC_INLINE static inline __attribute__((always_inline, unused))
/* accumulator vectors per register tile: of 32 registers, 20 leave room for the inputs gcc
 * carries from one tap to the next (24 spilled: 8->8 channels on 8x8, 1.17 vs 0.83 us) */
#define MLF_CONV_OC_ACC 20

typedef float mlf_oc_v8 __attribute__((vector_size(32), aligned(4)));
typedef float mlf_oc_v16 __attribute__((vector_size(64), aligned(4)));

static inline long mlf_conv_oc_lanes(long O) { return O <= 8 ? 8 : 16; }
/* OP: the packed weights' channel stride, O rounded up to whole vectors */
static inline long mlf_conv_oc_width(long O) {
  return (O + mlf_conv_oc_lanes(O) - 1) / mlf_conv_oc_lanes(O) * mlf_conv_oc_lanes(O);
}
/* floats of workspace per image: the zero-padded input xp[C][hp][wp] */
static inline long mlf_conv_oc_work_floats(long C, long KH, long KW, long sh, long sw, long dh,
                                           long dw, long ho, long wo) {
  return C * ((ho - 1) * sh + (KH - 1) * dh + 1) * ((wo - 1) * sw + (KW - 1) * dw + 1);
}

/* OIHW weights -> wk[C][KH][KW][OP], zero past O (what "oc_channels" stores). */
static inline void mlf_conv_oc_pack(long O, long C, long KH, long KW, const float* MLF_RESTRICT w,
                                    float* MLF_RESTRICT wk) {
  const long OP = mlf_conv_oc_width(O), taps = C * KH * KW;
  for (long t = 0; t < taps; t++)
    for (long o = 0; o < OP; o++) wk[t * OP + o] = o < O ? w[o * taps + t] : 0.0f;
}

/* One register tile: rt rows x wt columns of output pixels (from a = xp at the tile's
 * first input pixel, out at its first output pixel) x nv vectors of V channels. */
#define MLF_CONV_OC_MICRO(V, VT)                                                                \
  MLF_OC_INLINE void mlf_conv_oc_micro##V(const long nv, const long rt, const long wt, long C,  \
      long KH, long KW, long sh, long sw, long dh, long dw, long hp, long wp, long O,           \
      const float* MLF_RESTRICT a, const float* MLF_RESTRICT wk, float* MLF_RESTRICT out,       \
      long wo, long hw) {                                                                       \
    VT acc[MLF_CONV_OC_ACC][4];                                                                 \
    const long OP = nv * V;                                                                     \
    _Pragma("GCC unroll 24") for (long p = 0; p < rt * wt; p++)                                 \
    _Pragma("GCC unroll 4") for (long v = 0; v < nv; v++) acc[p][v] = (VT){0};                  \
    for (long c = 0; c < C; c++)                                                                \
      for (long kh = 0; kh < KH; kh++)                                                          \
        for (long kw = 0; kw < KW; kw++) {                                                      \
          const float* MLF_RESTRICT xt = a + (c * hp + kh * dh) * wp + kw * dw;                 \
          const float* MLF_RESTRICT wt_ = wk + ((c * KH + kh) * KW + kw) * OP;                  \
          VT w[4];                                                                              \
          _Pragma("GCC unroll 4") for (long v = 0; v < nv; v++)                                 \
            w[v] = *(const VT*)(wt_ + v * V);                                                   \
          _Pragma("GCC unroll 24") for (long r = 0; r < rt; r++)                                \
          _Pragma("GCC unroll 24") for (long j = 0; j < wt; j++) {                              \
            const float xv = xt[r * sh * wp + j * sw];                                          \
            _Pragma("GCC unroll 4") for (long v = 0; v < nv; v++)                               \
              acc[r * wt + j][v] += xv * w[v];                                                  \
          }                                                                                     \
        }                                                                                       \
    float tile[MLF_CONV_OC_ACC * 64];                                                           \
    _Pragma("GCC unroll 24") for (long p = 0; p < rt * wt; p++)                                 \
    _Pragma("GCC unroll 4") for (long v = 0; v < nv; v++)                                       \
      *(VT*)(tile + p * OP + v * V) = acc[p][v];                                                \
    for (long o = 0; o < O; o++)                                                                \
      for (long r = 0; r < rt; r++)                                                             \
        for (long j = 0; j < wt; j++) out[o * hw + r * wo + j] = tile[(r * wt + j) * OP + o];   \
  }
MLF_CONV_OC_MICRO(8, mlf_oc_v8)
MLF_CONV_OC_MICRO(16, mlf_oc_v16)
#undef MLF_CONV_OC_MICRO

MLF_OC_INLINE void mlf_conv_oc_tile(long nv, long rt, long wt, long C, long KH, long KW, long sh,
    long sw, long dh, long dw, long hp, long wp, long O, const float* MLF_RESTRICT a,
    const float* MLF_RESTRICT wk, float* MLF_RESTRICT out, long wo, long hw) {
  if (mlf_conv_oc_lanes(O) == 8)
    mlf_conv_oc_micro8(nv, rt, wt, C, KH, KW, sh, sw, dh, dw, hp, wp, O, a, wk, out, wo, hw);
  else
    mlf_conv_oc_micro16(nv, rt, wt, C, KH, KW, sh, sw, dh, dw, hp, wp, O, a, wk, out, wo, hw);
}

/* One image: x [C][H][W], wk packed [C][KH][KW][OP] (O <= 64), out [O][ho][wo], work
 * mlf_conv_oc_work_floats floats. Padding (ph, pw) at the top and left; the bottom and
 * right padding is whatever the output size implies. */
MLF_OC_INLINE void mlf_conv2d_oc(long C, long H, long W, long O, long KH, long KW, long sh,
    long sw, long dh, long dw, long ph, long pw, long ho, long wo, const float* MLF_RESTRICT x,
    const float* MLF_RESTRICT wk, float* MLF_RESTRICT out, float* MLF_RESTRICT work) {
  const long nv = mlf_conv_oc_width(O) / mlf_conv_oc_lanes(O);
  const long hp = (ho - 1) * sh + (KH - 1) * dh + 1, wp = (wo - 1) * sw + (KW - 1) * dw + 1;
  const long wt = wo < MLF_CONV_OC_ACC / nv ? wo : MLF_CONV_OC_ACC / nv;
  const long rt = ho < MLF_CONV_OC_ACC / (nv * wt) ? ho : MLF_CONV_OC_ACC / (nv * wt);
  const long cols = W < wp - pw ? W : wp - pw; /* input columns inside xp */
  for (long r = 0; r < C * hp; r++) {
    const long h = r % hp - ph;
    float* MLF_RESTRICT row = work + r * wp;
    memset(row, 0, sizeof(float) * wp);
    if (h >= 0 && h < H && cols > 0) memcpy(row + pw, x + (r / hp * H + h) * W, sizeof(float) * cols);
  }
  const long rfull = ho / rt * rt, cfull = wo / wt * wt;
  for (long i = 0; i < ho; i += rt) {
    const float* MLF_RESTRICT a = work + i * sh * wp;
    float* MLF_RESTRICT o = out + i * wo;
    if (i < rfull) {
      for (long j = 0; j < cfull; j += wt)
        mlf_conv_oc_tile(nv, rt, wt, C, KH, KW, sh, sw, dh, dw, hp, wp, O, a + j * sw, wk,
                         o + j, wo, ho * wo);
      if (cfull < wo)
        mlf_conv_oc_tile(nv, rt, wo - cfull, C, KH, KW, sh, sw, dh, dw, hp, wp, O,
                         a + cfull * sw, wk, o + cfull, wo, ho * wo);
    } else {
      for (long j = 0; j < cfull; j += wt)
        mlf_conv_oc_tile(nv, ho - rfull, wt, C, KH, KW, sh, sw, dh, dw, hp, wp, O, a + j * sw,
                         wk, o + j, wo, ho * wo);
      if (cfull < wo)
        mlf_conv_oc_tile(nv, ho - rfull, wo - cfull, C, KH, KW, sh, sw, dh, dw, hp, wp, O,
                         a + cfull * sw, wk, o + cfull, wo, ho * wo);
    }
  }
}

#endif /* MLF_CONV_OC_H */
