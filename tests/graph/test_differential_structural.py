"""Differential tests of the non-elementwise primitives against jax.lax, on every backend:
data movement, indexing (with negative, huge and unsigned indices), reductions (over
size-0 and size-1 axes, signed zeros, NaN), scans, sorts (NaN of both signs, -0.0 and
+0.0, ties), windows, contractions and random bits. One graph per dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from differential import (ALL, DTYPE_SETS, EXACT, FLOATS, INTS, NUMERIC, Case, Check,
                          edge_values, random_values, run_cases)
from jax import lax

from generators.ops_table import BY_NAME, OPS
import mlframework as mlf
from mlframework import graph as G
from mlframework.core.dtypes import as_dtype, finfo_max, finfo_min


def _accepts(name, dtype) -> bool:
    return np.dtype(dtype) in DTYPE_SETS[BY_NAME[name].dtypes]


def _grid(dtype, shape, subnormals=True):
    """Edge values of `dtype` tiled into `shape`."""
    return np.resize(edge_values(dtype, subnormals), shape)


def _movement_cases(rng, dtype):
    x = _grid(dtype, (3, 4, 5))
    cases = [
        Case("broadcast_in_dim", lambda a: G.broadcast_in_dim(a, (2, 3, 1, 4), (1, 3)),
             lambda a: lax.broadcast_in_dim(a, (2, 3, 1, 4), (1, 3)), (x[:, :, 0],)),
        Case("broadcast_in_dim scalar", lambda a: G.broadcast_in_dim(a, (0, 2), ()),
             lambda a: lax.broadcast_in_dim(a, (0, 2), ()), (x[0, 0, 0],)),
        Case("reshape", lambda a: G.reshape(a, (5, -1, 2)), lambda a: lax.reshape(a, (5, 6, 2)),
             (x,)),
        Case("reshape to zero-size", lambda a: G.reshape(a, (2, 0)),
             lambda a: lax.reshape(a, (2, 0)), (x[:0],)),
        Case("transpose", lambda a: G.transpose(a, (2, 0, 1)),
             lambda a: lax.transpose(a, (2, 0, 1)), (x,)),
        Case("slice", lambda a: G.slice(a, (1, 0, 4), (3, 4, 5), (1, 3, 1)),
             lambda a: lax.slice(a, (1, 0, 4), (3, 4, 5), (1, 3, 1)), (x,)),
        Case("slice empty", lambda a: G.slice(a, (2, 1, 0), (2, 3, 5)),
             lambda a: lax.slice(a, (2, 1, 0), (2, 3, 5)), (x,)),
        Case("reverse", lambda a: G.reverse(a, (0, 2)), lambda a: lax.rev(a, (0, 2)), (x,)),
        Case("concatenate", lambda a, b: G.concatenate([a, b, a[:, :0]], 1),
             lambda a, b: lax.concatenate([a, b, a[:, :0]], 1), (x, x[:, :2])),
        Case("iota-like broadcast of size 1", lambda a: G.broadcast_in_dim(a, (3, 4), (0, 1)),
             lambda a: lax.broadcast_in_dim(a, (3, 4), (0, 1)), (x[:, :1, 0],)),
    ]
    cfg = [(1, -1, 2), (0, 2, 0), (-2, 1, 1)]
    for value in _pad_values(dtype):
        cases.append(Case(f"pad value {value!r}", lambda a, v=value: G.pad(a, cfg, v),
                          lambda a, v=value: lax.pad(a, np.array(v, dtype), cfg), (x,)))
    cases.append(Case("pad zero-size", lambda a: G.pad(a, [(2, 1, 3), (1, 0, 0)], 0),
                      lambda a: lax.pad(a, np.array(0, dtype), [(2, 1, 3), (1, 0, 0)]),
                      (x[:0, :, 0],)))
    return cases


def _pad_values(dtype):
    """Pad values that a float attribute would change: 64-bit integer extremes, 2**53 + 1."""
    if dtype == np.bool_:
        return [True]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = [int(info.max), int(info.min), 7]
        if dtype.itemsize == 8:
            values += [2 ** 53 + 1, int(info.max) - 1]
        return values
    return [float("nan"), -0.0, float("-inf"), 1.5]


def _index_values(dtype):
    """Start indices: in range, negative, past the end, the dtype's extremes."""
    info = np.iinfo(dtype)
    values = {0, 1, 2, 5, 100, int(info.max)}
    if dtype.kind == "u" and dtype.itemsize == 8:
        values |= {2 ** 63, 2 ** 63 + 1, 2 ** 64 - 1}
    if dtype.kind == "i":
        values |= {-1, -3, -100, int(info.min)}
    return sorted(values)


