"""Pass `pack_weights`: constant weights of matrix products laid out once, at compile
time, the way the GEMM reads them, instead of being packed on every call.

    program = pack_weights(simplify(program), "float32")    # or "bfloat16", "int8"

A constant is a candidate when it is a float32 [K, N] matrix of at least MIN_ELEMENTS
read only as the right operand [K, N] of unbatched float32 dot_generals (dense layers).
It becomes a constant with attrs `packing` and `columns` (N) and the dots keep their
float32 type; the code generator calls the matching kernel.

- "float32" storage, packing "panels": a candidate whose every product has more than 6
  rows and N >= 16 is stored in the GEMM's panel layout, [N/64][K][64] zero-padded, shape
  [ceil(N/64) * K, 64]: no per-call packing, and panel rows contiguous even where the GEMM
  would read B in place (exported MLP, batch 64: 769 us vs 792 us in place).
- "bfloat16" storage, packing "bf16_pairs" (`aotc export --weight-storage bfloat16`):
  every candidate is rounded to bfloat16 (to nearest, ties to even) and stored at half
  the bytes as [K, NP] (NP = N rounded up to 32), in each 32-column block column q < 16
  at position 2q and column 16 + q at 2q + 1 (runtime_c/mlf_gemm_bf16.h). A batch-1
  dense layer reads every weight once per call, so halving the bytes about halves its
  time. Products and sums stay float32: the model computed is exactly the float32 model
  with the rounded weights.
- "int8" storage, packing "int8_columns" (`aotc export --quantize int8-weights`): weight-only
  post-training quantization, symmetric, per output column: scale s[n] = max|W[:, n]| / 127
  (1 for an all-zero column), Q = round(W / s) (ties to even) in [-127, 127]. Stored as the
  N float32 scales followed by Q row-major, a quarter of the bytes (runtime_c/mlf_gemm_i8.h).
  Products and sums stay float32: the model computed is the float32 model with the weights
  Q * s (`dequantized`), which `aotc verify` uses as its reference. Convolution weights
  [O, C, KH, KW] are quantized the same way per output channel (packing "int8_channels":
  Q, with the O scales in attrs "scales", which the kernel's C holds as literals) and
  widened into the kernel's scratch before the convolution.
- "float16" storage, packing "float16" (`aotc export --weight-storage float16`):
  convolution weights rounded to float16 and stored at half the bytes, widened into the
  kernel's scratch before the convolution; dense layers are stored as with "float32".

Parameters (weights a caller passes in, as a decoder's prefill and decode programs share
theirs) are packed only when named in `params`, and only for "bfloat16": the value stays
a PARAMETER with the packing attributes, dtype bfloat16 and shape [K, NP], and whoever
supplies it stores `pair_panels` of the float32 matrix (aot/export/decoder.py).

Runs after `simplify` (folding would see constants of the wrong shape), before `fuse`.
"""
from __future__ import annotations

import numpy as np

from aot.passes.layouts import dot_layout
from aot.program.program import Program, Value
from mlframework.core.dtypes import DType, as_dtype
from mlframework.graph.gen_optypes import Op

STORAGES = ("float32", "bfloat16", "float16", "int8")
PAIRS, PANELS, INT8_COLUMNS = "bf16_pairs", "panels", "int8_columns"
INT8_CHANNELS, FLOAT16 = "int8_channels", "float16"  # convolution weights, widened per call
CHANNEL_AXIS = {INT8_COLUMNS: 1, INT8_CHANNELS: 0}  # the axis each int8 packing scales along
BLOCK = 32  # columns per block of the pair layout
PANEL = 64  # columns per panel: MLF_NR in runtime_c/mlf_gemm.h
FEW_ROWS = 6  # MLF_MR: products with at most this many rows read B in place
MIN_ELEMENTS = 1024  # smaller weights: too few bytes to matter


