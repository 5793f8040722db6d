/* mlf_conv_s8.h: out[N,O,ho,wo] (int32) = the 2-d convolution of x[N,C,H,W] (int8) with
 * int8 weights [O,C,KH,KW], exactly, for `aotc export --quantize int8` (one group, strides
 * sh, sw, kernel dilations dh, dw, low padding ph, pw, zeros outside x).
 *
 * The whole batch is one GEMM, out[n][o][p] = sum_k W[o][k] * patch[n][k][p], run in one
 * parallel region (threads take whole images, or the pixel tiles of every image when there
 * are fewer images than threads). Each image is
 *  1. padded once into its workspace slab, shifted to unsigned (q + 128 = q ^ 0x80, so the
 *     padding is 0x80): rows of Wp = (wo-1)*sw + (KW-1)*dw + 1 bytes, Hp rows per channel;
 *  2. unrolled (im2col) into its patch matrix [G][PQ][4]: G = ceil(K / 4) groups of 4
 *     consecutive k = (c, ky, kx), PQ >= P + 15 pixels (P = ho * wo) a group, so that 16
 *     pixels of one group are one 64-byte vector of 4-byte words;
 *  3. multiplied: vpdpbusd of those unsigned words by each output channel's 4 weights
 *     broadcast (AVX-512 VNNI: up to 6 channels x 64 pixels in 24 zmm accumulators; AVX-VNNI:
 *     6 x 16 in ymm), minus the shift's share comp[o] = 128 * sum_k W[o][k]; a portable
 *     loop over the same layout otherwise. All are exact (K < 65793: see mlf_gemm_s8.h).
 * The output's NCHW layout is the GEMM's [O][P] per image: nothing is transposed.
 *
 * The packed weights ("s8_conv_rows", aot/passes/weight_packing.py): int32 comp[O], then
 * int8 rows [O][4G] (zeros past K). The workspace: mlf_conv2d_s8_work_bytes.
 */
#ifndef MLF_CONV_S8_H
#define MLF_CONV_S8_H

#include "mlf_gemm_s8.h"

/* -DMLF_NO_VNNI forces the portable code in every step (so the tests run it on x86 too) */
#if defined(__AVX512BW__) && !defined(MLF_NO_VNNI)
#include <immintrin.h>
#define MLF_S8C_PAD512 1
#endif
#if defined(__SSE2__) && !defined(MLF_NO_VNNI)
#include <emmintrin.h>
#define MLF_S8C_SSE2 1
#endif

#define MLF_S8C_MR 6  /* output channels per register tile */
#define MLF_S8C_NP 64 /* pixels per tile */

/* The geometry every step shares. */
typedef struct {
  long C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo;
  long Hp, Wp, K, G, P, PQ, xbytes, slab;
} mlf_s8c_geom;

static inline mlf_s8c_geom mlf_s8c_geometry(long C, long H, long W, long O, long KH, long KW,
    long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo) {
  mlf_s8c_geom g = {C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo, 0, 0, 0, 0, 0, 0, 0, 0};
  g.Hp = (ho - 1) * sh + (KH - 1) * dh + 1;
  g.Wp = (wo - 1) * sw + (KW - 1) * dw + 1;
  g.K = C * KH * KW;
  g.G = (g.K + 3) / 4;
  g.P = ho * wo;
  g.PQ = (g.P + 15 + MLF_S8C_NP - 1) / MLF_S8C_NP * MLF_S8C_NP;
  g.xbytes = (C * g.Hp * g.Wp + 64 + 63) / 64 * 64; /* 64 bytes of slack: 16-byte reads */
  g.slab = g.xbytes + g.G * g.PQ * 4;
  return g;
}

/* Bytes of `work` mlf_conv2d_s8 needs: one slab (padded image, then its patches) per image. */
static inline long mlf_conv2d_s8_work_bytes(long N, long C, long H, long W, long O, long KH,
    long KW, long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo) {
  return N * mlf_s8c_geometry(C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo).slab;
}

/* x -> round(x * inv) (ties to even) clamped to [-127, 127], NaN -> 0: the quantize step
 * of aot/passes/quantization.py, bit for bit. */
static inline int8_t mlf_s8c_quantize(float x, float inv) {
  float v = rintf(x * inv);
  v = v > 127.0f ? 127.0f : v;
  v = v < -127.0f ? -127.0f : v;
  return v == v ? (int8_t)v : 0;
}

