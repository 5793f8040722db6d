"""Gradients of dot_general, conv_general, reduce_window, gather and scatter,
checked by finite differences (float64) and against jax.vjp of jax.lax."""
from __future__ import annotations

from functools import partial

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_gradcheck import check_grads

from mlframework import graph as G

HIGHEST = lax.Precision.HIGHEST

# (lhs shape, rhs shape, lhs_contracting, rhs_contracting, lhs_batch, rhs_batch)
DOTS = [
    ((3, 4), (4, 5), (1,), (0,), (), ()),                      # matrix product
    ((4,), (4,), (0,), (0,), (), ()),                          # inner product
    ((3,), (2, 2), (), (), (), ()),                            # outer product
    ((2, 3, 4, 5), (5, 2, 4, 6), (3, 2), (0, 2), (0,), (1,)),  # batch, two unsorted contractions
    ((3, 2, 4), (4, 2), (2,), (0,), (1,), (1,)),               # batch axes not leading
    ((2, 3, 4), (2, 4, 3), (2, 1), (1, 2), (0,), (0,)),        # batch, all axes contracted
]


def test_dot_general(backend, rng):
    args = [rng.standard_normal(s) for d in DOTS for s in d[:2]]

    def ours(*xs):
        return [G.dot_general(xs[2 * k], xs[2 * k + 1], *d[2:]) for k, d in enumerate(DOTS)]

    def ref(*xs):
        return [lax.dot_general(xs[2 * k], xs[2 * k + 1], (d[2:4], d[4:]), precision=HIGHEST)
                for k, d in enumerate(DOTS)]
    check_grads(backend, ours, args, ref, names=[f"dot{k}.{s}" for k in range(len(DOTS))
                                                 for s in ("lhs", "rhs")])


PREFERRED = pytest.mark.parametrize("dtype, wide", [(np.float16, np.float32),
                                                   (np.float32, np.float64)],
                                    ids=["float16-float32", "float32-float64"])


def preferred_dot(rng, dtype, wide):
    """Arguments, our function, jax's and the rtol of a matrix product into `wide`
    (also used by test_jvp.py)."""
    args = [rng.standard_normal(s).astype(dtype) for s in ((3, 4), (4, 5))]
    return (args, lambda a, b: G.dot_general(a, b, (1,), (0,), preferred_element_type=wide),
            lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ())), precision=HIGHEST,
                                         preferred_element_type=wide),
            2e-3 if dtype == np.float16 else 1e-6)


@PREFERRED
def test_dot_general_preferred_element_type(backend, rng, dtype, wide):
    # Operand cotangents come back in the operands' dtype, as jax.grad's.
    args, ours, ref, rtol = preferred_dot(rng, dtype, wide)
    check_grads(backend, ours, args, ref, fd=False, rtol=rtol)


