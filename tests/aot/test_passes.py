"""The aot passes on small graphs: simplify, fusion groups, memory plan."""
from __future__ import annotations

import itertools

import numpy as np

import mlframework as mlf
from aot.passes.donation import plan_donation
from aot.passes.fusion import fuse
from aot.passes.memory_plan import plan_memory
from aot.passes.simplify import simplify
from aot.program.program import from_graph
from mlframework import graph as G
from mlframework.core import shapes, symbolic
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op


def program_of(fn, *specs):
    graph = G.Graph("test")
    with G.tracing(graph):
        params = [G.parameter(shapes.make(*s)) for s in specs]
        out = fn(*params)
        graph.outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    return simplify(from_graph(graph))


def ops_of(program):
    return [v.op for v in program.values.values()]


def test_simplify_folds_cse_and_drops_dead_nodes():
    def fn(x):
        c = G.const(2.0) * G.const(3.0)      # folded to 6
        a, b = G.exp(x) * c, G.exp(x) * c    # one exp, one mul after CSE
        G.tanh(x)                            # dead
        return G.stop_gradient(a + b)        # identity removed
    prog = program_of(fn, ("float32", 4))
    ops = ops_of(prog)
    assert ops.count(Op.EXP) == 1 and ops.count(Op.MUL) == 1
    assert Op.TANH not in ops and Op.STOP_GRADIENT not in ops
    consts = [v.attrs["value"] for v in prog.values.values() if v.op is Op.CONSTANT]
    assert any(np.all(c == 6.0) for c in consts)


def test_identities_on_the_first_parameter_are_removed():
    """Value id 0 (the first parameter) is an identity's answer like any other."""
    prog = program_of(lambda x: G.stop_gradient(G.convert(x, np.float32)) + 1.0,
                      ("float32", 4))
    assert ops_of(prog).count(Op.CONVERT) == 0 and Op.STOP_GRADIENT not in ops_of(prog)
    (add,) = [v for v in prog.values.values() if v.op is Op.ADD]
    assert prog.params[0] in add.inputs


def test_pointwise_chain_is_one_kernel():
    prog = program_of(lambda x, a, b: G.tanh(a * x + b) * G.logistic(x),
                      ("float32", 64, 32), ("float32",), ("float32",))
    kernels = fuse(prog)
    assert len(kernels) == 1 and kernels[0].kind == "pointwise"
    assert {prog.values[n].op for n in kernels[0].nodes} >= {Op.TANH, Op.LOGISTIC, Op.MUL, Op.ADD}


def test_new_elementwise_and_bit_ops_fuse():
    def fn(x, i):
        y = G.lgamma(x) * G.tan(x) + G.nextafter(x, G.cbrt(x))  # below MAX_FUSED_OPS
        bits = G.shift_right_logical(G.bitcast_convert_type(y, "int32"), i)
        return G.bitwise_xor(G.population_count(bits), G.shift_left(i, i))
    prog = program_of(fn, ("float32", 8, 4), ("int32", 8, 4))
    kernels = fuse(prog)
    assert len(kernels) == 1 and kernels[0].kind == "pointwise"
    assert {prog.values[n].op for n in kernels[0].nodes} >= {
        Op.LGAMMA, Op.CBRT, Op.TAN, Op.NEXTAFTER, Op.BITCAST_CONVERT_TYPE,
        Op.SHIFT_RIGHT_LOGICAL, Op.POPULATION_COUNT, Op.BITWISE_XOR, Op.SHIFT_LEFT}


def test_bitcast_to_another_width_is_a_copy_kernel_between_fused_ones():
    prog = program_of(lambda x: G.bitwise_not(G.bitcast_convert_type(G.tan(x), "uint8")),
                      ("float32", 8, 4))
    kinds = [k.kind for k in fuse(prog)]
    assert kinds == ["pointwise", "bitcast_convert_type", "pointwise"]


def test_softmax_and_layer_norm_are_row_kernels():
    for fn in (lambda x: G.softmax(x),
               lambda x: (x - G.mean(x, -1, keepdims=True)) *
               G.rsqrt(G.mean(G.square(x - G.mean(x, -1, keepdims=True)), -1, keepdims=True)
                       + 1e-5)):
        prog = program_of(fn, ("float32", 8, 256))
        kernels = fuse(prog)
        assert [k.kind for k in kernels] == ["rowwise"], [k.kind for k in kernels]
        assert sum(prog.values[s].op in (Op.REDUCE_SUM, Op.REDUCE_MAX)
                   for s in kernels[0].stages) >= 2


def test_dense_bias_relu_is_a_gemm_with_epilogue():
    prog = program_of(lambda x, w, b: G.relu(x @ w + b),
                      ("float32", 16, 32), ("float32", 32, 8), ("float32", 8))
    kernels = fuse(prog)
    assert [k.kind for k in kernels] == ["dot"]
    ops = {prog.values[n].op for n in kernels[0].epilogue}
    assert {Op.ADD, Op.MAX} <= ops