def pack_weights(program: Program, storage: str = "float32", variables=None,
                 params=()) -> Program:
    """`program` with its dense-layer weights packed for `storage` (the same object when
    nothing is packed). `variables`: pack only constants whose scope is one of these
    names (an export's checkpoint variables, which `aotc verify` can round the same
    way); None: any. `params`: positions in `program.params` of float32 [K, N]
    parameters to pack as bfloat16 pair panels too, where every reader is a dense
    product (the others stay as they are), whatever their size.

    Raises:
        ValueError: an unknown storage, or `params` with a storage other than bfloat16.
    """
    if storage not in STORAGES:
        raise ValueError(f"pack_weights requires storage in {STORAGES}, got {storage!r}")
    if params and storage != "bfloat16":
        raise ValueError("pack_weights packs parameters for bfloat16 storage only, got "
                         f"{storage!r}")
    users = program.consumers()
    packed = {}
    for position in params:
        vid = program.params[position]
        v = program.values[vid]
        if _dense_products(program, v, users[vid], Op.PARAMETER, 1) is not None:
            k, n = v.shape
            packed[vid] = Value(vid, Op.PARAMETER, (), {**v.attrs, "packing": PAIRS,
                                                        "columns": n},
                                DType.BFLOAT16, (k, -(-n // BLOCK) * BLOCK), v.source, v.scope)
    for vid, v in program.values.items():
        if variables is not None and v.scope not in variables:
            continue
        if storage in ("int8", "float16") and _conv_weights(program, v, users[vid]):
            w = np.asarray(v.attrs["value"], np.float32)
            if storage == "int8":
                stored, scales = quantize(w, 0)
                attrs = {"value": stored, "packing": INT8_CHANNELS, "scales": scales}
            else:
                stored = w.astype(np.float16)
                attrs = {"value": stored, "packing": FLOAT16}
            packed[vid] = Value(vid, Op.CONSTANT, (), attrs, as_dtype(stored.dtype), v.shape,
                                v.source, v.scope)
            continue
        dots = _dense_products(program, v, users[vid])
        if dots is None:
            continue
        w = np.asarray(v.attrs["value"], np.float32)
        k, n = v.shape
        if storage == "bfloat16":
            value, layout, dtype = pair_panels(w), PAIRS, DType.BFLOAT16
        elif storage == "int8":
            value, layout, dtype = int8_packed(w, 1), INT8_COLUMNS, DType.INT8
        elif all(m > FEW_ROWS and n >= 16 for m in dots):
            value, layout, dtype = gemm_panels(w), PANELS, DType.FLOAT32
        else:
            continue
        packed[vid] = Value(vid, Op.CONSTANT, (), {"value": value, "packing": layout,
                                                   "columns": n},
                            dtype, value.shape, v.source, v.scope)
    if not packed:
        return program
    return Program(program.name, {**program.values, **packed}, list(program.params),
                   list(program.outputs))


def pair_panels(w: np.ndarray) -> np.ndarray:
    """[K, N] float32 -> [K, NP] bfloat16 pair panels (zeros past N)."""
    k, n = w.shape
    padded = np.zeros((k, -(-n // BLOCK) * BLOCK), np.float32)
    padded[:, :n] = w
    blocks = padded.reshape(k, -1, 2, BLOCK // 2)       # [K, block, half, q]
    pairs = blocks.transpose(0, 1, 3, 2).reshape(k, -1)  # [K, block, q, half]
    return pairs.astype(DType.BFLOAT16.numpy)


def quantize(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 weights -> (Q int8 of w's shape, scales float32 [w.shape[axis]]): symmetric,
    one scale per index along `axis` (a dense layer's output column, a conv's channel)."""
    others = tuple(a for a in range(w.ndim) if a != axis)
    peak = np.max(np.abs(w), axis=others).astype(np.float32)
    scales = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def dequantized(w: np.ndarray, axis: int) -> np.ndarray:
    """The float32 weights an "int8" storage computes with: Q * s."""
    q, scales = quantize(np.asarray(w, np.float32), axis)
    shape = [1] * q.ndim
    shape[axis] = -1
    return q.astype(np.float32) * scales.reshape(shape)


def int8_packed(w: np.ndarray, axis: int) -> np.ndarray:
    """float32 weights -> int8 [4 * w.shape[axis] + w.size]: the scales' bytes, then Q."""
    q, scales = quantize(w, axis)
    return np.concatenate([scales.view(np.int8), q.reshape(-1)])


def gemm_panels(w: np.ndarray) -> np.ndarray:
    """[K, N] float32 -> [ceil(N/64) * K, 64]: panel p holds columns 64p.. of every row."""
    k, n = w.shape
    padded = np.zeros((k, -(-n // PANEL) * PANEL), np.float32)
    padded[:, :n] = w
    return np.ascontiguousarray(padded.reshape(k, -1, PANEL).transpose(1, 0, 2)).reshape(-1, PANEL)


def _dense_products(program: Program, v: Value, users: list[int], op: Op = Op.CONSTANT,
                    min_elements: int = MIN_ELEMENTS) -> list[int] | None:
    """The row counts M of the products reading `v` (a value of `op`, of at least
    `min_elements` elements) as dense weights, or None."""
    if v.op is not op or v.dtype is not DType.FLOAT32 or len(v.shape) != 2 \
            or v.size < min_elements or not users or v.id in program.outputs:
        return None
    rows = []
    for u in users:
        d = program.values[u]
        if d.op is not Op.DOT_GENERAL or d.dtype is not DType.FLOAT32 \
                or d.inputs[0] == v.id or d.inputs[1] != v.id or d.attrs["lhs_batch"] \
                or tuple(d.attrs["rhs_contracting"]) != (0,):
            return None
        (_, m, _, _), strides = dot_layout(program, d)
        if strides is None:
            return None
        rows.append(m)
    return rows


def _conv_weights(program: Program, v: Value, users: list[int]) -> bool:
    """Whether `v` is a float32 constant read only as the kernel of float32 convolutions."""
    if v.op is not Op.CONSTANT or v.dtype is not DType.FLOAT32 or len(v.shape) < 3 \
            or not users or v.id in program.outputs or v.size == 0:
        return False
    return all(program.values[u].op is Op.CONV_GENERAL and program.values[u].inputs[0] != v.id
               and program.values[u].dtype is DType.FLOAT32 for u in users)
