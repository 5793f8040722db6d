"""JVP rules of every differentiable primitive, checked against jax.jvp (and by
finite differences where the op is smooth at the drawn inputs).

The inputs are those of the gradient tests (`test_grad.py`,
`test_grad_contraction.py`), in the op domains they choose; one graph per
family computes many ops. The `G.jvp` API itself is in `test_jvp_api.py`.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_grad import BINARY, UNARY, _in
from test_grad_contraction import (CONVS, DILATED, DOTS, GATHERS, HIGHEST, PREFERRED,
                                   SCATTER_DIMS, SCATTERS, WINDOWS, _lax_conv, _lax_gather,
                                   _lax_scatter, preferred_dot, scatter_mul_min_max)
from test_jvpcheck import check_jvp

from mlframework import graph as G
from mlframework.graph import jvp_rules
from mlframework.graph.gen_optypes import DIFFERENTIABLE

ELEMENTWISE = {**UNARY, "erfc": (G.erfc, lax.erfc, _in(-2, 2))}


def test_every_differentiable_op_has_a_jvp_rule_and_no_other():
    assert set(jvp_rules.RULES) == set(DIFFERENTIABLE) | jvp_rules.FORWARD_ONLY
    assert not jvp_rules.FORWARD_ONLY & set(DIFFERENTIABLE)
    assert all(callable(rule) for rule in jvp_rules.RULES.values())


@pytest.mark.parametrize("shape", [(2, 3), ()])
def test_unary_ops(backend, rng, shape):
    names = list(ELEMENTWISE)
    args = [ELEMENTWISE[n][2](rng, shape) for n in names]
    check_jvp(backend, lambda *xs: [ELEMENTWISE[n][0](x) for n, x in zip(names, xs)], args,
              lambda *xs: [ELEMENTWISE[n][1](x) for n, x in zip(names, xs)], fd=True,
              names=names)


@pytest.mark.parametrize("x_shape,y_shape", [((2, 3), (3,)), ((), (2, 1))])
def test_binary_ops_with_broadcasting(backend, rng, x_shape, y_shape):
    names = list(BINARY)
    args = [a for n in names for a in (BINARY[n][2](rng, x_shape), BINARY[n][3](rng, y_shape))]

    def ours(*xs):
        return [BINARY[n][0](xs[2 * k], xs[2 * k + 1]) for k, n in enumerate(names)]

    def ref(*xs):
        return [BINARY[n][1](*jnp.broadcast_arrays(xs[2 * k], xs[2 * k + 1]))
                for k, n in enumerate(names)]
    check_jvp(backend, ours, args, ref, fd=True, names=names)


def test_kinks_ties_and_zeros_as_jax(backend):
    # max/min ties split the tangent; pow at 0; abs at 0; rem where x / y is an integer.
    x = np.array([1.0, 2.0, -3.0, 0.0, 0.0, 1.5])
    y = np.array([1.0, 0.0, -3.0, 0.0, 2.0, -1.0])
    ops = lambda x, y: [G.max(x, y), G.min(x, y), G.pow(x, y), G.abs(x), G.rem(x * 2, y + 4)]  # noqa
    ref = lambda x, y: [lax.max(x, y), lax.min(x, y), lax.pow(x, y), jnp.abs(x),  # noqa: E731
                        lax.rem(x * 2, y + 4)]
    check_jvp(backend, ops, [x, y], ref, names=["max", "min", "pow", "abs", "rem"])


def test_select_and_convert(backend, rng):
    x, a, b = _in(-1, 1)(rng, (3, 4)), _in(-1, 1)(rng, (3, 4)), _in(-1, 1)(rng, (4,))

    def ours(x, a, b):
        return [G.where(x > 0, a * x, b), G.where(x < 0.2, 2.0, x),
                G.convert(G.convert(x, "float32"), "float64") * a,
                G.convert(G.convert(x * 3, "int32"), "float64") * a]

    def ref(x, a, b):
        return [jnp.where(x > 0, a * x, b), jnp.where(x < 0.2, 2.0, x),
                x.astype(jnp.float32).astype(jnp.float64) * a,
                (x * 3).astype(jnp.int32).astype(jnp.float64) * a]
    check_jvp(backend, ours, [x, a, b], ref, rtol=1e-6)


def test_movement(backend, rng):
    a, b, c = rng.standard_normal((3, 1)), rng.standard_normal(()), rng.standard_normal((4, 5))
    s = np.array([4, -2], np.int32)  # the second start is clamped

    def ours(a, b, c, s):
        return [G.broadcast_in_dim(a, (2, 3, 4), (1, 2)), G.broadcast_in_dim(b, (2, 3), ()),
                G.reshape(c, (2, 10)), G.transpose(c, (1, 0)), G.reverse(c, (0, 1)),
                G.slice(c, (1, 0), (4, 5), (2, 3)), c[::-2, 1::2],
                G.pad(c, [(-1, 2, 1), (2, -3, 2)], value=0.5),
                G.concatenate([a, c[:3, :2] * c[:3, :2], a], 1),
                G.dynamic_slice(c, [s[0], s[1]], (2, 3)),
                G.dynamic_update_slice(c * c, a[:2] * b, [s[0], s[1]])]

    def ref(a, b, c, s):
        return [lax.broadcast_in_dim(a, (2, 3, 4), (1, 2)), lax.broadcast_in_dim(b, (2, 3), ()),
                c.reshape(2, 10), c.T, lax.rev(c, (0, 1)), lax.slice(c, (1, 0), (4, 5), (2, 3)),
                c[::-2, 1::2], lax.pad(c, 0.5, [(-1, 2, 1), (2, -3, 2)]),
                jnp.concatenate([a, c[:3, :2] * c[:3, :2], a], 1),
                lax.dynamic_slice(c, (s[0], s[1]), (2, 3)),
                lax.dynamic_update_slice(c * c, a[:2] * b, (s[0], s[1]))]
    check_jvp(backend, ours, [a, b, c, s], ref, fd=True)


def test_reductions_scans_and_sort(backend, rng):
    x = rng.standard_normal((3, 4))
    z = rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    z[0, :1], z[2, 1:3] = 0.0, 0.0  # one zero, two zeros, none
    d = rng.permutation(12).reshape(3, 4) / 3.0  # distinct: no ties
    t = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [-1.0, 0.5, -1.0, -1.0]])

    def ours(x, z, d, t):
        return [G.reduce_sum(x, (0, 1)), G.reduce_sum(x, 1, keepdims=True),
                G.reduce_prod(z, 1), G.reduce_prod(z, 0), G.reduce_max(d, 1), G.reduce_min(d),
                G.reduce_max(t, 1), G.reduce_min(t, 1), G.cumsum(x, 1),
                G.cumsum(x * x, 0, reverse=True), G.sort(d, 1), G.sort(d, 0, descending=True)]

    def ref(x, z, d, t):
        return [x.sum(), x.sum(1, keepdims=True), z.prod(1), z.prod(0), d.max(1), d.min(),
                t.max(1), t.min(1), lax.cumsum(x, 1), lax.cumsum(x * x, 0, reverse=True),
                jnp.sort(d, 1), jnp.flip(jnp.sort(d, 0), 0)]
    check_jvp(backend, ours, [x, z, d, t], ref)


def test_cumulative_scans(backend, rng):
    z = rng.uniform(0.5, 1.5, (3, 5)) * rng.choice([-1.0, 1.0], (3, 5))
    z[1, 2] = 0.0  # one zero
    z[2, 1] = z[2, 3] = 0.0  # two zeros
    d = rng.permutation(15).reshape(3, 5) / 3.0 - 2  # distinct: no ties
    x = rng.standard_normal((3, 4)) * 3

    def ours(z, d, x):
        return [G.cumprod(z, 1), G.cumprod(z, 1, reverse=True), G.cummax(d, 1),
                G.cummax(d, 0, reverse=True), G.cummin(d, 1, reverse=True), G.cummin(d, 0),
                G.cumlogsumexp(x, 1), G.cumlogsumexp(x, 0, reverse=True)]

    def ref(z, d, x):
        return [lax.cumprod(z, 1), lax.cumprod(z, 1, reverse=True), lax.cummax(d, 1),
                lax.cummax(d, 0, reverse=True), lax.cummin(d, 1, reverse=True),
                lax.cummin(d, 0), lax.cumlogsumexp(x, 1), lax.cumlogsumexp(x, 0, reverse=True)]
    check_jvp(backend, ours, [z, d, x], ref, fd=True)


def test_cummax_ties_take_the_first_tangent(backend):
    x = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 4.0])
    exe = G.Exec(backend, lambda x, t: G.jvp(lambda x: G.cummax(x, 0), (x,), (t,))[1])
    got = exe(x, np.arange(6.0) + 1).numpy()
    np.testing.assert_array_equal(got, [1.0, 2.0, 2.0, 2.0, 2.0, 6.0])  # as the VJP's ties


def test_dot_general_and_conv_general(backend, rng):
    args = [rng.standard_normal(s) for d in DOTS for s in d[:2]]
    convs = list(CONVS.values())
    args += [rng.standard_normal(s) for lhs, rhs, _ in convs for s in (lhs, rhs)]
    n = 2 * len(DOTS)

    def ours(*xs):
        return ([G.dot_general(xs[2 * k], xs[2 * k + 1], *d[2:]) for k, d in enumerate(DOTS)] +
                [G.conv_general(xs[n + 2 * k], xs[n + 2 * k + 1], **attrs)
                 for k, (_, _, attrs) in enumerate(convs)])

    def ref(*xs):
        return ([lax.dot_general(xs[2 * k], xs[2 * k + 1], (d[2:4], d[4:]), precision=HIGHEST)
                 for k, d in enumerate(DOTS)] +
                [_lax_conv(xs[n + 2 * k], xs[n + 2 * k + 1], **attrs)
                 for k, (_, _, attrs) in enumerate(convs)])
    check_jvp(backend, ours, args, ref, fd=True,
              names=[f"dot{k}" for k in range(len(DOTS))] + list(CONVS))


def test_reduce_window_sum_and_max(backend, rng):
    args = [rng.permutation(int(np.prod(s))).reshape(s) / 5.0 for s, *_ in WINDOWS]
    ties = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 2.0, 2.0]])

    def ours(*xs):
        return [op(x, w, s, p) for x, (_, w, s, p) in zip(xs, WINDOWS)
                for op in (G.reduce_window_sum, G.reduce_window_max)] + [
                    G.reduce_window_max(xs[-1], (2, 2), (1, 1))]

    def ref(*xs):
        return [lax.reduce_window(x, init, op, w, s, p) for x, (_, w, s, p) in zip(xs, WINDOWS)
                for init, op in ((0.0, lax.add), (-jnp.inf, lax.max))] + [
                    lax.reduce_window(xs[-1], -jnp.inf, lax.max, (2, 2), (1, 1), "VALID")]
    check_jvp(backend, ours, [*args, ties], ref)


def test_gather_and_scatter(backend, rng):
    args = [a for x, idx, *_ in GATHERS for a in (rng.standard_normal(x), np.array(idx, np.int32))]
    args += [a for x, idx, u, *_ in SCATTERS
             for a in (rng.standard_normal(x), np.array(idx, np.int32), rng.standard_normal(u))]
    n = 2 * len(GATHERS)

    def ours(*xs):
        gathers = [G.gather(xs[2 * k], xs[2 * k + 1], *g[2:]) for k, g in enumerate(GATHERS)]
        scatters = [op(*xs[n + 3 * k:n + 3 * k + 3], *s[3:]) for k, s in enumerate(SCATTERS)
                    for op in (G.scatter_add, G.scatter_set)]
        return gathers + scatters

    def ref(*xs):
        gathers = [_lax_gather(xs[2 * k], xs[2 * k + 1], *g[2:]) for k, g in enumerate(GATHERS)]
        scatters = [_lax_scatter(op, *xs[n + 3 * k:n + 3 * k + 3], *s[3:])
                    for k, s in enumerate(SCATTERS) for op in (lax.scatter_add, lax.scatter)]
        return gathers + scatters
    check_jvp(backend, ours, args, ref, fd=True)


def test_reduce_window_min_and_dilations(backend, rng):
    # Forward mode also takes window dilations for max and min (reverse mode refuses them).
    args = [rng.permutation(int(np.prod(s))).reshape(s) / 5.0 for s, *_ in DILATED]
    reducers = ((G.reduce_window_sum, 0.0, lax.add), (G.reduce_window_max, -jnp.inf, lax.max),
                (G.reduce_window_min, jnp.inf, lax.min))
    ties = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 2.0]])

    def ours(*xs):
        return [op(x, *c[1:]) for x, c in zip(xs, DILATED) for op, _, _ in reducers] + [
            G.reduce_window_min(xs[-1], (2, 2), (1, 1), ((1, 0), (0, 0)))]

    def ref(*xs):
        return [lax.reduce_window(x, init, op, *c[1:]) for x, c in zip(xs, DILATED)
                for _, init, op in reducers] + [
                    lax.reduce_window(xs[-1], jnp.inf, lax.min, (2, 2), (1, 1), ((1, 0), (0, 0)))]
    check_jvp(backend, ours, [*args, ties], ref)


def test_scatter_mul_min_max(backend, rng):
    # min/max ties share the tangent equally, as JAX; scatter_mul with repeated indices
    # has a tangent through its operand only.
    args, ours, ref = scatter_mul_min_max(rng)
    x, u, dup, dims = args[0], args[2], args[3], SCATTER_DIMS
    check_jvp(backend, lambda *a: [*ours(*a), G.scatter_mul(a[0], a[3], G.full(
        (4, 4), 2.0, "float64"), *dims)], args, lambda *a: [*ref(*a), _lax_scatter(
            lax.scatter_mul, a[0], a[3], np.full((4, 4), 2.0), *dims)])
    with pytest.raises(NotImplementedError, match="unique_indices=True"):
        G.Exec(backend, lambda u: G.jvp(lambda u: G.scatter_mul(x, dup, u, *dims), (u,),
                                        (u,)))(u)


@PREFERRED
def test_dot_general_preferred_element_type(backend, rng, dtype, wide):
    # Tangents are in the output's (wide) dtype, as jax.jvp's.
    args, ours, ref, rtol = preferred_dot(rng, dtype, wide)
    check_jvp(backend, ours, args, ref, rtol=rtol, atol=1e-6)
