/* mlf_attention.h: the pieces of the fused attention kernel (aot/codegen/attention.py).
 *
 * softmax(logits(q k^T)) v for one block of at most MLF_ATT_QB query rows at a time,
 * against blocks of at most MLF_ATT_KB keys, with an online softmax: each row keeps its
 * running maximum m, its running sum l of exp(logit - m) and its output accumulator o
 * (rescaled by exp(m_old - m_new) when the maximum grows), so the [rows, keys] score
 * matrix is never stored. The generated kernel computes the logits (scale, mask) of each
 * block in between. A block's scores are kept transposed, x[jj * QB + ii] for key jj and
 * query row ii, so that every step runs along the query rows in vectors of 16 lanes
 * (GCC's vector extension; two halves on AVX2). float32.
 */
#ifndef MLF_ATTENTION_H
#define MLF_ATTENTION_H

#define MLF_ATT_QB 32 /* query rows per block: two vectors */
#define MLF_ATT_KB 32 /* keys per block */

typedef float mlf_att_v __attribute__((vector_size(64)));            /* aligned */
typedef float mlf_att_u __attribute__((vector_size(64), aligned(4))); /* unaligned */

/* qt[c * QB + ii] = query row ii at channel c (rows qrs apart, channels qcs apart), for
 * c < d and ii < qn; zero for qn <= ii < QB. qt: 64-byte aligned. */
static inline void mlf_att_pack_queries(const float* q, long qrs, long qcs, long qn, long d,
                                        float* MLF_RESTRICT qt) {
  if (qn > MLF_ATT_QB) qn = MLF_ATT_QB;
  for (long c = 0; c < d; c++) {
    for (long ii = 0; ii < qn; ii++) qt[c * MLF_ATT_QB + ii] = q[ii * qrs + c * qcs];
    for (long ii = qn; ii < MLF_ATT_QB; ii++) qt[c * MLF_ATT_QB + ii] = 0.0f;
  }
}

/* x[jj * QB + ii] = sum over c < d of qt[c * QB + ii] * k[jj * krs + c * kcs] for jj < kn
 * and every ii < QB; four keys at a time (eight vector accumulators). x, qt: aligned. */
static inline void mlf_att_scores(const float* MLF_RESTRICT qt, const float* k, long krs,
                                  long kcs, long kn, long d, float* MLF_RESTRICT x) {
  if (kn > MLF_ATT_KB) kn = MLF_ATT_KB;
  long jj = 0;
  for (; jj + 4 <= kn; jj += 4) {
    mlf_att_v a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    const float* kj = k + jj * krs;
    for (long c = 0; c < d; c++) {
      const mlf_att_v q0 = *(const mlf_att_v*)(qt + c * MLF_ATT_QB);
      const mlf_att_v q1 = *(const mlf_att_v*)(qt + c * MLF_ATT_QB + 16);
      const float k0 = kj[c * kcs], k1 = kj[krs + c * kcs];
      const float k2 = kj[2 * krs + c * kcs], k3 = kj[3 * krs + c * kcs];
      a0 += k0 * q0; b0 += k0 * q1; a1 += k1 * q0; b1 += k1 * q1;
      a2 += k2 * q0; b2 += k2 * q1; a3 += k3 * q0; b3 += k3 * q1;
    }
    mlf_att_v* out = (mlf_att_v*)(x + jj * MLF_ATT_QB);
    out[0] = a0; out[1] = b0; out[2] = a1; out[3] = b1;
    out[4] = a2; out[5] = b2; out[6] = a3; out[7] = b3;
  }
  /* The keys left over, counted from kn % 4 (not from where the loop above stopped: gcc
   * -O3 -fwrapv then sees that there are none when kn % 4 == 0 and does not warn of a
   * wrapping index here, -Waggressive-loop-optimizations). */
  for (long r = kn % 4; r > 0; r--) {
    const long jl = kn - r;
    mlf_att_v a = {0}, b = {0};
    for (long c = 0; c < d; c++) {
      const float kc = k[jl * krs + c * kcs];
      a += kc * *(const mlf_att_v*)(qt + c * MLF_ATT_QB);
      b += kc * *(const mlf_att_v*)(qt + c * MLF_ATT_QB + 16);
    }
    mlf_att_v* out = (mlf_att_v*)(x + jl * MLF_ATT_QB);
    out[0] = a; out[1] = b;
  }
}

/* Rows start empty: m = -inf, l = 0, o = 0 (QB rows of dv). */
static inline void mlf_att_start(long dv, float* o, float* m, float* l) {
  for (long ii = 0; ii < MLF_ATT_QB; ii++) { m[ii] = -INFINITY; l[ii] = 0.0f; }
  for (long e = 0; e < MLF_ATT_QB * dv; e++) o[e] = 0.0f;
}