# (lhs shape, rhs shape, attributes)
CONVS = {
    "1d_stride_pad": ((2, 3, 9), (4, 3, 3), dict(window_strides=(2,), padding=((1, 2),))),
    "2d_stride_rhs_dilation": ((2, 3, 7, 6), (4, 3, 3, 2), dict(
        window_strides=(2, 1), padding=((1, 1), (0, 2)), rhs_dilation=(1, 2))),
    "2d_lhs_dilation": ((1, 2, 4, 5), (3, 2, 3, 2), dict(
        padding=((2, 2), (1, 0)), lhs_dilation=(2, 1))),
    "2d_stride_beyond_window": ((1, 2, 8, 7), (2, 2, 2, 2), dict(window_strides=(3, 3))),
    "2d_all_dilations_negative_pad": ((2, 2, 6, 7), (3, 2, 2, 3), dict(
        window_strides=(2, 1), padding=((-1, 2), (1, -1)), lhs_dilation=(2, 1),
        rhs_dilation=(2, 2))),
    "feature_groups": ((2, 4, 6, 5), (6, 2, 3, 3), dict(
        padding=((1, 1), (1, 1)), feature_group_count=2)),
    "depthwise_strided": ((1, 3, 7, 6), (6, 1, 3, 3), dict(
        window_strides=(2, 2), rhs_dilation=(1, 2), feature_group_count=3)),
    "batch_groups": ((4, 3, 6, 5), (4, 3, 2, 2), dict(batch_group_count=2, window_strides=(2, 1))),
    "batch_groups_dilated": ((6, 2, 5, 5), (3, 2, 3, 2), dict(
        batch_group_count=3, padding=((1, 0), (0, 1)), rhs_dilation=(2, 1))),
    "3d": ((1, 2, 4, 3, 5), (2, 2, 2, 2, 3), dict(window_strides=(1, 2, 1),
                                                  padding=((0, 1), (1, 0), (1, 1)))),
    "nhwc_hwio": ((2, 7, 6, 3), (3, 2, 3, 4), dict(
        window_strides=(2, 1), padding=((1, 1), (0, 1)), rhs_dilation=(1, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    "wcn_grouped": ((5, 4, 2), (2, 2, 6), dict(
        padding=((1, 0),), feature_group_count=2, dimension_numbers=("WCN", "WIO", "NWC"))),
}


def _lax_conv(lhs, rhs, window_strides=None, padding=None, lhs_dilation=None,
              rhs_dilation=None, feature_group_count=1, batch_group_count=1,
              dimension_numbers=None):
    n = lhs.ndim - 2
    return lax.conv_general_dilated(
        lhs, rhs, window_strides or (1,) * n, padding or ((0, 0),) * n, lhs_dilation,
        rhs_dilation, dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=HIGHEST)


@pytest.mark.parametrize("pair", [("1d_stride_pad", "3d"),
                                  ("2d_stride_rhs_dilation", "2d_lhs_dilation"),
                                  ("2d_stride_beyond_window", "2d_all_dilations_negative_pad"),
                                  ("feature_groups", "depthwise_strided"),
                                  ("batch_groups", "batch_groups_dilated"),
                                  ("nhwc_hwio", "wcn_grouped")],
                         ids=lambda p: "+".join(p))
def test_conv_general(backend, rng, pair):
    cases = [CONVS[name] for name in pair]
    args = [rng.standard_normal(s) for lhs, rhs, _ in cases for s in (lhs, rhs)]

    def ours(*xs):
        return [G.conv_general(xs[2 * k], xs[2 * k + 1], **attrs)
                for k, (_, _, attrs) in enumerate(cases)]

    def ref(*xs):
        return [_lax_conv(xs[2 * k], xs[2 * k + 1], **attrs)
                for k, (_, _, attrs) in enumerate(cases)]
    check_grads(backend, ours, args, ref, names=[f"{n}.{s}" for n in pair for s in ("lhs", "rhs")])


# (x shape, window, strides, padding)
WINDOWS = [
    ((2, 7, 6), (1, 2, 3), (1, 2, 1), ((0, 0), (1, 0), (1, 1))),
    ((9,), (3,), (2,), ((0, 0),)),
    ((8, 7), (2, 2), (3, 3), ((0, 0), (0, 0))),  # stride beyond the window: some x unused
    ((5, 5), (3, 3), (1, 1), ((1, 1), (1, 1))),
]


def test_reduce_window_sum_and_max(backend, rng):
    # Distinct values: max pooling has no ties.
    args = [rng.permutation(int(np.prod(s))).reshape(s) / 5.0 for s, *_ in WINDOWS]

    def ours(*xs):
        return [op(x, w, s, p) for x, (_, w, s, p) in zip(xs, WINDOWS)
                for op in (G.reduce_window_sum, G.reduce_window_max)]

    def ref(*xs):
        return [lax.reduce_window(x, init, op, w, s, p) for x, (_, w, s, p) in zip(xs, WINDOWS)
                for init, op in ((0.0, lax.add), (-jnp.inf, lax.max))]
    check_grads(backend, ours, args, ref)


# (x shape, window, strides, padding, base_dilation, window_dilation)
DILATED = [((4, 5), (2, 2), (1, 2), ((1, 0), (0, 1)), (2, 1), (1, 1)),
           ((7,), (3,), (2,), ((1, 2),), (3,), (1,)),
           ((5, 6), (2, 3), (1, 1), ((0, 1), (1, 0)), (1, 2), (2, 1))]


def test_reduce_window_min_and_dilations(backend, rng):
    # The window-dilated case goes through sum only: max/min's gradient refuses it, as JAX.
    args = [rng.permutation(int(np.prod(s))).reshape(s) / 5.0 for s, *_ in DILATED]
    reducers = ((G.reduce_window_sum, 0.0, lax.add), (G.reduce_window_max, -jnp.inf, lax.max),
                (G.reduce_window_min, jnp.inf, lax.min))
    chosen = [reducers if set(c[5]) == {1} else reducers[:1] for c in DILATED]

    def ours(*xs):
        return [op(x, *c[1:]) for x, c, ops in zip(xs, DILATED, chosen) for op, _, _ in ops]

    def ref(*xs):
        return [lax.reduce_window(x, init, op, *c[1:]) for x, c, ops in zip(xs, DILATED, chosen)
                for _, init, op in ops]
    check_grads(backend, ours, args, ref)
    with pytest.raises(NotImplementedError, match="window_dilation"):
        G.Exec(backend, lambda x: G.grad(G.reduce_sum(G.reduce_window_max(
            x, (2,), window_dilation=(2,))), x))(np.zeros(5))


def test_reduce_window_max_ties_go_to_one_element(backend):
    x = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 2.0, 2.0]])
    check_grads(backend, lambda x: G.reduce_window_max(x, (2, 2), (1, 1)), [x],
                lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2, 2), (1, 1), "VALID"),
                fd=False)


