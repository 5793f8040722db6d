"""How contractions map onto the C runtime's GEMM and conv paths, and the workspace
each kernel needs: decisions the passes make and the code generator only reads.

    (B, M, N, K), strides = dot_layout(program, dot_value)   # None: not a strided GEMM view
    k.scratch_bytes = scratch_bytes(program, kernel)

Each rule mirrors a function of the runtime (`runtime_c/`) that the generated
code calls; the docstrings name it, so the two change together.
"""
from __future__ import annotations

import math

from aot.program import indexing as ix
from aot.program.kernel import Kernel
from aot.program.program import Program, Value
from aot.program.symbols import bound, samples
from mlframework.core.symbolic import (DimLike, SymbolicError, at_most, cover, evaluate,
                                       is_symbolic, symbols_of, upper)
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op


def _group_stride(shape, axes):
    """Stride of `axes` viewed as one axis of a row-major array, or None if they are not one."""
    st = ix.strides(shape)
    axes = [a for a in axes if shape[a] != 1]
    for a, b in zip(axes, axes[1:]):
        if st[a] != st[b] * shape[b]:
            return None
    return st[axes[-1]] if axes else 0


def dot_layout(program: Program, v: Value):
    """(B, M, N, K, strides) of a dot_general, strides None when not a strided GEMM view."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    lb, rb = v.attrs["lhs_batch"], v.attrs["rhs_batch"]
    lc, rc = v.attrs["lhs_contracting"], v.attrs["rhs_contracting"]
    lf = [a for a in range(len(lhs.shape)) if a not in lb and a not in lc]
    rf = [a for a in range(len(rhs.shape)) if a not in rb and a not in rc]
    size = lambda x, axes: math.prod(x.shape[a] for a in axes)  # noqa: E731
    n = rhs.attrs.get("columns") or size(rhs, rf)  # packed weights are wider than N
    dims = (size(lhs, lb), size(lhs, lf), n, size(lhs, lc))
    strides = [_group_stride(lhs.shape, lb), _group_stride(lhs.shape, lf),
               _group_stride(lhs.shape, lc), _group_stride(rhs.shape, rb),
               _group_stride(rhs.shape, rc), _group_stride(rhs.shape, rf)]
    return dims, (None if None in strides else strides)


def sgemm_fits(program: Program, v: Value) -> bool:
    """True if a dot_general's operands and result are float32 (`mlf_sgemm`'s types)."""
    return v.dtype is DType.FLOAT32 and program.values[v.inputs[0]].dtype is DType.FLOAT32


def sgemm_packs(M, N, K, csb) -> bool:
    """Mirrors mlf_sgemm_packs in runtime_c/mlf_gemm.h: B needs `work` (panels or B^T)."""
    return not (csb == 1 and ((N % 16 == 0 and K * N <= 1024 * 1024) or M <= 6))


def sgemm_bt_rows(M, K, csa, rsb, csb) -> bool:
    """Mirrors mlf_sgemm_bt_rows in runtime_c/mlf_gemm.h: few rows times a dense B^T,
    read in place (no `work`)."""
    return M <= 6 and csa == 1 and rsb == 1 and csb == K and K >= 16


def packing(program: Program, v: Value) -> str | None:
    """How pack_weights laid out a dot's or conv's right operand ("panels", "bf16_pairs",
    "int8_columns", "s8_panels", "s8_conv_rows"...), if it did."""
    return program.values[v.inputs[1]].attrs.get("packing")


OC_CHANNELS = "oc_channels"  # conv weights packed [C][KH][KW][O] by pack_weights
OC_MAX_CHANNELS, OC_MAX_PIXELS, OC_MAX_WINDOW = 64, 256, 7


def conv_oc(program: Program, v: Value) -> bool:
    """True if a conv_general runs as the runtime's small-image conv vectorized over its
    output channels (`mlf_conv2d_oc`, runtime_c/mlf_conv_oc.h): float32 2-d NCHW/OIHW with
    float32 weights (as given or packed "oc_channels"), O <= 64, at most 256 output pixels
    per image, windows up to 7x7, any strides, kernel dilations and padding >= 0, no
    groups. Narrow images are where vectors along a row (mlf_conv_small.h) waste lanes."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    return (v.dtype is DType.FLOAT32 and lhs.dtype is DType.FLOAT32
            and not symbols_of(lhs.shape[1:])  # only a symbolic batch (its images loop)
            and not symbols_of(rhs.shape[2:])
            and rhs.dtype is DType.FLOAT32 and rhs.attrs.get("packing") in (None, OC_CHANNELS)
            and len(lhs.shape) == 4 and set(a["lhs_dilation"]) == {1}
            and a["feature_group_count"] == 1 and a["batch_group_count"] == 1
            and all(lo >= 0 and hi >= 0 for lo, hi in a["padding"])
            and 0 < rhs.shape[0] <= OC_MAX_CHANNELS and max(rhs.shape[2:]) <= OC_MAX_WINDOW
            and 0 < v.shape[2] * v.shape[3] <= OC_MAX_PIXELS and lhs.size != 0
            and rhs.size != 0)