/* Row iy of channel c of image n, as int8: x's own (xf == 0), or xf's quantized into `tmp`. */
static inline const int8_t* mlf_s8c_row(const mlf_s8c_geom* g, const int8_t* MLF_RESTRICT x,
    const float* MLF_RESTRICT xf, float inv, long n, long c, long iy, long cols,
    int8_t* MLF_RESTRICT tmp) {
  const long at = ((n * g->C + c) * g->H + iy) * g->W;
  if (!xf) return x + at;
  for (long ix = 0; ix < cols; ix++) tmp[ix] = mlf_s8c_quantize(xf[at + ix], inv);
  return tmp;
}

/* Step 1: image n of x (int8 [N,C,H,W]; or of float xf, quantized with inv) padded and
 * shifted into xp [C][Hp][Wp] (+ 64 bytes of slack). */
static inline void mlf_s8c_pad(const mlf_s8c_geom* g, const int8_t* MLF_RESTRICT x,
                               const float* MLF_RESTRICT xf, float inv, long n,
                               uint8_t* MLF_RESTRICT xp) {
  const long cols = g->W < g->Wp - g->pw ? g->W : g->Wp - g->pw, Wp = g->Wp;
  if (cols <= 0) {
    memset(xp, 0x80, (size_t)g->xbytes);
    return;
  }
#if defined(MLF_S8C_PAD512)
  if (Wp <= 64) { /* a row a step: masked load (zeros, so 0x80, outside the row) */
    int8_t tmp[128];
    const __mmask64 row = (__mmask64)(~0ULL >> (64 - Wp));
    const __mmask64 data = (__mmask64)((~0ULL >> (64 - cols)) << g->pw);
    const __m512i shift = _mm512_set1_epi8(-128);
    for (long c = 0; c < g->C; c++)
      for (long y = 0; y < g->Hp; y++) {
        const long iy = y - g->ph;
        __m512i v = _mm512_setzero_si512();
        if (iy >= 0 && iy < g->H) /* the row at tmp + 64 - pw or x - pw: bits below pw off */
          v = _mm512_maskz_loadu_epi8(data, mlf_s8c_row(g, x, xf, inv, n, c, iy, cols,
                                                         tmp + 64) - g->pw);
        _mm512_mask_storeu_epi8(xp + (c * g->Hp + y) * Wp, row, _mm512_xor_si512(v, shift));
      }
    _mm512_storeu_si512(xp + g->C * g->Hp * Wp, shift);
    return;
  }
#endif
  memset(xp, 0x80, (size_t)g->xbytes);
  for (long c = 0; c < g->C; c++)
    for (long iy = 0; iy < g->H && iy + g->ph < g->Hp; iy++) {
      uint8_t* MLF_RESTRICT dst = xp + (c * g->Hp + iy + g->ph) * Wp + g->pw;
      const long at = ((n * g->C + c) * g->H + iy) * g->W;
      if (xf)
        for (long ix = 0; ix < cols; ix++)
          dst[ix] = (uint8_t)((uint8_t)mlf_s8c_quantize(xf[at + ix], inv) ^ 0x80u);
      else
        for (long ix = 0; ix < cols; ix++) dst[ix] = (uint8_t)((uint8_t)x[at + ix] ^ 0x80u);
    }
}

/* 16 bytes of tap `src` at `at`, or the shift (0x80) for a tap past K (its weights are 0). */
#if defined(MLF_S8C_SSE2)
static inline __m128i mlf_s8c_tap(const uint8_t* MLF_RESTRICT src, long at) {
  return src ? _mm_loadu_si128((const __m128i*)(const void*)(src + at)) : _mm_set1_epi8(-128);
}
#endif

