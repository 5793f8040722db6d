"""Control flow (cond, while_loop, fori_loop, scan) with a symbolic batch in the carried
and operand values on the c backend: one compiled module, checked against the xla
backend at sizes 1, 7 and the maximum, gradients through scan, and scans over a
symbolic length (the scanned axis itself symbolic)."""
from __future__ import annotations

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from symbolic_support import compare_with_xla

RNG = np.random.default_rng(2)
T, F, H = 5, 4, 3
W = (RNG.normal(size=(H, H)) * 0.4).astype(np.float32)
U = (RNG.normal(size=(F, H)) * 0.5).astype(np.float32)


def _compare(fn, spec, make):
    compare_with_xla(fn, spec, make, tol=1e-5)


def _x(n, d=3):
    return RNG.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["true", "false"])
def test_cond_over_a_symbolic_operand(sign):
    def fn(x):
        return G.cond(x[0, 0] > 0, lambda a: a * 2.0 + 1.0, lambda a: G.exp(a), x)
    def make(n):
        x = _x(n)
        x[0, 0] = sign * abs(x[0, 0])
        return [x]
    _compare(fn, {"x": "N, 3"}, make)


def test_while_loop_with_a_symbolic_carry():
    def fn(x):
        def body(c):
            y, i = c
            return y * 0.5 + G.reduce_sum(y, axes=(1,), keepdims=True), i + 1
        return G.while_loop(lambda c: c[1] < 4, body, (x, np.int32(0)))
    _compare(fn, {"x": "N, 3"}, lambda n: [_x(n)])


def test_fori_loop_with_a_symbolic_carry():
    def fn(x):
        return G.fori_loop(0, 3, lambda i, c: G.tanh(c @ W + G.convert(i, c.dtype)), x)
    _compare(fn, {"x": "N, 3"}, lambda n: [_x(n)])


def test_fori_loop_over_a_symbolic_trip_count():
    def fn(x):  # N steps: the bound is a node computed from N at run time
        n = G.dim_value(x.shape[0], np.int32)
        return G.fori_loop(0, n, lambda i, c: c * 0.5 + G.convert(i, c.dtype), x)
    _compare(fn, {"x": "N, 3"}, lambda n: [_x(n)])


def test_cond_inside_a_scan_body():
    def fn(xs):  # the nested sub-program takes the symbols on from the scan's body
        def step(h, x):
            h = G.cond(G.reduce_sum(x) > 0, lambda a: G.tanh(a @ W), lambda a: a * 0.5, h + x)
            return h, h
        return G.scan(step, G.zeros_like(xs[0]), xs)
    _compare(fn, {"xs": f"{T}, N, {H}"},
             lambda n: [RNG.normal(size=(T, n, H)).astype(np.float32)])


def _rnn(reverse=False):
    def model(xs):  # xs: [T, N, F], the carry [N, H]
        def step(h, x):
            h = G.tanh(h @ W + x @ U)
            return h, h * h
        h0 = G.zeros_like(xs[0] @ U)
        return G.scan(step, h0, xs, reverse=reverse)
    return model


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_rnn_with_a_symbolic_batch(reverse):
    _compare(_rnn(reverse), {"xs": f"{T}, N, {F}"},
             lambda n: [RNG.normal(size=(T, n, F)).astype(np.float32)])


def test_gradient_through_scan_with_a_symbolic_batch():
    def fn(xs):
        h, ys = _rnn()(xs)
        return G.grad(G.reduce_sum(h * h) + G.reduce_sum(ys), xs)[0]
    _compare(fn, {"xs": f"{T}, N, {F}"},
             lambda n: [RNG.normal(size=(T, n, F)).astype(np.float32)])



@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_over_a_symbolic_length_and_its_gradient(reverse):
    def fn(xs):  # xs: [N, 3], scanned over N: the loop runs sym_N steps
        c, ys = G.scan(lambda c, x: (c * 0.5 + x, c * x), G.zeros_like(xs[0]), xs,
                       reverse=reverse)
        return c, ys, G.grad(G.reduce_sum(c * c) + G.reduce_sum(ys), xs)[0]
    _compare(fn, {"xs": "N, 3"}, lambda n: [_x(n)])


def test_rnn_over_a_symbolic_sequence_and_batch():
    """Two symbols: the scan runs S steps over a carry of N rows; one module, against
    the xla backend at several (S, N)."""
    fn = _rnn()
    on_c = G.Exec(mlf.backends.new("c"), fn, symbolic={"xs": f"S, N, {F}"},
                  maxima={"N": 8, "S": 6})
    on_xla = G.Exec(mlf.backends.new("xla"), fn)
    for s, n in ((1, 1), (6, 1), (1, 8), (4, 7), (6, 8)):
        xs = RNG.normal(size=(s, n, F)).astype(np.float32)
        for g, w in zip(on_c(xs), on_xla(xs)):
            np.testing.assert_allclose(np.asarray(g.numpy()), np.asarray(w.numpy()),
                                       rtol=1e-5, atol=1e-5)
