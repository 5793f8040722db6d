"""Pass `quantize_int8`: the full int8 mode of `aotc export --quantize int8`. Dense layers
and 2-d convolutions with constant weights compute on int8 activations and int8 weights,
accumulate in int32, and go back to float32 after each product.

    points = calibration_points(program, variables)     # {weight name: [activation ids]}
    # ...the float program run over calibration data gives each weight its input's
    # largest |x|; activation_scale(peak) = peak / 127...
    program = quantize_int8(program, scales)             # scales: {weight name: s_x}

For a product y = x @ W (W [K, N]; a convolution's W [O, C, KH, KW] likewise, per output
channel O):

    q_x = convert(max(min(round(x * (1 / s_x)), 127), -127), int8)    # per tensor, symmetric
    Q, s_w = symmetric int8 per output channel (weight_packing.quantize)
    y = convert(dot_general(q_x, Q, preferred_element_type=int32), float32) * (s_x * s_w)

The int32 product is exact: the generated code runs it through runtime_c/mlf_gemm_s8.h
(VNNI where the target has it), and `aotc verify` compares it with a NumPy evaluation of
this same program. A convolution quantizes its own input: its value is a conv_general of
the float32 x and the int8 weights with dtype int32, attrs["preferred_element_type"]
int32 and attrs["quantize_lhs"] = 1 / s_x, meaning conv_general(q_x, Q) with q_x as above
(runtime_c/mlf_conv_s8.h quantizes x while it pads it, so q_x is never a buffer): the
program form says what the graph op cannot (the graph's conv_general has neither).
Everything between the products stays float32. A weight read by several products gets one
activation scale (the largest range of its readers' inputs).

Runs after `simplify`, before `pack_weights` (which lays the int8 weights out for the kernel).
"""
from __future__ import annotations

import numpy as np

from aot.passes.weight_packing import int8_product, quantize
from aot.program.program import Program, Value
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op

QMAX = 127  # symmetric: [-127, 127], so that -x quantizes to -q


def activation_scale(peak: float) -> float:
    """The scale of an activation whose largest |x| is `peak` (1 for an all-zero one)."""
    return float(np.float32(peak) / np.float32(QMAX)) if peak > 0 else 1.0


def calibration_points(program: Program, variables=None) -> dict[str, list[int]]:
    """{weight name: ids of the activations its products read}, for every dense layer or
    2-d convolution that `quantize_int8` can rewrite (constant float32 weights whose every
    reader is such a product; `variables`: only weights of these names, None: any)."""
    users = program.consumers()
    points: dict[str, list[int]] = {}
    for v in program.values.values():
        if v.op is not Op.CONSTANT or v.dtype is not DType.FLOAT32 or not v.scope \
                or v.id in program.outputs or (variables is not None and v.scope not in variables):
            continue
        readers = [program.values[u] for u in users[v.id]]
        if readers and all(int8_product(program, d, v, DType.FLOAT32, DType.FLOAT32)
                           for d in readers):
            points.setdefault(v.scope, []).extend(d.inputs[0] for d in readers)
    return points


def quantize_int8(program: Program, scales: dict[str, float]) -> Program:
    """`program` with every product reading a weight named in `scales` ({weight name:
    activation scale s_x}) rewritten as above; the product's id now names its float32
    result, so its readers are unchanged.

    Raises:
        ValueError: a name in `scales` that is not a rewritable weight of `program`.
    """
    points = calibration_points(program, set(scales))
    missing = sorted(set(scales) - set(points))
    if missing:
        raise ValueError(f"quantize_int8: {', '.join(missing)} are not weights of dense "
                         "layers or convolutions of this program")
    weights = {v.id: v for v in program.values.values()
               if v.op is Op.CONSTANT and v.scope in scales}
    fresh = iter(range(max(program.values) + 1, 1 << 62))
    quantized: dict[int, tuple[Value, np.ndarray]] = {}
    values: dict[int, Value] = {}
    for v in program.values.values():
        if v.id in weights:
            axis = 1 if v.shape and len(v.shape) == 2 else 0
            q, sw = quantize(np.asarray(v.attrs["value"], np.float32), axis)
            qv = Value(v.id, Op.CONSTANT, (), {"value": q, "scales": sw}, DType.INT8, v.shape,
                       v.source, v.scope)
            quantized[v.id] = (qv, sw)
            values[v.id] = qv
            continue
        if v.op in (Op.DOT_GENERAL, Op.CONV_GENERAL) and v.inputs[1] in weights:
            qv, sw = quantized[v.inputs[1]]
            lhs = program.values[v.inputs[0]]
            x = _unreshaped(program, lhs.id) if v.op is Op.DOT_GENERAL else lhs
            for new in _rewrite(v, x, lhs.shape, qv, sw,
                                scales[qv.scope], fresh):
                values[new.id] = new
            continue
        values[v.id] = v
    read = {i for v in values.values() for i in v.inputs} | set(program.outputs)
    for vid in reversed(list(values)):  # the float reshapes only the products read
        if values[vid].op is Op.RESHAPE and vid not in read:
            del values[vid]
            read = {i for v in values.values() for i in v.inputs} | set(program.outputs)
    return Program(program.name, values, list(program.params), list(program.outputs),
                   dict(program.symbols))