/* Step 2: the patches [G][PQ][4] of padded image xp. */
static inline void mlf_s8c_im2col(const mlf_s8c_geom* g, const uint8_t* MLF_RESTRICT xp,
                                  uint8_t* MLF_RESTRICT col) {
  for (long grp = 0; grp < g->G; grp++) {
    const uint8_t* MLF_RESTRICT src[4];
    for (long t = 0; t < 4; t++) {
      const long k = 4 * grp + t, kx = k % g->KW, ky = k / g->KW % g->KH, c = k / g->KW / g->KH;
      src[t] = k < g->K ? xp + (c * g->Hp + ky * g->dh) * g->Wp + kx * g->dw : 0;
    }
    uint8_t* MLF_RESTRICT dst = col + grp * g->PQ * 4;
    for (long oy = 0; oy < g->ho; oy++) {
      const long row = oy * g->sh * g->Wp;
      uint8_t* MLF_RESTRICT d = dst + oy * g->wo * 4;
#if defined(MLF_S8C_SSE2)
      /* 16 pixels a step: 16 bytes of each of the 4 taps, interleaved into 16 words (the
       * last step of a row may write past it: the next row, or pixels P.. of PQ, follow) */
      if (g->sw == 1) {
        for (long ox = 0; ox < g->wo; ox += 16) {
          const __m128i r0 = mlf_s8c_tap(src[0], row + ox), r1 = mlf_s8c_tap(src[1], row + ox);
          const __m128i r2 = mlf_s8c_tap(src[2], row + ox), r3 = mlf_s8c_tap(src[3], row + ox);
          const __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpackhi_epi8(r0, r1);
          const __m128i c = _mm_unpacklo_epi8(r2, r3), e = _mm_unpackhi_epi8(r2, r3);
          __m128i* MLF_RESTRICT q = (__m128i*)(void*)(d + 4 * ox);
          _mm_storeu_si128(q, _mm_unpacklo_epi16(a, c));
          _mm_storeu_si128(q + 1, _mm_unpackhi_epi16(a, c));
          _mm_storeu_si128(q + 2, _mm_unpacklo_epi16(b, e));
          _mm_storeu_si128(q + 3, _mm_unpackhi_epi16(b, e));
        }
        continue;
      }
#endif
      for (long t = 0; t < 4; t++) {
        const uint8_t* MLF_RESTRICT s = src[t];
        if (s)
          for (long ox = 0; ox < g->wo; ox++) d[4 * ox + t] = s[row + ox * g->sw];
        else
          for (long ox = 0; ox < g->wo; ox++) d[4 * ox + t] = 0x80;
      }
    }
  }
}

/* Step 3, one tile: channels [0, mr) x pixels [0, w) (w <= 16 nv <= 64) of one image's
 * patches col (PQ pixels a group) times weight rows wr (4G bytes each) into out (P apart per
 * channel). */
static inline __attribute__((always_inline)) void mlf_s8c_tile(
    const int mr, const int nv, long G, long PQ, const uint8_t* MLF_RESTRICT col,
    const int8_t* MLF_RESTRICT wr, const int32_t* MLF_RESTRICT comp, int32_t* MLF_RESTRICT out,
    long P, long w) {
#if MLF_S8_VNNI == 512
  __m512i acc[MLF_S8C_MR][4];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_si512();
  for (long grp = 0; grp < G; grp++) {
    const uint8_t* MLF_RESTRICT a = col + grp * PQ * 4;
    __m512i av[4];
    for (int j = 0; j < nv; j++) av[j] = _mm512_loadu_si512(a + 64 * j);
    for (int i = 0; i < mr; i++) {
      int32_t word;
      memcpy(&word, wr + (i * G + grp) * 4, 4);
      const __m512i b = _mm512_set1_epi32(word);
      for (int j = 0; j < nv; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av[j], b);
    }
  }
  for (int i = 0; i < mr; i++) {
    const __m512i shift = _mm512_set1_epi32(comp[i]);
    for (int j = 0; j < nv; j++) {
      const long left = w - 16 * j;
      const __mmask16 keep = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
      _mm512_mask_storeu_epi32(out + i * P + 16 * j, keep, _mm512_sub_epi32(acc[i][j], shift));
    }
  }
#elif MLF_S8_VNNI == 256
  /* 16 ymm registers: 16 pixels at a time, mr x 2 accumulators */
  (void)nv;
  for (long j = 0; j < w; j += 16) {
    __m256i acc[MLF_S8C_MR][2];
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (long grp = 0; grp < G; grp++) {
      const uint8_t* MLF_RESTRICT a = col + (grp * PQ + j) * 4;
      const __m256i a0 = _mm256_loadu_si256((const __m256i*)(const void*)a);
      const __m256i a1 = _mm256_loadu_si256((const __m256i*)(const void*)(a + 32));
      for (int i = 0; i < mr; i++) {
        int32_t word;
        memcpy(&word, wr + (i * G + grp) * 4, 4);
        const __m256i b = _mm256_set1_epi32(word);
        acc[i][0] = mlf_dpbusd256(acc[i][0], a0, b);
        acc[i][1] = mlf_dpbusd256(acc[i][1], a1, b);
      }
    }
    for (int i = 0; i < mr; i++) {
      int32_t lanes[16];
      const __m256i shift = _mm256_set1_epi32(comp[i]);
      _mm256_storeu_si256((__m256i*)(void*)lanes, _mm256_sub_epi32(acc[i][0], shift));
      _mm256_storeu_si256((__m256i*)(void*)(lanes + 8), _mm256_sub_epi32(acc[i][1], shift));
      memcpy(out + i * P + j, lanes, (size_t)(w - j < 16 ? w - j : 16) * sizeof(int32_t));
    }
  }
#else
  (void)nv;
  int32_t acc[MLF_S8C_MR][MLF_S8C_NP];
  for (int i = 0; i < mr; i++)
    for (int c = 0; c < MLF_S8C_NP; c++) acc[i][c] = 0;
  for (long grp = 0; grp < G; grp++) {
    const uint8_t* MLF_RESTRICT a = col + grp * PQ * 4;
    for (int i = 0; i < mr; i++) {
      const int8_t* MLF_RESTRICT b = wr + (i * G + grp) * 4;
      for (int c = 0; c < MLF_S8C_NP; c++)
        acc[i][c] += (int32_t)a[4 * c] * b[0] + (int32_t)a[4 * c + 1] * b[1]
                     + (int32_t)a[4 * c + 2] * b[2] + (int32_t)a[4 * c + 3] * b[3];
    }
  }
  for (int i = 0; i < mr; i++)
    for (long c = 0; c < w; c++) out[i * P + c] = acc[i][c] - comp[i];
#endif
}

