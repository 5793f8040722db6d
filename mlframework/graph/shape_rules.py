"""Shape rules: for every op, check the inputs and infer the output `Shape`.

`infer(op, input_specs, attrs)` is called by `graph.build`. Rules for whole
groups come first, then one `_<op>_shape` function per op that needs its own;
`RULES` maps every `Op` to its rule (a test checks none is missing).
"""
from __future__ import annotations

from mlframework.core import dtypes
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import SymbolicError
from mlframework.graph import (shape_rules_contraction, shape_rules_control,
                               shape_rules_movement)
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import ACCEPTED_DTYPES, Op, OpGroup


def infer(op: Op, inputs: list[Shape], attrs: dict) -> Shape:
    """The output shape of `op` over `inputs`. Raises ShapeError or DTypeError."""
    accepted = ACCEPTED_DTYPES[op]
    for s in inputs[:1] if op in _FIRST_INPUT_TYPED else inputs:
        if s.dtype not in accepted:
            names = ", ".join(sorted(d.value for d in accepted))
            raise DTypeError(f"{op.value} requires dtype in {{{names}}}, got {s}")
    try:
        return RULES[op](inputs, attrs)
    except SymbolicError as e:
        got = ", ".join(map(str, inputs))
        raise ShapeError(f"{op.value} needs a concrete size where it is symbolic, got "
                         f"{got}: {e}") from None


# Ops whose later inputs (indices, predicates) follow rules of their own.
_FIRST_INPUT_TYPED = (OpGroup.MOVEMENT | {Op.RNG_BITS}) - {Op.SELECT}


def same_shapes(op: Op, inputs: list[Shape]) -> None:
    """Raises unless all inputs have the same dtype and dims."""
    first = inputs[0]
    for s in inputs[1:]:
        if s != first:
            got = ", ".join(map(str, inputs))
            raise ShapeError(f"{op.value} requires operands of equal shape and dtype, got {got}")


_BOOL_RESULT = frozenset({Op.IS_FINITE, Op.IS_NAN, Op.IS_INF})


def _unary(op):
    def rule(inputs, attrs):
        return Shape(dtypes.BOOL, inputs[0].dims) if op in _BOOL_RESULT else inputs[0]
    return rule


def _binary(op):
    def rule(inputs, attrs):
        same_shapes(op, inputs)
        return Shape(dtypes.BOOL, inputs[0].dims) if op in OpGroup.COMPARE else inputs[0]
    return rule


def _select_shape(inputs, attrs):
    pred, on_true, on_false = inputs
    if pred.dtype is not dtypes.BOOL:
        raise DTypeError(f"select requires a bool predicate, got {pred}")
    same_shapes(Op.SELECT, [on_true, on_false])
    if pred.dims != on_true.dims:
        raise ShapeError(f"select requires a predicate of the operands' dims, got {pred} "
                         f"and {on_true}")
    return on_true


def _convert_shape(inputs, attrs):
    return Shape(attrs["dtype"], inputs[0].dims)


def _bitcast_shape(inputs, attrs):
    """Equal widths keep the dims; to a narrower dtype a last axis of the width ratio is
    added; to a wider one the last axis must be that ratio and is removed."""
    x, to = inputs[0], attrs["dtype"]
    if (x.dtype is dtypes.BOOL) != (to is dtypes.BOOL):
        raise DTypeError(f"bitcast_convert_type converts bool only to bool, got {x} to {to}; "
                         "use convert for a value conversion")
    src, dst = x.dtype.numpy.itemsize, to.numpy.itemsize
    if src == dst:
        return Shape(to, x.dims)
    if src > dst:
        return Shape(to, (*x.dims, src // dst))
    if not x.dims or x.dims[-1] != dst // src:
        raise ShapeError(f"bitcast_convert_type to the {dst // src}x wider {to} requires a "
                         f"last axis of size {dst // src}, got {x}; reshape x first")
    return Shape(to, x.dims[:-1])


def _source_shape(inputs, attrs):
    raise ShapeError("parameter and constant take their shape from `build(..., spec=...)`")


def _iota_shape(inputs, attrs):
    shape, dim = attrs["shape"], attrs["dimension"]
    if not 0 <= dim < len(shape):
        raise ShapeError(f"iota requires dimension in [0, {len(shape)}), got {dim}")
    return Shape(attrs["dtype"], shape)


def _reduce_shape(inputs, attrs):
    x = inputs[0]
    return Shape(x.dtype, tuple(d for i, d in enumerate(x.dims) if i not in attrs["axes"]))


def _index_shape(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    if not attrs["index_dtype"].is_int:
        raise DTypeError(f"argmax/argmin require an integer index_dtype, "
                         f"got {attrs['index_dtype']}")
    if x.dims[axis] == 0:
        raise ShapeError(f"argmax/argmin require a non-empty axis {axis}, got {x}")
    return Shape(attrs["index_dtype"], tuple(d for i, d in enumerate(x.dims) if i != axis))


def _argsort_shape(inputs, attrs):
    if not attrs["index_dtype"].is_int:
        raise DTypeError(f"argsort requires an integer index_dtype, got {attrs['index_dtype']}")
    return Shape(attrs["index_dtype"], inputs[0].dims)


def _rng_bits_shape(inputs, attrs):
    key = inputs[0]
    if key != Shape(dtypes.uint32, (2,)):
        raise ShapeError(f"rng_bits requires a uint32[2] key, got {key}")
    return Shape(dtypes.uint32, attrs["shape"])


def _same(inputs, attrs):
    return inputs[0]


RULES = {
    Op.PARAMETER: _source_shape,
    Op.CONSTANT: _source_shape,
    Op.IOTA: _iota_shape,
    **{op: _unary(op) for op in OpGroup.UNARY},
    **{op: _binary(op) for op in OpGroup.BINARY | OpGroup.COMPARE},
    Op.SELECT: _select_shape,
    Op.CONVERT: _convert_shape,
    **{op: _reduce_shape for op in OpGroup.REDUCE},
    **{op: _index_shape for op in OpGroup.INDEX},
    Op.BITCAST_CONVERT_TYPE: _bitcast_shape,
    **{op: _same for op in OpGroup.SCAN},
    Op.SORT: _same,
    Op.ARGSORT: _argsort_shape,
    Op.RNG_BITS: _rng_bits_shape,
    **shape_rules_movement.RULES,
    **shape_rules_contraction.RULES,
    **shape_rules_control.RULES,
}
