/* mlf_conv.h: float32 2-d convolution, stride 1, as a direct implicit GEMM (NHWC inside).
 *
 * out[n, o, h, w] = sum_{c, kh, kw} W[o, c, kh, kw] * x[n, c, h + kh - ph, w + kw - pw]
 *
 * The input is copied once into a zero-padded NHWC image xp[n][hp*wp + KW][C]
 * and the weights into 64-channel panels wk[o/64][kh][kw][c][64] (zero-padded
 * past O). Output pixels are numbered q = h*wp + w over the *padded* width, so
 * pixel q of tap (kh, kw) reads xp[q + kh*wp + kw]: a tile of 6 consecutive
 * pixels is 6 rows C floats apart for every tap, and the K loop runs over
 * (kh, kw, c) with the 6x64 accumulator tile in registers (24 zmm), as the
 * GEMM micro-kernel does. Columns w >= wo are computed and dropped
 * (KW-1 of wp). No im2col buffer. Threads take balanced blocks of
 * (image, channel panel, pixel tile) units; each output sums in the same order
 * whatever the thread count. A 1x1 convolution is the same loop: a plain GEMM.
 */
#ifndef MLF_CONV_H
#define MLF_CONV_H

#include "mlf_conv_small.h" /* few output channels: vectors along the output row */

static inline long mlf_conv2d_work_floats(long N, long C, long O, long KH, long KW, long hp, long wp) {
  if (mlf_conv_small(O, wp - KW + 1)) return mlf_conv_small_work(N, C, O, KH, KW, hp, wp - KW + 1);
  long panels = (O + MLF_NR - 1) / MLF_NR;
  return N * (hp * wp + KW) * C + panels * KH * KW * C * MLF_NR;
}

/* One tile: mr pixels from q0 x 16*nv channels from o0; stores the valid ones into NCHW `out`. */
MLF_INLINE void mlf_conv_micro(const int mr, const int nv, long C, long KH, long KW, long wp,
                               const float* MLF_RESTRICT a, const float* MLF_RESTRICT b,
                               float* MLF_RESTRICT out, long q0, long ncols, long wo, long hw) {
  float acc[MLF_MR][MLF_NR];
  const int nw = 16 * nv;
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nw; j++) acc[i][j] = 0.0f;
  for (long kh = 0; kh < KH; kh++)
    for (long kw = 0; kw < KW; kw++) {
      const float* MLF_RESTRICT at = a + (kh * wp + kw) * C;
      const float* MLF_RESTRICT bt = b + (kh * KW + kw) * C * MLF_NR;
      for (long c = 0; c < C; c++) {
        for (int i = 0; i < mr; i++) {
          float x = at[i * C + c];
          for (int j = 0; j < nw; j++) acc[i][j] += x * bt[c * MLF_NR + j];
        }
      }
    }
  for (int i = 0; i < mr; i++) {
    long q = q0 + i, h = q / wp, w = q - h * wp;
    if (w >= wo) continue;
    for (int j = 0; j < nw; j++)
      if (j < ncols) out[j * hw + h * wo + w] = acc[i][j];
  }
}

#define MLF_CONV_CASE(m, v) \
  case (m) * 8 + (v): mlf_conv_micro(m, v, C, KH, KW, wp, a, b, out, q0, ncols, wo, hw); break;
#define MLF_CONV_ROW(m) MLF_CONV_CASE(m, 1) MLF_CONV_CASE(m, 2) MLF_CONV_CASE(m, 3) MLF_CONV_CASE(m, 4)

static __attribute__((unused, noinline)) void mlf_conv_tile(int mr, long ncols, long C, long KH, long KW, long wp,
                          const float* MLF_RESTRICT a, const float* MLF_RESTRICT b,
                          float* MLF_RESTRICT out, long q0, long wo, long hw) {
  int nv = (int)((ncols + 15) / 16);
  switch (mr * 8 + nv) {
    MLF_CONV_ROW(1) MLF_CONV_ROW(2) MLF_CONV_ROW(3)
    MLF_CONV_ROW(4) MLF_CONV_ROW(5) MLF_CONV_ROW(6)
    default: break;
  }
}

