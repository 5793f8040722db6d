"""`evaluate`: a program run in NumPy, op by op, independently of the generated C.

    outs = evaluate(program, [x])                    # the program's outputs
    acts = evaluate(program, [x], outputs=[12, 40])  # or any of its values

Used where the float model's values are needed inside the program (the activation ranges
of `--quantize int8`'s calibration) and as `aotc verify`'s quantization-aware reference
for full int8 exports (the int8 products computed exactly in int64, then cast to their
int32 type). Each op does what XLA does in the value's dtype; float32 rounds after every
op, as the C does (the C may fuse a multiply-add, a difference of an ulp). It covers the
ops of dense, convolutional and embedding models; others raise NotImplementedError.
"""
from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aot.program.program import Program, Value
from mlframework.graph.gen_optypes import Op

_SIGNED_MAX: dict[Op, Callable[..., Any]] = {Op.MAX: np.maximum, Op.MIN: np.minimum}
_ELEMENTWISE: dict[Op, Callable[..., Any]] = {
    Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide,
    Op.POW: np.power, Op.NEG: np.negative, Op.ABS: np.abs, Op.EXP: np.exp, Op.LOG: np.log,
    Op.SQRT: np.sqrt, Op.RSQRT: lambda x: (1 / np.sqrt(x)).astype(x.dtype), Op.TANH: np.tanh,
    Op.LOGISTIC: lambda x: (1 / (1 + np.exp(-x))).astype(x.dtype), Op.ROUND: np.rint,
    Op.FLOOR: np.floor, Op.CEIL: np.ceil, Op.EQ: np.equal, Op.NE: np.not_equal,
    Op.LT: np.less, Op.LE: np.less_equal, Op.GT: np.greater, Op.GE: np.greater_equal,
    Op.SELECT: np.where, Op.STOP_GRADIENT: lambda x: x,
}


def evaluate(program: Program, inputs: Sequence[np.ndarray],
             outputs: Sequence[int] | None = None) -> list[np.ndarray]:
    """The values `outputs` (default the program's outputs) of `program` on `inputs`
    (one array per parameter, in order).

    Raises:
        NotImplementedError: an op this evaluator does not know, named with its node.
    """
    env: dict[int, np.ndarray] = {}
    for pid, x in zip(program.params, inputs, strict=True):
        p = program.values[pid]
        env[pid] = np.asarray(x, p.dtype.numpy).reshape(p.shape)
    for v in program.values.values():
        if v.id not in env:
            env[v.id] = np.asarray(_value(v, [env[i] for i in v.inputs])).astype(
                v.dtype.numpy, copy=False).reshape(v.shape)
    return [env[i] for i in (program.outputs if outputs is None else outputs)]


def _value(v: Value, ins: list[np.ndarray]):
    a = v.attrs
    if v.op is Op.CONSTANT:
        return a["value"]
    if v.op in _SIGNED_MAX:  # XLA: max(+0, -0) is +0, NaN propagates
        x, y = ins
        return np.where(x == y, np.where(np.signbit(x), y, x) if v.op is Op.MAX else
                        np.where(np.signbit(x), x, y), _SIGNED_MAX[v.op](x, y))
    if v.op in _ELEMENTWISE:
        return _ELEMENTWISE[v.op](*ins)
    if v.op is Op.CONVERT:
        x = ins[0]
        if np.issubdtype(x.dtype, np.floating) and not v.dtype.is_float:
            return np.trunc(x)  # in range here: the quantized values are clamped first
        return x
    if v.op is Op.BROADCAST_IN_DIM:
        dims = a["broadcast_dimensions"]
        shape = [ins[0].shape[dims.index(d)] if d in dims else 1 for d in range(len(v.shape))]
        return np.broadcast_to(ins[0].reshape(shape), tuple(int(d) for d in v.shape))
    if v.op is Op.RESHAPE:
        return ins[0].reshape(v.shape)
    if v.op is Op.TRANSPOSE:
        return np.transpose(ins[0], a["permutation"])
    if v.op is Op.SLICE:
        strides = a["strides"] or (1,) * len(v.shape)
        return ins[0][tuple(slice(lo, hi, s) for lo, hi, s in
                            zip(a["start_indices"], a["limit_indices"], strides))]
    if v.op is Op.CONCATENATE:
        return np.concatenate(ins, axis=a["axis"])
    if v.op in (Op.REDUCE_SUM, Op.REDUCE_MAX, Op.REDUCE_MIN):
        reduce = {Op.REDUCE_SUM: np.add, Op.REDUCE_MAX: np.maximum,
                  Op.REDUCE_MIN: np.minimum}[v.op].reduce
        axes = a["axes"]
        return reduce(ins[0], axis=None if axes is None else tuple(axes))
    if v.op is Op.REDUCE_WINDOW_MAX:
        return _max_window(v, ins[0])
    if v.op is Op.DOT_GENERAL:
        return _dot(v, *ins)
    if v.op is Op.CONV_GENERAL:
        return _conv(v, *ins)
    if v.op is Op.GATHER and tuple(a["collapsed_slice_dims"]) == (0,) \
            and tuple(a["start_index_map"]) == (0,) and tuple(a["offset_dims"]) == (
                len(v.shape) - 1,) and ins[0].ndim == 2:  # whole rows (embeddings)
        rows = np.clip(ins[1][..., 0], 0, ins[0].shape[0] - 1)
        return ins[0][rows][..., :a["slice_sizes"][1]]
    raise NotImplementedError(f"evaluate: {v.op.value} (node #{v.id}, {v.source or 'no source'}"
                              f") has no NumPy evaluation; add one to aot/export/evaluation.py")


