"""Pass `map_qdq`: the products of a QDQ-quantized model (ONNX QuantizeLinear /
DequantizeLinear pairs, as `onnxruntime.quantization.quantize_static(quant_format=QDQ)`
writes them) run on the int8 kernels of `aotc export --quantize int8`, with the model's
own scales.

    program, products = map_qdq(simplify(program))
    program = simplify(program)        # drops the float chains the rewrite left unread
    # products: [{"node": "matmul_8", "op": "dot_general", "path": "int8",
    #             "activations": "int8", "zero_point": 0},
    #            {"node": ..., "op": ..., "path": "float", "reason": "..."}]

The importer keeps DequantizeLinear as its composite (mlframework/models/onnx/ops/
quantization.py), so a dequantized tensor is, in the program,

    dq = mul(convert_f32(sub(convert_i32(q), zp)), scale)   # or without the sub

with q int8 or uint8 and the zero point and scale constants (broadcast). A dense layer
(dot_general [M, K] x [K, N]) or a 2-d NCHW convolution of one group whose left operand
is dq(q_x, zp_x, s_x) with one scale and one zero point (per tensor), and whose right
operand is dq(q_w, zp_w, s_w) of a constant q_w with a scale per output channel (or one)
and Q = q_w - zp_w within int8 (zero points 0, or uint8 weights with zero point 128, as
ONNX Runtime's U8U8 format writes them), is rewritten

    acc = dot_general(q8, Q, preferred_element_type=int32)      # mlf_gemm_s8 / conv2d_s8
    acc = acc - z * C            # only when z != 0: C[n] = sum_k Q[k, n] (a convolution's
                                 # C[o, h, w] sums the taps inside the image only)
    y = convert_f32(acc) * (s_x * s_w)                           # one rescale per channel

where q8 = q_x and z = zp_x for int8 activations, q8 = q_x - 128 (as int8) and
z = zp_x - 128 for uint8 ones: sum_k (q_x - zp_x) * Q exactly, in int32 (the kernel's
sums cannot overflow: `s8_panels` bounds K). The value equals the QDQ model's
real-number product; the float path would round each dequantized operand and every
partial sum to float32 instead. The QuantizeLinear before it is untouched (x / s,
rounded half to even, saturated, as ONNX defines it).

Products that read a dequantized operand but do not fit (weights that are not constant,
weights whose q_w - zp_w leaves int8, scales per input channel, activations quantized
per channel, batched or grouped products, sums deep enough to overflow int32, symbolic
shapes) keep the float DequantizeLinear path, which computes the same values in float32;
each is listed with its reason. Runs after `simplify`, before `quantize_int8` and
`pack_weights`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aot.passes.weight_packing import int8_product
from aot.program.program import Program, Value
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import is_symbolic
from mlframework.graph.gen_optypes import Op

_INTEGERS = (DType.INT8, DType.UINT8)


@dataclass
class _Dequantized:
    """dq = (q - zero) * scale, with `zero` and `scale` as arrays of dq's shape (of the
    product's operand: `transposed` when that is q's 2-d transpose)."""

    q: Value
    zero: np.ndarray
    scale: np.ndarray
    transposed: bool = False


def map_qdq(program: Program) -> tuple[Program, list[dict]]:
    """`program` with every QDQ dense layer and convolution that the int8 kernels run
    rewritten as above (the product's id names its float32 result, so its readers are
    unchanged; the float chains it no longer reads stay for `simplify` to remove), and one
    entry per product that reads a dequantized operand: {"node", "op", "path": "int8",
    "activations": their dtype, "zero_point": theirs} or {"node", "op", "path": "float",
    "reason"}. A program without such products is returned as is."""
    fresh = iter(range(max(program.values, default=0) + 1, 1 << 62))
    weights: dict[tuple, Value] = {}  # (q_w's id, transposed, zp_w): the int8 constant Q
    replaced: dict[int, list[Value]] = {}
    products: list[dict] = []
    for d in program.values.values():
        if d.op not in (Op.DOT_GENERAL, Op.CONV_GENERAL) or len(d.inputs) != 2:
            continue
        x, w = _dequantized(program, d.inputs[0]), _dequantized(program, d.inputs[1], True)
        if x is None and w is None:
            continue
        entry = {"node": d.scope or f"#{d.id}", "op": d.op.value}
        reason = _refusal(program, d, x, w)
        if reason:
            products.append({**entry, "path": "float", "reason": reason})
            continue
        assert x is not None and w is not None
        replaced[d.id] = _rewrite(program, d, x, w, weights, fresh)
        products.append({**entry, "path": "int8", "activations": x.q.dtype.value,
                         "zero_point": int(x.zero.reshape(-1)[0]) if x.zero.size else 0})
    if not replaced:
        return program, products
    values: dict[int, Value] = {}
    for v in program.values.values():
        if v.id in replaced:
            for new in replaced[v.id]:
                if new.op is Op.CONSTANT and new.id in values:
                    continue  # a weight shared by several products
                values[new.id] = new
        else:
            values[v.id] = v
    return Program(program.name, values, list(program.params), list(program.outputs),
                   dict(program.symbols)), products


def _refusal(program: Program, d: Value, x: _Dequantized | None,
             w: _Dequantized | None) -> str:
    """Why product `d` keeps the float path ('' when it maps onto the int8 kernels)."""
    if x is None:
        return "the activations are float (not dequantized from int8 or uint8)"
    if is_symbolic(d.size) or is_symbolic(program.values[d.inputs[0]].size):
        return "symbolic dimensions (int8 products of a symbolic batch are not built)"
    if w is None or _constant(program, w.q.id) is None:
        return "the weights are not a constant dequantized from int8 or uint8"
    shifted = _weights(program, w)
    if shifted.min(initial=0) < -128 or shifted.max(initial=0) > 127:
        return (f"the {w.q.dtype.value} weights minus their zero points do not fit int8 (the "
                "int8 kernels take int8 weights)")
    if np.ptp(x.zero) or np.ptp(x.scale):
        return "the activations' scale or zero point is not one per tensor"
    weight = program.values[d.inputs[1]]
    if not int8_product(program, d, weight, DType.FLOAT32, DType.FLOAT32):
        return ("not a dense layer [M, K] x [K, N] or a 2-d NCHW convolution of one group "
                "(what runtime_c/mlf_gemm_s8.h runs)")
    if _channel_scales(d, w.scale) is None:
        return "the weights' scales are not one per output channel (or per tensor)"
    depth = weight.size // weight.shape[1 if d.op is Op.DOT_GENERAL else 0]
    if depth * 255 * 128 >= 2 ** 31:
        return f"sums over {depth} products could overflow int32 (the kernels' bound, s8_panels)"
    return ""


def _channel_scales(d: Value, scale: np.ndarray) -> np.ndarray | None:
    """The weights' scale per output channel (axis 1 of a dense layer's [K, N], axis 0
    of a convolution's [O, C, KH, KW]), or None when it varies along another axis."""
    axis = 1 if d.op is Op.DOT_GENERAL else 0
    moved = np.moveaxis(scale, axis, 0).reshape(scale.shape[axis], -1)
    return moved[:, 0].copy() if not moved.size or np.all(moved == moved[:, :1]) else None