def _indexing_cases(rng, dtype, index_dtype):
    x = _grid(dtype, (4, 5))
    cases = []
    starts = _index_values(index_dtype)
    for i in starts:
        i = np.array(i, index_dtype)
        cases.append(Case(f"dynamic_slice start {i!r}",
                          lambda a, s: G.dynamic_slice(a, [s, 1], (2, 3)),
                          lambda a, s: lax.dynamic_slice(a, [s, np.array(1, s.dtype)], (2, 3)),
                          (x, i)))
        upd = np.resize(edge_values(dtype)[::-1], (3, 2))
        cases.append(Case(f"dynamic_update_slice start {i!r}",
                          lambda a, u, s: G.dynamic_update_slice(a, u, [s, s]),
                          lambda a, u, s: lax.dynamic_update_slice(a, u, [s, s]), (x, upd, i)))
    idx = np.array([[v, w] for v in starts for w in starts[:3]], index_dtype)
    dnums = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                       start_index_map=(0, 1))
    cases.append(Case(
        "gather", lambda a, i: G.gather(a, i, (1,), (0,), (0, 1), (1, 2)),
        lambda a, i: lax.gather(a, i, dnums, (1, 2), mode=lax.GatherScatterMode.CLIP), (x, idx)))
    sdn = lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(0,),
                                      scatter_dims_to_operand_dims=(0, 1))
    upd = np.resize(edge_values(dtype), (idx.shape[0], 2))
    mode = lax.GatherScatterMode.FILL_OR_DROP
    cases.append(Case("scatter_set", lambda a, i, u: G.scatter_set(a, i, u, (1,), (0,), (0, 1)),
                      lambda a, i, u: lax.scatter(a, i, u, sdn, mode=mode), (x, idx[:3], upd[:3])))
    if _accepts("scatter_add", dtype):
        cases.append(Case("scatter_add",
                          lambda a, i, u: G.scatter_add(a, i, u, (1,), (0,), (0, 1)),
                          lambda a, i, u: lax.scatter_add(a, i, u, sdn, mode=mode),
                          (x, idx, upd), _sum_check(dtype)))
    for name, ours, theirs in (("scatter_mul", G.scatter_mul, lax.scatter_mul),
                               ("scatter_min", G.scatter_min, lax.scatter_min),
                               ("scatter_max", G.scatter_max, lax.scatter_max)):
        if _accepts(name, dtype):  # duplicates combine in index order on both
            cases.append(Case(name, lambda a, i, u, f=ours: f(a, i, u, (1,), (0,), (0, 1)),
                              lambda a, i, u, f=theirs: f(a, i, u, sdn, mode=mode),
                              (x, idx, upd)))
    return cases


def _sum_check(dtype, x=None):
    """Sums: exact for integers; floats within a few eps of the result and of the finite
    magnitudes summed (the order of a sum is the implementation's)."""
    if dtype not in FLOATS:
        return EXACT
    eps = float(jnp.finfo(dtype).eps)
    scale = 1.0
    if x is not None:
        finite = np.abs(np.asarray(x, np.float64))
        scale = max(1.0, float(finite[np.isfinite(finite)].sum()))
    return Check("close", rtol=8 * eps, atol=8 * eps * scale)


def _zero_rows(dtype):
    """Rows of signed zeros, NaN and infinities, in every order, for max/min/sum."""
    rows = [[0.0, -0.0, -0.0], [-0.0, 0.0, -0.0], [-0.0, -0.0, -0.0], [0.0, 0.0, -0.0],
            [np.nan, 1.0, -1.0], [1.0, -np.nan, 2.0], [np.inf, -np.inf, 0.0],
            [-np.inf, -np.inf, -np.inf], [np.inf, 5.0, np.inf], [-0.0, np.nan, 0.0]]
    return np.array(rows, np.float64).astype(dtype)


