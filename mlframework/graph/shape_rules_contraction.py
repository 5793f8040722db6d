"""Shape rules of contractions, windows and linear algebra: dot_general, conv_general,
reduce_window_*, select_and_scatter_add, cholesky and triangular_solve."""
from __future__ import annotations

from mlframework.core import dtypes
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import Dim, DimLike, at_most, divide
from mlframework.graph.errors import DTypeError, ShapeError, SymbolicSizeError
from mlframework.graph.gen_optypes import Op


def _dot_general_shape(inputs, attrs):
    lhs, rhs = inputs
    if lhs.dtype is not rhs.dtype:
        raise DTypeError(f"dot_general requires operands of one dtype, got {lhs} and {rhs}")
    lc, rc = attrs["lhs_contracting"], attrs["rhs_contracting"]
    lb, rb = attrs["lhs_batch"], attrs["rhs_batch"]
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ShapeError(f"dot_general requires as many contracting and batch axes on each "
                         f"side, got contracting {lc} / {rc}, batch {lb} / {rb}")
    for s, axes in ((lhs, lc + lb), (rhs, rc + rb)):
        if len(set(axes)) != len(axes) or any(not 0 <= a < s.rank for a in axes):
            raise ShapeError(f"dot_general requires distinct axes within rank, got {axes} "
                             f"for {s}")
    for kind, la, ra in (("contracting", lc, rc), ("batch", lb, rb)):
        for a, b in zip(la, ra):
            if lhs.dims[a] != rhs.dims[b]:
                raise ShapeError(f"dot_general requires {kind} dims of equal size, got "
                                 f"{lhs} axes {la} and {rhs} axes {ra}: lhs.shape[{a}] == "
                                 f"rhs.shape[{b}] fails with {lhs.dims[a]} and {rhs.dims[b]}")
    free_l = [d for i, d in enumerate(lhs.dims) if i not in lc + lb]
    free_r = [d for i, d in enumerate(rhs.dims) if i not in rc + rb]
    return Shape(_dot_result_dtype(lhs, attrs["preferred_element_type"]),
                 tuple([lhs.dims[a] for a in lb] + free_l + free_r))


def _dot_result_dtype(lhs: Shape, preferred):
    """The operands' dtype, or the preferred one: of the same kind (float, integer) and at
    least as wide."""
    if preferred is None:
        return lhs.dtype
    if preferred.is_float != lhs.dtype.is_float or preferred.itemsize < lhs.dtype.itemsize \
            or preferred is dtypes.BOOL:
        raise DTypeError(f"dot_general requires a preferred_element_type of the operands' kind "
                         f"(float or integer) at least as wide as {lhs.dtype}, got "
                         f"{preferred}; convert the operands instead")
    return preferred


