"""`widen_half_dots`: float16/bfloat16 products accumulated in float32 as float32 GEMMs.

    program = widen_half_dots(program)

A dot_general of float16 or bfloat16 operands with preferred_element_type float32
becomes a dot_general of the operands converted to float32. That is the same
computation, not an approximation of it: the product of two float16 (11-bit
significands) or bfloat16 (8-bit) values is exact in float32 (24 bits), so only
the float32 accumulation rounds, as in the widened dot itself. The float32 dot
then runs through the register-tiled GEMM instead of the plain loop nest; the
converts are single passes over the operands (and fold for constant weights in
`simplify`, which runs this first). The dot keeps its id, so its readers are
unchanged.
"""
from __future__ import annotations

from aot.program.program import Program, Value
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op

_HALF = (DType.FLOAT16, DType.BFLOAT16)


def widen_half_dots(program: Program) -> Program:
    """`program` with every float16/bfloat16 -> float32 dot_general on float32 operands
    (the same program when it has none)."""
    dots = {v.id for v in program.values.values() if v.op is Op.DOT_GENERAL
            and v.dtype is DType.FLOAT32 and program.values[v.inputs[0]].dtype in _HALF}
    if not dots:
        return program
    fresh = iter(range(max(program.values) + 1, max(program.values) + 1 + 2 * len(dots)))
    values: dict[int, Value] = {}
    for v in program.values.values():
        if v.id in dots:
            inputs = []
            for x in (program.values[i] for i in v.inputs):
                wide = Value(next(fresh), Op.CONVERT, (x.id,), {"dtype": DType.FLOAT32},
                             DType.FLOAT32, x.shape, v.source, v.scope)
                values[wide.id] = wide
                inputs.append(wide.id)
            v = Value(v.id, v.op, tuple(inputs), dict(v.attrs, preferred_element_type=None),
                      v.dtype, v.shape, v.source, v.scope)
        values[v.id] = v
    return Program(program.name, values, list(program.params), list(program.outputs),
                   dict(program.symbols))
