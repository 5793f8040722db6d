"""Control flow (cond, switch, while_loop, fori_loop, scan) against jax.lax, on every
backend with the same assertions, gradients against jax and finite differences."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_gradcheck import check_grads

from mlframework import graph as G
from mlframework.graph.gen_optypes import OpGroup

jax.config.update("jax_enable_x64", True)

# The ops of the table these tests cover (tests/graph/test_differential_structural.py).
COVERED = {op.value for op in OpGroup.CONTROL}


def run(backend, fn, *args):
    """fn's results on backend, as a pytree of NumPy arrays."""
    return jax.tree_util.tree_map(lambda t: t.numpy(), G.Exec(backend, fn)(*args))


grads = check_grads


def _assert_close(got, want, rtol=1e-6, atol=1e-6):
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        assert g.dtype == np.asarray(w).dtype and g.shape == np.shape(w)
        np.testing.assert_allclose(g, np.asarray(w), rtol=rtol, atol=atol)


# ---- an RNN over 50 steps with scan ----

def _rnn(tanh, matmul, scan):
    def model(w, u, b, h0, xs):
        def step(h, x):
            h = tanh(matmul(h, w) + matmul(x, u) + b)
            return h, h * h
        return scan(step, h0, xs)
    return model


OURS_RNN = _rnn(G.tanh, G.matmul, G.scan)
JAX_RNN = _rnn(jnp.tanh, jnp.matmul, lax.scan)


def _rnn_args(dtype, steps=50, batch=3, hidden=5, features=4):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((hidden, hidden)) * 0.4).astype(dtype),
            (rng.standard_normal((features, hidden)) * 0.5).astype(dtype),
            (rng.standard_normal(hidden) * 0.1).astype(dtype),
            rng.standard_normal((batch, hidden)).astype(dtype),
            rng.standard_normal((steps, batch, features)).astype(dtype)]


def test_scan_rnn_forward_matches_jax(backend):
    args = _rnn_args(np.float32)
    got = run(backend, OURS_RNN, *args)
    _assert_close(got, jax.jit(JAX_RNN)(*args), rtol=1e-5, atol=1e-5)


def test_scan_rnn_gradients_match_jax_to_1e5(backend):
    args = _rnn_args(np.float32)
    grads(backend, OURS_RNN, args, JAX_RNN, fd=False, rtol=1e-5, atol=1e-5)


def test_scan_rnn_gradients_match_finite_differences(backend):
    grads(backend, OURS_RNN, _rnn_args(np.float64, steps=12), JAX_RNN)


# ---- while_loop, fori_loop ----

def _newton(np_, while_loop):
    """Newton's iterations for sqrt(a), elementwise, until every residual is small."""
    def model(a):
        def cond(state):
            x, k = state
            return np_.logical_and(np_.max(np_.abs(x * x - a)) > 1e-12, k < np.int32(50))

        def body(state):
            x, k = state
            return (x + a / x) * 0.5, k + 1
        return while_loop(cond, body, (np_.where(a > 1, a, a * 0 + 1), np.int32(0)))
    return model


class OursNp:
    """The jax.numpy names the shared models use, spelled with G."""

    logical_and, abs, where, sin, cos, exp = (G.logical_and, G.abs, G.where, G.sin, G.cos,
                                              G.exp)
    max, sum = staticmethod(G.reduce_max), staticmethod(G.reduce_sum)
    reshape, zeros_like = staticmethod(G.reshape), staticmethod(G.zeros_like)


def test_while_loop_newton_matches_jax(backend):
    a = np.array([0.25, 2.0, 9.0, 1e4], np.float64)
    mine = run(backend, _newton(OursNp, G.while_loop), a)
    ref = jax.jit(_newton(jnp, lax.while_loop))(a)
    _assert_close(mine, ref, rtol=0, atol=0)
    np.testing.assert_allclose(mine[0], np.sqrt(a), rtol=1e-14)


def test_while_loop_refuses_reverse_mode():
    def fn(x):
        y = G.while_loop(lambda c: c < 10, lambda c: c * x, G.const(1.0))
        return G.grad(y, [x])
    with pytest.raises(NotImplementedError, match="while_loop.*fori_loop.*scan"):
        G.Exec(None, fn).graph(np.float32(2))


