"""dot_general, conv_general, reduce_window_* and select_and_scatter_add against
NumPy references written here (einsum, sliding windows), one graph per dtype."""
import string

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from mlframework import graph as G
from op_records import BF16, FLOATS, NUMERIC, assert_close, distinct, ids, random

WIDE_TOL = {np.dtype(np.float16): (1e-2, 1e-2), BF16: (6e-2, 1e-1),
            np.dtype(np.float32): (1e-5, 1e-5), np.dtype(np.float64): (1e-11, 1e-11)}


def _wide(x):
    return x.astype(np.float64) if x.dtype in FLOATS else x.astype(np.int64)


def _dot_ref(lhs, rhs, lc, rc, lb=(), rb=(), out_dtype=None):
    """dot_general as numpy.einsum: output axes are batch, lhs free, rhs free."""
    letters = iter(string.ascii_letters)
    ls = [next(letters) for _ in range(lhs.ndim)]
    rs = [next(letters) for _ in range(rhs.ndim)]
    for a, b in zip(lc + lb, rc + rb):
        rs[b] = ls[a]
    out = [ls[a] for a in lb] + [c for i, c in enumerate(ls) if i not in lc + lb] + [
        c for i, c in enumerate(rs) if i not in rc + rb]
    spec = f"{''.join(ls)},{''.join(rs)}->{''.join(out)}"
    return np.einsum(spec, _wide(lhs), _wide(rhs)).astype(out_dtype or lhs.dtype)


# (lhs shape, rhs shape, lhs_contracting, rhs_contracting, lhs_batch, rhs_batch)
DOT_CASES = [
    ((3, 4), (4, 5), (1,), (0,), (), ()),
    ((3, 4), (4,), (1,), (0,), (), ()),
    ((2, 3, 4), (2, 4, 5), (2,), (1,), (0,), (0,)),
    ((3, 2, 4), (4, 2, 5), (2,), (0,), (1,), (1,)),
    ((2, 3, 4), (4, 3, 2), (1, 2), (1, 0), (), ()),
    ((3,), (2,), (), (), (), ()),
    ((2, 0), (0, 3), (1,), (0,), (), ()),
    ((4,), (4,), (0,), (0,), (), ()),
]


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_dot_general(run, rng, dtype):
    args = [(random(rng, ls, dtype), random(rng, rs, dtype)) for ls, rs, *_ in DOT_CASES]
    got = run(lambda pairs: [G.dot_general(a, b, *case[2:]) for (a, b), case in
                             zip(pairs, DOT_CASES)], args)
    for (a, b), case, out in zip(args, DOT_CASES, got):
        assert_close(out, _dot_ref(a, b, *case[2:]), dtype, f"dot_general {case}",
                     WIDE_TOL.get(np.dtype(dtype)))


# (operand dtype, preferred_element_type): the widenings jax.lax.dot_general offers.
PREFERRED = [(np.int8, np.int32), (np.uint8, np.uint32), (np.int16, np.int64),
             (np.float16, np.float32), (BF16, np.float32), (np.float32, np.float64)]


@pytest.mark.parametrize("dtype, wide", PREFERRED, ids=[f"{np.dtype(a).name}-{np.dtype(b).name}"
                                                         for a, b in PREFERRED])
def test_dot_general_preferred_element_type(run, rng, dtype, wide):
    # Full-range int8 products overflow int8 but not the int32 accumulator; half-precision
    # products and sums are exact or rounded in float32, not in the operands' type.
    lo, hi = (-128, 128) if np.dtype(dtype).kind in "iu" else (-3, 3)
    cases = DOT_CASES[:5]
    args = [(random(rng, ls, dtype, lo, hi), random(rng, rs, dtype, lo, hi))
            for ls, rs, *_ in cases]
    got = run(lambda pairs: [G.dot_general(a, b, *case[2:], preferred_element_type=wide)
                             for (a, b), case in zip(pairs, cases)], args)
    for (a, b), case, out in zip(args, cases, got):
        want = _dot_ref(a, b, *case[2:], out_dtype=wide)
        assert_close(out, want, wide, f"dot_general {case} into {np.dtype(wide).name}",
                     WIDE_TOL.get(np.dtype(wide)))


