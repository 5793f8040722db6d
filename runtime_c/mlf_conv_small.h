/* mlf_conv_small.h: stride-1 float32 2-d convolution for few output channels (LeNet's
 * 1->6 and 6->16, 5x5), vectorized along the output row instead of the channels.
 *
 * The 64-channel tiles of mlf_conv2d waste 58 of 64 lanes at O = 6. Here a register
 * tile is `ot` output channels x one output row of wo <= 64 pixels (nv 16-lane
 * vectors): for every (c, kh, kw) it loads nv vectors of a zero-padded input row
 * xp[n][c][hp][wr] at offset kw and broadcasts one weight per channel
 * (W[o][c][kh][kw] read in place, no packing). Threads take blocks of
 * (image, channel tile, output row) units; each output sums in (c, kh, kw) order
 * whatever the thread count.
 */
#ifndef MLF_CONV_SMALL_H
#define MLF_CONV_SMALL_H

#define MLF_CONV_SMALL_MAX_O 16 /* use this path for O <= 16 and wo <= 64 */

static inline int mlf_conv_small(long O, long wo) { return O <= MLF_CONV_SMALL_MAX_O && wo <= 64; }
/* Narrow outputs with wide kernels (weight gradients: 5x5 out, 10x10 or 28x28 "kernel"):
 * vectorize along kw instead (the reduction), see mlf_convs_kv_micro. */
static inline int mlf_conv_small_kv(long wo, long KW) { return wo < 16 && KW >= 8; }
static inline long mlf_conv_small_kwp(long KW) { return (KW + 15) / 16 * 16; }
static inline long mlf_conv_small_wr(long wo, long KW) {
  return mlf_conv_small_kv(wo, KW) ? wo - 1 + mlf_conv_small_kwp(KW) : (wo + 15) / 16 * 16 + KW - 1;
}
/* floats of workspace: padded input rows, plus kw-padded weights on the kv path */
static inline long mlf_conv_small_work(long N, long C, long O, long KH, long KW, long hp, long wo) {
  return N * C * hp * mlf_conv_small_wr(wo, KW) +
         (mlf_conv_small_kv(wo, KW) ? O * C * KH * mlf_conv_small_kwp(KW) : 0);
}
static inline int mlf_conv_small_ot(int nv) { return nv <= 3 ? 6 : 4; }
/* output rows per register tile (each weight broadcast feeds rt x nv vectors) */
static inline int mlf_conv_small_rt(int nv) { return nv == 1 ? 4 : (nv == 2 ? 2 : 1); }

typedef float mlf_convs_v16 __attribute__((vector_size(64), aligned(4)));

MLF_INLINE void mlf_convs_micro(const int ot, const int nv, const int rt, long C, long KH,
                                long KW, long hp, long wr, const float* MLF_RESTRICT a,
                                const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
                                long wo, long hw) {
  mlf_convs_v16 acc[6][4][2];
  const long taps = KH * KW, ostride = C * taps;
#pragma GCC unroll 8
  for (int i = 0; i < ot; i++)
#pragma GCC unroll 4
    for (int r = 0; r < rt; r++)
#pragma GCC unroll 2
      for (int v = 0; v < nv; v++) acc[i][r][v] = (mlf_convs_v16){0};
  for (long c = 0; c < C; c++)
    for (long kh = 0; kh < KH; kh++)
      for (long kw = 0; kw < KW; kw++) {
        const float* MLF_RESTRICT row = a + (c * hp + kh) * wr + kw;
        const float* MLF_RESTRICT wt = w + c * taps + kh * KW + kw;
        mlf_convs_v16 xv[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < rt; r++)
#pragma GCC unroll 2
          for (int v = 0; v < nv; v++) xv[r][v] = *(const mlf_convs_v16*)(row + r * wr + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < ot; i++) {
          const float wv = wt[i * ostride];
#pragma GCC unroll 4
          for (int r = 0; r < rt; r++)
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[i][r][v] += wv * xv[r][v];
        }
      }
  for (int i = 0; i < ot; i++)
    for (int r = 0; r < rt; r++)
      for (int v = 0; v < nv; v++) {  /* the lanes that exist (a variable-length copy, not
                                         16 unrolled conditional stores per vector) */
        const long n = wo - 16 * v < 16 ? wo - 16 * v : 16;
        if (n > 0) memcpy(out + i * hw + r * wo + 16 * v, &acc[i][r][v], sizeof(float) * n);
      }
}

