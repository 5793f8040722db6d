"""The op table: the single source of truth for every primitive.

One row per primitive. `generators/generate.py` turns this table into the
`Op` enum and public op functions (`mlframework/graph/gen_ops.py`), the XLA
lowering table (`mlframework/backends/xla/gen_lowering.py`), the C expression
table of the C backend and the op reference (`docs/ops.md`).

Row fields:
  name     the op's name, as users call it and as `Op.<NAME>` identifies it.
  group    the family the op belongs to; passes and rules match on groups.
  inputs   input names; a name starting with `*` takes a list of nodes.
  attrs    typed attributes `(name, kind[, default])`; kinds are normalized by
           `mlframework/graph/attrs.py` (e.g. "axes" accepts negative axes).
  dtypes   which input dtypes the op accepts: any, numeric, float, int, bool, integral
           (int or bool).
  doc      the docstring of the public function.
  lax      the jax.lax lowering, an expression over the input and attr names;
           names starting with `_` are helpers in `backends/xla/lowering.py`.
  c        for elementwise ops, the C expression over the input names (`{x}`, `{y}`,
           `{pred}`...), with `{T}` the compute-type tag of the first input (f32,
           f64, i32, u8, b8...; float16/bfloat16 compute as f32) and, for convert,
           `{S}` the source tag and `{T}` the target tag (for nextafter and
           bitcast_convert_type the half types keep their own tags, f16 and bf16,
           since their bits matter). The functions live in
           `runtime_c/mlf_runtime.h`.
  diff     whether the op has a gradient rule (else it is treated as constant).

`DIFFERENCES` lists where a backend deliberately departs from XLA, and why.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpDef:
    name: str
    group: str
    inputs: tuple[str, ...]
    doc: str
    lax: str
    dtypes: str = "any"
    attrs: tuple[tuple, ...] = ()
    c: str | None = None
    diff: bool = True


def unary(name, doc, lax, c, dtypes="float", diff=True):
    return OpDef(name, "UNARY", ("x",), doc, lax, dtypes, c=c, diff=diff)


def binary(name, doc, lax, c, dtypes="numeric", group="BINARY", diff=True):
    return OpDef(name, group, ("x", "y"), doc, lax, dtypes, c=c, diff=diff)


def compare(name, doc, lax, c):
    return OpDef(name, "COMPARE", ("x", "y"), doc, lax, "any", c=c, diff=False)


def reduce(name, doc, lax, dtypes="numeric", diff=True):
    attrs = (("axes", "axes", None),)
    return OpDef(name, "REDUCE", ("x",), doc, lax, dtypes, attrs, diff=diff)


WINDOW_ATTRS = (("window_dimensions", "ints"), ("window_strides", "ints", None),
                ("padding", "pairs", None))
DILATED_WINDOW_ATTRS = WINDOW_ATTRS + (("base_dilation", "ints", None),
                                       ("window_dilation", "ints", None))
SCATTER_ATTRS = (("update_window_dims", "ints"), ("inserted_window_dims", "ints"),
                 ("scatter_dims_to_operand_dims", "ints"))


def scatter(name, doc, lax_fn, dtypes="numeric", attrs=SCATTER_ATTRS, extra=""):
    return OpDef(name, "MOVEMENT", ("x", "indices", "updates"), doc,
                 f"_scatter({lax_fn}, x, indices, updates, update_window_dims, "
                 f"inserted_window_dims, scatter_dims_to_operand_dims{extra})", dtypes, attrs)


def reduce_window(name, doc, init, lax_fn):
    return OpDef(name, "WINDOW", ("x",), doc,
                 f"_reduce_window(x, {init}, {lax_fn}, window_dimensions, window_strides, "
                 "padding, base_dilation, window_dilation)", "numeric", DILATED_WINDOW_ATTRS)

OPS: tuple[OpDef, ...] = (
    # Sources: created by `parameter` and `const`, not by generated functions.
    OpDef("parameter", "SOURCE", (), "An input of the graph.", "", attrs=(("index", "int"),
          ("name", "str")), diff=False),
    OpDef("constant", "SOURCE", (), "A constant array baked into the graph.", "",
          attrs=(("value", "array"),), diff=False),
    OpDef("iota", "SOURCE", (), "Counts 0, 1, 2... along `dimension` of an array of `shape`.",
          "lax.broadcasted_iota(dtype.numpy, shape, dimension)", "numeric",
          (("dtype", "dtype"), ("shape", "dims"), ("dimension", "int", 0)), diff=False),

    # Elementwise unary.
    unary("abs", "Absolute value |x| (unsigned x is returned as is).", "_abs(x)",
          "mlf_abs_{T}({x})", "numeric"),
    unary("neg", "Negation -x.", "lax.neg(x)", "mlf_neg_{T}({x})", "numeric"),
    unary("sign", "Sign of x: -1, 0 or 1 (NaN stays NaN).", "lax.sign(x)", "mlf_sign_{T}({x})",
          "numeric", diff=False),
    unary("exp", "Natural exponential e**x.", "lax.exp(x)", "mlf_exp_{T}({x})"),
    unary("expm1", "e**x - 1, accurate near zero.", "lax.expm1(x)", "mlf_expm1_{T}({x})"),
    unary("log", "Natural logarithm.", "lax.log(x)", "mlf_log_{T}({x})"),
    unary("log1p", "log(1 + x), accurate near zero.", "lax.log1p(x)", "mlf_log1p_{T}({x})"),
    unary("sqrt", "Square root.", "lax.sqrt(x)", "mlf_sqrt_{T}({x})"),
    unary("rsqrt", "Reciprocal square root 1/sqrt(x).", "lax.rsqrt(x)", "mlf_rsqrt_{T}({x})"),
    unary("tanh", "Hyperbolic tangent.", "lax.tanh(x)", "mlf_tanh_{T}({x})"),
    unary("logistic", "Logistic sigmoid 1/(1 + e**-x).", "lax.logistic(x)",
          "mlf_logistic_{T}({x})"),
    unary("sin", "Sine.", "lax.sin(x)", "mlf_sin_{T}({x})"),
    unary("cos", "Cosine.", "lax.cos(x)", "mlf_cos_{T}({x})"),
    unary("floor", "Largest integer value not above x.", "lax.floor(x)", "mlf_floor_{T}({x})",
          diff=False),
    unary("ceil", "Smallest integer value not below x.", "lax.ceil(x)", "mlf_ceil_{T}({x})",
          diff=False),
    unary("round", "Rounds to the nearest integer, halves to even (as NumPy).",
          "lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN)", "mlf_round_{T}({x})",
          diff=False),
    unary("erf", "Gauss error function.", "lax.erf(x)", "mlf_erf_{T}({x})"),
    unary("erfc", "Complementary error function 1 - erf(x), accurate where erf(x) nears 1.",
          "lax.erfc(x)", "mlf_erfc_{T}({x})"),
    unary("erf_inv", "Inverse of the error function on (-1, 1).", "lax.erf_inv(x)",
          "mlf_erf_inv_{T}({x})"),
    unary("tan", "Tangent.", "lax.tan(x)", "mlf_tan_{T}({x})"),
    unary("asin", "Arc sine, in [-pi/2, pi/2]; NaN outside [-1, 1].", "lax.asin(x)",
          "mlf_asin_{T}({x})"),
    unary("acos", "Arc cosine, in [0, pi]; NaN outside [-1, 1].", "lax.acos(x)",
          "mlf_acos_{T}({x})"),
    unary("atan", "Arc tangent, in [-pi/2, pi/2].", "lax.atan(x)", "mlf_atan_{T}({x})"),
    unary("sinh", "Hyperbolic sine.", "lax.sinh(x)", "mlf_sinh_{T}({x})"),
    unary("cosh", "Hyperbolic cosine.", "lax.cosh(x)", "mlf_cosh_{T}({x})"),
    unary("asinh", "Inverse hyperbolic sine.", "lax.asinh(x)", "mlf_asinh_{T}({x})"),
    unary("acosh", "Inverse hyperbolic cosine; NaN below 1.", "lax.acosh(x)",
          "mlf_acosh_{T}({x})"),
    unary("atanh", "Inverse hyperbolic tangent; +-inf at +-1, NaN outside [-1, 1].",
          "lax.atanh(x)", "mlf_atanh_{T}({x})"),
    unary("lgamma", "log|Gamma(x)|; +inf at the poles 0, -1, -2, ... and at +-inf.",
          "lax.lgamma(x)", "mlf_lgamma_{T}({x})"),
    unary("digamma", "The digamma function Gamma'(x) / Gamma(x); NaN at the poles 0, -1, "
          "-2, ... and at -inf.", "lax.digamma(x)", "mlf_digamma_{T}({x})"),
    unary("cbrt", "Real cube root (negative for negative x).", "lax.cbrt(x)",
          "mlf_cbrt_{T}({x})"),
    unary("exp2", "2**x.", "lax.exp2(x)", "mlf_exp2_{T}({x})"),
    unary("log2", "Base-2 logarithm.", "_log2(x)", "mlf_log2_{T}({x})"),
    OpDef("is_finite", "UNARY", ("x",), "True where x is neither infinite nor NaN.",
          "lax.is_finite(x)", "float", c="mlf_is_finite_{T}({x})", diff=False),
    OpDef("is_nan", "UNARY", ("x",), "True where x is NaN.", "lax.ne(x, x)", "float",
          c="({x} != {x})", diff=False),
    OpDef("is_inf", "UNARY", ("x",), "True where x is +inf or -inf.", "_is_inf(x)", "float",
          c="mlf_is_inf_{T}({x})", diff=False),
    unary("bitwise_not", "Bitwise complement ~x (logical not for bools).", "lax.bitwise_not(x)",
          "mlf_not_{T}({x})", "integral", diff=False),
    unary("population_count", "Number of set bits of each element.", "lax.population_count(x)",
          "mlf_popcount_{T}({x})", "int", diff=False),
    unary("count_leading_zeros", "Number of zero bits above the highest set bit (the bit "
          "width for 0).", "lax.clz(x)", "mlf_clz_{T}({x})", "int", diff=False),
    OpDef("logical_not", "UNARY", ("x",), "Logical negation of a bool array.", "lax.bitwise_not(x)",
          "bool", c="(!{x})", diff=False),
    OpDef("stop_gradient", "UNARY", ("x",), "Identity whose gradient is zero.",
          "lax.stop_gradient(x)", "any", c="{x}", diff=False),

    # Elementwise binary: operands are broadcast NumPy-style by the public function.
    binary("add", "Elementwise x + y.", "lax.add(x, y)", "({x} + {y})"),
    binary("sub", "Elementwise x - y.", "lax.sub(x, y)", "({x} - {y})"),
    binary("mul", "Elementwise x * y.", "lax.mul(x, y)", "({x} * {y})"),
    binary("div", "Elementwise x / y; integer division rounds toward zero (as C).",
           "lax.div(x, y)", "mlf_div_{T}({x}, {y})"),
    binary("pow", "Elementwise x ** y.", "lax.pow(x, y)", "mlf_pow_{T}({x}, {y})", "float"),
    binary("max", "Elementwise maximum; NaN if either is NaN.", "lax.max(x, y)",
           "mlf_max_{T}({x}, {y})"),
    binary("min", "Elementwise minimum; NaN if either is NaN.", "lax.min(x, y)",
           "mlf_min_{T}({x}, {y})"),
    binary("rem", "Remainder of x / y with the sign of x (C fmod).", "lax.rem(x, y)",
           "mlf_rem_{T}({x}, {y})"),
    binary("atan2", "Arc tangent of y/x using both signs: atan2(x, y) = atan(x / y).",
           "lax.atan2(x, y)", "mlf_atan2_{T}({x}, {y})", "float"),
    binary("nextafter", "The next float after x toward y (y if x == y; NaN if either is "
           "NaN).", "lax.nextafter(x, y)", "mlf_nextafter_{T}({x}, {y})", "float", diff=False),
    binary("bitwise_and", "Elementwise bitwise x & y (logical and for bools).",
           "lax.bitwise_and(x, y)", "({x} & {y})", "integral", diff=False),
    binary("bitwise_or", "Elementwise bitwise x | y (logical or for bools).",
           "lax.bitwise_or(x, y)", "({x} | {y})", "integral", diff=False),
    binary("bitwise_xor", "Elementwise bitwise x ^ y (logical xor for bools).",
           "lax.bitwise_xor(x, y)", "({x} ^ {y})", "integral", diff=False),
    binary("shift_left", "x << y; 0 where y, read as unsigned, is at least the bit width.",
           "lax.shift_left(x, y)", "mlf_shl_{T}({x}, {y})", "int", diff=False),
    binary("shift_right_logical", "x >> y shifting in zeros; 0 where y, read as unsigned, is "
           "at least the bit width.", "lax.shift_right_logical(x, y)",
           "mlf_shr_logical_{T}({x}, {y})", "int", diff=False),
    binary("shift_right_arithmetic", "x >> y shifting in copies of the sign bit (also for "
           "unsigned x); all sign bits where y, read as unsigned, is at least the bit width.",
           "lax.shift_right_arithmetic(x, y)", "mlf_shr_arithmetic_{T}({x}, {y})", "int",
           diff=False),
    compare("eq", "Elementwise x == y.", "lax.eq(x, y)", "({x} == {y})"),
    compare("ne", "Elementwise x != y.", "lax.ne(x, y)", "({x} != {y})"),
    compare("lt", "Elementwise x < y.", "lax.lt(x, y)", "({x} < {y})"),
    compare("le", "Elementwise x <= y.", "lax.le(x, y)", "({x} <= {y})"),
    compare("gt", "Elementwise x > y.", "lax.gt(x, y)", "({x} > {y})"),
    compare("ge", "Elementwise x >= y.", "lax.ge(x, y)", "({x} >= {y})"),
    binary("logical_and", "Elementwise x and y of bools.", "lax.bitwise_and(x, y)",
           "({x} && {y})", "bool", diff=False),
    binary("logical_or", "Elementwise x or y of bools.", "lax.bitwise_or(x, y)",
           "({x} || {y})", "bool", diff=False),
    binary("logical_xor", "Elementwise x xor y of bools.", "lax.bitwise_xor(x, y)",
           "({x} != {y})", "bool", diff=False),
    OpDef("select", "SELECT", ("pred", "on_true", "on_false"),
          "Picks on_true where pred is true, else on_false (all broadcast together).",
          "lax.select(pred, on_true, on_false)", c="({pred} ? {on_true} : {on_false})"),
    OpDef("convert", "CONVERT", ("x",), "Converts x to `dtype` (floats to ints truncate).",
          "_convert(x, dtype)", attrs=(("dtype", "dtype"),), c="mlf_cvt_{S}_{T}({x})"),
    OpDef("bitcast_convert_type", "CONVERT", ("x",),
          "Reinterprets the bits of x as `dtype`. Equal widths keep the shape; a narrower "
          "`dtype` adds a last axis of width ratio, a wider one removes a last axis of that "
          "size; bool only to bool (as jax.lax.bitcast_convert_type).",
          "lax.bitcast_convert_type(x, dtype.numpy)", attrs=(("dtype", "dtype"),),
          c="mlf_bitcast_{S}_{T}({x})", diff=False),

    # Shape and data movement.
    OpDef("broadcast_in_dim", "MOVEMENT", ("x",),
          "Broadcasts x to `shape`; x's axis i becomes output axis broadcast_dimensions[i].",
          "lax.broadcast_in_dim(x, shape, broadcast_dimensions)",
          attrs=(("shape", "dims"), ("broadcast_dimensions", "ints"))),
    OpDef("reshape", "MOVEMENT", ("x",),
          "Reshapes x to `shape` in row-major order; one dimension may be -1.",
          "lax.reshape(x, shape)", attrs=(("shape", "shape"),)),
    OpDef("transpose", "MOVEMENT", ("x",),
          "Permutes axes: output axis i is input axis permutation[i] (default reverses).",
          "lax.transpose(x, permutation)", attrs=(("permutation", "perm", None),)),
    OpDef("slice", "MOVEMENT", ("x",),
          "The sub-array from `start_indices` up to `limit_indices` with `strides`.",
          "lax.slice(x, start_indices, limit_indices, strides)",
          attrs=(("start_indices", "dims"), ("limit_indices", "dims"), ("strides", "ints", None))),
    OpDef("pad", "MOVEMENT", ("x",),
          "Pads each axis with (low, high, interior) elements of `value`; negative low/high crop.",
          "lax.pad(x, _scalar(value, x.dtype), padding_config)",
          attrs=(("padding_config", "triples"), ("value", "scalar", 0))),
    OpDef("concatenate", "MOVEMENT", ("*operands",), "Joins arrays along an existing `axis`.",
          "lax.concatenate(operands, axis)", attrs=(("axis", "axis", 0),)),
    OpDef("reverse", "MOVEMENT", ("x",), "Reverses the order of elements along `axes`.",
          "lax.rev(x, axes)", attrs=(("axes", "axes"),)),
    OpDef("dynamic_slice", "MOVEMENT", ("x", "*start_indices"),
          "A slice of `slice_sizes` at run-time start indices (clamped to stay in bounds).",
          "lax.dynamic_slice(x, start_indices, slice_sizes)", attrs=(("slice_sizes", "dims"),)),
    OpDef("dynamic_update_slice", "MOVEMENT", ("x", "update", "*start_indices"),
          "x with `update` written at run-time start indices (clamped to stay in bounds).",
          "lax.dynamic_update_slice(x, update, start_indices)"),
    OpDef("gather", "MOVEMENT", ("x", "indices"),
          "XLA gather; the last axis of `indices` holds the start index vectors (clamped).",
          "_gather(x, indices, offset_dims, collapsed_slice_dims, start_index_map, slice_sizes)",
          attrs=(("offset_dims", "ints"), ("collapsed_slice_dims", "ints"),
                 ("start_index_map", "ints"), ("slice_sizes", "dims"))),
    scatter("scatter_add", "XLA scatter adding `updates` into x; out-of-bounds updates are "
            "dropped.", "lax.scatter_add"),
    scatter("scatter_set", "XLA scatter writing `updates` into x; out-of-bounds updates are "
            "dropped.", "lax.scatter", "any"),
    scatter("scatter_mul", "XLA scatter multiplying x by `updates` (duplicates multiply in "
            "turn); out-of-bounds updates are dropped. `unique_indices` promises no index "
            "repeats, which the gradient with respect to `updates` requires (as JAX).",
            "lax.scatter_mul", attrs=SCATTER_ATTRS + (("unique_indices", "bool", False),),
            extra=", unique_indices=unique_indices"),
    scatter("scatter_min", "XLA scatter keeping the minimum of x and `updates` (NaN wins); "
            "out-of-bounds updates are dropped.", "lax.scatter_min"),
    scatter("scatter_max", "XLA scatter keeping the maximum of x and `updates` (NaN wins); "
            "out-of-bounds updates are dropped.", "lax.scatter_max"),

    # Reductions.
    reduce("reduce_sum", "Sum over `axes` (all if None); float16 and bfloat16 accumulate in "
           "float32 and round once, as jax.numpy.sum.", "_reduce(x, 0, lax.add, axes)"),
    reduce("reduce_prod", "Product over `axes` (all if None); float16 and bfloat16 accumulate "
           "in float32, as jax.numpy.prod.", "_reduce(x, 1, lax.mul, axes)"),
    reduce("reduce_max", "Maximum over `axes` (all if None).",
           "_reduce(x, _lowest(x.dtype), lax.max, axes)"),
    reduce("reduce_min", "Minimum over `axes` (all if None).",
           "_reduce(x, _highest(x.dtype), lax.min, axes)"),
    reduce("reduce_and", "Logical and over `axes` (all if None).",
           "_reduce(x, True, lax.bitwise_and, axes)", "bool", diff=False),
    reduce("reduce_or", "Logical or over `axes` (all if None).",
           "_reduce(x, False, lax.bitwise_or, axes)", "bool", diff=False),
    OpDef("argmax", "INDEX", ("x",), "Index of the largest value along `axis` (first on ties).",
          "lax.argmax(x, axis, index_dtype.numpy)", "numeric",
          (("axis", "axis"), ("index_dtype", "dtype", "int32")), diff=False),
    OpDef("argmin", "INDEX", ("x",), "Index of the smallest value along `axis` (first on ties).",
          "lax.argmin(x, axis, index_dtype.numpy)", "numeric",
          (("axis", "axis"), ("index_dtype", "dtype", "int32")), diff=False),
    OpDef("cumsum", "SCAN", ("x",), "Cumulative sum along `axis` (from the end if reverse).",
          "lax.cumsum(x, axis, reverse)", "numeric",
          (("axis", "axis"), ("reverse", "bool", False))),
    OpDef("cumprod", "SCAN", ("x",), "Cumulative product along `axis` (from the end if "
          "reverse).", "lax.cumprod(x, axis, reverse)", "numeric",
          (("axis", "axis"), ("reverse", "bool", False))),
    OpDef("cummax", "SCAN", ("x",), "Cumulative maximum along `axis` (from the end if "
          "reverse); NaN from the first NaN on.", "lax.cummax(x, axis, reverse)", "numeric",
          (("axis", "axis"), ("reverse", "bool", False))),
    OpDef("cummin", "SCAN", ("x",), "Cumulative minimum along `axis` (from the end if "
          "reverse); NaN from the first NaN on.", "lax.cummin(x, axis, reverse)", "numeric",
          (("axis", "axis"), ("reverse", "bool", False))),
    OpDef("cumlogsumexp", "SCAN", ("x",), "Cumulative log(sum(exp(x))) along `axis` (from "
          "the end if reverse), without overflow.", "lax.cumlogsumexp(x, axis, reverse)",
          "float", (("axis", "axis"), ("reverse", "bool", False))),
    OpDef("sort", "SORT", ("x",), "Sorts along `axis`, ascending unless `descending`.",
          "_sort(x, axis, descending)", "numeric",
          (("axis", "axis", -1), ("descending", "bool", False))),
    OpDef("argsort", "SORT", ("x",),
          "Indices that sort x along `axis` (stable: ties keep their order). Floats order as "
          "jax.lax.sort (-0.0 equals +0.0, every NaN after +inf) unless `total_order`, which "
          "orders as XLA's total order (-NaN < -inf < -0.0 < +0.0 < +inf < NaN; top_k's).",
          "_argsort(x, axis, descending, index_dtype, total_order)", "numeric",
          (("axis", "axis", -1), ("descending", "bool", False), ("index_dtype", "dtype", "int32"),
           ("total_order", "bool", False)), diff=False),

    # Windows, contractions and convolutions.
    reduce_window("reduce_window_max", "Maximum over sliding windows (max pooling); "
                  "`base_dilation` spreads the input, `window_dilation` the window.",
                  "_lowest(x.dtype)", "lax.max"),
    reduce_window("reduce_window_min", "Minimum over sliding windows (min pooling); "
                  "`base_dilation` spreads the input, `window_dilation` the window.",
                  "_highest(x.dtype)", "lax.min"),
    reduce_window("reduce_window_sum", "Sum over sliding windows (sum pooling); "
                  "`base_dilation` spreads the input, `window_dilation` the window.",
                  "0", "lax.add"),
    OpDef("select_and_scatter_add", "WINDOW", ("source", "x"),
          "Adds each `source` value to the position of its window's maximum in x "
          "(the gradient of reduce_window_max).",
          "_select_and_scatter_add(source, x, window_dimensions, window_strides, padding)",
          "numeric", WINDOW_ATTRS, diff=False),
    OpDef("dot_general", "CONTRACTION", ("lhs", "rhs"),
          "Generalized matrix product: contracts the given axes pairwise over shared batch "
          "axes. Output axes: batch, lhs free, rhs free. `preferred_element_type` (as "
          "jax.lax) widens the products, the accumulation and the result: int8 x int8 into "
          "int32, float16 or bfloat16 into float32.",
          "lax.dot_general(lhs, rhs, ((lhs_contracting, rhs_contracting), "
          "(lhs_batch, rhs_batch)), precision=lax.Precision.HIGHEST, "
          "preferred_element_type=_numpy_dtype(preferred_element_type))", "numeric",
          (("lhs_contracting", "ints"), ("rhs_contracting", "ints"), ("lhs_batch", "ints", ()),
           ("rhs_batch", "ints", ()), ("preferred_element_type", "dtype", None))),
    OpDef("conv_general", "CONTRACTION", ("lhs", "rhs"),
          "N-d convolution (cross-correlation). lhs [N, C, *spatial], rhs [O, C/groups, "
          "*window], output [N, O, *spatial'] unless `dimension_numbers` (as "
          "jax.lax.conv_general_dilated: strings such as ('NHWC', 'HWIO', 'NHWC'), or the "
          "three axis orders) says where the batch, feature and spatial axes are.",
          "lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, "
          "rhs_dilation, lax.ConvDimensionNumbers(*dimension_numbers), "
          "feature_group_count=feature_group_count, batch_group_count=batch_group_count, "
          "precision=lax.Precision.HIGHEST)", "float",
          (("window_strides", "ints", None), ("padding", "pairs", None),
           ("lhs_dilation", "ints", None), ("rhs_dilation", "ints", None),
           ("feature_group_count", "int", 1), ("batch_group_count", "int", 1),
           ("dimension_numbers", "conv_dims", None))),

    # Control flow: nodes holding sub-graphs (`Graph`s whose parameters are the node's
    # operands after the index), built by `mlframework/graph/control_flow.py` (G.cond,
    # G.switch, G.while_loop, G.fori_loop, G.scan), not by generated functions. Such a node
    # is a tuple of results, each read by a `tuple_get` node.
    OpDef("cond", "CONTROL", ("index", "*operands"),
          "Runs one of `branches` on the operands: branches[index] for an int32 index "
          "(clamped), or branches[1] if a bool index is true, else branches[0].",
          "_cond(index, operands, branches)", attrs=(("branches", "graphs"),)),
    OpDef("while_loop", "CONTROL", ("*operands",),
          "Runs `body` on the carry (the first num_carry operands) while `cond` is true; "
          "the rest are values both read. Differentiable only forward (reverse mode needs a "
          "trip count: G.fori_loop with int bounds or G.scan).",
          "_while_loop(operands, cond, body, num_carry)",
          attrs=(("cond", "graph"), ("body", "graph"), ("num_carry", "int")), diff=False),
    OpDef("scan", "CONTROL", ("*operands",),
          "Runs `body` `length` times on (carry, x, captures), x slicing the next num_xs "
          "operands along axis 0 (from the end if reverse); results: the final carry, then "
          "the per-step outputs stacked along a new axis 0.",
          "_scan(operands, body, length, reverse, num_carry, num_xs)",
          attrs=(("body", "graph"), ("length", "dim"), ("reverse", "bool"),
                 ("num_carry", "int"), ("num_xs", "int"))),
    OpDef("tuple_get", "CONTROL", ("results",),
          "Result `index` of a control-flow node.", "results[index]",
          attrs=(("index", "int"),)),

    # Linear algebra, over the last two axes (the leading ones are a batch).
    OpDef("cholesky", "LINALG", ("x",),
          "Lower Cholesky factor L (L @ L.T == x) of symmetric positive-definite matrices "
          "[..., n, n]; reads x's lower triangle only (as jax.lax.linalg.cholesky with "
          "symmetrize_input=False); a matrix that is not positive definite gives NaN in its "
          "lower triangle. float16/bfloat16 compute in float32 and round once.",
          "_linalg(lax.linalg.cholesky, x, symmetrize_input=False)", "float"),
    OpDef("triangular_solve", "LINALG", ("a", "b"),
          "Solves op(a) @ x == b (`left_side`) or x @ op(a) == b for x, with a [..., m, m] "
          "triangular (its `lower` or upper triangle is read; `unit_diagonal`: its diagonal "
          "is taken as ones) and op(a) a or, with `transpose_a`, a.T; b [..., m, n] or "
          "[..., n, m] (as jax.lax.linalg.triangular_solve). float16/bfloat16 compute in "
          "float32 and round once.",
          "_linalg(lax.linalg.triangular_solve, a, b, left_side=left_side, lower=lower, "
          "transpose_a=transpose_a, unit_diagonal=unit_diagonal)", "float",
          (("left_side", "bool", False), ("lower", "bool", False),
           ("transpose_a", "bool", False), ("unit_diagonal", "bool", False))),

    # Random numbers.
    OpDef("rng_bits", "RANDOM", ("key",),
          "Random uint32 bits of `shape` from a uint32[2] key (threefry-2x32, counter-based; "
          "equal to jax.random.bits).", "_rng_bits(key, shape)", "any",
          (("shape", "dims"),), diff=False),
)

BY_NAME = {op.name: op for op in OPS}
GROUPS = tuple(dict.fromkeys(op.group for op in OPS))


@dataclass(frozen=True)
class Difference:
    """A deliberate difference from XLA: where it applies and why it is kept."""

    backends: tuple[str, ...]
    what: str
    reason: str


# The one table of deliberate differences from XLA's semantics, by name. docs/ops.md states it
# ("Differences from XLA") and tests/graph/differential.py applies each entry by name.
DIFFERENCES = {
    "subnormals": Difference(
        ("c",),
        "The c backend keeps IEEE subnormal numbers; XLA on CPU flushes them to zero "
        "(inputs and results, FTZ/DAZ). The tests check the c backend against IEEE "
        "arithmetic (NumPy in float64) wherever an input or a result is subnormal.",
        "Flushing needs the floating-point control register set on every thread that runs a "
        "kernel, which a library (and an exported C model called from the user's threads) "
        "must not change behind its caller's back; wasm32 has no flush mode at all."),
    "approximations": Difference(
        ("c",),
        "Transcendental functions (exp, log, tanh, erf, erfc, pow, ...) are not bit-exact "
        "with XLA's: the c backend uses libm in float64 and 1-3 ulp polynomials in float32, "
        "XLA its own approximations, which are further from the correctly rounded result in "
        "places (float64 log1p by 50 ulps, float64 tanh near +-1, float16 logistic by 2 "
        "ulps). The tests accept a result within a few ulps of XLA's or within 2 ulps of "
        "NumPy's float64 evaluation; composites and programs compare within a tolerance.",
        "Bit-exactness with one compiler's approximations would mean reproducing XLA's "
        "polynomials in C and losing accuracy where they are worse."),
    "fused multiply-add": Difference(
        ("c",),
        "gcc contracts a float32/float64 product feeding a sum into one fused multiply-add "
        "(one rounding instead of XLA's two), so such chains may differ from XLA by an ulp; "
        "float16/bfloat16 results round after every op and are not contracted. The tests "
        "compare float32/float64 chains within 4 ulps.",
        "It is gcc's default (-ffp-contract=fast), which the GEMM and convolution "
        "micro-kernels rely on for their multiply-adds; turning it off for the elementwise "
        "kernels alone is not done yet."),
}