def _lax_gather(x, indices, offset_dims, collapsed_slice_dims, start_index_map, slice_sizes):
    dnums = lax.GatherDimensionNumbers(offset_dims, collapsed_slice_dims, start_index_map)
    return lax.gather(x, indices, dnums, slice_sizes, mode=lax.GatherScatterMode.CLIP)


GATHERS = [  # (x shape, indices, offset_dims, collapsed_slice_dims, start_index_map, slice_sizes)
    ((5, 3), [[1], [4], [1], [9], [-2]], (1,), (0,), (0,), (1, 3)),  # rows, repeated and clamped
    ((5, 6), [[0, 1], [4, 5], [2, 2]], (1, 2), (), (0, 1), (2, 3)),  # windows, one clamped
    ((3, 4, 2), [[[1, 3], [0, 0]], [[2, 1], [2, 1]]], (2,), (0, 1), (0, 1), (1, 1, 2)),
    ((4, 5), [[3], [0]], (0,), (1,), (1,), (4, 1)),  # columns
]


def test_gather(backend, rng):
    args = [a for x, idx, *_ in GATHERS for a in (rng.standard_normal(x), np.array(idx, np.int32))]

    def ours(*xs):
        return [G.gather(xs[2 * k], xs[2 * k + 1], *g[2:]) for k, g in enumerate(GATHERS)]

    def ref(*xs):
        return [_lax_gather(xs[2 * k], xs[2 * k + 1], *g[2:]) for k, g in enumerate(GATHERS)]
    check_grads(backend, ours, args, ref)


def test_take_and_take_along_axis(backend, rng):
    x, y = rng.standard_normal((4, 3)), rng.permutation(12).reshape(3, 4) / 3.0
    i = np.array([[2, 0], [2, 3]], np.int32)
    check_grads(backend, lambda x, y, i: [G.take(x, i, 0), G.take_along_axis(y, G.argsort(y, 1), 1),
                                          G.top_k(y, 2)[0]],
                [x, y, i], lambda x, y, i: [jnp.take(x, i, 0), jnp.sort(y, 1), lax.top_k(y, 2)[0]])


def _lax_scatter(fn, x, indices, updates, update_window_dims, inserted_window_dims,
                 scatter_dims_to_operand_dims):
    dnums = lax.ScatterDimensionNumbers(update_window_dims, inserted_window_dims,
                                        scatter_dims_to_operand_dims)
    return fn(x, indices, updates, dnums, mode=lax.GatherScatterMode.FILL_OR_DROP)