def _window_output(op: str, x_dims, window, strides, padding, dilation=None) -> list[DimLike]:
    n = len(x_dims)
    if len(window) != n or len(strides) != n or len(padding) != n:
        raise ShapeError(f"{op} requires window, strides and padding for {n} axes, got "
                         f"{window}, {strides}, {padding}")
    dims = []
    dilation = dilation or (1,) * n
    for d, w, s, (lo, hi), r in zip(x_dims, window, strides, padding, dilation):
        span = (w - 1) * r + 1
        if s < 1 or not at_most(1, w) or not at_most(span, d + lo + hi):
            raise ShapeError(f"{op} requires windows >= 1 that fit in the padded input and "
                             f"strides >= 1, got input dims ({', '.join(map(str, x_dims))}), "
                             f"window {window}, strides {strides}, padding {padding}")
        extent = d + lo + hi - span
        if isinstance(extent, Dim) and divide(extent, s) is None:
            raise SymbolicSizeError(
                f"{op} with stride {s} over the symbolic size {d} has an output size that "
                f"is not a polynomial in {', '.join(sorted(d.symbols))} (floor division of "
                "symbolic sizes is not built); make that axis static or use stride 1")
        dims.append(extent // s + 1)
    return dims


def _reduce_window_shape(op: Op):
    def rule(inputs, attrs):
        x = inputs[0]
        base, dilation = attrs["base_dilation"], attrs["window_dilation"]
        if len(base) != x.rank or len(dilation) != x.rank or min(base + dilation,
                                                                 default=1) < 1:
            raise ShapeError(f"{op.value} requires base_dilation and window_dilation of "
                             f"{x.rank} factors >= 1, got {base} and {dilation} for {x}")
        spread = [(d - 1) * b + 1 if d else 0 for d, b in zip(x.dims, base)]
        dims = _window_output(op.value, spread, attrs["window_dimensions"],
                              attrs["window_strides"], attrs["padding"], dilation)
        return Shape(x.dtype, tuple(dims))
    return rule


def _select_and_scatter_add_shape(inputs, attrs):
    source, x = inputs
    dims = _window_output("select_and_scatter_add", x.dims, attrs["window_dimensions"],
                          attrs["window_strides"], attrs["padding"])
    if source.dtype is not x.dtype or tuple(dims) != source.dims:
        raise ShapeError(f"select_and_scatter_add requires a source of the windowed shape "
                         f"{tuple(dims)} and dtype {x.dtype}, got {source}")
    return x


def _conv_general_shape(inputs, attrs):
    lhs, rhs = inputs
    if lhs.dtype is not rhs.dtype:
        raise DTypeError(f"conv_general requires operands of one dtype, got {lhs} and {rhs}")
    if lhs.rank < 3 or rhs.rank != lhs.rank:
        raise ShapeError(f"conv_general requires lhs [N, C, *spatial] and rhs [O, I, *window] "
                         f"of equal rank >= 3, got {lhs} and {rhs}")
    lhs_order, rhs_order, out_order = attrs["dimension_numbers"]
    canonical = _canonical_conv_shape([Shape(s.dtype, tuple(s.dims[a] for a in order))
                                       for s, order in ((lhs, lhs_order), (rhs, rhs_order))],
                                      attrs)
    dims = [0] * lhs.rank
    for i, a in enumerate(out_order):
        dims[a] = canonical.dims[i]
    return Shape(canonical.dtype, tuple(dims))


def _canonical_conv_shape(inputs, attrs):
    """The [N, O, *spatial'] shape of a convolution of [N, C, *spatial] by [O, I, *window]."""
    lhs, rhs = inputs
    groups, batch_groups = attrs["feature_group_count"], attrs["batch_group_count"]
    n, c = lhs.dims[:2]
    o, i = rhs.dims[:2]
    if groups < 1 or batch_groups < 1 or c != i * groups or o % groups or o % batch_groups \
            or n % batch_groups:
        raise ShapeError(f"conv_general requires input channels = rhs dim 1 * "
                         f"feature_group_count ({groups}) with output channels divisible by "
                         f"the group counts, got {lhs} and {rhs}")
    lhs_dil = attrs["lhs_dilation"]
    spatial = [(d - 1) * r + 1 if d else 0 for d, r in zip(lhs.dims[2:], lhs_dil)]
    dims = _window_output("conv_general", spatial, rhs.dims[2:], attrs["window_strides"],
                          attrs["padding"], attrs["rhs_dilation"])
    return Shape(lhs.dtype, (n // batch_groups, o, *dims))


def _square(op: str, x: Shape) -> None:
    if x.rank < 2 or x.dims[-1] != x.dims[-2]:
        raise ShapeError(f"{op} requires square matrices [..., n, n], got {x}")


def _cholesky_shape(inputs, attrs):
    _square("cholesky", inputs[0])
    return inputs[0]


def _triangular_solve_shape(inputs, attrs):
    a, b = inputs
    _square("triangular_solve", a)
    if b.dtype is not a.dtype:
        raise DTypeError(f"triangular_solve requires a and b of one dtype, got {a} and {b}")
    m = a.dims[-1]
    side = b.dims[-2] if attrs["left_side"] else (b.dims[-1] if b.rank else None)
    if b.rank != a.rank or b.dims[:-2] != a.dims[:-2] or side != m:
        where_m = "[..., m, n]" if attrs["left_side"] else "[..., n, m]"
        raise ShapeError(f"triangular_solve requires b {where_m} with a's batch dims and m = "
                         f"{m} (left_side={attrs['left_side']}), got a {a} and b {b}")
    return b


RULES = {
    Op.DOT_GENERAL: _dot_general_shape,
    Op.CONV_GENERAL: _conv_general_shape,
    Op.REDUCE_WINDOW_MAX: _reduce_window_shape(Op.REDUCE_WINDOW_MAX),
    Op.REDUCE_WINDOW_MIN: _reduce_window_shape(Op.REDUCE_WINDOW_MIN),
    Op.REDUCE_WINDOW_SUM: _reduce_window_shape(Op.REDUCE_WINDOW_SUM),
    Op.SELECT_AND_SCATTER_ADD: _select_and_scatter_add_shape,
    Op.CHOLESKY: _cholesky_shape,
    Op.TRIANGULAR_SOLVE: _triangular_solve_shape,
}