def test_dot_general_preferred_element_type_errors():
    with pytest.raises(G.DTypeError, match="preferred_element_type"):
        G.Exec(None, lambda a: G.dot_general(a, a, (1,), (0,), preferred_element_type=np.int8)
               ).graph(np.zeros((2, 2), np.float32))


def _dilate(x, dilation, value=0):
    """Inserts dilation-1 `value`s between elements of the spatial axes (2...)."""
    for axis, r in enumerate(dilation, start=2):
        if r > 1 and x.shape[axis] > 1:
            shape = list(x.shape)
            shape[axis] = (x.shape[axis] - 1) * r + 1
            out = np.full(shape, value, x.dtype)
            index = [slice(None)] * x.ndim
            index[axis] = slice(None, None, r)
            out[tuple(index)] = x
            x = out
    return x


def _pad_spatial(x, padding, value):
    """Pads (or, for negative amounts, crops) the spatial axes of x."""
    for axis, (lo, hi) in enumerate(padding, start=2):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (max(lo, 0), max(hi, 0))
        x = np.pad(x, widths, constant_values=value)
        index = [slice(None)] * x.ndim
        index[axis] = slice(-min(lo, 0), x.shape[axis] + min(hi, 0))
        x = x[tuple(index)]
    return x


def _windows(x, window, strides):
    """[*lead, *spatial] -> [*lead, *out_positions, prod(window)] over axes 2..."""
    axes = tuple(range(2, x.ndim))
    win = sliding_window_view(x, window, axis=axes)
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    return win.reshape(win.shape[:x.ndim] + (int(np.prod(window)),))