/* Folds the block's logits x[jj * QB + ii] (jj < kn, every ii < QB) into m, l and o: x
 * becomes exp(x - m_new) and o = o * exp(m_old - m_new) + x^T v, v holding the block's kn
 * value rows (vrs apart, channels vcs apart, dv of them), for the rows ii < qn. A
 * maximum of -inf (every logit -inf so far) is taken as 0, so no NaN comes of it. */
static inline void mlf_att_update(float* MLF_RESTRICT x, long qn, long kn, const float* v,
                                  long vrs, long vcs, long dv, float* MLF_RESTRICT o,
                                  float* MLF_RESTRICT m, float* MLF_RESTRICT l) {
  float alpha[MLF_ATT_QB], ref[MLF_ATT_QB], top[MLF_ATT_QB];
  if (qn > MLF_ATT_QB) qn = MLF_ATT_QB; /* (both hold already: the bounds let gcc see */
  if (kn > MLF_ATT_KB) kn = MLF_ATT_KB; /* that the arrays are never overrun) */
  for (long ii = 0; ii < MLF_ATT_QB; ii++) top[ii] = m[ii];
  for (long jj = 0; jj < kn; jj++)
    for (long ii = 0; ii < MLF_ATT_QB; ii++) {
      const float y = x[jj * MLF_ATT_QB + ii];
      top[ii] = y > top[ii] ? y : top[ii];
    }
  for (long ii = 0; ii < MLF_ATT_QB; ii++) {
    ref[ii] = top[ii] == -INFINITY ? 0.0f : top[ii];
    alpha[ii] = mlf_exp_f32(m[ii] - ref[ii]);
    l[ii] *= alpha[ii];
    m[ii] = top[ii];
  }
  for (long jj = 0; jj < kn; jj++)
    for (long ii = 0; ii < MLF_ATT_QB; ii++) {
      const float p = mlf_exp_f32(x[jj * MLF_ATT_QB + ii] - ref[ii]);
      x[jj * MLF_ATT_QB + ii] = p;
      l[ii] += p;
    }
  /* The channels in whole vectors, if v's are contiguous (computed, not counted up by a
   * loop: gcc -O3 -fwrapv then sees that the loop below is empty when dv % 16 == 0, and
   * does not warn of a wrapping index in it), 16 at a time and four rows at a time: v is
   * read once per 4 rows. */
  const long e0 = vcs == 1 ? dv / 16 * 16 : 0;
  for (long e = 0; e < e0; e += 16)
    for (long ii = 0; ii < qn; ii += 4) {
      mlf_att_u* o0 = (mlf_att_u*)(o + ii * dv + e);
      mlf_att_u* o1 = (mlf_att_u*)(o + (ii + 1) * dv + e);
      mlf_att_u* o2 = (mlf_att_u*)(o + (ii + 2) * dv + e);
      mlf_att_u* o3 = (mlf_att_u*)(o + (ii + 3) * dv + e);
      mlf_att_v c0 = *o0 * alpha[ii], c1 = *o1 * alpha[ii + 1];
      mlf_att_v c2 = *o2 * alpha[ii + 2], c3 = *o3 * alpha[ii + 3];
      for (long jj = 0; jj < kn; jj++) {
        const mlf_att_v vj = *(const mlf_att_u*)(v + jj * vrs + e);
        const float* p = x + jj * MLF_ATT_QB + ii;
        c0 += p[0] * vj; c1 += p[1] * vj; c2 += p[2] * vj; c3 += p[3] * vj;
      }
      *o0 = c0; *o1 = c1; *o2 = c2; *o3 = c3;
    }
  for (long ii = 0; ii < qn; ii++) /* the channels left over (all of them if vcs != 1) */
    for (long e = e0; e < dv; e++) {
      float c = o[ii * dv + e] * alpha[ii];
      for (long jj = 0; jj < kn; jj++) c += x[jj * MLF_ATT_QB + ii] * v[jj * vrs + e * vcs];
      o[ii * dv + e] = c;
    }
}

/* out[ii * dv + e] = o / l for ii < qn. A row no block reached (m still -inf) when
 * `unseen_uniform` (every key of that row was masked with one finite fill, so its softmax
 * is uniform) is the mean of all n value rows, as the unfused softmax gives. */
static inline void mlf_att_finish(const float* o, const float* l, const float* m, long qn,
                                  long dv, int unseen_uniform, const float* v, long vrs,
                                  long vcs, long n, float* MLF_RESTRICT out) {
  if (qn > MLF_ATT_QB) qn = MLF_ATT_QB;
  for (long ii = 0; ii < qn; ii++) {
    if (unseen_uniform && m[ii] == -INFINITY) {
      for (long e = 0; e < dv; e++) {
        float c = 0.0f;
        for (long j = 0; j < n; j++) c += v[j * vrs + e * vcs];
        out[ii * dv + e] = c / (float)n;
      }
      continue;
    }
    const float r = 1.0f / l[ii];
    for (long e = 0; e < dv; e++) out[ii * dv + e] = o[ii * dv + e] * r;
  }
}

#endif /* MLF_ATTENTION_H */
