"""Pass `plan_memory`: buffer lifetimes, then offsets in one arena (best fit).

    plan = plan_memory(program, kernels)

Every value a kernel writes gets a buffer. Graph outputs are written straight
into the caller's output arrays, parameters are read from the caller's
arrays, constants live in a read-only segment, reshapes alias the buffer they
view, and everything else shares one arena: a buffer lives from the kernel
that writes it to the last kernel that reads it, and takes the smallest free
gap that fits (64-byte aligned). Kernel scratch (GEMM packing) lives only
during its kernel. A buffer of a symbolic shape is placed at its size at the
symbols' maxima (`Program.symbols`), so the offsets serve every smaller size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aot.passes.fusion import fuse
from aot.passes.simplify import simplify
from aot.program.kernel import Kernel
from aot.program.program import SUBGRAPH_OPS, Program, subprograms
from aot.program.symbols import upper
from mlframework.core.symbolic import DimLike
from mlframework.graph.gen_optypes import Op

ALIGN = 64


@dataclass
class Buffer:
    """Where a value lives. kind: arena, const, input, output, alias or scratch."""

    value: int
    kind: str
    nbytes: DimLike  # a Dim for a symbolic shape: the arena holds it at the maxima
    offset: int = 0
    start: int = 0   # index of the kernel that writes it
    end: int = 0     # index of the last kernel that reads it
    base: int | None = None  # for aliases: the value whose bytes these are
    output_index: int | None = None


@dataclass
class MemoryPlan:
    buffers: dict[int, Buffer] = field(default_factory=dict)
    scratch: dict[int, Buffer] = field(default_factory=dict)  # kernel index -> scratch
    arena_bytes: int = 0
    const_bytes: int = 0

    def __str__(self) -> str:
        lines = [f"arena {self.arena_bytes} bytes, constants {self.const_bytes} bytes"]
        for b in sorted(self.buffers.values(), key=lambda b: (b.kind, b.offset)):
            lines.append(f"  #{b.value:<5} {b.kind:<7} offset {b.offset!s:>9} size {b.nbytes!s:>9} "
                         f"live [{b.start}, {b.end}]")
        return "\n".join(lines)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(program: Program, kernels: list[Kernel]) -> MemoryPlan:
    """Places every buffer; arena offsets never overlap while both buffers are live.

    A control-flow kernel's sub-programs are compiled here by the same passes
    (simplify, fuse, plan_memory: `Kernel.bodies`) and placed in its scratch, in the
    same arena, with the carry double-buffered (`workspace`).
    """
    plan = MemoryPlan()
    for k in kernels:
        v = program.values[k.nodes[0]]
        if v.op in SUBGRAPH_OPS:
            k.bodies = [_lowered(body) for body in subprograms(v)]
            k.scratch_bytes = workspace(program, k).nbytes
    first_out: dict[int, int] = {}
    for position, o in enumerate(program.outputs):
        first_out.setdefault(o, position)
    const_off = 0
    for vid, v in program.values.items():
        if v.op is Op.PARAMETER:
            plan.buffers[vid] = Buffer(vid, "input", v.nbytes, start=-1, end=len(kernels))
        elif v.op is Op.CONSTANT and any(vid in k.inputs for k in kernels):
            plan.buffers[vid] = Buffer(vid, "const", v.nbytes, const_off, -1, len(kernels))
            const_off += _align(int(v.nbytes))  # constants are static
    plan.const_bytes = const_off
    for t, k in enumerate(kernels):
        for o in k.outputs:
            v = program.values[o]
            if k.kind == "alias":
                base = program.values[o].inputs[0]
                source = plan.buffers[base]
                if source.kind == "alias" and source.base is not None:
                    base = source.base
                plan.buffers[o] = Buffer(o, "alias", v.nbytes, start=t, end=t, base=base)
            elif o in first_out:
                plan.buffers[o] = Buffer(o, "output", v.nbytes, start=t, end=len(kernels),
                                         output_index=first_out[o])
            else:
                plan.buffers[o] = Buffer(o, "arena", v.nbytes, start=t, end=t)
        for i in k.inputs:
            b = plan.buffers[i]
            b.end = max(b.end, t)
            if b.kind == "alias" and b.base is not None:
                plan.buffers[b.base].end = max(plan.buffers[b.base].end, t)
        if getattr(k, "scratch_bytes", 0):
            plan.scratch[t] = Buffer(-1 - t, "scratch", k.scratch_bytes, start=t, end=t)
    arena = [b for b in plan.buffers.values() if b.kind == "arena"] + list(plan.scratch.values())
    top = program.symbols  # symbolic sizes are placed at their largest (`upper`)
    plan.arena_bytes = _best_fit(sorted(arena, key=lambda b: (b.start, -upper(b.nbytes, top))),
                                 top)
    for b in plan.buffers.values():
        if b.kind == "alias" and b.base is not None:
            b.offset = plan.buffers[b.base].offset
    return plan


def _best_fit(buffers: list[Buffer], maxima: dict[str, int]) -> int:
    live: list[Buffer] = []
    top = 0
    for b in buffers:
        live = [x for x in live if x.end >= b.start]
        size = _align(max(upper(b.nbytes, maxima), 1))
        gaps, cursor = [], 0
        for x in sorted(live, key=lambda x: x.offset):
            if x.offset - cursor >= size:
                gaps.append((x.offset - cursor, cursor))
            cursor = max(cursor, x.offset + _align(max(upper(x.nbytes, maxima), 1)))
        b.offset = min(gaps)[1] if gaps else cursor
        top = max(top, b.offset + size)
        live.append(b)
    return top


def _lowered(body: Program) -> tuple[Program, list[Kernel], MemoryPlan]:
    body = simplify(body)
    kernels = fuse(body)
    return body, kernels, plan_memory(body, kernels)


@dataclass
class Workspace:
    """The scratch of a control-flow kernel, as offsets into it.

    current, following: per carry (loops), the buffer a step reads and the one it
    writes (swapped after every step); spare: per result nobody reads that a body
    still writes (by result index); flag: a while_loop's condition (one bool);
    body: where the sub-programs' arenas start (they run one at a time).
    """

    current: list[int] = field(default_factory=list)
    following: list[int] = field(default_factory=list)
    spare: dict[int, int] = field(default_factory=dict)
    flag: int = 0
    body: int = 0
    nbytes: int = 0


def workspace(program: Program, k: Kernel) -> Workspace:
    """The layout of control-flow kernel k's scratch (`Kernel.bodies` already set)."""
    v = program.values[k.nodes[0]]
    ws, top = Workspace(), 0
    if v.op is not Op.COND:
        for i in v.inputs[:v.attrs["num_carry"]]:
            size = _align(max(int(program.values[i].nbytes), 1))  # (static: see emit_module)
            ws.current.append(top)
            ws.following.append(top + size)
            top += 2 * size
    present = {program.values[o].attrs["index"] for o in k.outputs}
    carried = 0 if v.op is Op.COND else v.attrs["num_carry"]
    for r, spec in enumerate(_result_sizes(program, v)):
        if r >= carried and r not in present:
            ws.spare[r] = top
            top += _align(max(spec, 1))
    if v.op is Op.WHILE_LOOP:
        ws.flag = top
        top += ALIGN
    ws.body = top
    ws.nbytes = top + max((plan.arena_bytes for _, _, plan in k.bodies), default=0)
    return ws


def _result_sizes(program: Program, v) -> list[int]:
    """nbytes of each result of control-flow value v."""
    if v.op is Op.COND:
        body = v.attrs["branches"][0]
        return [body.values[o].nbytes for o in body.outputs]
    body = v.attrs["body"]
    n = v.attrs["num_carry"]
    sizes = [body.values[o].nbytes for o in body.outputs]
    if v.op is Op.SCAN:
        sizes = sizes[:n] + [s * v.attrs["length"] for s in sizes[n:]]
    return sizes
