"""Loop nests of generated C: rendered from `templates/c/loops.c.j2`, with adjacent
axes merged where every index treats them as one flat axis.

    lines = loops([("i", 64, ""), ("j", 8, "")], ["y[i * 8 + j] = x[i * 8 + j];"])
    ev, nest, result = merged_nest(make_evaluator, axes, build, parallel_work)
"""
from __future__ import annotations

import math

from aot.codegen.templates import environment
from aot.program import indexing as ix
from aot.program.indexing import Lin
from mlframework.core.symbolic import Dim, DimLike

PARALLEL_MIN = 65536  # elements; below this a loop is not worth an OpenMP fork (~1 us)


def loops(nest, body) -> list[str]:
    """Lines of a loop nest; `nest` is [(var, extent, pragma or "")] outermost first.

    An empty nest is a block, so the body's names stay local as a loop body's do (a
    row-wise kernel whose rows have one element renders each stage this way).
    """
    if not nest:
        return ["{"] + ["  " + line for line in body] + ["}"]
    return environment().get_template("loops.c.j2").render(loops=nest, body=body) \
        .strip("\n").split("\n")


def omp_for(work: DimLike, threshold: int = PARALLEL_MIN) -> str:
    """The OpenMP pragma of a loop doing `work` (elements), or "" when too small to fork.
    A symbolic amount is decided at run time: an `if` clause on its C expression."""
    if isinstance(work, Dim):
        return f"MLF_OMP(omp parallel for schedule(static) if ({work} >= {threshold}))"
    return "MLF_OMP(omp parallel for schedule(static))" if work >= threshold else ""


def nest(axes, inner, pragma: str = "") -> list[str]:
    """Lines of a loop nest over `axes` [(var, extent)]; pragma (`omp_for`): the outer
    loop's OpenMP pragma (used when it has more than one iteration)."""
    lines, ind = [], ""
    for n, (var, d) in enumerate(axes):
        if n == 0 and pragma and d != 1:
            lines.append(ind + pragma)
        lines.append(f"{ind}for (long {var} = 0; {var} < {d}; {var}++) {{")
        ind += "  "
    lines += [ind + s for s in inner]
    for _ in axes:
        ind = ind[:-2]
        lines.append(ind + "}")
    return lines


def axis_vars(dims, prefix: str) -> tuple[list, dict]:
    """One loop variable per axis (constant 0 for extent-1 axes) and their extents."""
    index = [ix.var(f"{prefix}{a}") if d != 1 else ix.const(0) for a, d in enumerate(dims)]
    return index, {f"{prefix}{a}": d for a, d in enumerate(dims) if d != 1}


def mergeable_groups(lins: list[Lin], axes: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """Splits adjacent loop axes into groups that every index treats as one flat axis."""
    if any(lin.opaque is not None for lin in lins):
        return [[a] for a in axes]
    coefs = [dict(lin.terms) for lin in lins]
    groups = [[axes[0]]] if axes else []
    for prev, cur in zip(axes, axes[1:]):
        if all(c.get(prev[0], 0) == c.get(cur[0], 0) * cur[1] for c in coefs):
            groups[-1].append(cur)
        else:
            groups.append([cur])
    return groups


def merged_nest(ev_factory, axes, build, parallel_work: DimLike):
    """Evaluates `build(ev)` twice: once to find which axes merge, then for real.

    Returns (evaluator, loop nest, result of build).
    """
    dry = ev_factory(None)
    build(dry)
    groups = mergeable_groups(dry.seen, axes) if axes else []
    merge = [(g, "_".join(v for v, _ in g))
             for g in groups]
    ev = ev_factory(merge)
    result = build(ev)
    out = []
    for n, (g, name) in enumerate(merge):
        extent = math.prod(e for _, e in g)
        pragma = omp_for(parallel_work) if n == 0 and extent != 1 else ""
        out.append((name, extent, pragma))
    return ev, out, result
