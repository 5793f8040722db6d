"""The c backend on graphs with symbolic dimensions: one compiled module serves every
size up to the maxima (the loops take the sizes at run time), checked against NumPy at
several sizes; sizes of 0 or above the maximum are refused before C runs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.graph.gen_optypes import Op

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "aot"))
from attention_support import D, attention, attention_reference  # noqa: E402
from symbolic_support import compare_with_xla  # noqa: E402

RNG = np.random.default_rng(0)
W1 = (RNG.normal(size=(64, 48)) / 8).astype(np.float32)
W2 = (RNG.normal(size=(48, 10)) / 7).astype(np.float32)


def mlp(x):
    return G.softmax(G.relu(x @ W1 + 0.5) @ W2, axis=-1)


def mlp_reference(x):
    z = np.maximum(x @ W1 + 0.5, 0) @ W2
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _graph(fn, axes, maxima, *shapes):
    """fn traced once with the symbolic axes `axes` (Exec's `symbolic=`)."""
    return G.Exec(None, fn, symbolic=axes, maxima=maxima).graph(
        *[np.zeros(s, np.float32) for s in shapes])


@pytest.fixture(scope="module")
def mlp_exe():
    return mlf.backends.new("c").compile(_graph(mlp, {"x": "N, 64"}, {"N": 256}, (1, 64)))


@pytest.mark.parametrize("n", [1, 7, 64, 256])
def test_mlp_one_module_every_batch(mlp_exe, n):
    x = RNG.normal(size=(n, 64)).astype(np.float32)
    out, = mlp_exe.run([x])
    assert out.shape == (n, 10)
    np.testing.assert_allclose(out, mlp_reference(x), atol=1e-5)


def test_mlp_keeps_the_static_fast_paths(mlp_exe):
    src = mlp_exe.source
    assert "mlf_sgemm_panels(sym_N, 48, 64," in src  # the packed weights' GEMM, M at run time
    assert "const long sym_N" in src and "sizes[0] > 256" in src
    assert "for (long c0 = 0; c0 < 10; c0++)" in src  # softmax rows keep their static width


@pytest.mark.parametrize("n", [0, 257])
def test_sizes_out_of_range_are_refused(mlp_exe, n):
    with pytest.raises(ValueError, match="symbol N requires a size >= 1|declared with maximum 256"):
        mlp_exe.run([np.zeros((n, 64), np.float32)])


def test_a_static_dim_must_match(mlp_exe):
    with pytest.raises(ValueError, match="requires size 64 on axis 1"):
        mlp_exe.run([np.zeros((3, 63), np.float32)])


def test_attention_with_batch_and_sequence_symbolic():
    graph = _graph(attention, {"x": f"B, S, {D}"}, {"B": 8, "S": 64}, (1, 1, D))
    exe = mlf.backends.new("c").compile(graph)
    assert "mlf_sgemm(sym_S, sym_S, 8," in exe.source  # the score GEMM, both sides runtime
    for b, s in ((1, 1), (2, 7), (3, 64), (8, 33)):
        x = RNG.normal(size=(b, s, D)).astype(np.float32)
        out, = exe.run([x])
        np.testing.assert_allclose(out, attention_reference(x), atol=1e-5)


def test_every_op_compiles_symbolically_and_a_new_one_is_refused(monkeypatch):
    """Every op's C takes symbolic sizes (SYMBOLIC_OPS); an op outside it (a primitive
    added later, here sort taken out) is refused with an error naming the op and shapes."""
    from aot.program import symbols
    assert set(Op) <= symbols.SYMBOLIC_OPS
    monkeypatch.setattr(symbols, "SYMBOLIC_OPS", symbols.SYMBOLIC_OPS - {Op.SORT})
    graph = _graph(lambda x: G.sort(x, axis=1), {"x": "N, 5"}, {"N": 8}, (3, 5))
    with pytest.raises(NotImplementedError, match=r"sort #\d+ \(float32\[N, 5\]"):
        mlf.backends.new("c").compile(graph)


def test_the_arena_shrinks_with_the_sizes_and_buffers_never_overlap():
    """The memory plan's symbolic offsets, checked at sizes across the whole box: two
    buffers live at once never share a byte, and every one ends inside `arena_for`."""
    from aot.build.pipeline import compile_program
    from aot.program.program import from_graph
    from mlframework.core.symbolic import evaluate
    graph = _graph(attention, {"x": f"B, S, {D}"}, {"B": 8, "S": 64}, (1, 1, D))
    plan = compile_program(from_graph(graph), build_lib=False).plan
    arena = [b for b in plan.buffers.values() if b.kind == "arena"] + list(plan.scratch.values())
    assert any(not isinstance(b.offset, int) for b in arena)  # offsets move with B and S
    for sizes in ({"B": 1, "S": 1}, {"B": 1, "S": 64}, {"B": 8, "S": 1}, {"B": 3, "S": 17},
                  {"B": 8, "S": 64}):
        span = [(evaluate(b.offset, sizes), evaluate(b.offset, sizes) +
                 evaluate(b.nbytes, sizes), b) for b in arena]
        top = evaluate(plan.arena_for, sizes)
        assert all(end <= top for _, end, _ in span)
        for i, (s0, e0, a) in enumerate(span):
            assert s0 % 16 == 0
            for s1, e1, b in span[i + 1:]:
                if a.start <= b.end and b.start <= a.end:
                    assert e0 <= s1 or e1 <= s0, (a, b, sizes)
    assert evaluate(plan.arena_for, {"B": 1, "S": 1}) < plan.arena_bytes / 50
    assert evaluate(plan.arena_for, {"B": 8, "S": 64}) == plan.arena_bytes


def test_exec_traces_and_compiles_once_for_every_batch():
    backend = mlf.backends.new("c")
    graphs = []
    compile_ = backend.compile
    backend.compile = lambda graph, donate=(): graphs.append(graph) or compile_(graph, donate)
    exe = G.Exec(backend, mlp, symbolic={"x": "N, 64"}, maxima={"N": 256})
    for n in (1, 7, 64):
        x = RNG.normal(size=(n, 64)).astype(np.float32)
        out = np.asarray(exe(x).numpy())
        assert out.shape == (n, 10)
        np.testing.assert_allclose(out, mlp_reference(x), atol=1e-5)
    assert len(graphs) == 1 and graphs[0].symbols == {"N": 256}


def _spd(n):
    a = RNG.normal(size=(n, 2, 4, 4)).astype(np.float32)
    return a @ a.transpose(0, 1, 3, 2) + 4 * np.eye(4, dtype=np.float32)


def test_linalg_with_a_symbolic_batch_matches_xla():
    """cholesky then a triangular solve over a symbolic batch axis (the matrices static):
    one c module serves batch 1, 7 and the maximum, as the xla backend computes."""
    def fn(x):
        lo = G.cholesky(x)
        return lo, G.triangular_solve(lo, x, left_side=True, lower=True)
    graph = _graph(fn, {"x": "N, 2, 4, 4"}, {"N": 16}, (1, 2, 4, 4))
    c, xla = mlf.backends.new("c").compile(graph), mlf.backends.new("xla").compile(graph)
    assert "for (long t = 0; t < 2*sym_N; t++)" in c.source  # the batch at run time
    for n in (1, 7, 16):
        x = _spd(n)
        for got, want in zip(c.run([x]), xla.run([x])):
            assert got.shape == (n, 2, 4, 4)
            np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
        np.testing.assert_allclose(c.run([x])[0], np.linalg.cholesky(x), atol=1e-5)


def test_linalg_gradient_with_a_symbolic_batch_matches_xla():
    """The VJPs of cholesky and triangular_solve (triangular solves, dots, masks) over a
    symbolic batch: c against xla at batch 1, 7 and the maximum from one compile."""
    def fn(x):
        lo = G.cholesky(x)
        loss = G.reduce_sum(G.triangular_solve(lo, x, left_side=True, lower=True) * lo)
        return G.grad(loss, x)[0]
    graph = _graph(fn, {"x": "N, 4, 4"}, {"N": 8}, (1, 4, 4))
    c, xla = mlf.backends.new("c").compile(graph), mlf.backends.new("xla").compile(graph)
    for n in (1, 7, 8):
        x = _spd(n)[:, 0]
        got, = c.run([x])
        np.testing.assert_allclose(got, np.asarray(xla.run([x])[0]), atol=1e-4)


def _spd_and_rhs(n):
    """Two SPD n x n matrices and a right-hand side of 3 columns for each."""
    a = RNG.normal(size=(2, n, n)).astype(np.float32)
    return a @ a.transpose(0, 2, 1) + n * np.eye(n, dtype=np.float32), \
        RNG.normal(size=(2, n, 3)).astype(np.float32)


SQUARE = {"x": "2, N, N", "b": "2, N, 3"}  # the matrix axes symbolic, the batch static


def test_linalg_with_symbolic_matrix_axes_matches_xla():
    """cholesky and triangular_solve on both sides, lower and upper, transposed and with a
    unit diagonal, the matrix size N at run time: one c module serves N = 1, 7 and the
    maximum, as the xla backend computes."""
    def fn(x, b):
        lo = G.cholesky(x)
        up, bt = G.transpose(lo, [0, 2, 1]), G.transpose(b, [0, 2, 1])
        return (lo, G.triangular_solve(lo, b, left_side=True, lower=True),
                G.triangular_solve(up, b, left_side=True, lower=False, transpose_a=True,
                                   unit_diagonal=True),
                G.triangular_solve(lo, bt, left_side=False, lower=True),
                G.triangular_solve(up, bt, left_side=False, lower=False, transpose_a=True))
    compare_with_xla(fn, SQUARE, _spd_and_rhs, tol=1e-5)


def test_linalg_gradient_with_symbolic_matrix_axes_matches_xla():
    """The VJPs of cholesky and triangular_solve (both sides) with the matrix size at run
    time: the gradients of x and b, c against xla at N = 1, 7 and the maximum."""
    def fn(x, b):
        lo = G.cholesky(x)
        bt = G.transpose(b, [0, 2, 1])
        y = G.triangular_solve(lo, b, left_side=True, lower=True)
        z = G.triangular_solve(lo, bt, left_side=False, lower=True, transpose_a=True)
        loss = G.reduce_sum(y * y) + G.reduce_sum(z * bt) + G.reduce_sum(lo)
        return tuple(G.grad(loss, [x, b]))
    compare_with_xla(fn, SQUARE, _spd_and_rhs, tol=1e-4)