/* Step 3 for one tile of w <= 16 nv pixels at col, every channel. */
static inline __attribute__((always_inline)) void mlf_s8c_channels(
    const int nv, long O, long G, long PQ, const uint8_t* MLF_RESTRICT col,
    const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT out, long P, long w) {
  const int32_t* MLF_RESTRICT comp = (const int32_t*)(const void*)packed;
  const int8_t* MLF_RESTRICT rows = packed + 4 * O;
  long o = 0;
  for (; o + MLF_S8C_MR <= O; o += MLF_S8C_MR)
    mlf_s8c_tile(MLF_S8C_MR, nv, G, PQ, col, rows + o * 4 * G, comp + o, out + o * P, P, w);
  const int8_t* MLF_RESTRICT wr = rows + o * 4 * G;
  switch (O - o) {
    case 5: mlf_s8c_tile(5, nv, G, PQ, col, wr, comp + o, out + o * P, P, w); break;
    case 4: mlf_s8c_tile(4, nv, G, PQ, col, wr, comp + o, out + o * P, P, w); break;
    case 3: mlf_s8c_tile(3, nv, G, PQ, col, wr, comp + o, out + o * P, P, w); break;
    case 2: mlf_s8c_tile(2, nv, G, PQ, col, wr, comp + o, out + o * P, P, w); break;
    case 1: mlf_s8c_tile(1, nv, G, PQ, col, wr, comp + o, out + o * P, P, w); break;
    default: break;
  }
}

/* Step 3: pixels [p0, p1) of one image, every channel (a tile's vectors past p1 skipped). */
static inline void mlf_s8c_gemm(const mlf_s8c_geom* g, const uint8_t* MLF_RESTRICT col,
                                const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT out,
                                long p0, long p1) {
  for (long p = p0; p < p1; p += MLF_S8C_NP) {
    const long w = p1 - p < MLF_S8C_NP ? p1 - p : MLF_S8C_NP;
    const uint8_t* MLF_RESTRICT a = col + 4 * p;
    switch ((w + 15) / 16) {
      case 4: mlf_s8c_channels(4, g->O, g->G, g->PQ, a, packed, out + p, g->P, w); break;
      case 3: mlf_s8c_channels(3, g->O, g->G, g->PQ, a, packed, out + p, g->P, w); break;
      case 2: mlf_s8c_channels(2, g->O, g->G, g->PQ, a, packed, out + p, g->P, w); break;
      default: mlf_s8c_channels(1, g->O, g->G, g->PQ, a, packed, out + p, g->P, w); break;
    }
  }
}