def _wide(x: np.ndarray) -> np.ndarray:
    """Integers widened to int64, so that products and sums are exact."""
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x


def _dot(v: Value, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = v.attrs
    letters = iter(string.ascii_letters)
    lx = [next(letters) for _ in range(x.ndim)]
    ly = [next(letters) for _ in range(y.ndim)]
    for i, j in zip(a["lhs_batch"], a["rhs_batch"]):
        ly[j] = lx[i]
    for i, j in zip(a["lhs_contracting"], a["rhs_contracting"]):
        ly[j] = lx[i]
    batch = [lx[i] for i in a["lhs_batch"]]
    free_x = [c for i, c in enumerate(lx) if i not in a["lhs_batch"]
              and i not in a["lhs_contracting"]]
    free_y = [c for j, c in enumerate(ly) if j not in a["rhs_batch"]
              and j not in a["rhs_contracting"]]
    spec = f"{''.join(lx)},{''.join(ly)}->{''.join(batch + free_x + free_y)}"
    return np.einsum(spec, _wide(x), _wide(y))


def quantized(x: np.ndarray, inverse_scale: float) -> np.ndarray:
    """float32 x -> int8 round(x * inverse_scale) (ties to even) clamped to [-127, 127];
    NaN -> 0 (a float32 cast to int8 of NaN, as the C runtime does)."""
    q = np.clip(np.rint(np.asarray(x, np.float32) * np.float32(inverse_scale)), -127, 127)
    return np.where(np.isnan(q), 0, q).astype(np.int8)


def _conv(v: Value, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 2-d NCHW x OIHW convolution (one group, no input dilation)."""
    a = v.attrs
    if x.ndim != 4 or a["feature_group_count"] != 1 or a["batch_group_count"] != 1 \
            or set(a["lhs_dilation"]) != {1} \
            or any(list(o) != list(range(4)) for o in a["dimension_numbers"]):
        raise NotImplementedError(f"evaluate: conv_general #{v.id} other than a 2-d NCHW "
                                  "convolution of one group")
    if a.get("quantize_lhs") is not None:  # quantize_int8's int8 convolution of float x
        x = quantized(x, a["quantize_lhs"])
    (pt, pb), (pl, pr) = a["padding"]
    xp = np.pad(_wide(x), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    (sh, sw), (dh, dw) = a["window_strides"], a["rhs_dilation"]
    o, c, kh, kw = w.shape
    ho, wo = v.shape[2:]
    cols = np.stack([xp[:, :, i * dh:i * dh + (ho - 1) * sh + 1:sh,
                        j * dw:j * dw + (wo - 1) * sw + 1:sw]
                     for i in range(kh) for j in range(kw)], axis=2)  # [N, C, KH*KW, ho, wo]
    return np.einsum("nckhw,ock->nohw", cols, _wide(w).reshape(o, c, kh * kw))


def _max_window(v: Value, x: np.ndarray) -> np.ndarray:
    a = v.attrs
    if set(a["base_dilation"]) != {1} or set(a["window_dilation"]) != {1}:
        raise NotImplementedError(f"evaluate: reduce_window_max #{v.id} with dilations")
    low = np.finfo(x.dtype).min if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = np.pad(x, a["padding"], constant_values=-np.inf if low < 0 and
                np.issubdtype(x.dtype, np.floating) else low)
    parts = [xp[tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in
                      zip(offset, v.shape, a["window_strides"]))]
             for offset in np.ndindex(*a["window_dimensions"])]
    return np.maximum.reduce(parts)
