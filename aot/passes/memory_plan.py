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

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from aot.program.kernel import Kernel
from aot.program.program import SUBGRAPH_OPS, Program, subprograms
from aot.program.symbols import upper
from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike, evaluate
from mlframework.graph.gen_optypes import Op

ALIGN = 64
# Buffers placed after symbolic ones start at a multiple of this at every size: the
# alignment of every element type (the kernels' vector loads need none).
SYMBOLIC_ALIGN = 16


@dataclass
class Buffer:
    """Where a value lives. kind: arena, const, input, output, alias or scratch."""

    value: int
    kind: str
    nbytes: DimLike  # a Dim for a symbolic shape: the arena holds it at the maxima
    offset: DimLike = 0  # a Dim when placed after symbolic buffers (`_best_fit_symbolic`)
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
    # With symbolic sizes: the arena for given symbol values (a polynomial of them, or
    # the size at the maxima when offsets could not be symbolic); `arena_bytes` is its
    # value at the maxima.
    arena_for: DimLike = 0
    symbols: dict[str, int] = field(default_factory=dict)  # the program's, with maxima

    def position(self, b: Buffer) -> int:
        """b's offset at the symbols' maxima (its offset for a static program)."""
        return upper(b.offset, self.symbols)

    def __str__(self) -> str:
        lines = [f"arena {self.arena_bytes} bytes, constants {self.const_bytes} bytes"]
        for b in sorted(self.buffers.values(), key=lambda b: (b.kind, self.position(b))):
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
    plan = MemoryPlan(symbols=dict(program.symbols))
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
    order = sorted(arena, key=lambda b: (b.start, -upper(b.nbytes, top)))
    arena_for = _best_fit_symbolic(order, top) if top else None
    if arena_for is None:  # static, or symbolic offsets not provable: placed at the maxima
        arena_for = _best_fit(order, top)
    plan.arena_for, plan.arena_bytes = arena_for, upper(arena_for, top)
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
        for x in sorted(live, key=lambda x: int(x.offset)):
            ox = int(x.offset)  # (ints: this plan is at the maxima)
            if ox - cursor >= size:
                gaps.append((ox - cursor, cursor))
            cursor = max(cursor, ox + _align(max(upper(x.nbytes, maxima), 1)))
        b.offset = at = min(gaps)[1] if gaps else cursor
        top = max(top, at + size)
        live.append(b)
    return top


BOX_POINTS = 4096  # symbol boxes up to this many points are checked at every point


def _best_fit_symbolic(buffers: list[Buffer], maxima: dict[str, int]) -> DimLike | None:
    """`_best_fit` with offsets that are polynomials of the symbols, so that the arena
    shrinks with them: a buffer goes into a gap only where it fits for every symbol value
    in [1, maximum] (checked at `_check_points`), and the top of a set of buffers is the
    end that bounds the others (`_larger`).
    Each placement is then checked against every buffer live with it: on the same side
    at every point, which for multilinear polynomials holds on the whole box once it holds
    at its vertices. Returns the arena size as a polynomial, or None (the offsets of
    `_best_fit` stand) when the sizes are neither multilinear nor over a small box, or
    a check fails."""
    sizes = {id(b): _align_poly(b.nbytes) for b in buffers}
    points = _check_points(list(sizes.values()), maxima)
    if points is None:
        return None
    at = lambda d: np.array([evaluate(d, p) for p in points], np.int64)  # noqa: E731
    vec = {id(b): at(sizes[id(b)]) for b in buffers}
    offset: dict[int, tuple[DimLike, np.ndarray]] = {}
    live: list[Buffer] = []
    top: tuple[DimLike, np.ndarray] = (0, at(0))
    for b in buffers:
        live = [x for x in live if x.end >= b.start]
        gaps = []
        cursor: tuple[DimLike, np.ndarray] = (0, at(0))
        for x in sorted(live, key=lambda x: x.offset):
            ox, vx = offset[id(x)]
            if (vx - cursor[1] >= vec[id(b)]).all():
                gaps.append((int(vx[-1] - cursor[1][-1]), int(cursor[1][-1]), cursor))
            end = ox + sizes[id(x)]
            cursor = _larger(cursor, (end, vx + vec[id(x)]), at)
        chosen = min(gaps, key=lambda g: g[:2])[2] if gaps else cursor
        start, stop = chosen[1], chosen[1] + vec[id(b)]
        for x in live:  # the proof: on one side of every live buffer at every point
            ox, vx = offset[id(x)]
            if not ((stop <= vx).all() or (vx + vec[id(x)] <= start).all()):
                return None
        offset[id(b)] = (chosen[0], chosen[1])
        b.offset = int(chosen[1][-1])  # at the maxima (the last point), for the order
        top = _larger(top, (chosen[0] + sizes[id(b)], stop), at)
        live.append(b)
    for b in buffers:
        b.offset = offset[id(b)][0]
    return top[0]