def _cumprod(np_, fori_loop, dynamic_update_slice, take):
    def model(x):
        def body(i, state):
            prod, out = state
            prod = prod * take(x, i)
            return prod, dynamic_update_slice(out, np_.reshape(prod, (1,)), (i,))
        return fori_loop(0, x.shape[0], body, (x[0] * 0 + 1, np_.zeros_like(x)))[1]
    return model


OURS_CUMPROD = _cumprod(OursNp, G.fori_loop, G.dynamic_update_slice,
                        lambda x, i: G.reshape(G.dynamic_slice(x, [i], [1]), ()))
JAX_CUMPROD = _cumprod(jnp, lax.fori_loop, lax.dynamic_update_slice, lambda x, i: x[i])


def test_fori_loop_cumulative_product(backend):
    x = np.array([1.5, -2.0, 0.5, 3.0, 1.25], np.float64)
    got = run(backend, OURS_CUMPROD, x)
    np.testing.assert_allclose(got, np.cumprod(x), rtol=1e-15)
    grads(backend, OURS_CUMPROD, [x], JAX_CUMPROD)


def test_fori_loop_with_node_bounds_is_a_while_loop(backend):
    def ours(x, n):
        return G.fori_loop(1, n, lambda i, c: c * x + G.convert(i, x.dtype), x)

    def ref(x, n):
        return lax.fori_loop(1, n, lambda i, c: c * x + i.astype(x.dtype), x)
    x, n = np.float32(1.5), np.int32(6)
    graph = G.Exec(None, ours).graph(x, n)
    assert "while_loop" in {node.op.value for node in graph.nodes}
    got = run(backend, ours, x, n)
    _assert_close(got, jax.jit(ref)(x, n))


# ---- cond, switch, nesting ----

def _branchy(np_, cond):
    def model(x, y):
        return cond(np_.sum(x) > 0, lambda a, b: {"s": np_.sin(a) * b, "t": b},
                    lambda a, b: {"s": a * a + y, "t": np_.where(b > 0, b, -b)}, x, y)
    return model


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_with_pytrees_and_captures(backend, sign):
    rng = np.random.default_rng(1)
    x = sign * np.abs(rng.standard_normal(4))
    y = rng.standard_normal(4)
    got = run(backend, _branchy(OursNp, G.cond), x, y)
    _assert_close(got, _branchy(jnp, lax.cond)(x, y), rtol=1e-15)
    grads(backend, _branchy(OursNp, G.cond), [x, y], _branchy(jnp, lax.cond))


def _switched(switch, exp):
    def model(i, x, w):
        return switch(i, [lambda a: a * w, lambda a: exp(a), lambda a: a - w * w], x)
    return model


@pytest.mark.parametrize("index", [-3, 0, 1, 2, 7])
def test_switch_clamps_its_index_as_jax(backend, index):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(3), rng.standard_normal(3)
    i = np.int32(index)
    got = run(backend, _switched(G.switch, G.exp), i, x, w)
    _assert_close(got, _switched(lax.switch, jnp.exp)(i, x, w), rtol=1e-15)
    grads(backend, _switched(G.switch, G.exp), [i, x, w], _switched(lax.switch, jnp.exp))


def _nested(scan, cond, sin, cos):
    def model(c0, xs, w):
        def step(c, x):
            c = cond(x > 0, lambda v: sin(v * w), lambda v: cos(v) + x, c)
            return c, c * x
        return scan(step, c0, xs)
    return model


def test_cond_inside_scan(backend):
    rng = np.random.default_rng(3)
    c0, xs, w = rng.standard_normal(2), rng.standard_normal(9), rng.standard_normal(2)
    ours, ref = _nested(G.scan, G.cond, G.sin, G.cos), _nested(lax.scan, lax.cond, jnp.sin,
                                                                jnp.cos)
    got = run(backend, ours, c0, xs, w)
    _assert_close(got, ref(c0, xs, w), rtol=1e-14)
    grads(backend, ours, [c0, xs, w], ref)


