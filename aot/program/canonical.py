"""A kernel in canonical form: its own small program with local value ids, and a
structural key. Two kernels with the same key compute the same function of their
buffers, so a renderer writes the function once and calls it many times (the 32
hidden layers of an MLP are a handful of kernels over and over).

    local, kernel, key = canonical(program, k)

Local ids number the kernel's inputs first (in parameter order), then the splat
constants its nodes read, then its nodes (topological). An input becomes a
PARAMETER value with its dtype, shape and the layout attributes of packed weights
(BUFFER_ATTRS) alone: a kernel reads an input's buffer, never how it was made or
its contents. Symbols are spelled by their C names (`aot.program.symbols.renamed`);
the local program's `symbols` are those its shapes use, which the function takes as
arguments. The key hashes, per local value, the op, inputs, dtype, shape and
attributes (splat constants by their one element), and the kernel's structure; it
leaves out source lines and scopes, which only comments show.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from aot.program.kernel import Kernel
from aot.program.program import Program, Value
from aot.program.symbols import c_name, rename_dim, renamed
from aot.program.walk import splat
from mlframework.core.symbolic import symbols_of
from mlframework.graph.gen_optypes import Op

# how aot.passes.weight_packing stored a constant
BUFFER_ATTRS = ("packing", "columns", "scales", "kernel_shape")


def canonical(program: Program, k: Kernel) -> tuple[Program, Kernel, str]:
    """(local program, the kernel over its local ids, structural key) of kernel `k`."""
    members = set(k.nodes)
    order = list(k.inputs)
    for vid in k.nodes:
        for i in program.values[vid].inputs:
            if i not in members and i not in order:
                order.append(i)  # splat constants read inside the body
    order += k.nodes
    local = {vid: n for n, vid in enumerate(order)}
    values = {}
    for vid in order:
        v = program.values[vid]
        if vid in members:
            values[local[vid]] = dataclasses.replace(v, id=local[vid],
                                                     inputs=tuple(local[i] for i in v.inputs))
        elif vid in k.inputs:
            attrs = {a: v.attrs[a] for a in BUFFER_ATTRS if a in v.attrs}
            values[local[vid]] = Value(local[vid], Op.PARAMETER, (), attrs, v.dtype, v.shape,
                                       v.source, v.scope)
        else:
            values[local[vid]] = dataclasses.replace(v, id=local[vid], inputs=())
    sub = renamed(Program(program.name, values, symbols=dict(program.symbols)))
    used: set[str] = set()
    for v in sub.values.values():
        used |= symbols_of(v.shape)
    sub.symbols = {s: top for s, top in sub.symbols.items() if s in used}
    remap = lambda ids: [local[i] for i in ids]  # noqa: E731
    kernel = dataclasses.replace(
        k, outputs=remap(k.outputs), nodes=remap(k.nodes), inputs=remap(k.inputs),
        stages=remap(k.stages), epilogue=remap(k.epilogue),
        contraction=None if k.contraction is None else local[k.contraction],
        dims=tuple(rename_dim(d, {s: c_name(s) for s in program.symbols}) for d in k.dims))
    return sub, kernel, _key(sub, kernel)


def _key(program: Program, k: Kernel) -> str:
    h = hashlib.sha256()
    for v in program.values.values():
        h.update(repr((v.op.value, v.inputs, v.dtype.value, tuple(v.shape))).encode())
        for name in sorted(v.attrs):
            h.update(name.encode())
            h.update(_attr_bytes(v, name))
    h.update(repr(sorted(program.symbols.items())).encode())
    fields = (k.kind, k.name, k.outputs, k.nodes, k.inputs, k.stages, k.epilogue,
              k.contraction, k.rows, tuple(k.dims), k.scratch_bytes, k.aliased)
    h.update(repr(fields).encode())
    return h.hexdigest()[:16]


def _attr_bytes(v: Value, name: str) -> bytes:
    x = v.attrs[name]
    if v.op is Op.CONSTANT and name == "value":
        one = splat(x)
        if one is not None:  # the body writes the literal: only it matters
            return repr(("splat", np.asarray(one).item())).encode()
        raise ValueError(f"canonical requires constant #{v.id} of a kernel body to be a splat; "
                         "a constant with several values is an input buffer")
    if isinstance(x, np.ndarray):
        return x.dtype.str.encode() + repr(x.shape).encode() + x.tobytes()
    return repr(x).encode()
