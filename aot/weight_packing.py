"""Export pass `pack_weights`: constant float32 weights of matrix products stored as
bfloat16 pair panels, half the bytes (`aotc export --weight-storage bfloat16`).

    program = pack_weights(simplify(program), "bfloat16")

A batch-1 dense layer reads every weight once per call, so its time is the bytes of its
weights over the memory bandwidth: halving the bytes halves the time (and the library's
weights). The weights are rounded to bfloat16 (to nearest, ties to even; 8 significant
bits); every product and sum stays float32, so the exported model computes exactly the
float32 model whose weights are those rounded values.

A constant is packed when it is a float32 [K, N] matrix of at least MIN_ELEMENTS read
only as the right operand [K, N] of unbatched float32 dot_generals. It becomes a
bfloat16 constant of shape [K, NP] (NP = N rounded up to 32) in the layout of
`runtime_c/mlf_gemm_bf16.h`, with attrs `packing` and `columns` (N); the dots keep their
float32 type and emit calls `mlf_sgemm_bf16p` for them. Runs after `simplify` (folding
would see a constant of the wrong shape), before `fuse`.
"""
from __future__ import annotations

import numpy as np

from aot.emit_contraction import dot_layout
from aot.program import Program, Value
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import Op

STORAGES = ("float32", "bfloat16")
PACKING = "bf16_pairs"
BLOCK = 32  # columns per block of the pair layout
MIN_ELEMENTS = 1024  # smaller weights stay float32: too few bytes to matter


def pack_weights(program: Program, storage: str = "bfloat16", variables=None) -> Program:
    """`program` with its dense-layer weights packed for `storage` ("float32": unchanged).
    `variables`: pack only constants whose scope is one of these names (an export's
    checkpoint variables, which `aotc verify` can round the same way); None: any.

    Raises:
        ValueError: an unknown storage.
    """
    if storage not in STORAGES:
        raise ValueError(f"pack_weights requires storage in {STORAGES}, got {storage!r}")
    if storage == "float32":
        return program
    users = program.consumers()
    out = Program(program.name, dict(program.values), list(program.params),
                  list(program.outputs))
    for vid, v in program.values.items():
        if _packable(program, v, users[vid]) and (variables is None or v.scope in variables):
            k, n = v.shape
            out.values[vid] = Value(vid, Op.CONSTANT, (), {
                "value": pair_panels(np.asarray(v.attrs["value"], np.float32)),
                "packing": PACKING, "columns": n}, DType.BFLOAT16,
                (k, -(-n // BLOCK) * BLOCK), v.source, v.scope)
    return out


def pair_panels(w: np.ndarray) -> np.ndarray:
    """[K, N] float32 -> [K, NP] bfloat16: in each 32-column block, column q (< 16) at
    position 2q and column 16 + q at 2q + 1, zeros past N."""
    k, n = w.shape
    padded = np.zeros((k, -(-n // BLOCK) * BLOCK), np.float32)
    padded[:, :n] = w
    blocks = padded.reshape(k, -1, 2, BLOCK // 2)       # [K, block, half, q]
    pairs = blocks.transpose(0, 1, 3, 2).reshape(k, -1)  # [K, block, q, half]
    return pairs.astype(DType.BFLOAT16.numpy)


def _packable(program: Program, v: Value, users: list[int]) -> bool:
    if v.op is not Op.CONSTANT or v.dtype is not DType.FLOAT32 or len(v.shape) != 2 \
            or v.size < MIN_ELEMENTS or not users or v.id in program.outputs:
        return False
    for u in users:
        d = program.values[u]
        a = d.attrs if d.op is Op.DOT_GENERAL else {}
        if d.op is not Op.DOT_GENERAL or d.dtype is not DType.FLOAT32 \
                or d.inputs[0] == v.id or d.inputs[1] != v.id or a["lhs_batch"] \
                or tuple(a["rhs_contracting"]) != (0,) or dot_layout(program, d)[1] is None:
            return False
    return True
