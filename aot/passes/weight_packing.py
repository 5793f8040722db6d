"""Pass `pack_weights`: constant weights of matrix products laid out once, at compile
time, the way the GEMM reads them, instead of being packed on every call.

    program = pack_weights(simplify(program), "float32")    # or "bfloat16", "int8"

A constant is a candidate when it is a float32 [K, N] matrix of at least MIN_ELEMENTS
read only as the right operand [K, N] of unbatched float32 dot_generals (dense layers).
It becomes a constant with attrs `packing` and `columns` (N) and the dots keep their
float32 type; the code generator calls the matching kernel.

- "float32" storage, packing "panels": a candidate with N >= 16 is stored in the GEMM's
  panel layout, [N/64][K][64] zero-padded, shape [ceil(N/64) * K, 64]: no per-call
  packing, and panel rows contiguous where the GEMM would read B in place, N floats
  apart (exported MLP, batch 64: 769 us vs 792 us in place; a product of 1 to 6 rows,
  which streams B once, 0.3-0.9x the time in place, e.g. 784x512 at 1 row 0.39x).
- "bfloat16" storage, packing "bf16_pairs" (`aotc export --weight-storage bfloat16`):
  every candidate is rounded to bfloat16 (to nearest, ties to even) and stored at half
  the bytes, shape [K, NP] (NP = N rounded up to 32) but block-major: the NP/32 blocks
  of 32 columns one after the other, each its K rows of 32; in a block's row column
  q < 16 at position 2q and column 16 + q at 2q + 1 (runtime_c/mlf_gemm_bf16.h). A batch-1
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
  widened into the kernel's scratch before the convolution. Embedding tables [V, D] read
  only by gathers of whole rows are quantized per row (packing "int8_rows": Q [V, D]); each
  gather becomes gather(Q) times the gathered rows' scales.
- any storage: int8 constants read as the weights of int8 x int8 -> int32 products (the
  dense layers and convolutions `quantize_int8` rewrites, `aotc export --quantize int8`)
  are laid out for their kernels: dense weights for runtime_c/mlf_gemm_s8.h (packing
  "s8_panels": the per-column compensation sums, then 64-column panels of 4-deep groups;
  `s8_panels`), convolution weights for runtime_c/mlf_conv_s8.h (packing "s8_conv_rows":
  the per-channel compensation sums, then one row of 4-byte groups per output channel;
  `s8_conv_rows`).
- "float16" storage, packing "float16" (`aotc export --weight-storage float16`):
  convolution weights rounded to float16 and stored at half the bytes, widened into the
  kernel's scratch before the convolution; dense layers are stored as with "float32".
- Convolution weights read only by small-image convolutions (`conv_oc` in
  aot/passes/layouts.py) whose output channels fill whole vectors, under any storage that
  leaves them float32: packing "oc_channels", the same floats stored [C][KH][KW][O]
  (the value keeps its logical shape [O, C, KH, KW]), as runtime_c/mlf_conv_oc.h reads
  them, instead of mlf_conv_oc_pack on every call.

Parameters (weights a caller passes in, as a decoder's prefill and decode programs share
theirs) are packed only when named in `params`, and only for "bfloat16": the value stays
a PARAMETER with the packing attributes, dtype bfloat16 and shape [K, NP], and whoever
supplies it stores `pair_panels` of the float32 matrix (aot/export/decoder.py).

Runs after `simplify` (folding would see constants of the wrong shape), before `fuse`.
"""
from __future__ import annotations

import numpy as np

from aot.passes.layouts import OC_CHANNELS, conv_oc, conv_oc_lanes, dot_layout
from aot.program.program import Program, Value
from mlframework.core.dtypes import DType, as_dtype
from mlframework.graph.gen_optypes import Op