SCATTERS = [  # (x shape, indices, updates shape, window dims, inserted dims, to-operand dims)
    ((5, 4), [[1], [3], [7], [-1]], (4, 4), (1,), (0,), (0,)),  # rows; two dropped
    ((6, 5), [[0, 1], [5, 3], [3, 2]], (3, 2, 3), (1, 2), (), (0, 1)),  # windows; one dropped
    ((4,), [[2], [0]], (2,), (), (0,), (0,)),  # scalars
]


@pytest.mark.parametrize("op", ["add", "set"])
def test_scatter(backend, rng, op):
    ours_fn, lax_fn = (G.scatter_add, lax.scatter_add) if op == "add" else (G.scatter_set,
                                                                              lax.scatter)
    args = [a for x, idx, u, *_ in SCATTERS
            for a in (rng.standard_normal(x), np.array(idx, np.int32), rng.standard_normal(u))]

    def ours(*xs):
        return [ours_fn(*xs[3 * k:3 * k + 3], *s[3:]) for k, s in enumerate(SCATTERS)]

    def ref(*xs):
        return [_lax_scatter(lax_fn, *xs[3 * k:3 * k + 3], *s[3:]) for k, s in enumerate(SCATTERS)]
    check_grads(backend, ours, args, ref)


SCATTER_DIMS = (1,), (0,), (0,)


def scatter_mul_min_max(rng):
    """Unique indices (two dropped out of bounds) for mul; min/max with ties between the
    operand and duplicate updates. Returns the arguments (x, indices, updates, duplicate
    indices, a tied operand, tied updates) and the functions, ours and jax's (also used by
    test_jvp.py)."""
    x, idx, u = SCATTERS[0][0], np.array(SCATTERS[0][1], np.int32), SCATTERS[0][2]
    x, u = rng.standard_normal(x), rng.standard_normal(u)
    dup = np.array([[1], [1], [2], [9]], np.int32)
    tx = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    tu = np.array([[3.0, 9.0], [3.0, 2.0], [0.0, 6.0], [1.0, 1.0]])
    dims = SCATTER_DIMS

    def ours(x, i, u, d, tx, tu):
        return [G.scatter_mul(x, i, u, *dims, unique_indices=True), G.scatter_min(x, d, u, *dims),
                G.scatter_max(x, d, u, *dims), G.scatter_min(tx, d, tu, *dims),
                G.scatter_max(tx, d, tu, *dims)]

    def ref(x, i, u, d, tx, tu):
        return [_lax_scatter(partial(lax.scatter_mul, unique_indices=True), x, i, u, *dims),
                *[_lax_scatter(fn, a, d, b, *dims) for a, b in ((x, u), (tx, tu))
                  for fn in (lax.scatter_min, lax.scatter_max)]]
    return [x, idx, u, dup, tx, tu], ours, ref


def test_scatter_mul_min_max(backend, rng):
    # min/max ties share the cotangent equally, as JAX.
    args, ours, ref = scatter_mul_min_max(rng)
    x, idx, u, dup = args[:4]
    dims = SCATTER_DIMS
    check_grads(backend, ours, args, ref, fd=False)
    check_grads(backend, lambda x, i, u, d: ours(x, i, u, d, x, u)[:3], [x, idx, u, dup])
    with pytest.raises(NotImplementedError, match="unique_indices=True"):
        G.Exec(backend, lambda u: G.grad(G.reduce_sum(G.scatter_mul(x, dup, u, *dims)), u))(u)


def test_scatter_with_duplicate_indices(backend, rng):
    # scatter_add: every duplicate gets the gradient; scatter_set: only the one written.
    x, u = rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    idx = np.array([[1], [1], [2]], np.int32)
    dims = (1,), (0,), (0,)
    check_grads(backend, lambda x, i, u: [G.scatter_add(x, i, u, *dims),
                                          G.scatter_set(x * 2, i, u * u, *dims)],
                [x, idx, u], lambda x, i, u: [_lax_scatter(lax.scatter_add, x, i, u, *dims),
                                              _lax_scatter(lax.scatter, x * 2, i, u * u, *dims)])