def _conv_ref(lhs, rhs, strides, padding, lhs_dil, rhs_dil, groups=1, batch_groups=1):
    """XLA's conv_general_dilated in NumPy, in float64."""
    lhs = _pad_spatial(_dilate(lhs.astype(np.float64), lhs_dil), padding, 0)
    rhs = _dilate(rhs.astype(np.float64), rhs_dil)
    n, o = lhs.shape[0] // batch_groups, rhs.shape[0]
    outs = []
    for g in range(groups * batch_groups):
        fg, bg = (g, 0) if batch_groups == 1 else (0, g)
        c = rhs.shape[1]
        part = lhs[bg * n:(bg + 1) * n, fg * c:(fg + 1) * c]
        kernel = rhs[g * o // (groups * batch_groups):(g + 1) * o // (groups * batch_groups)]
        win = _windows(part, kernel.shape[2:], strides)  # [n, c, *P, K]
        flat = win.reshape(win.shape[:2] + (int(np.prod(win.shape[2:-1])), win.shape[-1]))
        out = np.einsum("ncpk,ock->nop", flat, kernel.reshape(kernel.shape[:2] + (-1,)))
        outs.append(out.reshape(out.shape[:2] + win.shape[2:-1]))
    return np.concatenate(outs, axis=1)


# (lhs shape, rhs shape, strides, padding, lhs_dilation, rhs_dilation, groups, batch_groups)
CONV_CASES = [
    ((2, 3, 9), (4, 3, 3), (2,), ((1, 2),), (1,), (1,), 1, 1),
    ((1, 4, 6, 5), (6, 2, 3, 2), (1, 1), ((1, 1), (0, -1)), (1, 1), (2, 1), 2, 1),
    ((2, 2, 4, 3), (3, 2, 2, 2), (1, 2), ((1, 1), (1, 0)), (2, 1), (1, 1), 1, 1),
    ((1, 1, 3, 4, 5), (2, 1, 2, 2, 2), (1, 1, 2), ((0, 0), (1, 0), (0, 1)), (1, 1, 1),
     (1, 1, 1), 1, 1),
    ((4, 2, 5, 5), (4, 2, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1), 1, 2),
    ((0, 3, 5), (2, 3, 2), (1,), ((0, 0),), (1,), (1,), 1, 1),
]


@pytest.mark.parametrize("dtype", FLOATS, ids=ids(FLOATS))
def test_conv_general(run, rng, dtype):
    args = [(random(rng, ls, dtype, -1, 1), random(rng, rs, dtype, -1, 1))
            for ls, rs, *_ in CONV_CASES]
    got = run(lambda pairs: [G.conv_general(a, b, *case[2:]) for (a, b), case in
                             zip(pairs, CONV_CASES)], args)
    for (a, b), case, out in zip(args, CONV_CASES, got):
        want = _conv_ref(a, b, *case[2:]).astype(dtype)
        assert_close(out, want, dtype, f"conv_general {case}", WIDE_TOL[np.dtype(dtype)])


# (dimension_numbers, lhs shape, rhs shape, strides, padding, rhs_dilation, groups) in the
# layouts the dimension numbers name.
LAYOUT_CASES = [
    (("NHWC", "HWIO", "NHWC"), (2, 5, 6, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    (("NHWC", "OHWI", "NCHW"), (1, 6, 5, 4), (6, 2, 3, 2), (2, 1), ((0, 1), (1, 1)), (1, 2), 2),
    (("NWC", "WIO", "NWC"), (2, 9, 3), (3, 3, 4), (2,), ((1, 2),), (1,), 1),
    (((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)), (1, 4, 4, 2), (2, 2, 2, 3), (1, 1),
     ((0, 0), (1, 0)), (1, 1), 1),
]


def _to_canonical(x, spec, first):
    """x [in the layout `spec` names] -> [first[0], first[1], *spatial]; int orders as is.
    (The cases keep the spatial letters in one order in all three strings.)"""
    if isinstance(spec, str):
        spec = [spec.index(c) for c in first] + [i for i, c in enumerate(spec) if c not in first]
    return np.transpose(x, spec)


@pytest.mark.parametrize("dtype", FLOATS, ids=ids(FLOATS))
def test_conv_general_dimension_numbers(run, rng, dtype):
    args = [(random(rng, ls, dtype, -1, 1), random(rng, rs, dtype, -1, 1))
            for _, ls, rs, *_ in LAYOUT_CASES]
    got = run(lambda pairs: [G.conv_general(a, b, case[3], case[4], None, case[5], case[6],
                                            dimension_numbers=case[0])
                             for (a, b), case in zip(pairs, LAYOUT_CASES)], args)
    for (a, b), case, out in zip(args, LAYOUT_CASES, got):
        (lhs_spec, rhs_spec, out_spec), *_, strides, padding, dilation, groups = case
        want = _conv_ref(_to_canonical(a, lhs_spec, "NC"), _to_canonical(b, rhs_spec, "OI"),
                         strides, padding, (1,) * len(strides), dilation, groups)
        if isinstance(out_spec, str):  # canonical [N, O, *spatial] into out_spec's order
            canonical = "NC" + "".join(c for c in out_spec if c not in "NC")
            out_order = [canonical.index(c) for c in out_spec]
        else:
            out_order = [list(out_spec).index(i) for i in range(len(out_spec))]
        assert_close(out, np.transpose(want, out_order).astype(dtype), dtype,
                     f"conv_general {case[0]}", WIDE_TOL[np.dtype(dtype)])


def test_conv_general_defaults_are_unit_strides_and_no_padding(run, rng):
    lhs, rhs = rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3))
    got = run(lambda a, b: G.conv_general(a, b), lhs, rhs)
    assert_close(got, _conv_ref(lhs, rhs, (1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1)))


def _lowest(dtype):
    return -np.inf if dtype in FLOATS else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if dtype in FLOATS else np.iinfo(dtype).max


def _window_ref(x, reduce, init, window, strides, padding, base=None, dilation=None):
    """reduce_window in NumPy over all axes: spread by `base` and pad with `init`, slide
    windows spread by `dilation`, reduce."""
    wide = x.astype(np.uint64) if x.dtype.kind == "u" else _wide(x)  # uint64's highest fits
    x = _pad_spatial(_dilate(wide[None, None], base or (), init), padding, init)
    dilation = dilation or (1,) * len(window)
    span = [(w - 1) * d + 1 for w, d in zip(window, dilation)]
    win = sliding_window_view(x, span, axis=tuple(range(2, x.ndim)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) +
              tuple(slice(None, None, d) for d in dilation)]
    return reduce(win.reshape(win.shape[:x.ndim] + (-1,)), axis=-1)[0, 0]


# (input shape, window, strides, padding[, base_dilation, window_dilation])
WINDOW_CASES = [
    ((4, 6), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((4, 5), (3, 1), (1, 1), ((1, 1), (0, 0))),
    ((7,), (3,), (2,), ((1, 0),)),
    ((2, 3, 4), (1, 2, 2), (1, 1, 2), ((0, 0), (1, 0), (0, 1))),
    ((4, 5), (2, 2), (1, 2), ((1, 0), (0, 1)), (2, 1), (1, 2)),
    ((6,), (3,), (1,), ((0, 0),), (1,), (2,)),
    ((3, 3), (3, 2), (2, 1), ((1, 1), (0, 0)), (3, 2), (1, 1)),
    # padded float windows run on a padded copy in dense rows (aot/passes/layouts.py
    # window_rows): a ResNet stem's max pool, and a window-dilated one with odd rows
    ((2, 3, 16, 16), (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1))),
    ((3, 9, 21), (1, 2, 3), (1, 2, 3), ((0, 0), (2, 1), (1, 2)), (1, 1, 1), (1, 2, 2)),
]
UNDILATED = [c for c in WINDOW_CASES if len(c) == 4]
REDUCERS = {"max": (G.reduce_window_max, np.max, _lowest),
            "min": (G.reduce_window_min, np.min, _highest),
            "sum": (G.reduce_window_sum, np.sum, lambda dtype: 0)}


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_reduce_window(run, rng, dtype):
    dtype = np.dtype(dtype)
    args = [random(rng, shape, dtype) for shape, *_ in WINDOW_CASES]
    got = run(lambda xs: [{name: fn(x, *c[1:]) for name, (fn, _, _) in REDUCERS.items()}
                          for x, c in zip(xs, WINDOW_CASES)], args)
    for x, case, outs in zip(args, WINDOW_CASES, got):
        for name, (_, reduce, init) in REDUCERS.items():
            want = _window_ref(x, reduce, init(dtype), *case[1:])
            assert_close(outs[name], want.astype(dtype), dtype, f"reduce_window_{name} {case}",
                         WIDE_TOL.get(dtype) if name == "sum" else None)


def test_reduce_window_defaults(run, rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    got = run(lambda x: G.reduce_window_max(x, (2, 2)), x)
    want = _window_ref(x, np.max, -np.inf, (2, 2), (1, 1), ((0, 0), (0, 0)))
    assert_close(got, want.astype(np.float32))


def _select_and_scatter_add_ref(source, x, window, strides, padding):
    """Each source value goes to the first maximum of its window of x (padding never wins)."""
    padded = _pad_spatial(x.astype(np.float64)[None, None], padding, -np.inf)[0, 0]
    out = np.zeros(padded.shape, np.float64)
    for pos in np.ndindex(*source.shape):
        corner = [p * s for p, s in zip(pos, strides)]
        block = padded[tuple(slice(c, c + w) for c, w in zip(corner, window))]
        best = np.unravel_index(np.argmax(block), block.shape)
        out[tuple(c + b for c, b in zip(corner, best))] += source[pos]
    crop = tuple(slice(lo, lo + d) for (lo, _), d in zip(padding, x.shape))
    return out[crop]


@pytest.mark.parametrize("dtype", NUMERIC, ids=ids(NUMERIC))
def test_select_and_scatter_add(run, rng, dtype):
    dtype = np.dtype(dtype)
    xs = [distinct(rng, shape, dtype) for shape, *_ in UNDILATED]
    sources = [random(rng, _out_shape(c), dtype, 0, 3) for c in UNDILATED]
    got = run(lambda ss, xs: [G.select_and_scatter_add(s, x, *c[1:]) for s, x, c in
                              zip(ss, xs, UNDILATED)], sources, xs)
    for s, x, case, out in zip(sources, xs, UNDILATED, got):
        want = _select_and_scatter_add_ref(s.astype(np.float64), x, *case[1:])
        assert_close(out, want.astype(dtype), dtype, f"select_and_scatter_add {case}")


def _out_shape(case):
    shape, window, strides, padding = case[:4]
    return tuple((d + lo + hi - w) // s + 1 for d, w, s, (lo, hi) in
                 zip(shape, window, strides, padding))
