"""runtime_c/mlf_gemm.h against NumPy: every form (dot form for N < 16, B in place,
packed panels, few rows), edge tiles and k tails, 1 and 2 threads, and the same
header built for AVX-512, AVX2 and plain SSE2 (the portable fallback), with the
prepacked-panel GEMM and the bfloat16 pair-panel GEMM (runtime_c/mlf_gemm_bf16.h)
beside it."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import mlframework as mlf
from aot.build import compiler as aot_build
from mlframework import graph as G
from mlframework.core import shapes

RNG = np.random.default_rng(7)

# (M, K, N): dot form with N from 1 to 15 and K tails, M edge rows; B in place
# (N % 16 == 0, small); packed B (large or ragged N); M <= 6 reading B in place (through
# the transpose of the graph below: dot products on B^T in place, mlf_sgemm_bt_rows).
SHAPES = [(128, 512, 10), (33, 37, 1), (7, 16, 2), (5, 100, 3), (9, 65, 8), (17, 48, 15),
          (13, 64, 32), (50, 300, 70), (3, 784, 512), (1, 33, 20), (130, 129, 131),
          (1, 784, 512), (2, 64, 45), (4, 100, 96), (6, 40, 130)]


def test_gemm_matches_numpy_on_any_thread_count():
    """A @ (B^T)^T (B read through strides) for every shape in one graph, bit-equal on 1
    and 2 threads."""
    arrays, graph = [], G.Graph("gemms")
    with G.tracing(graph):
        for m, k, n in SHAPES:
            arrays += [RNG.standard_normal((m, k)).astype(np.float32),
                       RNG.standard_normal((n, k)).astype(np.float32)]
            a, bt = (G.parameter(shapes.make(x.dtype, *x.shape)) for x in arrays[-2:])
            graph.outputs.append(a @ G.transpose(bt, (1, 0)))
    exe = mlf.backends.new("c").compile(graph)
    runs = []
    for threads in (1, 2):
        exe.compiled.lib.mlf_run_set_threads(threads)
        runs.append(exe.run(arrays))
        for (m, k, n), a, bt, got in zip(SHAPES, arrays[::2], arrays[1::2], runs[-1]):
            want = a.astype(np.float64) @ bt.T.astype(np.float64)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k),
                                       err_msg=f"{m}x{k}x{n} on {threads} threads")
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


HARNESS = r"""
#include "mlf_runtime.h"
#include "mlf_gemm_bf16.h"
#include <stdio.h>
#include <stdlib.h>
/* W packed as bfloat16 pairs, block-major (runtime_c/mlf_gemm_bf16.h); small integers
 * are exact. */
static uint16_t* pack_pairs(const float* W, long K, long N) {
  long np = (N + 31) / 32 * 32;
  uint16_t* P = calloc(K * np + 1, sizeof(uint16_t));
  for (long p = 0; p < K; p++)
    for (long j = 0; j < N; j++) {
      uint32_t u;
      memcpy(&u, &W[p * N + j], 4);
      P[(j / 32 * K + p) * 32 + 2 * (j % 16) + (j % 32) / 16] = (uint16_t)(u >> 16);
    }
  return P;
}
static int check(long M, long K, long N) {
  float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
  float *C = malloc(sizeof(float) * M * N);
  float *W = malloc(sizeof(float) * (mlf_sgemm_work_floats(K, N) + 1));
  for (long i = 0; i < M * K; i++) A[i] = (float)((i * 7) % 13) - 6.0f;
  for (long i = 0; i < K * N; i++) B[i] = (float)((i * 5) % 11) - 5.0f;
  float *C2 = malloc(sizeof(float) * M * N);
  float *W2 = malloc(sizeof(float) * (mlf_sgemm_bf16p_work_floats(M, N, K) + 1));
  uint16_t* P = pack_pairs(B, K, N);
  float *C3 = malloc(sizeof(float) * M * N);
  float *panels = malloc(sizeof(float) * (mlf_sgemm_work_floats(K, N) + 1));
  mlf_sgemm_pack_b(K, N, 0, N, B, N, 1, panels);  /* what aot/passes/weight_packing.py stores */
  mlf_sgemm(M, N, K, A, K, 1, B, N, 1, C, N, W);
  mlf_sgemm_bf16p(M, N, K, A, K, 1, P, C2, N, W2);
  mlf_sgemm_panels(M, N, K, A, K, 1, panels, C3, N);
  float *Bt = malloc(sizeof(float) * K * N), *C4 = malloc(sizeof(float) * M * N);
  for (long p = 0; p < K; p++)
    for (long j = 0; j < N; j++) Bt[j * K + p] = B[p * N + j];
  mlf_sgemm(M, N, K, A, K, 1, Bt, 1, K, C4, N, W);  /* B as the transpose of a dense [N][K] */
  int bad = 0;
  for (long i = 0; i < M; i++)
    for (long j = 0; j < N; j++) {
      double s = 0;
      for (long p = 0; p < K; p++) s += (double)A[i * K + p] * B[p * N + j];
      if (C[i * N + j] != (float)s) bad |= 1;  /* small integers: every sum is exact */
      if (C2[i * N + j] != (float)s) bad |= 2;
      if (C3[i * N + j] != (float)s) bad |= 4;
      if (C4[i * N + j] != (float)s) bad |= 8;
    }
  if (bad) printf("mismatch (%d: 1 plain, 2 bf16 pairs, 4 panels, 8 B^T) at %ldx%ldx%ld\n", bad, M,
                  K, N);
  free(A); free(B); free(C); free(W); free(C2); free(W2); free(P); free(C3); free(panels);
  free(Bt); free(C4);
  return bad;
}
int main(void) {
  static const long shapes[][3] = {SHAPES};
  int bad = 0;
  for (unsigned s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    bad |= check(shapes[s][0], shapes[s][1], shapes[s][2]);
  return bad;
}
"""


@pytest.mark.parametrize("march", ["-march=native", "-march=x86-64-v3", "-march=x86-64"])
def test_gemm_header_is_exact_on_every_isa_level(march, tmp_path):
    """Integer-valued operands make every sum exact, so any ISA must match exactly."""
    source = HARNESS.replace("SHAPES", ", ".join(f"{{{m}, {k}, {n}}}" for m, k, n in SHAPES))
    flags = [f for f in aot_build.FLAGS if not f.startswith("-march")] + [march]
    exe = tmp_path / "gemm"
    proc = subprocess.run(["gcc", *flags, *aot_build.openmp_flags(), *aot_build.WARNINGS, "-Werror",
                           f"-I{aot_build.RUNTIME}",
                           "-x", "c", "-", "-o", str(exe), "-lm"],
                          input=source, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