def _rewrite(program: Program, d: Value, x: _Dequantized, w: _Dequantized,
             weights: dict[tuple, Value], fresh: Iterator[int]) -> list[Value]:
    """The values replacing product `d` (the last keeps its id)."""
    def value(op, inputs, attrs, dtype, shape, vid=None):
        return Value(next(fresh) if vid is None else vid, op, tuple(inputs), attrs, dtype,
                     tuple(shape), d.source, d.scope)

    out: list[Value] = []
    q = program.values[x.q.id]
    zero = int(x.zero.reshape(-1)[0]) if x.zero.size else 0
    if q.dtype is DType.UINT8:  # q - 128 is an int8 exactly
        wide = value(Op.CONVERT, (q.id,), {"dtype": DType.INT32}, DType.INT32, q.shape)
        c = value(Op.CONSTANT, (), {"value": np.array(128, np.int32)}, DType.INT32, ())
        spread = value(Op.BROADCAST_IN_DIM, (c.id,), {"shape": q.shape,
                                                     "broadcast_dimensions": ()},
                       DType.INT32, q.shape)
        shifted = value(Op.SUB, (wide.id, spread.id), {}, DType.INT32, q.shape)
        q = value(Op.CONVERT, (shifted.id,), {"dtype": DType.INT8}, DType.INT8, q.shape)
        out += [wide, c, spread, shifted, q]
        zero -= 128
    key = (w.q.id, w.transposed, w.zero.tobytes())
    if key not in weights:
        array = _weights(program, w).astype(np.int8)
        weights[key] = Value(next(fresh), Op.CONSTANT, (), {"value": np.ascontiguousarray(array)},
                             DType.INT8, array.shape, w.q.source, w.q.scope)
    qw = weights[key]
    out.append(qw)
    acc = value(d.op, (q.id, qw.id), dict(d.attrs, preferred_element_type=DType.INT32),
                DType.INT32, d.shape)
    out.append(acc)
    if zero:
        sums = _tap_sums(d, program.values[d.inputs[0]].shape, qw.attrs["value"])
        c = value(Op.CONSTANT, (), {"value": (sums * zero).astype(np.int32)}, DType.INT32,
                  sums.shape)
        spread = value(Op.BROADCAST_IN_DIM, (c.id,), {
            "shape": d.shape, "broadcast_dimensions": tuple(
                range(len(d.shape) - sums.ndim, len(d.shape)))}, DType.INT32, d.shape)
        acc = value(Op.SUB, (acc.id, spread.id), {}, DType.INT32, d.shape)
        out += [c, spread, acc]
    axis = len(d.shape) - 1 if d.op is Op.DOT_GENERAL else 1
    sw = _channel_scales(d, w.scale)
    assert sw is not None
    sx = np.float32(x.scale.reshape(-1)[0]) if x.scale.size else np.float32(1)
    factors = value(Op.CONSTANT, (), {"value": (sx * sw).astype(np.float32)}, DType.FLOAT32,
                    sw.shape)
    spread = value(Op.BROADCAST_IN_DIM, (factors.id,),
                   {"shape": d.shape, "broadcast_dimensions": (axis,)}, DType.FLOAT32, d.shape)
    wide = value(Op.CONVERT, (acc.id,), {"dtype": DType.FLOAT32}, DType.FLOAT32, d.shape)
    result = value(Op.MUL, (wide.id, spread.id), {}, DType.FLOAT32, d.shape, vid=d.id)
    return out + [factors, spread, wide, result]