def test_contractions_reach_the_fast_kernels_in_canonical_forms():
    # An NHWC/HWIO convolution is a canonical one between transposes; a bfloat16 product
    # accumulated in float32 is a float32 GEMM over converted operands.
    prog = program_of(lambda x, w, a, b: (
        G.conv_general(x, w, padding=[(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC")),
        G.dot_general(a, b, (1,), (0,), preferred_element_type="float32")),
        ("float32", 2, 6, 6, 3), ("float32", 3, 3, 3, 8), ("bfloat16", 16, 32),
        ("bfloat16", 32, 8))
    conv = next(v for v in prog.values.values() if v.op is Op.CONV_GENERAL)
    assert conv.attrs["dimension_numbers"] == ((0, 1, 2, 3),) * 3 and conv.shape == (2, 8, 6, 6)
    assert [prog.values[i].op for i in conv.inputs] == [Op.TRANSPOSE] * 2
    dot = next(v for v in prog.values.values() if v.op is Op.DOT_GENERAL)
    assert [prog.values[i].dtype.value for i in dot.inputs] == ["float32"] * 2
    assert [k.kind for k in fuse(prog)].count("dot") == 1


def test_memory_plan_never_overlaps_live_buffers():
    def fn(x, w):
        h = x
        for _ in range(4):
            h = G.relu(h @ w) + G.softmax(h)
        return G.reduce_sum(h, 0), G.exp(h)
    prog = program_of(fn, ("float32", 8, 8), ("float32", 8, 8))
    kernels = fuse(prog)
    plan = plan_memory(prog, kernels)
    arena = [b for b in plan.buffers.values() if b.kind == "arena"] + list(plan.scratch.values())
    assert arena, "expected intermediates in the arena"
    for a, b in itertools.combinations(arena, 2):
        live_together = a.start <= b.end and b.start <= a.end
        overlap = a.offset < b.offset + b.nbytes and b.offset < a.offset + a.nbytes
        assert not (live_together and overlap), (a, b)
        assert a.offset % 64 == 0 and a.offset + a.nbytes <= plan.arena_bytes
    for t, k in enumerate(kernels):  # every input is written before it is read
        for i in k.inputs:
            assert plan.buffers[i].start < t or plan.buffers[i].kind in ("input", "const")


def adam(p, m, v, g):
    """One Adam update of parameter p (moments m, v; gradient g), as optimizers.Adam."""
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    return p - 1e-3 * m / (G.sqrt(v) + 1e-8), m, v


def adam_numpy(p, m, v, g):
    m = np.float32(0.9) * m + np.float32(0.1) * g
    v = np.float32(0.999) * v + np.float32(0.001) * g * g
    return p - np.float32(1e-3) * m / (np.sqrt(v) + np.float32(1e-8)), m, v


def test_adam_update_is_one_pointwise_kernel_writing_its_three_outputs():
    prog = program_of(adam, *[("float32", 64, 32)] * 4)
    kernels = fuse(prog)
    assert [k.kind for k in kernels] == ["pointwise"]
    assert sorted(kernels[0].outputs) == sorted(set(prog.outputs))


def test_pointwise_kernels_stay_apart_when_one_reads_the_other_at_other_elements():
    prog = program_of(lambda x, y: (G.exp(x), G.transpose(G.exp(x), (1, 0)) * y + 1.0),
                      ("float32", 16, 16), ("float32", 16, 16))
    assert [len(k.outputs) for k in fuse(prog)] == [1, 1]
    shifted = program_of(lambda x: (G.exp(x), G.exp(x)[1:] * 2.0), ("float32", 17, 8))
    assert len(fuse(shifted)) == 2


def _two_masked_softmaxes(offset):
    """softmax(where(mask, s, -1e9)) of two [2, 16, 16] score tensors under one [16, 16]
    mask, key <= query + offset, broadcast over the first axis."""
    def fn(s1, s2, *n):
        rows = G.broadcast_in_dim(G.iota("int32", (16,), 0), (16, 16), (0,)) + \
            (n[0] if n else offset)
        mask = G.broadcast_in_dim(G.iota("int32", (16, 16), 1) <= rows, (2, 16, 16), (1, 2))
        return [G.softmax(G.where(mask, s, -1e9), axis=-1) for s in (s1, s2)]
    return fn


def test_a_mask_of_iotas_is_recomputed_by_its_readers_a_mask_of_a_parameter_stored():
    """The causal mask of every attention layer: a broadcast value computed from iotas and
    constants alone gets no buffer (each reader recomputes it from its indices, and its
    loops vectorize), where the same mask shifted by a parameter is stored once."""
    scores = [("float32", 2, 16, 16)] * 2
    for prog, stored in ((program_of(_two_masked_softmaxes(2), *scores), 0),
                         (program_of(_two_masked_softmaxes(None), *scores, ("int32",)), 1)):
        kernels = fuse(prog)
        masks = [o for k in kernels for o in k.outputs if prog.values[o].dtype is DType.BOOL]
        assert len(masks) == stored and len(kernels) == 2 + stored, kernels
    backend = mlf.backends.new("c")
    rng = np.random.default_rng(0)
    s1, s2 = (rng.standard_normal((2, 16, 16)).astype(np.float32) for _ in range(2))
    allowed = np.arange(16)[None, :] <= np.arange(16)[:, None] + 2
    for got, s in zip(G.Exec(backend, _two_masked_softmaxes(2))(s1, s2), (s1, s2)):
        e = np.exp(np.where(allowed, s.astype(np.float64), -1e9))
        np.testing.assert_allclose(got.numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5,
                                   atol=1e-6)


def test_multi_output_pointwise_kernels_match_numpy():
    backend = mlf.backends.new("c")
    rng = np.random.default_rng(3)
    for shape in ((784, 512), (10,), (3, 5)):  # threaded and vectorized; tiny
        p, m, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
        v = rng.random(shape).astype(np.float32)
        got = G.Exec(backend, adam)(p, m, v, g)
        for a, b in zip(got, adam_numpy(p, m, v, g)):
            np.testing.assert_allclose(a.numpy(), b, rtol=1e-6, atol=1e-6)  # FMA contraction
    x, y = (rng.standard_normal((16, 16)).astype(np.float32) for _ in range(2))
    e, t = G.Exec(backend, lambda x, y: (G.exp(x), G.transpose(G.exp(x), (1, 0)) * y + 1.0))(x, y)
    np.testing.assert_allclose(e.numpy(), np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(t.numpy(), np.exp(x).T * y + 1, rtol=1e-6, atol=1e-6)


def test_donation_writes_updates_over_the_parameters_they_replace():
    prog = program_of(adam, *[("float32", 64, 32)] * 4)
    kernels = fuse(prog)
    aliases = plan_donation(prog, kernels, plan_memory(prog, kernels), donated=(0, 1, 2, 3))
    assert aliases == {0: 0, 1: 1, 2: 2}  # p, m and v in place; g is not an output's match
    assert kernels[0].aliased
    assert plan_donation(prog, kernels, plan_memory(prog, kernels), donated=(3,)) == {0: 3}


def test_donation_refuses_a_parameter_read_later_or_at_other_elements():
    def later(p, g):
        return p - g, G.reduce_sum(G.exp(p), 0)  # p is read again after its update
    prog = program_of(later, ("float32", 8, 8), ("float32", 8, 8))
    kernels = fuse(prog)
    assert plan_donation(prog, kernels, plan_memory(prog, kernels), donated=(0,)) == {}
    prog = program_of(lambda p, g: G.transpose(p, (1, 0)) - g, ("float32", 8, 8),
                      ("float32", 8, 8))
    kernels = fuse(prog)
    assert plan_donation(prog, kernels, plan_memory(prog, kernels), donated=(0,)) == {}
    assert not kernels[0].aliased
    prog = program_of(lambda p, g: (p, p - g), ("float32", 8), ("float32", 8))
    kernels = fuse(prog)  # p passed through unchanged is copied after the call
    assert plan_donation(prog, kernels, plan_memory(prog, kernels), donated=(0,)) == {}


def test_control_flow_scratch_is_a_polynomial_of_the_symbols():
    """A scan over a symbolic batch holds its double-buffered carry and its body's arena
    at sizes that grow with N, not at N's maximum."""
    n = symbolic.dim("N")
    def fn(x, w):
        h, _ = G.scan(lambda c, xt: (G.tanh(c @ w + xt), None), x[0] * 0.0, x)
        return h
    graph = G.Graph("scan")
    with G.tracing(graph):
        x = G.parameter(shapes.make("float32", 5, n, 6))
        graph.outputs = [fn(x, G.parameter(shapes.make("float32", 6, 6)))]
    graph.symbols = {"N": 64}
    prog = simplify(from_graph(graph))
    kernels = fuse(prog)
    plan = plan_memory(prog, kernels)
    scan = next(k for k in kernels if k.kind == "scan")
    small, top = (symbolic.evaluate(scan.scratch_bytes, {"N": v}) for v in (1, 64))
    assert top - small >= 2 * 63 * 6 * 4  # both carry buffers, 6 floats a row
    assert top == plan.scratch[kernels.index(scan)].nbytes.evaluate({"N": 64})
    assert symbolic.evaluate(plan.arena_for, {"N": 1}) < plan.arena_bytes