MLF_ENTRY void mlf_conv2d(long N, long C, long H, long W, long O, long KH, long KW, long ph,
    long pw, long hp, long wp, long ho, long wo, const float* MLF_RESTRICT x,
    const float* MLF_RESTRICT w, float* MLF_RESTRICT out, float* MLF_RESTRICT work) {
  long img = (hp * wp + KW) * C, panels = (O + MLF_NR - 1) / MLF_NR, taps = KH * KW;
  long q = ho * wp, qt = (q + MLF_MR - 1) / MLF_MR, units = N * panels * qt;
  float* MLF_RESTRICT xp = work;
  float* MLF_RESTRICT wk = work + N * img;
  int T = N * O * ho * wo * C * taps >= 65536L * 16 ? mlf_num_threads() : 1;
  if (mlf_conv_small(O, wo)) {
    mlf_conv2d_small(N, C, H, W, O, KH, KW, ph, pw, hp, ho, wo, x, w, out, work, T);
    return;
  }
  (void)T;
  MLF_OMP(omp parallel num_threads(T) if (T > 1))
  {
    long t = mlf_thread_index(), nt = mlf_team_size();
    long lo, hi;
    /* weights OIHW -> [o/64][kh][kw][c][64] */
    mlf_share(panels * taps * C, 1, panels * taps * C, t, nt, &lo, &hi);
    for (long r = lo; r < hi; r++) {
      long pn = r / (taps * C), tap = r / C % taps, c = r % C;
      for (long j = 0; j < MLF_NR; j++) {
        long o = pn * MLF_NR + j;
        wk[r * MLF_NR + j] = o < O ? w[(o * C + c) * taps + tap] : 0.0f;
      }
    }
    /* input NCHW -> zero-padded NHWC, one padded row (n, hrow) at a time */
    mlf_share(N * hp, 1, N * hp, t, nt, &lo, &hi);
    for (long r = lo; r < hi; r++) {
      long n = r / hp, hr = r % hp, h = hr - ph;
      float* MLF_RESTRICT row = xp + n * img + hr * wp * C;
      if (h < 0 || h >= H) {
        memset(row, 0, sizeof(float) * wp * C);
      } else {
        memset(row, 0, sizeof(float) * pw * C);
        memset(row + (pw + W) * C, 0, sizeof(float) * (wp - pw - W) * C);
        for (long c = 0; c < C; c++) {
          const float* MLF_RESTRICT src = x + ((n * C + c) * H + h) * W;
          for (long v = 0; v < W; v++) row[(pw + v) * C + c] = src[v];
        }
      }
      if (hr == hp - 1) memset(xp + n * img + hp * wp * C, 0, sizeof(float) * KW * C);
    }
    MLF_OMP(omp barrier)
    mlf_share(units, 1, units, t, nt, &lo, &hi);
    for (long u = lo; u < hi; u++) {
      long n = u / (panels * qt), pn = u / qt % panels, tq = u % qt;
      long q0 = tq * MLF_MR, mr = q - q0 < MLF_MR ? q - q0 : MLF_MR;
      long o0 = pn * MLF_NR, ncols = O - o0 < MLF_NR ? O - o0 : MLF_NR;
      mlf_conv_tile((int)mr, ncols, C, KH, KW, wp, xp + n * img + q0 * C,
                    wk + pn * taps * C * MLF_NR, out + (n * O + o0) * ho * wo, q0, wo, ho * wo);
    }
  }
}

/* Any strides and kernel dilations (a ResNet's downsampling convs): im2col + GEMM. Per
 * image the columns col[(c*KH + kh)*KW + kw][p] hold the input pixel tap (kh, kw) of
 * output pixel p reads (0 in the padding), then out[n] = W [O x C*KH*KW] @ col with the
 * register-tiled GEMM. `work` holds mlf_conv2d_im2col_work_floats floats. */
static inline long mlf_conv2d_im2col_work_floats(long O, long C, long KH, long KW, long ho,
                                                 long wo) {
  long K = C * KH * KW, P = ho * wo;
  return K * P + (mlf_sgemm_packs(O, P, K, 1) ? mlf_sgemm_work_floats(K, P) : 0);
}

MLF_ENTRY void mlf_conv2d_im2col(long N, long C, long H, long W, long O, long KH, long KW,
    long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo,
    const float* MLF_RESTRICT x, const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
    float* MLF_RESTRICT work) {
  long K = C * KH * KW, P = ho * wo;
  float* MLF_RESTRICT col = work;
  float* MLF_RESTRICT gemm_work = mlf_sgemm_packs(O, P, K, 1) ? work + K * P : 0;
  for (long n = 0; n < N; n++) {
    for (long r = 0; r < K; r++) {
      long c = r / (KH * KW), kh = r / KW % KH, kw = r % KW;
      const float* MLF_RESTRICT src = x + (n * C + c) * H * W;
      float* MLF_RESTRICT row = col + r * P;
      for (long oh = 0; oh < ho; oh++) {
        long ih = oh * sh - ph + kh * dh;
        float* MLF_RESTRICT dst = row + oh * wo;
        if (ih < 0 || ih >= H) {
          memset(dst, 0, sizeof(float) * wo);
          continue;
        }
        for (long ow = 0; ow < wo; ow++) {
          long iw = ow * sw - pw + kw * dw;
          dst[ow] = iw >= 0 && iw < W ? src[ih * W + iw] : 0.0f;
        }
      }
    }
    mlf_sgemm(O, P, K, w, K, 1, col, P, 1, out + n * O * P, P, gemm_work);
  }
}

#endif /* MLF_CONV_H */