def _weights(program: Program, w: _Dequantized) -> np.ndarray:
    """The weights' integers minus their zero points (int64, the product's operand shape)."""
    q = np.asarray(_constant(program, w.q.id), np.int64)
    return (q.T if w.transposed else q) - w.zero


def _tap_sums(d: Value, x_shape, qw: np.ndarray) -> np.ndarray:
    """What a zero point z adds to each int32 sum, divided by z: a dense layer's column
    sums C[n] of Q [K, N]; a convolution's C[o, h, w], the sum of Q[o] over the taps of
    output pixel (h, w) that fall inside the image (the padding adds 0.0 to the
    dequantized input, not z)."""
    q = qw.astype(np.int64)
    if d.op is Op.DOT_GENERAL:
        return q.sum(axis=0)
    a = d.attrs
    masks = []
    for size, out, k, stride, dilation, (low, _) in zip(
            x_shape[2:], d.shape[2:], q.shape[2:], a["window_strides"], a["rhs_dilation"],
            a["padding"]):
        at = np.arange(out)[None, :] * stride - low + np.arange(k)[:, None] * dilation
        masks.append(((at >= 0) & (at < size)).astype(np.int64))   # [taps, outputs]
    return np.einsum("oij,ih,jw->ohw", q.sum(axis=1), *masks)


def _dequantized(program: Program, vid: int, transposable: bool = False
                 ) -> _Dequantized | None:
    """`vid` (or, `transposable`, a 2-d transpose of it) as (q - zero) * scale, else None."""
    v = program.values[vid]
    transposed = transposable and v.op is Op.TRANSPOSE \
        and tuple(v.attrs["permutation"]) == (1, 0)
    if transposed:
        v = program.values[v.inputs[0]]
    if v.op is not Op.MUL or v.dtype is not DType.FLOAT32:
        return None
    for a, b in ((0, 1), (1, 0)):
        scale = _constant(program, v.inputs[b])
        wide = program.values[v.inputs[a]]
        if scale is None or wide.op is not Op.CONVERT:
            continue
        t = program.values[wide.inputs[0]]
        zero = np.zeros((), np.int64)
        if t.op is Op.SUB and t.dtype is DType.INT32:
            points = _constant(program, t.inputs[1])
            if points is None:
                continue
            zero, t = points, program.values[t.inputs[0]]
        if t.op is not Op.CONVERT or t.dtype is not DType.INT32:
            continue
        q = program.values[t.inputs[0]]
        if q.dtype not in _INTEGERS:
            continue
        shape = _static(v.shape)
        found = _Dequantized(q, np.broadcast_to(zero, shape).astype(np.int64),
                             np.broadcast_to(scale, shape).astype(np.float32))
        if transposed:
            found.zero, found.scale, found.transposed = found.zero.T, found.scale.T, True
        return found
    return None


def _constant(program: Program, vid: int, depth: int = 8) -> np.ndarray | None:
    """The value of `vid` when it is a constant seen through converts between integer
    types or to float32, reshapes, transposes and broadcasts; else None."""
    v = program.values[vid]
    if v.op is Op.CONSTANT:
        return np.asarray(v.attrs["value"]).reshape(v.shape)
    if depth == 0 or v.op not in (Op.CONVERT, Op.RESHAPE, Op.TRANSPOSE, Op.BROADCAST_IN_DIM):
        return None
    x = _constant(program, v.inputs[0], depth - 1)
    if x is None:
        return None
    if v.op is Op.CONVERT:
        exact = v.dtype is DType.FLOAT32 or v.dtype.is_int and np.issubdtype(x.dtype, np.integer)
        return x.astype(v.dtype.numpy) if exact else None
    if v.op is Op.RESHAPE:
        return x.reshape(v.shape)
    if v.op is Op.TRANSPOSE:
        return np.transpose(x, v.attrs["permutation"])
    dims = v.attrs["broadcast_dimensions"]
    shape = [x.shape[dims.index(i)] if i in dims else 1 for i in range(len(v.shape))]
    return np.broadcast_to(x.reshape(shape), _static(v.shape))


def _static(shape) -> tuple[int, ...]:
    """`shape` with each symbolic dimension 1: a constant broadcast along one is the same
    along it."""
    return tuple(1 if is_symbolic(d) else int(d) for d in shape)

