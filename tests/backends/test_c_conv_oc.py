"""Small-image C convolutions vectorized over the output channels (runtime_c/mlf_conv_oc.h)
against jax at precision=highest: odd channel counts (one and several vectors of 8 or 16
lanes), strides, kernel dilations, asymmetric padding, batches, a fused epilogue, weights
given at run time (packed per call) and constant (packed at compile time, "oc_channels"),
at 1 and 2 threads (separate processes: MLF_NUM_THREADS is read when an executable is
built)."""
from __future__ import annotations

import numpy as np
import pytest
from thread_runs import worst_errors

# (x shape, w shape, strides, padding, kernel dilation)
CASES = [
    ((1, 3, 16, 16), (8, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),     # ResNet stem
    ((1, 16, 4, 4), (16, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),    # 4x4 block
    ((1, 8, 8, 8), (16, 8, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),      # downsampling
    ((1, 8, 8, 8), (16, 8, 1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1)),      # 1x1 shortcut
    ((3, 5, 7, 9), (13, 5, 3, 2), (2, 1), ((2, 0), (1, 3)), (2, 1)),      # odd everything
    ((2, 7, 11, 6), (5, 7, 5, 3), (1, 2), ((0, 2), (2, 1)), (1, 2)),      # O < 8 lanes
    ((2, 4, 12, 12), (40, 4, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),    # 3 vectors, 12-px rows
    ((1, 2, 9, 17), (64, 2, 2, 3), (1, 1), ((0, 1), (1, 0)), (1, 1)),     # 4 vectors, 17-px rows
    ((1, 6, 14, 14), (16, 6, 5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),    # LeNet conv2
    ((32, 16, 4, 4), (16, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),   # batch in parallel
]

SCRIPT = r"""
import json, sys
import numpy as np
from jax import lax
import mlframework as mlf
from mlframework import graph as G
backend = mlf.backends.new("c")
worst = []
for xs, ws, strides, padding, dilation in json.loads(sys.argv[1]):
    padding = tuple(tuple(p) for p in padding)
    rng = np.random.default_rng(sum(xs) + 7 * sum(ws))
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    want = np.asarray(lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                               precision=lax.Precision.HIGHEST))
    given = lambda x, w: G.conv_general(x, w, strides, padding, (1, 1), dilation)
    constant = lambda x: G.relu(G.conv_general(x, G.const(w), strides, padding, (1, 1),
                                               dilation) + 0.25)
    for fn, args, ref in ((given, [x, w], want), (constant, [x], np.maximum(want + 0.25, 0))):
        exe = backend.compile(G.Exec(backend, fn).graph(*args))
        assert "mlf_conv2d_oc(" in exe.source, exe.source
        lanes = 8 if ws[0] <= 8 else 16  # whole vectors: packed at compile time
        assert ("mlf_conv_oc_pack(" in exe.source) == (fn is given or ws[0] % lanes != 0)
        got = exe.run(args)[0]
        worst.append(float(np.max(np.abs(got - ref)) / np.sqrt(np.prod(ws[1:]))))
print(json.dumps(worst))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_small_image_convs_match_jax(threads):
    worst = worst_errors(SCRIPT, CASES, threads)
    assert max(worst) < 1e-5, list(zip([c for c in CASES for _ in (0, 1)], worst))


def test_packed_weights_are_the_transposed_kernel():
    """pack_weights stores a small-image conv's constant kernel [C][KH][KW][O] under its
    logical shape; a kernel whose O does not fill whole vectors is left as it is."""
    from aot.passes.simplify import simplify
    from aot.passes.weight_packing import pack_weights
    from aot.program.program import from_graph
    from mlframework import graph as G
    from mlframework.core import shapes

    rng = np.random.default_rng(0)
    for o, packs in ((16, True), (13, False)):
        w = rng.standard_normal((o, 8, 3, 3)).astype(np.float32)
        graph = G.Graph("oc")
        with G.tracing(graph):
            x = G.parameter(shapes.make(np.float32, 1, 8, 8, 8))
            graph.outputs = [G.conv_general(x, G.const(w), (1, 1), ((1, 1), (1, 1)))]
        program = pack_weights(simplify(from_graph(graph)))
        consts = [v for v in program.values.values() if v.op.value == "constant"]
        assert len(consts) == 1 and tuple(consts[0].shape) == w.shape
        assert (consts[0].attrs.get("packing") == "oc_channels") == packs
        stored = np.asarray(consts[0].attrs["value"])
        np.testing.assert_array_equal(stored, w.transpose(1, 2, 3, 0) if packs else w)
