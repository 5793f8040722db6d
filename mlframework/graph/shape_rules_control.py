"""Shape rules of the control-flow ops: their sub-graphs agree with their operands.

A control-flow node is a tuple of results (its `spec` is `TOKEN`, no data); each
result is read by a `tuple_get` node of its own shape. The public functions
(`control_flow.py`) check structures and shapes first and name the pytree path;
these rules are the IR's own guarantee, for nodes built any other way.
"""
from __future__ import annotations

from mlframework.core.dtypes import DType
from mlframework.core.shapes import Shape
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import Op

TOKEN = Shape(DType.UINT8, (0,))  # the spec of a control-flow node: a tuple, not an array


def parameter_specs(graph) -> list[Shape]:
    return [p.spec for p in sorted(graph.parameters, key=lambda p: p.attrs["index"])]


def result_specs(node) -> list[Shape]:
    """The specs of a control-flow node's results, in `tuple_get` index order."""
    a = node.attrs
    if node.op is Op.COND:
        return [o.spec for o in a["branches"][0].outputs]
    if node.op is Op.WHILE_LOOP:
        return [o.spec for o in a["body"].outputs]
    body, length, n = a["body"], a["length"], a["num_carry"]
    ys = [Shape(o.dtype, (length, *o.shape)) for o in body.outputs[n:]]
    return [o.spec for o in body.outputs[:n]] + ys


def _expect(op: Op, what: str, got: list[Shape], want: list[Shape]) -> None:
    if got != want:
        raise ShapeError(f"{op.value} requires {what} {_specs(want)}, got {_specs(got)}")


def _specs(specs) -> str:
    return "(" + ", ".join(map(str, specs)) + ")"


def _cond_shape(inputs, attrs):
    index, operands, branches = inputs[0], inputs[1:], attrs["branches"]
    if index.dims or not (index.dtype is DType.INT32 or
                          index.dtype is DType.BOOL and len(branches) == 2):
        raise DTypeError(f"cond requires a bool scalar (two branches) or an int32 scalar "
                         f"index, got {index} for {len(branches)} branches")
    first = [o.spec for o in branches[0].outputs]
    for b in branches:
        _expect(Op.COND, f"branch {b.name} to take", parameter_specs(b), list(operands))
        _expect(Op.COND, f"branch {b.name} to return", [o.spec for o in b.outputs], first)
    return TOKEN


def _while_loop_shape(inputs, attrs):
    cond, body, n = attrs["cond"], attrs["body"], attrs["num_carry"]
    _expect(Op.WHILE_LOOP, "cond to take", parameter_specs(cond), list(inputs))
    _expect(Op.WHILE_LOOP, "body to take", parameter_specs(body), list(inputs))
    _expect(Op.WHILE_LOOP, "cond to return", [o.spec for o in cond.outputs],
            [Shape(DType.BOOL, ())])
    _expect(Op.WHILE_LOOP, "body to return the carry", [o.spec for o in body.outputs],
            list(inputs[:n]))
    return TOKEN


def _scan_shape(inputs, attrs):
    body, length, n, nx = attrs["body"], attrs["length"], attrs["num_carry"], attrs["num_xs"]
    xs = inputs[n:n + nx]
    for x in xs:
        if not x.dims or x.dims[0] != length:
            raise ShapeError(f"scan requires xs with a leading axis of length {length}, got {x}")
    want = list(inputs[:n]) + [Shape(x.dtype, x.dims[1:]) for x in xs] + list(inputs[n + nx:])
    _expect(Op.SCAN, "body to take", parameter_specs(body), want)
    _expect(Op.SCAN, "body to return the carry", [o.spec for o in body.outputs[:n]],
            list(inputs[:n]))
    return TOKEN


def _tuple_get_shape(inputs, attrs):
    raise ShapeError("tuple_get takes its shape from `build(..., spec=...)`: the result's")


RULES = {
    Op.COND: _cond_shape,
    Op.WHILE_LOOP: _while_loop_shape,
    Op.SCAN: _scan_shape,
    Op.TUPLE_GET: _tuple_get_shape,
}