def conv_oc_lanes(channels: int) -> int:
    """Mirrors mlf_conv_oc_lanes: floats per vector of output channels."""
    return 8 if channels <= 8 else 16


def conv_oc_packed(program: Program, v: Value) -> bool:
    """True if an `conv_oc` convolution's weights were packed at compile time."""
    return program.values[v.inputs[1]].attrs.get("packing") == OC_CHANNELS


def conv_oc_image_floats(program: Program, v: Value) -> int:
    """Mirrors mlf_conv_oc_work_floats: floats of one zero-padded input image."""
    c = program.values[v.inputs[0]].shape[1]
    _, _, kh, kw = program.values[v.inputs[1]].shape
    (sh, sw), (dh, dw) = v.attrs["window_strides"], v.attrs["rhs_dilation"]
    ho, wo = v.shape[2:]  # (static: conv_oc takes static images only)
    return int(c * ((ho - 1) * sh + (kh - 1) * dh + 1) * ((wo - 1) * sw + (kw - 1) * dw + 1))


def conv_oc_weights_offset(program: Program, v: Value) -> int:
    """Where in a `conv_oc` kernel's scratch (after one padded image per image, 64-byte
    aligned) mlf_conv_oc_pack writes weights that were not packed at compile time."""
    if program.symbols:  # after the padded images of the largest batch
        return conv_oc_weights_offset(bound(program, program.symbols, {v.id, *v.inputs}), v)
    n = program.values[v.inputs[0]].shape[0]
    return int(-(-4 * n * conv_oc_image_floats(program, v) // 64) * 64)


def _conv_oc_work(program: Program, v: Value) -> DimLike:
    if conv_oc_packed(program, v):
        return 4 * program.values[v.inputs[0]].shape[0] * conv_oc_image_floats(program, v)
    o, c, kh, kw = program.values[v.inputs[1]].shape
    lanes = conv_oc_lanes(int(o))
    return conv_oc_weights_offset(program, v) + 4 * c * kh * kw * (-(-o // lanes) * lanes)


def conv_fast(program: Program, v: Value) -> bool:
    """True if a conv_general runs as the runtime's direct conv (`mlf_conv2d`)."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    return (not conv_oc(program, v) and v.dtype is DType.FLOAT32 and len(lhs.shape) == 4
            and set(a["window_strides"]) == {1} and set(a["lhs_dilation"]) == {1}
            and set(a["rhs_dilation"]) == {1} and a["feature_group_count"] == 1
            and a["batch_group_count"] == 1
            and all(lo >= 0 and hi >= 0 for lo, hi in a["padding"]) and v.size != 0
            and lhs.size != 0)


def conv_im2col(program: Program, v: Value) -> bool:
    """True if a conv_general that is neither `conv_oc` nor `conv_fast` runs as im2col +
    GEMM (`mlf_conv2d_im2col`): float32 2-d NCHW/OIHW, any strides and kernel dilations."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    return (not conv_fast(program, v) and not conv_oc(program, v)
            and v.dtype is DType.FLOAT32 and len(lhs.shape) == 4
            and set(a["lhs_dilation"]) == {1} and a["feature_group_count"] == 1
            and a["batch_group_count"] == 1 and all(lo >= 0 and hi >= 0 for lo, hi in a["padding"])
            and v.size != 0 and lhs.size != 0 and rhs.size != 0)


def conv_geometry(program: Program, v: Value) -> dict:
    """The sizes `mlf_conv2d` takes: n, c, h, w, o, kh, kw, hp, wp (padded), ho, wo, ph, pw."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    (plo_h, phi_h), (plo_w, phi_w) = v.attrs["padding"]
    n, c, h, w = lhs.shape
    o, _, kh, kw = rhs.shape
    hp, wp = h + plo_h + phi_h, w + plo_w + phi_w
    ho, wo = v.shape[2], v.shape[3]
    return dict(n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw, hp=hp, wp=wp, ho=ho, wo=wo,
                ph=plo_h, pw=plo_w)


def conv_small(g: dict, maxima=None) -> bool | None:
    """Mirrors mlf_conv_small in runtime_c/mlf_conv_small.h; None when symbolic sizes
    (their `maxima`) leave the runtime's choice open."""
    return _both(_holds(g["o"], 16, maxima), _holds(g["wo"], 64, maxima))


def _holds(d: DimLike, bound: int, maxima) -> bool | None:
    """Whether `d <= bound` at every size of its symbols up to `maxima` (True), at none
    (False), or at some (None: the runtime decides)."""
    if not is_symbolic(d):
        return d <= bound
    if upper(d, maxima) <= bound:
        return True
    return False if -upper(-d, maxima) > bound else None


def _both(a: bool | None, b: bool | None) -> bool | None:
    """Three-valued `a and b` (None: decided at run time)."""
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _ceil_to(x: DimLike, k: int) -> DimLike:
    """`x` rounded up to a multiple of k; for a symbolic x its bound x + k - 1."""
    return x + k - 1 if is_symbolic(x) else -(-x // k) * k


VECTOR_FLOATS = 16  # a padded window's dense rows are whole 16-lane vectors


def window_rows(program: Program, v: Value) -> tuple[list[DimLike], DimLike] | None:
    """A padded float reduce_window (max, min, sum; no base dilation; padding >= 0) that
    runs on a copy of its input padded with the reduction's identity (no bounds test per
    tap): (padded extents, dense row length) where the row, the last axis's window
    reductions at every position ((out - 1) * stride + 1 of them, rounded up to whole
    vectors), is subsampled by the stride. With symbolic sizes the extents and the row
    are polynomials of the symbols (the row not rounded: its loop bound is run time, its
    accumulators `window_row_capacity`). None: the plain loop nest."""
    if v.op not in (Op.REDUCE_WINDOW_MAX, Op.REDUCE_WINDOW_MIN, Op.REDUCE_WINDOW_SUM):
        return None
    x = program.values[v.inputs[0]]
    a = v.attrs
    ones = (1,) * len(x.shape)
    if x.dtype not in (DType.FLOAT32, DType.FLOAT64) or v.dtype is not x.dtype \
            or not x.shape or set(a.get("base_dilation", ones)) != {1} \
            or any(lo < 0 or hi < 0 for lo, hi in a["padding"]) \
            or not any(lo or hi for lo, hi in a["padding"]) or v.size == 0:
        return None
    wd = a.get("window_dilation", ones)
    extents = []
    for n, o, st, w, d, (lo, _) in zip(x.shape, v.shape, a["window_strides"],
                                       a["window_dimensions"], wd, a["padding"]):
        here, reach = lo + n, (o - 1) * st + (w - 1) * d + 1
        if at_most(reach, here):
            extents.append(here)
        elif at_most(here, reach):
            extents.append(reach)
        else:  # which is larger depends on the symbols' values
            return None
    dense = (v.shape[-1] - 1) * a["window_strides"][-1] + 1
    if is_symbolic(dense):
        return extents, dense
    return extents, -(-dense // VECTOR_FLOATS) * VECTOR_FLOATS


def window_row_capacity(program: Program, dense: DimLike) -> int:
    """The accumulators a `window_rows` kernel keeps per output row: its dense row, at
    the symbols' maxima when it is symbolic (whole vectors)."""
    return -(-upper(dense, program.symbols) // VECTOR_FLOATS) * VECTOR_FLOATS


def scratch_bytes(program: Program, k: Kernel) -> DimLike:
    """Workspace kernel `k` needs during its run (GEMM packing, padded conv input, sort keys).

    With symbolic shapes, the most it needs for any symbol values up to the maxima (the
    largest over `aot.program.symbols.samples`: the runtime's own choices, such as the
    GEMM's few-rows path, switch at those sizes), or the polynomial of the symbols that
    the size is when it takes no such decision (a convolution's padded copy of a batch)."""
    if program.symbols and k.kind == "conv" and k.contraction is not None \
            and conv_spatial_symbolic(program, program.values[k.contraction]):
        # bound for every size (`_conv_work`): sampling would bind the image size and
        # take paths (conv_oc) that the symbolic sizes never take
        return _scratch(program, k)
    if program.symbols:
        ids = set(k.inputs) | set(k.outputs) | set(k.nodes)
        for vid in list(ids):
            ids |= set(program.values[vid].inputs)
        points = samples(program.symbols)
        sampled = [_scratch(bound(program, sizes, ids), k) for sizes in points]
        try:  # a size that needs no decision on the symbols is their polynomial
            exact = _scratch(program, k)
        except SymbolicError:
            return max(sampled)
        if all(evaluate(exact, p) >= n for p, n in zip(points, sampled)):
            return exact
        return max(sampled)
    return _scratch(program, k)


def conv_spatial_symbolic(program: Program, v: Value) -> bool:
    """True if convolution `v` has a symbolic image or window axis (its operands' or its
    result's axes past the first two)."""
    return any(symbols_of(program.values[i].shape[2:]) for i in (v.id, *v.inputs))


def _scratch(program: Program, k: Kernel) -> DimLike:
    if k.kind == "dot" and k.contraction is not None:
        return _dot_scratch(program, program.values[k.contraction])
    if k.kind == "conv" and k.contraction is not None:
        return _conv_scratch(program, program.values[k.contraction])
    v = program.values[k.outputs[0]]
    if v.op in (Op.CHOLESKY, Op.TRIANGULAR_SOLVE):  # mirrors aot/codegen/linalg.py
        rows = v.shape[-1] * v.shape[-1] if v.op is Op.CHOLESKY else (
            v.shape[-2] if v.attrs["left_side"] else v.shape[-1])
        return (8 if v.dtype.itemsize == 8 else 4) * rows  # a polynomial when symbolic
    window = window_rows(program, v)
    if window is not None:  # the padded copy, and one row of slack that the last row reads
        slack = window[1] + (VECTOR_FLOATS - 1 if is_symbolic(window[1]) else 0)
        return v.dtype.itemsize * (math.prod(window[0]) + slack)  # (rounded, at any size)
    if v.op in (Op.SORT, Op.ARGSORT):
        n = v.shape[v.attrs["axis"]] if v.shape else 1
        return 8 * 3 * (n if is_symbolic(n) else max(n, 1))  # a symbol is >= 1
    return 0


def _dot_scratch(program: Program, v: Value) -> int:
    (_, m, n, kk), strides = dot_layout(program, v)
    if packing(program, v) in ("panels", "s8_panels"):
        return 0
    if packing(program, v):  # mirrors mlf_sgemm_bf16p_work_floats, mlf_sgemm_i8w_work_floats
        if m <= 6:
            return 0
        return 4 * (kk * n + (kk * (-(-n // 64) * 64) if sgemm_packs(m, n, kk, 1) else 0))
    if sgemm_fits(program, v) and strides is not None and sgemm_packs(m, n, kk, strides[5]) \
            and not sgemm_bt_rows(m, kk, strides[2], strides[4], strides[5]):
        return kk * (-(-n // 64) * 64) * 4
    return 0


def widened_weights_offset(program: Program, v: Value) -> int | None:
    """Where in a conv kernel's scratch its weights, stored as int8 or float16 by
    pack_weights, are widened to float32 before the convolution (after the convolution's
    own workspace, 64-byte aligned); None for float32 weights."""
    if program.values[v.inputs[1]].attrs.get("packing") not in ("int8_channels", "float16"):
        return None
    if program.symbols:  # placed after the convolution's largest workspace
        return int(-(-upper(_conv_work(program, v), program.symbols) // 64) * 64)
    return int(-(-_conv_work(program, v) // 64) * 64)


def s8_conv_args(program: Program, v: Value) -> tuple[int, ...]:
    """The sizes `mlf_conv2d_s8` (runtime_c/mlf_conv_s8.h) takes for int8 convolution `v`:
    N, C, H, W, O, KH, KW, strides, dilations, low paddings, ho, wo."""
    x, w = program.values[v.inputs[0]], program.values[v.inputs[1]]
    o, _, kh, kw = w.attrs["kernel_shape"]
    a = v.attrs
    return (*x.shape, o, kh, kw, *a["window_strides"], *a["rhs_dilation"], a["padding"][0][0],
            a["padding"][1][0], *v.shape[2:])


def s8_conv_work(program: Program, v: Value) -> DimLike:
    """Mirrors mlf_conv2d_s8_work_bytes: per image, its padded copy (+ 64 bytes of slack,
    64-byte aligned) and its patches [ceil(K/4)][PQ][4], PQ = P + 15 rounded up to 64."""
    n, c, _, _, _, kh, kw, sh, sw, dh, dw, _, _, ho, wo = s8_conv_args(program, v)
    hp, wp = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    pq = _ceil_to(ho * wo + 15, 64)  # symbolic sizes: bounded by the polynomial
    return n * (_ceil_to(c * hp * wp + 64, 64) + _ceil_to(c * kh * kw, 4) * pq)


def _conv_scratch(program: Program, v: Value) -> DimLike:
    if packing(program, v) == "s8_conv_rows":
        return s8_conv_work(program, v)
    offset = widened_weights_offset(program, v)
    if offset is None:
        return _conv_work(program, v)
    return offset + 4 * program.values[v.inputs[1]].size


def _conv_work(program: Program, v: Value) -> DimLike:
    """The bytes of workspace a float32 convolution's runtime call takes. With symbolic
    image sizes the runtime's own choices (few channels or panels, packing the GEMM's
    columns) may switch between sizes: the workspace then covers every option
    (`symbolic.cover`), with each rounding up bounded by the polynomial x + k - 1."""
    if conv_oc(program, v):
        return _conv_oc_work(program, v)
    maxima = program.symbols
    if conv_im2col(program, v):  # mirrors mlf_conv2d_im2col_work_floats
        o, c, kh, kw = program.values[v.inputs[1]].shape
        k, p = c * kh * kw, v.shape[2] * v.shape[3]
        packs = _sgemm_packs_columns(o, p, k, maxima)
        return 4 * (k * p + (k * _ceil_to(p, 64) if packs is not False else 0))
    if not conv_fast(program, v):
        return 0
    g = conv_geometry(program, v)
    # mirrors mlf_conv2d_work_floats in runtime_c/mlf_conv.h
    options = []
    small = conv_small(g, maxima)
    if small is not False:  # padded NCHW rows of 16-lane multiples (+ KW - 1)
        kv = _both(_holds(g["wo"], 15, maxima), _not(_holds(g["kw"], 7, maxima)))
        if kv is not False:  # kv path: rows wo - 1 + kwp, kw-padded weights
            kwp = _ceil_to(g["kw"], 16)
            options.append(4 * (g["n"] * g["c"] * g["hp"] * (g["wo"] - 1 + kwp)
                                + g["o"] * g["c"] * g["kh"] * kwp))
        if kv is not True:
            options.append(4 * g["n"] * g["c"] * g["hp"] * (_ceil_to(g["wo"], 16) + g["kw"] - 1))
    if small is not True:
        options.append(4 * (g["n"] * (g["hp"] * g["wp"] + g["kw"]) * g["c"]
                            + _ceil_to(g["o"], 64) * g["kh"] * g["kw"] * g["c"]))
    return cover(options)


def _not(a: bool | None) -> bool | None:
    return None if a is None else not a


def _sgemm_packs_columns(m: DimLike, n: DimLike, k: DimLike, maxima) -> bool | None:
    """`sgemm_packs(m, n, k, 1)` (a dense B), None when symbolic sizes leave it open."""
    if not any(is_symbolic(x) for x in (m, n, k)):
        return sgemm_packs(m, n, k, 1)
    return False if _holds(m, 6, maxima) is True else None
