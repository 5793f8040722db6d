"""Gradients of the elementwise, movement, reduction, scan and sort primitives,
each checked by finite differences (float64) and against jax.vjp.

Several ops share one graph where that stays readable (one input per op, so a
failure names the op). Contractions, windows, gathers and scatters are in
`test_grad_contraction.py`, composites in `test_grad_composites.py`, the
autodiff API in `test_grad_api.py`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_gradcheck import check_grads, cotangent

from mlframework import graph as G


def _in(lo, hi):
    """A sampler of uniform values in [lo, hi)."""
    return lambda rng, shape=(2, 3): rng.uniform(lo, hi, shape)


def _away_from_zero(rng, shape=(2, 3)):
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


# name: (our op, jax op, sampler of a float64 input in the op's domain)
UNARY = {
    "abs": (G.abs, jnp.abs, _away_from_zero),
    "neg": (G.neg, lax.neg, _in(-2, 2)),
    "exp": (G.exp, jnp.exp, _in(-2, 2)),
    "expm1": (G.expm1, jnp.expm1, _in(-2, 2)),
    "log": (G.log, jnp.log, _in(0.2, 3)),
    "log1p": (G.log1p, jnp.log1p, _in(-0.5, 3)),
    "sqrt": (G.sqrt, jnp.sqrt, _in(0.2, 3)),
    "rsqrt": (G.rsqrt, lax.rsqrt, _in(0.2, 3)),
    "tanh": (G.tanh, jnp.tanh, _in(-2, 2)),
    "logistic": (G.logistic, lax.logistic, _in(-3, 3)),
    "sin": (G.sin, jnp.sin, _in(-3, 3)),
    "cos": (G.cos, jnp.cos, _in(-3, 3)),
    "erf": (G.erf, lax.erf, _in(-2, 2)),
    "erf_inv": (G.erf_inv, lax.erf_inv, _in(-0.9, 0.9)),
    "erfc": (G.erfc, lax.erfc, _in(-2, 2)),
    "tan": (G.tan, jnp.tan, _in(-1.2, 1.2)),
    "asin": (G.asin, jnp.arcsin, _in(-0.9, 0.9)),
    "acos": (G.acos, jnp.arccos, _in(-0.9, 0.9)),
    "atan": (G.atan, jnp.arctan, _in(-3, 3)),
    "sinh": (G.sinh, jnp.sinh, _in(-2, 2)),
    "cosh": (G.cosh, jnp.cosh, _in(-2, 2)),
    "asinh": (G.asinh, jnp.arcsinh, _in(-3, 3)),
    "acosh": (G.acosh, jnp.arccosh, _in(1.2, 4)),
    "atanh": (G.atanh, jnp.arctanh, _in(-0.9, 0.9)),
    "lgamma": (G.lgamma, lax.lgamma, _in(-2.9, 4)),  # negative non-integers too
    "digamma": (G.digamma, lax.digamma, _in(-2.9, 4)),
    "cbrt": (G.cbrt, jnp.cbrt, _away_from_zero),
    "exp2": (G.exp2, jnp.exp2, _in(-2, 2)),
    "log2": (G.log2, jnp.log2, _in(0.2, 3)),
}

# name: (our op, jax op, sampler of x, sampler of y)
BINARY = {
    "add": (G.add, lax.add, _in(-2, 2), _in(-2, 2)),
    "sub": (G.sub, lax.sub, _in(-2, 2), _in(-2, 2)),
    "mul": (G.mul, lax.mul, _in(-2, 2), _in(-2, 2)),
    "div": (G.div, lax.div, _in(-2, 2), _away_from_zero),
    "pow": (G.pow, lax.pow, _in(0.3, 2), _in(-2, 2)),
    "max": (G.max, lax.max, _in(-2, 2), _in(-2, 2)),
    "min": (G.min, lax.min, _in(-2, 2), _in(-2, 2)),
    "rem": (G.rem, lax.rem, _in(-5, 5), _away_from_zero),
    "atan2": (G.atan2, lax.atan2, _in(-2, 2), _in(-2, 2)),
}


@pytest.mark.parametrize("shape", [(2, 3), ()])
def test_unary_ops(backend, rng, shape):
    names = list(UNARY)
    args = [UNARY[n][2](rng, shape) for n in names]
    check_grads(backend, lambda *xs: [UNARY[n][0](x) for n, x in zip(names, xs)], args,
                lambda *xs: [UNARY[n][1](x) for n, x in zip(names, xs)], names=names)


@pytest.mark.parametrize("x_shape,y_shape", [((2, 3), (3,)), ((), (2, 1)), ((3, 1, 2), (4, 1))])
def test_binary_ops_with_broadcasting(backend, rng, x_shape, y_shape):
    names = list(BINARY)
    args = [a for n in names for a in (BINARY[n][2](rng, x_shape), BINARY[n][3](rng, y_shape))]
    arg_names = [f"{n}.{side}" for n in names for side in "xy"]

    def ours(*xs):
        return [BINARY[n][0](xs[2 * k], xs[2 * k + 1]) for k, n in enumerate(names)]

    def ref(*xs):
        return [BINARY[n][1](*jnp.broadcast_arrays(xs[2 * k], xs[2 * k + 1]))
                for k, n in enumerate(names)]
    check_grads(backend, ours, args, ref, names=arg_names)


def test_python_scalars_and_operators(backend, rng):
    x = _in(0.5, 2)(rng)
    check_grads(backend, lambda x: [2.0 ** x, x ** 2.5, 1 / x, 3 - x, x ** 3, -x * 0.5], [x],
                lambda x: [2.0 ** x, x ** 2.5, 1 / x, 3 - x, x ** 3, -x * 0.5])


def test_float32_gradients_keep_their_dtype(backend, rng):
    x = _in(0.5, 2)(rng).astype(np.float32)
    y = _in(0.5, 2)(rng).astype(np.float32)
    check_grads(backend, lambda x, y: G.tanh(x * y) / y + G.log(x), [x, y],
                lambda x, y: jnp.tanh(x * y) / y + jnp.log(x), fd=False, rtol=1e-5, atol=1e-6)


def test_max_min_ties_split_the_gradient(backend):
    x = np.array([1.0, 2.0, -3.0, 0.5])
    y = np.array([1.0, 0.0, -3.0, 0.7])
    grads = check_grads(backend, lambda x, y: [G.max(x, y), G.min(x, y)], [x, y],
                        lambda x, y: [lax.max(x, y), lax.min(x, y)], fd=False)
    c0, c1 = (np.cos(np.arange(4) * 2.3998 + 0.7 + 1.1 * k) for k in range(2))
    np.testing.assert_allclose(grads[0][0], 0.5 * (c0[0] + c1[0]))  # the tie is split


def test_pow_at_zero(backend):
    # d/dx 0**0 and d/dy 0**y are 0 in JAX (not NaN).
    x = np.array([0.0, 0.0, 2.0, 0.0, 1.5])
    y = np.array([0.0, 2.0, 0.0, 1.5, -1.0])
    check_grads(backend, G.pow, [x, y], lax.pow, fd=False)


def test_select_and_where(backend, rng):
    x, a, b = _in(-1, 1)(rng, (3, 4)), _in(-1, 1)(rng, (3, 4)), _in(-1, 1)(rng, (4,))
    check_grads(backend, lambda x, a, b: [G.where(x > 0, a * x, b), G.where(x < 0.2, 2.0, x)],
                [x, a, b], lambda x, a, b: [jnp.where(x > 0, a * x, b), jnp.where(x < 0.2, 2.0, x)])


def test_convert(backend, rng):
    x = _in(-3, 3)(rng, (5,))
    # float64 -> float32 -> float64 passes the gradient through (rounded to float32).
    check_grads(backend, lambda x: G.convert(G.convert(x, "float32"), "float64") * x, [x],
                lambda x: x.astype(jnp.float32).astype(jnp.float64) * x, fd=False, rtol=1e-6)
    # The path through an integer carries no gradient.
    check_grads(backend, lambda x: G.convert(G.convert(x, "int32"), "float64") * x, [x],
                lambda x: x.astype(jnp.int32).astype(jnp.float64) * x)


# ---- movement ----

def test_broadcast_reshape_transpose_reverse(backend, rng):
    a, b, c, d = rng.standard_normal((3, 1)), rng.standard_normal(()), \
        rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    ours = lambda a, b, c, d: [  # noqa: E731
        G.broadcast_in_dim(a, (2, 3, 4), (1, 2)), G.broadcast_in_dim(b, (2, 3), ()),
        G.reshape(c, (4, 6)) * 1.5, G.transpose(c, (2, 0, 1)), G.reverse(d, (0, 2))]
    ref = lambda a, b, c, d: [  # noqa: E731
        lax.broadcast_in_dim(a, (2, 3, 4), (1, 2)), lax.broadcast_in_dim(b, (2, 3), ()),
        c.reshape(4, 6) * 1.5, c.transpose(2, 0, 1), lax.rev(d, (0, 2))]
    check_grads(backend, ours, [a, b, c, d], ref, names=list("abcd"))


def test_slice_with_strides(backend, rng):
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((4, 6))
    ours = lambda x, y: [G.slice(x, (1, 0), (7, 5), (2, 3)), G.slice(x, (2, 1), (6, 3)),  # noqa
                         G.slice(y, (0, 4), (4, 4)), y[::-2, 1::4]]
    ref = lambda x, y: [lax.slice(x, (1, 0), (7, 5), (2, 3)), lax.slice(x, (2, 1), (6, 3)),  # noqa
                        lax.slice(y, (0, 4), (4, 4)), y[::-2, 1::4]]
    check_grads(backend, ours, [x, y], ref)


@pytest.mark.parametrize("config", [
    [(-1, 2, 1), (2, -3, 2)],  # negative low/high with interior padding
    [(1, 1, 0), (0, 2, 0)],
    [(-2, -1, 0), (-3, 0, 1)],  # crop only
])
def test_pad(backend, rng, config):
    x = rng.standard_normal((4, 5))
    check_grads(backend, lambda x: G.pad(x, config, value=0.5), [x],
                lambda x: lax.pad(x, 0.5, config))


def test_concatenate(backend, rng):
    a, b, c = rng.standard_normal((2, 1)), rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    check_grads(backend, lambda a, b, c: G.concatenate([a, b, c, a], 1), [a, b, c],
                lambda a, b, c: jnp.concatenate([a, b, c, a], 1))


@pytest.mark.parametrize("starts", [(1, 2), (4, -2), (-1, 9)], ids=["inside", "clamped", "both"])
def test_dynamic_slice_and_update(backend, rng, starts):
    x, u = rng.standard_normal((5, 6)), rng.standard_normal((2, 3))
    s = np.array(starts, np.int32)
    ours = lambda x, u, s: [G.dynamic_slice(x, [s[0], s[1]], (3, 4)),  # noqa: E731
                            G.dynamic_update_slice(x * x, u, [s[0], s[1]])]
    ref = lambda x, u, s: [lax.dynamic_slice(x, (s[0], s[1]), (3, 4)),  # noqa: E731
                           lax.dynamic_update_slice(x * x, u, (s[0], s[1]))]
    check_grads(backend, ours, [x, u, s], ref, names=["x", "update", "starts"])


# ---- reductions, scans, sort ----

def test_reduce_sum_and_keepdims(backend, rng):
    x = rng.standard_normal((2, 3, 4))
    check_grads(backend, lambda x: [G.reduce_sum(x, (0, 2)), G.reduce_sum(x),
                                    G.reduce_sum(x, -1, keepdims=True)], [x],
                lambda x: [x.sum((0, 2)), x.sum(), x.sum(-1, keepdims=True)])


def test_reduce_max_min_without_ties(backend, rng):
    x = rng.permutation(24).reshape(2, 3, 4) / 7.0
    check_grads(backend, lambda x: [G.reduce_max(x, 1), G.reduce_min(x, (0, 2)), G.reduce_max(x)],
                [x], lambda x: [x.max(1), x.min((0, 2)), x.max()])


def test_reduce_max_min_ties_split_equally(backend):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [-1.0, 0.5, -1.0, -1.0]])
    grads = check_grads(backend, lambda x: [G.reduce_max(x, 1), G.reduce_min(x, 1)], [x],
                        lambda x: [x.max(1), x.min(1)], fd=False)
    c = np.cos(np.arange(3) * 2.3998 + 0.7)
    np.testing.assert_allclose(grads[0][1, :3], c[1] / 3)


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_reduce_prod_with_zeros(backend, rng, zeros):
    x = rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    x[0, :zeros] = 0.0
    x[2, 3 - zeros:3] = 0.0
    check_grads(backend, lambda x: [G.reduce_prod(x, 1), G.reduce_prod(x, 0)], [x],
                lambda x: [x.prod(1), x.prod(0)])


def test_cumsum(backend, rng):
    x = rng.standard_normal((3, 4))
    check_grads(backend, lambda x: [G.cumsum(x, 1), G.cumsum(x, 0, reverse=True),
                                    G.cumsum(x * x, -1, reverse=True)], [x],
                lambda x: [lax.cumsum(x, 1), lax.cumsum(x, 0, reverse=True),
                           lax.cumsum(x * x, 1, reverse=True)])


def test_cumprod_with_zeros(backend, rng):
    x = rng.uniform(0.5, 1.5, (3, 5)) * rng.choice([-1.0, 1.0], (3, 5))
    x[1, 2] = 0.0  # one zero
    x[2, 1] = x[2, 3] = 0.0  # two zeros
    check_grads(backend, lambda x: [G.cumprod(x, 1), G.cumprod(x, 1, reverse=True),
                                    G.cumprod(x, 0)], [x],
                lambda x: [lax.cumprod(x, 1), lax.cumprod(x, 1, reverse=True),
                           lax.cumprod(x, 0)])


def test_cummax_cummin_without_ties(backend, rng):
    x = rng.permutation(20).reshape(4, 5) / 3.0 - 3
    check_grads(backend, lambda x: [G.cummax(x, 1), G.cummax(x, 0, reverse=True),
                                    G.cummin(x, 1, reverse=True), G.cummin(x, 0)], [x],
                lambda x: [lax.cummax(x, 1), lax.cummax(x, 0, reverse=True),
                           lax.cummin(x, 1, reverse=True), lax.cummin(x, 0)])


def test_cummax_ties_go_to_the_first(backend):
    x = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 4.0])
    grads = check_grads(backend, lambda x: G.cummax(x, 0), [x], fd=False)
    want = np.zeros(6)
    c = cotangent((6,), np.float64)
    want[0], want[1], want[5] = c[0], c[1:5].sum(), c[5]
    np.testing.assert_allclose(grads[0], want, rtol=1e-12, atol=1e-12)


def test_cumlogsumexp(backend, rng):
    x = rng.standard_normal((3, 4)) * 3
    x[0, 0] = 40.0  # exp would overflow float32 without the log-space rule; fine in float64
    check_grads(backend, lambda x: [G.cumlogsumexp(x, 1), G.cumlogsumexp(x, 0, reverse=True)],
                [x], lambda x: [lax.cumlogsumexp(x, 1), lax.cumlogsumexp(x, 0, reverse=True)])


def test_sort(backend, rng):
    x = rng.permutation(20).reshape(4, 5) / 3.0 - 2
    check_grads(backend, lambda x: [G.sort(x, 1), G.sort(x, 0, descending=True) * x],
                [x], lambda x: [jnp.sort(x, 1), jnp.flip(jnp.sort(x, 0), 0) * x])