STORAGES = ("float32", "bfloat16", "float16", "int8")
PAIRS, PANELS, INT8_COLUMNS = "bf16_pairs", "panels", "int8_columns"
INT8_CHANNELS, FLOAT16 = "int8_channels", "float16"  # convolution weights, widened per call
S8_DENSE, S8_CONV = "s8_panels", "s8_conv_rows"  # int8 x int8 products (mlf_gemm_s8.h, conv_s8)
INT8_ROWS = "int8_rows"  # embedding tables: a scale per row
# the axis each int8 packing scales along (quantize_int8 scales S8_* weights the same way)
CHANNEL_AXIS = {INT8_COLUMNS: 1, INT8_CHANNELS: 0, S8_DENSE: 1, S8_CONV: 0, INT8_ROWS: 0}
BLOCK = 32  # columns per block of the pair layout
PANEL = 64  # columns per panel: MLF_NR in runtime_c/mlf_gemm.h
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
    packed: dict[int, Value] = {}
    gathers: dict[int, list[Value]] = {}  # a gather of an int8 table: the values replacing it
    fresh = iter(range(max(program.values, default=0) + 1, 1 << 62))
    for position in params:
        vid = program.params[position]
        v = program.values[vid]
        if _dense_products(program, v, users[vid], Op.PARAMETER, 1) is not None:
            k, n = v.shape
            packed[vid] = Value(vid, Op.PARAMETER, (), {**v.attrs, "packing": PAIRS,
                                                        "columns": n},
                                DType.BFLOAT16, (k, -(-n // BLOCK) * BLOCK), v.source, v.scope)
    for vid, v in program.values.items():
        if _int8_products(program, v, users[vid]):
            packed[vid] = _s8_packed(v)
            continue
        chosen = variables is None or v.scope in variables
        if chosen and storage == "int8" and _embedding_table(program, v, users[vid]):
            q, scales = quantize(np.asarray(v.attrs["value"], np.float32), 0)
            packed[vid] = Value(vid, Op.CONSTANT, (), {"value": q, "packing": INT8_ROWS},
                                DType.INT8, v.shape, v.source, v.scope)
            for u in users[vid]:
                gathers[u] = _row_gather(program.values[u], packed[vid], scales, fresh)
            continue
        if chosen and storage in ("int8", "float16") and _conv_weights(program, v, users[vid]):
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
        if _oc_weights(program, v, users[vid]):
            value = np.ascontiguousarray(np.moveaxis(np.asarray(v.attrs["value"]), 0, -1))
            packed[vid] = Value(vid, Op.CONSTANT, (), {"value": value, "packing": OC_CHANNELS},
                                v.dtype, v.shape, v.source, v.scope)
            continue
        if not chosen:
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
        elif n >= 16:
            value, layout, dtype = gemm_panels(w), PANELS, DType.FLOAT32
        else:
            continue
        packed[vid] = Value(vid, Op.CONSTANT, (), {"value": value, "packing": layout,
                                                   "columns": n},
                            dtype, value.shape, v.source, v.scope)
    if not packed:
        return program
    values: dict[int, Value] = {}
    for vid, v in program.values.items():
        for new in gathers.get(vid, [packed.get(vid, v)]):
            values[new.id] = new
    return Program(program.name, values, list(program.params), list(program.outputs),
                   dict(program.symbols))


def pair_panels(w: np.ndarray) -> np.ndarray:
    """[K, N] float32 -> bfloat16 pair panels of shape [K, NP], block-major (zeros past N)."""
    k, n = w.shape
    padded = np.zeros((k, -(-n // BLOCK) * BLOCK), np.float32)
    padded[:, :n] = w
    blocks = padded.reshape(k, -1, 2, BLOCK // 2)                 # [K, block, half, q]
    pairs = blocks.transpose(1, 0, 3, 2).reshape(k, -1)  # [block, K, q, half], as [K, NP]
    return np.ascontiguousarray(pairs).astype(DType.BFLOAT16.numpy)


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


def s8_panels(q: np.ndarray) -> np.ndarray:
    """[K, N] int8 -> int8 bytes as runtime_c/mlf_gemm_s8.h reads them: int32
    comp[NP] = 128 * sum_k q[k, n], then panels [NP/64][ceil(K/4)][64][4] holding
    q[4g + t, 64p + c] (zeros past K and N); NP = N rounded up to 64.

    Raises:
        ValueError: K so large that the kernel's int32 sums could overflow.
    """
    k, n = q.shape
    if k * 255 * 128 >= 2 ** 31:
        raise ValueError(f"int8 products with K = {k} could overflow their int32 sums "
                         "(K * 255 * 128 must stay below 2^31)")
    groups, cols = -(-k // 4), -(-n // PANEL) * PANEL
    padded = np.zeros((4 * groups, cols), np.int8)
    padded[:k, :n] = q
    comp = 128 * padded.astype(np.int32).sum(axis=0, dtype=np.int32)
    panels = padded.reshape(groups, 4, cols // PANEL, PANEL).transpose(2, 0, 3, 1)
    return np.concatenate([comp.astype(np.int32).view(np.int8), panels.reshape(-1)])


def s8_conv_rows(q: np.ndarray) -> np.ndarray:
    """[O, C, KH, KW] int8 -> int8 bytes as runtime_c/mlf_conv_s8.h reads them: int32
    comp[O] = 128 * sum q[o], then rows [O][4 * ceil(K / 4)] holding q[o] flattened in
    (c, ky, kx) order (zeros past K = C * KH * KW).

    Raises:
        ValueError: K so large that the kernel's int32 sums could overflow.
    """
    o, k = q.shape[0], q[0].size
    if k * 255 * 128 >= 2 ** 31:
        raise ValueError(f"int8 convolutions with K = C * KH * KW = {k} could overflow their "
                         "int32 sums (K * 255 * 128 must stay below 2^31)")
    rows = np.zeros((o, -(-k // 4) * 4), np.int8)
    rows[:, :k] = q.reshape(o, k)
    comp = 128 * rows.astype(np.int32).sum(axis=1, dtype=np.int32)
    return np.concatenate([comp.astype(np.int32).view(np.int8), rows.reshape(-1)])


def _s8_packed(v: Value) -> Value:
    """An int8 constant read by int8 products: the dense weights [K, N] as `s8_panels`,
    a convolution's [O, C, KH, KW] as `s8_conv_rows`."""
    q = np.asarray(v.attrs["value"], np.int8)
    conv = len(v.shape) == 4
    value = s8_conv_rows(q) if conv else s8_panels(q)
    attrs = {"value": value, "packing": S8_CONV if conv else S8_DENSE,
             "columns": v.shape[0] if conv else v.shape[1], "kernel_shape": tuple(v.shape)}
    return Value(v.id, Op.CONSTANT, (), attrs, DType.INT8, value.shape, v.source, v.scope)


def _row_gather(g: Value, table: Value, scales: np.ndarray, fresh) -> list[Value]:
    """gather(table) of float32 rows as gather(Q) * gather(scales) (one scale per row);
    the last value keeps the gather's id."""
    def value(op, inputs, attrs, dtype, shape, vid=None):
        return Value(next(fresh) if vid is None else vid, op, tuple(inputs), attrs, dtype,
                     tuple(shape), g.source, g.scope)

    ids = g.inputs[1]
    rows = value(Op.GATHER, (table.id, ids), dict(g.attrs), DType.INT8, g.shape)
    wide = value(Op.CONVERT, (rows.id,), {"dtype": DType.FLOAT32}, DType.FLOAT32, g.shape)
    column = value(Op.CONSTANT, (), {"value": scales.reshape(-1, 1)}, DType.FLOAT32,
                   (len(scales), 1))
    one = (*g.shape[:-1], 1)
    picked = value(Op.GATHER, (column.id, ids), dict(g.attrs, slice_sizes=(1, 1)),
                   DType.FLOAT32, one)
    spread = value(Op.BROADCAST_IN_DIM, (picked.id,), {
        "shape": g.shape, "broadcast_dimensions": tuple(range(len(g.shape)))},
        DType.FLOAT32, g.shape)
    return [rows, wide, column, picked, spread,
            value(Op.MUL, (wide.id, spread.id), {}, DType.FLOAT32, g.shape, vid=g.id)]


def _int8_products(program: Program, v: Value, users: list[int]) -> bool:
    """Whether `v` is an int8 constant read only as the weights of int8 x int8 -> int32
    products that mlf_gemm_s8.h runs (quantize_int8 makes them)."""
    if v.op is not Op.CONSTANT or v.dtype is not DType.INT8 or not users \
            or v.id in program.outputs or v.size == 0:
        return False
    return all(int8_product(program, program.values[u], v, DType.INT8, DType.INT32)
               and (program.values[u].op is Op.DOT_GENERAL or program.values[u].attrs.get(
                   "preferred_element_type") is DType.INT32) for u in users)


def int8_product(program: Program, d: Value, w: Value, operand: DType, result: DType) -> bool:
    """Whether value `d` is a product of an `operand`-typed activation (or of a float32 one
    it quantizes, attrs "quantize_lhs") and weights `w` into `result` that
    runtime_c/mlf_gemm_s8.h and mlf_conv_s8.h can run once both are int8: a dense
    layer (x [M, K] with contiguous rows @ w [K, N]) or a 2-d NCHW x OIHW convolution of
    one group without input dilation."""
    if d.op not in (Op.DOT_GENERAL, Op.CONV_GENERAL) or d.inputs[1] != w.id \
            or d.inputs[0] == w.id or d.dtype is not result:
        return False
    lhs = program.values[d.inputs[0]].dtype
    if d.attrs.get("quantize_lhs") is not None and lhs is DType.FLOAT32:
        lhs = DType.INT8  # a convolution quantizing its float input (quantize_int8)
    if lhs is not operand:
        return False
    a = d.attrs
    if d.op is Op.DOT_GENERAL:
        if len(w.shape) != 2 or a["lhs_batch"] or tuple(a["rhs_contracting"]) != (0,):
            return False
        _, strides = dot_layout(program, d)
        return strides is not None and strides[2] == 1
    return (len(w.shape) == 4 and a["feature_group_count"] == 1
            and a["batch_group_count"] == 1 and set(a["lhs_dilation"]) == {1}
            and all(lo >= 0 and hi >= 0 for lo, hi in a["padding"])
            and all(list(o) == list(range(4)) for o in a["dimension_numbers"])
            and d.size != 0 and program.values[d.inputs[0]].size != 0)  # a symbol is >= 1


def _embedding_table(program: Program, v: Value, users: list[int]) -> bool:
    """Whether `v` is a float32 [V, D] constant read only by gathers of whole rows."""
    if v.op is not Op.CONSTANT or v.dtype is not DType.FLOAT32 or len(v.shape) != 2 \
            or v.size < MIN_ELEMENTS or not users or v.id in program.outputs:
        return False
    for u in users:
        g = program.values[u]
        a = g.attrs
        if g.op is not Op.GATHER or g.inputs[0] != v.id or g.inputs[1] == v.id \
                or tuple(a["collapsed_slice_dims"]) != (0,) or tuple(a["start_index_map"]) != (0,) \
                or tuple(a["slice_sizes"]) != (1, v.shape[1]) \
                or tuple(a["offset_dims"]) != (len(g.shape) - 1,):
            return False
    return True


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


def _oc_weights(program: Program, v: Value, users: list[int]) -> bool:
    """Whether `v` is a float32 constant read only as the kernel of `conv_oc` convolutions
    whose output channels fill whole vectors (so packing adds no padding)."""
    return _conv_weights(program, v, users) and len(v.shape) == 4 \
        and v.shape[0] % conv_oc_lanes(int(v.shape[0])) == 0 \
        and all(program.values[u].inputs[1] == v.id and conv_oc(program, program.values[u])
                for u in users)
