"""`canonical_convs`: convolutions in the layouts the C kernels take.

    program = canonical_convs(program)

A conv_general whose `dimension_numbers` are not the canonical ones (lhs [N, C,
*spatial], rhs [O, I, *window], output [N, O, *spatial']; for example NHWC/HWIO)
becomes a transpose of each operand into the canonical layout, the canonical
convolution, and a transpose of its result back. The transposes are single
copies (O(size), against the convolution's O(size * window * channels)); a
transpose of constant weights folds at compile time in `simplify`, which runs
this first. The rewritten output keeps the convolution's id, so its readers are
unchanged.
"""
from __future__ import annotations

from aot.program.program import Program, Value
from mlframework.graph.gen_optypes import Op


def canonical_convs(program: Program) -> Program:
    """`program` with every conv_general in the canonical layouts (the same program when
    all already are)."""
    convs = {v.id for v in program.values.values() if v.op is Op.CONV_GENERAL
             and any(list(o) != list(range(len(v.shape))) for o in v.attrs["dimension_numbers"])}
    if not convs:
        return program
    fresh = iter(range(max(program.values) + 1, max(program.values) + 1 + 4 * len(convs)))
    values: dict[int, Value] = {}
    for v in program.values.values():
        if v.id not in convs:
            values[v.id] = v
            continue
        lhs_order, rhs_order, out_order = v.attrs["dimension_numbers"]
        inputs = []
        for vid, order in zip(v.inputs, (lhs_order, rhs_order)):
            x = program.values[vid]
            t = _transpose(next(fresh), x, order, tuple(x.shape[a] for a in order), v)
            values[t.id] = t
            inputs.append(t.id)
        canonical_shape = tuple(v.shape[a] for a in out_order)
        rank = len(v.shape)
        attrs = dict(v.attrs, dimension_numbers=(tuple(range(rank)),) * 3)
        conv = Value(next(fresh), Op.CONV_GENERAL, tuple(inputs), attrs, v.dtype,
                     canonical_shape, v.source, v.scope)
        values[conv.id] = conv
        back = tuple(list(out_order).index(i) for i in range(rank))
        values[v.id] = _transpose(v.id, conv, back, v.shape, v)
    return Program(program.name, values, list(program.params), list(program.outputs),
                   dict(program.symbols))


def _transpose(vid: int, x: Value, perm, shape, conv: Value) -> Value:
    return Value(vid, Op.TRANSPOSE, (x.id,), {"permutation": tuple(perm)}, x.dtype,
                 tuple(shape), conv.source, conv.scope)
