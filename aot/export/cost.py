"""FLOP and byte counts of kernels, for `aotc inspect` and the export manifest.

    costs = kernel_costs(program, kernels)   # [{"kernel", "kind", "flops", "bytes"}, ...]

FLOPs count multiply and add separately (a GEMM is 2*M*N*K); a pointwise or
row-wise kernel counts one FLOP per arithmetic node per element it computes
(transcendentals count one, as in XLA's cost analysis), movement counts none.
Bytes are the kernel's compulsory traffic: every buffer it reads once plus
every buffer it writes once.
"""
from __future__ import annotations

import math

from aot.passes.layouts import dot_layout
from aot.program.kernel import Kernel
from aot.program.program import Program
from mlframework.graph.gen_optypes import Op, OpGroup

_FREE = {Op.PARAMETER, Op.CONSTANT, Op.RESHAPE, Op.BROADCAST_IN_DIM, Op.TRANSPOSE, Op.SLICE,
         Op.PAD, Op.CONCATENATE, Op.REVERSE, Op.IOTA, Op.CONVERT, Op.STOP_GRADIENT}


def value_flops(program: Program, vid: int) -> int:
    """FLOPs of computing value `vid` on its own."""
    v = program.values[vid]
    if v.op is Op.DOT_GENERAL:
        (b, m, n, k), _ = dot_layout(program, v)
        return int(2 * b * m * n * k)  # (a symbolic program is costed at its maxima)
    if v.op is Op.CONV_GENERAL:
        rhs = program.values[v.inputs[1]]
        features = v.shape[1] if len(v.shape) > 1 and v.shape[1] else 1
        return int(2 * v.size * rhs.size // max(int(features), 1))
    if v.op in OpGroup.REDUCE:
        return int(program.values[v.inputs[0]].size)
    if v.op in _FREE or v.op in OpGroup.MOVEMENT:
        return 0
    return int(v.size)


def kernel_costs(program: Program, kernels: list[Kernel]) -> list[dict]:
    """One dict per kernel: kernel (C function name), kind, nodes, flops, bytes."""
    out = []
    for t, k in enumerate(kernels):
        flops = sum(value_flops(program, n) for n in k.nodes) if k.kind != "alias" else 0
        nbytes = sum(int(program.values[i].nbytes) for i in set(k.inputs))
        nbytes += sum(int(program.values[o].nbytes) for o in set(k.outputs))
        out.append({"kernel": f"k{t}_{k.name}", "kind": k.kind, "nodes": list(k.nodes),
                    "flops": int(flops), "bytes": int(nbytes if k.kind != "alias" else 0),
                    "intensity": round(flops / nbytes, 3) if nbytes and k.kind != "alias"
                    else 0.0})
    return out


def total_flops(costs: list[dict]) -> int:
    return int(math.fsum(c["flops"] for c in costs))