def _unreshaped(program: Program, vid: int) -> Value:
    """Value `vid` with the reshapes that produce it looked through: quantizing before
    them keeps the int8 reshape an alias of its buffer, not index math in the loop."""
    v = program.values[vid]
    while v.op is Op.RESHAPE:
        v = program.values[v.inputs[0]]
    return v


def _rewrite(d: Value, x: Value, lhs, qw: Value, sw: np.ndarray, sx: float, fresh):
    """The values replacing product `d` of activation `x` (a dense layer's reshaped to
    `d`'s operand shape `lhs` after quantizing, if it differs) and int8 weights `qw`."""
    def value(op, inputs, attrs, dtype, shape, vid=None):
        return Value(next(fresh) if vid is None else vid, op, tuple(inputs), attrs, dtype,
                     tuple(shape), d.source, d.scope)

    def scalar(number):
        c = value(Op.CONSTANT, (), {"value": np.array(number, np.float32)}, DType.FLOAT32, ())
        b = value(Op.BROADCAST_IN_DIM, (c.id,), {"shape": x.shape, "broadcast_dimensions": ()},
                  DType.FLOAT32, x.shape)
        return [c, b]

    inverse = np.float32(1) / np.float32(sx)
    if d.op is Op.CONV_GENERAL:  # quantizes its input itself, while padding it
        return _requantized(d, value(d.op, (x.id, qw.id), dict(
            d.attrs, preferred_element_type=DType.INT32, quantize_lhs=float(inverse)),
            DType.INT32, d.shape), sw, sx, value)
    inv, top, bottom = scalar(inverse), scalar(QMAX), scalar(-QMAX)
    out = [*inv, *top, *bottom]
    scaled = value(Op.MUL, (x.id, inv[1].id), {}, DType.FLOAT32, x.shape)
    rounded = value(Op.ROUND, (scaled.id,), {}, DType.FLOAT32, x.shape)
    low = value(Op.MIN, (rounded.id, top[1].id), {}, DType.FLOAT32, x.shape)
    clamped = value(Op.MAX, (low.id, bottom[1].id), {}, DType.FLOAT32, x.shape)
    qx = value(Op.CONVERT, (clamped.id,), {"dtype": DType.INT8}, DType.INT8, x.shape)
    out += [scaled, rounded, low, clamped, qx]
    if tuple(x.shape) != tuple(lhs):
        qx = value(Op.RESHAPE, (qx.id,), {"shape": tuple(lhs)}, DType.INT8, lhs)
        out.append(qx)
    acc = value(d.op, (qx.id, qw.id), dict(d.attrs, preferred_element_type=DType.INT32),
                DType.INT32, d.shape)
    return out + _requantized(d, acc, sw, sx, value)


def _requantized(d: Value, acc: Value, sw: np.ndarray, sx: float, value) -> list[Value]:
    """The int32 product `acc` back to float32 times s_x * s_w (per output channel); the
    last value keeps product `d`'s id."""
    wide = value(Op.CONVERT, (acc.id,), {"dtype": DType.FLOAT32}, DType.FLOAT32, d.shape)
    axis = len(d.shape) - 1 if d.op is Op.DOT_GENERAL else 1
    factors = value(Op.CONSTANT, (), {"value": (np.float32(sx) * sw).astype(np.float32)},
                    DType.FLOAT32, sw.shape)
    spread = value(Op.BROADCAST_IN_DIM, (factors.id,),
                   {"shape": d.shape, "broadcast_dimensions": (axis,)}, DType.FLOAT32, d.shape)
    result = value(Op.MUL, (wide.id, spread.id), {}, DType.FLOAT32, d.shape, vid=d.id)
    return [acc, wide, factors, spread, result]