def _reduce_cases(rng, dtype):
    # (input, axes): size-1 and size-0 axes, scalars, edge values, signed zeros and NaN rows
    inputs = [(random_values(rng, (3, 1, 4), dtype), (None, (1,), (0, 2))),
              (random_values(rng, (2, 0, 3), dtype), ((1,), (0,))),
              (random_values(rng, (5,), dtype), (None,)), (random_values(rng, (), dtype), (None,)),
              (_grid(dtype, (4, 7), subnormals=False), ((1,),))]
    if dtype in FLOATS:
        inputs.append((_zero_rows(dtype), ((1,), (0,))))
    ops = {"reduce_sum": (jnp.sum, None),  # half types: in float32, as ours
           "reduce_prod": (jnp.prod, None),
           "reduce_max": (lax.reduce_max_p, EXACT), "reduce_min": (lax.reduce_min_p, EXACT),
           "reduce_and": (lax.reduce_and_p, EXACT), "reduce_or": (lax.reduce_or_p, EXACT)}
    cases = []
    for name, (prim, check) in ops.items():
        if not _accepts(name, dtype):
            continue
        fn = getattr(G, name)
        for x, axes_sets in inputs:
            for axes in axes_sets:
                lax_axes = tuple(range(x.ndim)) if axes is None else axes
                ref = (lambda a, p=prim, ax=lax_axes: p(a, ax, dtype=a.dtype)) \
                    if not hasattr(prim, "bind") else \
                    (lambda a, p=prim, ax=lax_axes: p.bind(a, axes=ax))
                if name == "reduce_prod" and dtype in FLOATS and x.size > 12:
                    continue  # products of many edge values over/underflow in any order
                cases.append(Case(f"{name}({dtype}{list(x.shape)}, axes={axes})",
                                  lambda a, f=fn, ax=axes: f(a, ax), ref, (x,),
                                  check or _sum_check(dtype, x)))
    return cases


def _order_values(dtype):
    """Values whose order XLA defines: NaN of both signs, -0.0/+0.0, infinities, ties."""
    if dtype in FLOATS:
        v = np.array([1.0, np.nan, -0.0, 0.0, -1.0, np.inf, 0.0, -np.inf, 1.0, -0.0, 2.5],
                     np.float64).astype(dtype)
        neg_nan = np.array([-np.nan], np.float64).astype(dtype)
        return np.concatenate([v, neg_nan, v[:3]])
    if dtype == np.bool_:
        return np.array([True, False, True, True, False])
    info = np.iinfo(dtype)
    return np.array([3, info.max, 0, info.min, 3, 1, info.max, 0, 2], dtype)


def _order_cases(rng, dtype):
    if dtype not in NUMERIC:
        return []
    v = _order_values(dtype)
    m = np.stack([v, v[::-1], np.roll(v, 4)])
    cases = []
    for x, axis in ((v, 0), (m, 1), (m, 0), (m[:, :1], 1), (m[:, :0], 1)):
        for desc in (False, True):
            cases.append(Case(f"sort({dtype}{list(x.shape)}, {axis}, desc={desc})",
                              lambda a, ax=axis, d=desc: G.sort(a, ax, d),
                              lambda a, ax=axis, d=desc: jnp.sort(a, ax, stable=True,
                                                                  descending=d), (x,)))
            cases.append(Case(f"argsort({dtype}{list(x.shape)}, {axis}, desc={desc})",
                              lambda a, ax=axis, d=desc: G.argsort(a, ax, d),
                              lambda a, ax=axis, d=desc: jnp.argsort(a, ax, stable=True,
                                                                     descending=d).astype(
                                  np.int32), (x,)))
        if x.shape[axis]:
            for name, ref in (("argmax", lax.argmax), ("argmin", lax.argmin)):
                for idt in (np.int32, np.int64):
                    cases.append(Case(f"{name}({dtype}{list(x.shape)}, {axis}, {idt.__name__})",
                                      lambda a, n=name, ax=axis, t=idt: getattr(G, n)(a, ax, t),
                                      lambda a, r=ref, ax=axis, t=idt: r(a, ax, t), (x,)))
        for rev in (False, True):
            for name, check in _CUMULATIVE.items():
                if not _accepts(name, dtype):
                    continue
                cases.append(Case(f"{name}({dtype}{list(x.shape)}, {axis}, reverse={rev})",
                                  lambda a, n=name, ax=axis, r=rev: getattr(G, n)(a, ax, r),
                                  lambda a, n=name, ax=axis, r=rev: getattr(lax, n)(a, ax, r),
                                  (x,), check or _sum_check(dtype)))
    return cases