def _scan_in_scan(np_, scan):
    def model(xs, w):
        def outer(c, row):
            inner, ys = scan(lambda d, x: (d * w + x, d), c, row)
            return inner, np_.sum(ys)
        return scan(outer, xs[0, 0] * 0, xs)
    return model


def test_scan_inside_scan_captures_through_two_levels(backend):
    rng = np.random.default_rng(4)
    xs, w = rng.standard_normal((4, 3)), np.float64(0.7)
    got = run(backend, _scan_in_scan(OursNp, G.scan), xs, w)
    _assert_close(got, _scan_in_scan(jnp, lax.scan)(xs, w), rtol=1e-14)
    grads(backend, _scan_in_scan(OursNp, G.scan), [xs, w], _scan_in_scan(jnp, lax.scan))


# ---- scan options and pytree carries ----

def _reversed_and_counted(scan):
    def model(xs, a):
        def step(carry, x):
            total, count = carry["total"], carry["count"]
            total = total * a + x["v"] * x["k"]
            return {"total": total, "count": count + 1}, (total, count)
        backward = scan(step, {"total": a * 0, "count": np.int32(0)}, {"v": xs, "k": xs * 2},
                        reverse=True)
        counted = scan(lambda c, _: (c * a + 1, c), a, None, length=4)
        return backward, counted
    return model


def test_reverse_scan_length_and_pytree_carries(backend):
    rng = np.random.default_rng(5)
    xs, a = rng.standard_normal((6, 2)), rng.standard_normal(2)
    got = run(backend, _reversed_and_counted(G.scan), xs, a)
    _assert_close(got, _reversed_and_counted(lax.scan)(xs, a), rtol=1e-14)
    grads(backend, _reversed_and_counted(G.scan), [xs, a], _reversed_and_counted(lax.scan))


# ---- mismatches are reported with the op, the path, both types and the user's line ----

def _error_of(fn, *args) -> str:
    with pytest.raises((G.ShapeError, G.DTypeError)) as info:
        G.Exec(None, fn).graph(*args)
    return str(info.value)


def test_scan_carry_mismatch_names_the_path_and_the_line():
    def fn(x):
        return G.scan(lambda c, v: ((c[0], {"h": c[1]["h"][:2]}), v), (x[0], {"h": x}), x)
    message = _error_of(fn, np.zeros(3, np.float32))
    assert "scan requires the carry" in message
    assert "[1]['h']: got float32[2] for float32[3]" in message
    assert f"{__file__}:" in message and "(at " in message


def test_cond_branch_dtype_mismatch():
    message = _error_of(lambda x: G.cond(x > 0, lambda v: v, lambda v: G.convert(v, "int32"),
                                         x), np.float32(1))
    assert isinstance(message, str) and "cond requires the result of branch" in message
    assert "float32[] for int32[]" in message or "int32[] for float32[]" in message


def test_while_loop_body_and_cond_mismatches():
    assert "while_loop requires cond_fn" in _error_of(
        lambda x: G.while_loop(lambda c: c, lambda c: c, x), np.float32(1))
    assert "at the root: got float64[] for float32[]" in _error_of(
        lambda x: G.while_loop(lambda c: c < 1, lambda c: G.convert(c, "float64"), x),
        np.float32(1))


def test_scan_length_mismatch():
    assert "length=5" in _error_of(lambda x: G.scan(lambda c, v: (c, v), 0.0, x, length=5),
                                   np.zeros(3, np.float32))



def test_c_profile_times_a_loop_as_one_kernel():
    import mlframework as mlf
    from mlframework.backends.c.profile import profile_kernels
    exe = G.Exec(mlf.backends.new("c"), _scan_in_scan(OursNp, G.scan))
    xs, w = np.ones((4, 3)), np.float64(0.5)
    exe(xs, w)
    rows = profile_kernels(next(iter(exe._cache.values()))[0], [xs, w], repeats=2)
    assert [name for name, _, _ in rows].count("scan") == 1
    assert sum(share for _, _, share in rows) == pytest.approx(1.0)