/* wide rows (3-4 vectors): one output row per tile */
MLF_INLINE void mlf_convs_micro_wide(const int ot, const int nv, long C, long KH, long KW,
                                     long hp, long wr, const float* MLF_RESTRICT a,
                                     const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
                                     long wo, long hw) {
  float acc[6][64];
  const int nw = 16 * nv;
  const long taps = KH * KW, ostride = C * taps;
  for (int i = 0; i < ot; i++)
    for (int j = 0; j < nw; j++) acc[i][j] = 0.0f;
  for (long c = 0; c < C; c++)
    for (long kh = 0; kh < KH; kh++)
      for (long kw = 0; kw < KW; kw++) {
        const float* MLF_RESTRICT row = a + (c * hp + kh) * wr + kw;
        const float* MLF_RESTRICT wt = w + c * taps + kh * KW + kw;
        for (int i = 0; i < ot; i++) {
          float wv = wt[i * ostride];
          for (int j = 0; j < nw; j++) acc[i][j] += wv * row[j];
        }
      }
  for (int i = 0; i < ot; i++)
    for (int j = 0; j < nw; j++)
      if (j < wo) out[i * hw + j] = acc[i][j];
}

#define MLF_CONVS_CASE(o, v, r) \
  case ((o) * 8 + (v)) * 8 + (r): \
    mlf_convs_micro(o, v, r, C, KH, KW, hp, wr, a, w, out, wo, hw); break;
#define MLF_CONVS_WCASE(o, v) \
  case ((o) * 8 + (v)) * 8 + 1: mlf_convs_micro_wide(o, v, C, KH, KW, hp, wr, a, w, out, wo, hw); break;
#define MLF_CONVS_ROW(o) MLF_CONVS_CASE(o, 1, 1) MLF_CONVS_CASE(o, 1, 2) MLF_CONVS_CASE(o, 1, 3) \
  MLF_CONVS_CASE(o, 1, 4) MLF_CONVS_CASE(o, 2, 1) MLF_CONVS_CASE(o, 2, 2) MLF_CONVS_WCASE(o, 3) \
  MLF_CONVS_WCASE(o, 4)

/* rt output rows x ot channels x nv row vectors (rt = 1 when nv > 2) */
static __attribute__((unused, noinline)) void mlf_convs_tile(int ot, int nv, int rt, long C,
    long KH, long KW, long hp, long wr, const float* MLF_RESTRICT a, const float* MLF_RESTRICT w,
    float* MLF_RESTRICT out, long wo, long hw) {
  switch ((ot * 8 + nv) * 8 + rt) {
    MLF_CONVS_ROW(1) MLF_CONVS_ROW(2) MLF_CONVS_ROW(3) MLF_CONVS_ROW(4)
    MLF_CONVS_ROW(5) MLF_CONVS_ROW(6)
    default: break;
  }
}

/* kv path tile: ot output channels x jt output pixels of one output row; K = (c, kh, kw)
 * with kw in 16-lane chunks (weights zero-padded to kwp, input rows zero-padded to wr),
 * one 16-lane accumulator per output, summed across lanes in lane order at the end. */
MLF_INLINE void mlf_convs_kv_micro(const int ot, const int jt, long C, long KH, long kwp, long hp,
                                   long wr, const float* MLF_RESTRICT a,
                                   const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
                                   long hw) {
  mlf_convs_v16 acc[4][6];
  const long ostride = C * KH * kwp;
#pragma GCC unroll 4
  for (int i = 0; i < ot; i++)
#pragma GCC unroll 6
    for (int j = 0; j < jt; j++) acc[i][j] = (mlf_convs_v16){0};
  for (long c = 0; c < C; c++)
    for (long kh = 0; kh < KH; kh++)
      for (long kv = 0; kv < kwp; kv += 16) {
        const float* MLF_RESTRICT row = a + (c * hp + kh) * wr + kv;
        const float* MLF_RESTRICT wt = w + (c * KH + kh) * kwp + kv;
        mlf_convs_v16 xv[6];
#pragma GCC unroll 6
        for (int j = 0; j < jt; j++) xv[j] = *(const mlf_convs_v16*)(row + j);
#pragma GCC unroll 4
        for (int i = 0; i < ot; i++) {
          mlf_convs_v16 wv = *(const mlf_convs_v16*)(wt + i * ostride);
#pragma GCC unroll 6
          for (int j = 0; j < jt; j++) acc[i][j] += wv * xv[j];
        }
      }
  for (int i = 0; i < ot; i++)
    for (int j = 0; j < jt; j++) {
      float l[16];  /* lanes summed pairwise in a fixed order: q + q+8, q + q+4, ... */
      memcpy(l, &acc[i][j], sizeof l);
      for (int half = 8; half >= 1; half /= 2)
        for (int q = 0; q < half; q++) l[q] += l[q + half];
      out[i * hw + j] = l[0];
    }
}