# cumulative scans: the check (None: a sum's, whose order is the implementation's)
_CUMULATIVE = {"cumsum": None, "cumprod": None, "cummax": EXACT, "cummin": EXACT,
               "cumlogsumexp": None}


def _window_cases(rng, dtype):
    x = random_values(rng, (1, 2, 5, 6), dtype, -5, 5)
    if dtype in FLOATS:
        x = x.copy()
        x[0, 0, 1, 1] = np.nan
        x[0, 1, 2, :2] = np.array([-0.0, 0.0]).astype(dtype)
        x[0, 1, 4, 4] = -np.inf
    dims, strides, pad = (1, 1, 3, 2), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (0, 1))
    lo = finfo_min(as_dtype(dtype))
    src = random_values(rng, (1, 2, 3, 3), dtype, 1, 4)

    def pool_grad(a, s):
        _, vjp = jax.vjp(lambda t: lax.reduce_window(t, np.array(lo, dtype), lax.max, dims,
                                                     strides, pad), a)
        return vjp(s)[0]

    cases = [
        Case("reduce_window_max", lambda a: G.reduce_window_max(a, dims, strides, pad),
             lambda a: lax.reduce_window(a, np.array(lo, dtype), lax.max, dims, strides, pad),
             (x,)),
        Case("reduce_window_sum", lambda a: G.reduce_window_sum(a, dims, strides, pad),
             lambda a: lax.reduce_window(a, np.array(0, dtype), lax.add, dims, strides, pad),
             (x,), _sum_check(dtype)),
        Case("reduce_window_min dilated", lambda a: G.reduce_window_min(
            a, dims, strides, pad, (1, 1, 2, 1), (1, 1, 1, 2)),
            lambda a: lax.reduce_window(a, np.array(finfo_max(as_dtype(dtype)), dtype), lax.min,
                                        dims, strides, pad, (1, 1, 2, 1), (1, 1, 1, 2)), (x,)),
    ]
    if dtype in FLOATS:
        cases.append(Case("select_and_scatter_add (max-pool gradient)",
                          lambda s, a: G.select_and_scatter_add(s, a, dims, strides, pad),
                          lambda s, a: pool_grad(a, s), (src, x), _sum_check(dtype)))
    return cases


def _contraction_cases(rng, dtype):
    cases = []
    lo, hi = (-3, 3) if dtype.kind != "u" else (0, 4)
    a, b = random_values(rng, (2, 3, 4), dtype, lo, hi), random_values(rng, (2, 4, 5), dtype,
                                                                       lo, hi)
    check = EXACT if dtype not in FLOATS else Check(
        "close", rtol=4 * float(jnp.finfo(dtype).eps), atol=8 * float(jnp.finfo(dtype).eps))
    dn = (((2,), (1,)), ((0,), (0,)))
    cases.append(Case("dot_general batch", lambda p, q: G.dot_general(p, q, (2,), (1,), (0,), (0,)),
                      lambda p, q: lax.dot_general(p, q, dn, precision=lax.Precision.HIGHEST),
                      (a, b), check))
    cases.append(Case("dot_general k=0", lambda p, q: G.dot_general(p, q, (1,), (0,)),
                      lambda p, q: lax.dot_general(p, q, (((1,), (0,)), ((), ()))),
                      (a[0, :, :0], b[0, :0]), check))
    if _accepts("conv_general", dtype):
        x, w = random_values(rng, (2, 4, 6, 5), dtype), random_values(rng, (6, 2, 3, 2), dtype)
        cases.append(Case(
            "conv_general", lambda p, q: G.conv_general(p, q, (2, 1), ((1, 1), (0, 1)), (1, 1),
                                                        (1, 2), 2),
            lambda p, q: lax.conv_general_dilated(p, q, (2, 1), ((1, 1), (0, 1)), (1, 1), (1, 2),
                                                  feature_group_count=2,
                                                  precision=lax.Precision.HIGHEST),
            (x, w), Check("close", rtol=16 * float(jnp.finfo(dtype).eps),
                          atol=16 * float(jnp.finfo(dtype).eps))))
    if dtype in FLOATS and dtype.itemsize >= 4:  # jax has no half-precision linalg kernels
        m = random_values(rng, (2, 4, 4), dtype)
        spd = (m @ np.swapaxes(m, -1, -2) + 4 * np.eye(4)).astype(dtype)
        near = Check("close", rtol=64 * float(jnp.finfo(dtype).eps),
                     atol=64 * float(jnp.finfo(dtype).eps))
        cases.append(Case("cholesky", G.cholesky,
                          lambda p: lax.linalg.cholesky(p, symmetrize_input=False), (spd,), near))
        cases.append(Case("triangular_solve", lambda p, q: G.triangular_solve(
            p, q, left_side=True, lower=True, transpose_a=True),
            lambda p, q: lax.linalg.triangular_solve(p, q, left_side=True, lower=True,
                                                     transpose_a=True), (spd, m), near))
    return cases