def _larger(a: tuple, b: tuple, at) -> tuple:
    """(polynomial, values at the check points) >= both a and b at every point: the one
    that bounds the other, else the coefficient-wise larger (>= both: monomials >= 1)."""
    if (a[1] >= b[1]).all():
        return a
    if (b[1] >= a[1]).all():
        return b
    both = symbolic.cover([a[0], b[0]])
    return both, at(both)


def _align_poly(n: DimLike) -> DimLike:
    """A size >= n for every symbol value that keeps offsets aligned: a static size
    rounded up to ALIGN, a symbolic one's coefficients to SYMBOLIC_ALIGN (its constant
    to ALIGN)."""
    if not isinstance(n, Dim):
        return _align(max(n, 1))
    def step(c: int, monomial) -> int:
        return -(-c // SYMBOLIC_ALIGN) * SYMBOLIC_ALIGN if monomial else _align(c)
    return sum((step(c, m) * math.prod(symbolic.dim(s) for s in m) for m, c in n.terms), 0)


def _check_points(polys: list, maxima: dict[str, int]) -> list[dict[str, int]] | None:
    """Symbol values at which checking inequalities of `polys` proves them on the whole
    box (the vertices, or every point), or None when neither is cheap."""
    names = list(maxima)
    multilinear = all(len(set(m)) == len(m) for p in polys if isinstance(p, Dim)
                      for m, _ in p.terms)
    if multilinear:
        axes = [sorted({1, maxima[s]}) for s in names]
    elif math.prod(maxima.values()) <= BOX_POINTS:
        axes = [list(range(1, maxima[s] + 1)) for s in names]
    else:
        return None
    return [dict(zip(names, p)) for p in itertools.product(*axes)]


def _lowered(body: Program) -> tuple[Program, list[Kernel], MemoryPlan]:
    # imported here: unpickling a cached plan (a warm start) needs neither pass
    from aot.passes.fusion import fuse
    from aot.passes.simplify import simplify

    body = simplify(body)
    kernels = fuse(body)
    return body, kernels, plan_memory(body, kernels)


@dataclass
class Workspace:
    """The scratch of a control-flow kernel, as offsets into it (polynomials of the
    symbols with symbolic shapes).

    current, following: per carry (loops), the buffer a step reads and the one it
    writes (swapped after every step); spare: per result nobody reads that a body
    still writes (by result index); flag: a while_loop's condition (one bool);
    body: where the sub-programs' arenas start (they run one at a time).
    """

    current: list[DimLike] = field(default_factory=list)
    following: list[DimLike] = field(default_factory=list)
    spare: dict[int, DimLike] = field(default_factory=dict)
    flag: DimLike = 0
    body: DimLike = 0
    nbytes: DimLike = 0


def workspace(program: Program, k: Kernel) -> Workspace:
    """The layout of control-flow kernel k's scratch (`Kernel.bodies` already set). With
    symbolic shapes, the offsets and the size are polynomials of the symbols (buffers
    sized by `_align_poly`, the bodies' arenas by the one that bounds the others), so
    the scratch shrinks with them."""
    v = program.values[k.nodes[0]]
    ws = Workspace()
    top: DimLike = 0
    if v.op is not Op.COND:
        for i in v.inputs[:v.attrs["num_carry"]]:
            size = _align_poly(program.values[i].nbytes)
            ws.current.append(top)
            ws.following.append(top + size)
            top += 2 * size
    present = {program.values[o].attrs["index"] for o in k.outputs}
    carried = 0 if v.op is Op.COND else v.attrs["num_carry"]
    for r, spec in enumerate(_result_sizes(program, v)):
        if r >= carried and r not in present:
            ws.spare[r] = top
            top += _align_poly(spec)
    if v.op is Op.WHILE_LOOP:
        ws.flag = top
        top += ALIGN
    ws.body = top
    ws.nbytes = top + _bound([plan.arena_for for _, _, plan in k.bodies], program.symbols)
    return ws


def _bound(sizes: list[DimLike], maxima: dict[str, int]) -> DimLike:
    """A size >= each of `sizes` for every symbol value up to `maxima` (0 for none): a
    polynomial where `_larger` can prove it, else the largest at the maxima."""
    if not maxima or not sizes:
        return max((upper(s, maxima) for s in sizes), default=0)
    points = _check_points(sizes, maxima)
    if points is None:
        return max(upper(s, maxima) for s in sizes)
    at = lambda d: np.array([evaluate(d, p) for p in points], np.int64)  # noqa: E731
    top = (sizes[0], at(sizes[0]))
    for s in sizes[1:]:
        top = _larger(top, (s, at(s)), at)
    return top[0]


def _result_sizes(program: Program, v) -> list[DimLike]:
    """nbytes of each result of control-flow value v (a Dim for a symbolic shape)."""
    if v.op is Op.COND:
        body = v.attrs["branches"][0]
        return [body.values[o].nbytes for o in body.outputs]
    body = v.attrs["body"]
    n = v.attrs["num_carry"]
    sizes = [body.values[o].nbytes for o in body.outputs]
    if v.op is Op.SCAN:
        sizes = sizes[:n] + [s * v.attrs["length"] for s in sizes[n:]]
    return sizes