#define MLF_CONVS_KV_CASE(o, v) \
  case (o) * 8 + (v): mlf_convs_kv_micro(o, v, C, KH, kwp, hp, wr, a, w, out, hw); break;
#define MLF_CONVS_KV_ROW(o) MLF_CONVS_KV_CASE(o, 1) MLF_CONVS_KV_CASE(o, 2) \
  MLF_CONVS_KV_CASE(o, 3) MLF_CONVS_KV_CASE(o, 4) MLF_CONVS_KV_CASE(o, 5) MLF_CONVS_KV_CASE(o, 6)

static __attribute__((unused, noinline)) void mlf_convs_kv_tile(int ot, int jt, long C, long KH,
    long kwp, long hp, long wr, const float* MLF_RESTRICT a, const float* MLF_RESTRICT w,
    float* MLF_RESTRICT out, long hw) {
  switch (ot * 8 + jt) {
    MLF_CONVS_KV_ROW(1) MLF_CONVS_KV_ROW(2) MLF_CONVS_KV_ROW(3) MLF_CONVS_KV_ROW(4)
    default: break;
  }
}

/* Same contract as mlf_conv2d (NCHW x, OIHW w, NCHW out); `work` holds the padded input. */
static __attribute__((unused, noinline)) void mlf_conv2d_small(long N, long C, long H, long W,
    long O, long KH, long KW, long ph, long pw, long hp, long ho, long wo,
    const float* MLF_RESTRICT x, const float* MLF_RESTRICT w, float* MLF_RESTRICT out,
    float* MLF_RESTRICT work, int T) {
  const int kvp = mlf_conv_small_kv(wo, KW);
  const int nv = (int)((wo + 15) / 16), otm = kvp ? 4 : mlf_conv_small_ot(nv);
  const long wr = mlf_conv_small_wr(wo, KW), img = C * hp * wr, kwp = mlf_conv_small_kwp(KW);
  const int rtm = kvp ? 1 : mlf_conv_small_rt(nv);
  const long otiles = (O + otm - 1) / otm, jtiles = (wo + 5) / 6, htiles = (ho + rtm - 1) / rtm;
  const long units = N * otiles * (kvp ? ho * jtiles : htiles);
  float* MLF_RESTRICT wk = work + N * img; /* kv path: weights [o][c][kh][kwp] */
  (void)T;
  MLF_OMP(omp parallel num_threads(T) if (T > 1))
  {
    long t = mlf_thread_index(), nt = mlf_team_size();
    long lo, hi;
    /* input NCHW -> zero-padded rows xp[n][c][hp][wr] */
    mlf_share(N * C * hp, 1, N * C * hp, t, nt, &lo, &hi);
    for (long r = lo; r < hi; r++) {
      long nc = r / hp, h = r % hp - ph;
      float* MLF_RESTRICT row = work + r * wr;
      memset(row, 0, sizeof(float) * wr);
      if (h >= 0 && h < H) memcpy(row + pw, x + (nc * H + h) * W, sizeof(float) * W);
    }
    if (kvp) {
      mlf_share(O * C * KH, 1, O * C * KH, t, nt, &lo, &hi);
      for (long r = lo; r < hi; r++) {
        memset(wk + r * kwp, 0, sizeof(float) * kwp);
        memcpy(wk + r * kwp, w + r * KW, sizeof(float) * KW);
      }
    }
    MLF_OMP(omp barrier)
    mlf_share(units, 1, units, t, nt, &lo, &hi);
    if (kvp) {
      for (long u = lo; u < hi; u++) {
        long n = u / (otiles * ho * jtiles), o0 = u / (ho * jtiles) % otiles * otm;
        long h = u / jtiles % ho, j0 = u % jtiles * 6;
        int ot = (int)(O - o0 < otm ? O - o0 : otm), jt = (int)(wo - j0 < 6 ? wo - j0 : 6);
        mlf_convs_kv_tile(ot, jt, C, KH, kwp, hp, wr, work + n * img + h * wr + j0,
                          wk + o0 * C * KH * kwp, out + ((n * O + o0) * ho + h) * wo + j0, ho * wo);
      }
      lo = hi; /* done */
    }
    for (long u = lo; u < hi; u++) {
      long n = u / (otiles * htiles), o0 = u / htiles % otiles * otm, h = u % htiles * rtm;
      int ot = (int)(O - o0 < otm ? O - o0 : otm), rt = (int)(ho - h < rtm ? ho - h : rtm);
      mlf_convs_tile(ot, nv, rt, C, KH, KW, hp, wr, work + n * img + h * wr,
                     w + o0 * C * KH * KW, out + ((n * O + o0) * ho + h) * wo, wo, ho * wo);
    }
  }
}

#endif /* MLF_CONV_SMALL_H */