/* Steps 1 and 2 for image n into `slab`. */
static inline void mlf_s8c_unroll(const mlf_s8c_geom* g, const int8_t* MLF_RESTRICT x,
                                  const float* MLF_RESTRICT xf, float inv, long n,
                                  uint8_t* MLF_RESTRICT slab) {
  mlf_s8c_pad(g, x, xf, inv, n, slab);
  mlf_s8c_im2col(g, slab, slab + g->xbytes);
}

/* The convolution of int8 x, or of float xf quantized with inv on the way (x == 0). */
static inline void mlf_s8c_conv(const mlf_s8c_geom* g, long N, const int8_t* MLF_RESTRICT x,
                                const float* MLF_RESTRICT xf, float inv,
                                const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT out,
                                uint8_t* MLF_RESTRICT work) {
  const long O = g->O, P = g->P, slab = g->slab, xbytes = g->xbytes;
  if (N == 0 || P == 0 || O == 0) return;
  const int T = N * P * O * g->K >= 64L * 64 * 256 ? mlf_num_threads() : 1;
  if (T == 1) {
    for (long n = 0; n < N; n++) {
      mlf_s8c_unroll(g, x, xf, inv, n, work);
      mlf_s8c_gemm(g, work + xbytes, packed, out + n * O * P, 0, P);
    }
    return;
  }
  MLF_OMP(omp parallel num_threads(T))
  {
    const long t = mlf_thread_index(), nt = mlf_team_size();
    if (N >= nt) { /* whole images: slab t serves this thread's */
      long lo, hi;
      mlf_share(N, 1, N, t, nt, &lo, &hi);
      for (long n = lo; n < hi; n++) {
        mlf_s8c_unroll(g, x, xf, inv, n, work + t * slab);
        mlf_s8c_gemm(g, work + t * slab + xbytes, packed, out + n * O * P, 0, P);
      }
    } else { /* fewer images than threads: every image unrolled, then the pixel tiles shared */
      for (long n = t; n < N; n += nt) mlf_s8c_unroll(g, x, xf, inv, n, work + n * slab);
      MLF_OMP(omp barrier)
      const long tiles = (P + MLF_S8C_NP - 1) / MLF_S8C_NP;
      long lo, hi;
      mlf_share(N * tiles, 1, N * tiles, t, nt, &lo, &hi);
      for (long u = lo; u < hi; u++) {
        const long n = u / tiles, p = u % tiles * MLF_S8C_NP;
        mlf_s8c_gemm(g, work + n * slab + xbytes, packed, out + n * O * P, p,
                     p + MLF_S8C_NP < P ? p + MLF_S8C_NP : P);
      }
    }
  }
}

/* The convolution above of int8 x: work holds mlf_conv2d_s8_work_bytes. */
MLF_ENTRY void mlf_conv2d_s8(long N, long C, long H, long W, long O, long KH, long KW, long sh,
    long sw, long dh, long dw, long ph, long pw, long ho, long wo, const int8_t* MLF_RESTRICT x,
    const int8_t* MLF_RESTRICT packed, int32_t* MLF_RESTRICT out, uint8_t* MLF_RESTRICT work) {
  const mlf_s8c_geom g = mlf_s8c_geometry(C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo);
  mlf_s8c_conv(&g, N, x, 0, 0.0f, packed, out, work);
}

/* The same of float32 x, quantized to round(x * inv) in [-127, 127] while it is padded
 * (the int8 activations are never a buffer of their own). */
MLF_ENTRY void mlf_conv2d_s8_f32(long N, long C, long H, long W, long O, long KH, long KW,
    long sh, long sw, long dh, long dw, long ph, long pw, long ho, long wo,
    const float* MLF_RESTRICT x, float inv, const int8_t* MLF_RESTRICT packed,
    int32_t* MLF_RESTRICT out, uint8_t* MLF_RESTRICT work) {
  const mlf_s8c_geom g = mlf_s8c_geometry(C, H, W, O, KH, KW, sh, sw, dh, dw, ph, pw, ho, wo);
  mlf_s8c_conv(&g, N, 0, x, inv, packed, out, work);
}

#endif /* MLF_CONV_S8_H */
