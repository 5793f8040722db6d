"""C expressions of a fused kernel's values: the walk of `aot.program.walk`, spelled in C.

    ev = Evaluator(program, extents, {3: "b3"})
    expr = ev.value(vid, index)     # C text; ev.lines holds one `const` line per node

Loads and stores go through the element types of `ctypes_table` (half types are
stored as uint16_t and computed in float); elementwise ops take their C from the
op table (`C_EXPRESSIONS`).
"""
from __future__ import annotations

from aot.codegen import ctypes_table as ct
from aot.program.walk import Walker
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import DimLike
from mlframework.graph.gen_optypes import C_EXPRESSIONS, Op

_ARG_NAMES = {Op.SELECT: ("pred", "on_true", "on_false")}
# Ops whose float result is already a value of a half operand's type (no rounding needed).
_EXACT_IN_HALF = frozenset({Op.NEG, Op.ABS, Op.SIGN, Op.MAX, Op.MIN, Op.SELECT, Op.FLOOR,
                            Op.CEIL, Op.ROUND, Op.STOP_GRADIENT, Op.NEXTAFTER,
                            Op.BITCAST_CONVERT_TYPE})
# Ops whose C function works on a half type's bits, so half types keep their own tag.
_BITS_TAGGED = frozenset({Op.NEXTAFTER, Op.BITCAST_CONVERT_TYPE})


def _tag(op, dtype: DType) -> str:
    return ct.HALF[dtype] if op in _BITS_TAGGED and dtype in ct.HALF else ct.TAG[dtype]


class Evaluator(Walker):
    """A `Walker` whose expressions and lines are C."""

    def load(self, dtype: DType, pointer: str, at: str) -> str:
        return ct.load(dtype, pointer, at)

    def literal(self, value, dtype: DType) -> str:
        return ct.literal(value, dtype)

    def elementwise(self, v, ins, args: list[str]) -> str:
        names = _ARG_NAMES.get(v.op, ("x", "y"))
        tag = _tag(v.op, ins[1].dtype if v.op is Op.SELECT else ins[0].dtype)
        fields = dict(zip(names, args), T=tag)
        if v.op in (Op.CONVERT, Op.BITCAST_CONVERT_TYPE):
            fields.update(S=_tag(v.op, ins[0].dtype), T=_tag(v.op, v.dtype))
        expr = C_EXPRESSIONS[v.op].format(**fields)
        exact = v.op in _EXACT_IN_HALF or v.op is Op.CONVERT and ins[0].dtype is v.dtype
        if v.dtype in ct.HALF and not exact:  # round after every op, as XLA: no float32
            return f"MLF_NARROW_{ct.HALF[v.dtype].upper()}({expr})"  # intermediates
        return ct.narrow(v.dtype, expr)

    def declare(self, v, name: str, expr: str) -> str:
        return f"const {ct.compute(v.dtype)} {name} = {expr};"

    def start_index(self, start: str, size: DimLike, hi: DimLike) -> str:
        return f"mlf_start_index((int64_t){start}, {size}, {hi})"

    def cast_index(self, v, at: str) -> str:
        return f"({ct.compute(v.dtype)})({at})"

    def bool_to_float(self, v, cond: str) -> str:
        return f"(({cond}) ? {ct.literal(1, v.dtype)} : {ct.literal(0, v.dtype)})"