def _iota_cases(dtype):
    return [Case(f"iota({dtype}, {shape}, {d})", lambda s=shape, k=d: G.iota(dtype, s, k),
                 lambda s=shape, k=d: lax.broadcasted_iota(dtype, s, k), ())
            for shape, d in (((3, 1, 4), 2), ((0, 2), 1), ((5,), 0))]


@pytest.mark.parametrize("dtype", ALL, ids=[d.name for d in ALL])
def test_structural_ops_match_xla(backend_name, dtype):
    rng = np.random.default_rng(11)
    cases = _movement_cases(rng, dtype) + _reduce_cases(rng, dtype) + _order_cases(rng, dtype)
    if dtype in INTS:
        cases += _indexing_cases(rng, np.dtype(np.float32), dtype)
    cases += _indexing_cases(rng, dtype, np.dtype(np.int32))
    if dtype in NUMERIC:
        cases += _window_cases(rng, dtype) + _contraction_cases(rng, dtype) + _iota_cases(dtype)
    run_cases(backend_name, cases, f"structural_{dtype.name}")


def test_rng_bits_match_jax_random(backend_name):
    keys = [np.array([0, 42], np.uint32), np.array([2 ** 32 - 1, 7], np.uint32)]
    cases = [Case(f"rng_bits({k.tolist()}, {shape})", lambda key, s=shape: G.rng_bits(key, s),
                  lambda key, s=shape: jax.random.bits(jax.random.wrap_key_data(
                      key, impl="threefry2x32"), s, np.uint32), (k,))
             for k in keys for shape in ((), (0,), (3, 1, 5))]
    run_cases(backend_name, cases, "rng_bits")


def test_python_ints_beyond_int32_become_int64(backend_name):
    backend = mlf.backends.new(backend_name)
    out = G.Exec(backend, lambda x: x + 1)(2 ** 40)
    assert out.numpy().dtype == np.int64 and out.item() == 2 ** 40 + 1
    assert G.Exec(backend, lambda x: x * 2)(7).numpy().dtype == np.int32
    with pytest.raises(OverflowError, match="int64"):
        G.Exec(backend, lambda x: x + 1)(2 ** 64 - 1)


def test_every_op_of_the_table_is_covered():
    from test_control_flow import COVERED as CONTROL_FLOW
    from test_differential_elementwise import BINARY, UNARY, bitcast_cases

    rng = np.random.default_rng(0)
    f32, i32 = np.dtype(np.float32), np.dtype(np.int32)
    cases = (_movement_cases(rng, f32) + _reduce_cases(rng, f32) + _order_cases(rng, f32)
             + _indexing_cases(rng, f32, i32) + _window_cases(rng, f32)
             + _contraction_cases(rng, f32) + _iota_cases(f32)
             + _reduce_cases(rng, np.dtype(np.bool_)) + bitcast_cases(f32))
    covered = set(UNARY) | set(BINARY) | {"select", "convert", "rng_bits"} | CONTROL_FLOW
    covered |= {c.name.split("(")[0].split(" ")[0] for c in cases}
    wanted = {op.name for op in OPS if op.group != "SOURCE" or op.name == "iota"}
    assert wanted <= covered, f"ops without a differential test: {sorted(wanted - covered)}"
