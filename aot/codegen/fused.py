"""C bodies of the fused loop kernels: pointwise chains, reductions (with their
pointwise producers) and row-wise kernels (softmax, layer norm: one pass per
stage over a cache-resident row).

    lines = pointwise(program, kernel)    # also reduce(...), rowwise(...)

Values become C through `expressions.Evaluator`; loops through `nests`.
"""
from __future__ import annotations

import math
from typing import Any

from aot.codegen import ctypes_table as ct
from aot.codegen.expressions import Evaluator
from aot.codegen.nests import axis_vars, loops, merged_nest, omp_for
from aot.passes.fusion import row_index_of, stage_kind
from aot.program import indexing as ix
from aot.program.kernel import Kernel
from aot.program.program import Program
from aot.program.symbols import c_expr, upper
from mlframework.core.symbolic import is_symbolic
from mlframework.graph.gen_optypes import Op

LANES = 16  # vector accumulator lanes of a reduction


# ---- pointwise ------------------------------------------------------------------

def pointwise(program: Program, k: Kernel) -> list[str]:
    """One loop over the output shape storing every output (several outputs share their
    common subexpressions: `fusion._merge_pointwise`)."""
    root = program.values[k.outputs[0]]
    index, extents = axis_vars(root.shape, "a")
    axes = [(f"a{a}", d) for a, d in enumerate(root.shape) if d != 1]
    buffers = {i: f"b{i}" for i in k.inputs}

    def build(ev):
        stores = []
        for o in k.outputs:
            out = program.values[o]
            value = ev.value(o, index)
            stores.append(f"b{o}[{ev.flat(index, out.shape)}] = {ct.store(out.dtype, value)};")
        return stores

    ev, nest, stores = merged_nest(
        lambda merge: Evaluator(program, extents, buffers, merge=merge), axes, build, root.size)
    if root.size == 0:
        return ["/* empty output */"]
    if len(k.outputs) > 1 and len(nest) == 1 and nest[0][2]:
        # gcc's outlined OpenMP body loses `restrict`, and the alias checks of several
        # outputs against every input exceed its versioning limit: the loop stayed scalar
        # (2.6 ns an element) until `simd` says the iterations are independent
        nest = [(nest[0][0], nest[0][1], nest[0][2].replace("parallel for", "parallel for simd"))]
    return loops(nest, ev.lines + stores)


# ---- reductions ------------------------------------------------------------------

REDUCE_INIT = {Op.REDUCE_SUM: "0", Op.REDUCE_PROD: "1", Op.REDUCE_AND: "1", Op.REDUCE_OR: "0"}


def reduce_init(v) -> str:
    if v.op is Op.REDUCE_MAX:
        return ct.lowest(v.dtype)
    if v.op is Op.REDUCE_MIN:
        return ct.highest(v.dtype)
    return REDUCE_INIT[v.op]


def reduce_combine(v, acc: str, x: str) -> str:
    tag = ct.TAG[v.dtype]
    expr = {Op.REDUCE_SUM: f"{acc} + {x}", Op.REDUCE_PROD: f"{acc} * {x}",
            Op.REDUCE_MAX: f"mlf_max_{tag}({acc}, {x})",
            Op.REDUCE_MIN: f"mlf_min_{tag}({acc}, {x})",
            Op.REDUCE_AND: f"{acc} && {x}", Op.REDUCE_OR: f"{acc} || {x}"}[v.op]
    return ct.narrow(v.dtype, expr)


def reduce_loop(program, v, x_id, outer_index, inner_dims, extents, ev_kwargs, acc: str,
                prefix: str) -> list[str]:
    """Lines that leave `acc` holding the reduction of x over `inner_dims` (trailing axes)."""
    ctype = ct.compute(v.dtype)
    inner_index, inner_ext = axis_vars(inner_dims, prefix)
    ext = {**extents, **inner_ext}
    axes = [(f"{prefix}{a}", d) for a, d in enumerate(inner_dims) if d != 1]
    total = math.prod(inner_dims)

    def make(merge, lane=None):
        return Evaluator(program, ext, merge=merge, prefix="t", **ev_kwargs)

    def build(ev):
        return ev.value(x_id, outer_index + inner_index)

    ev, nest, val = merged_nest(make, axes, build, 0)
    lanes = (v.dtype.is_float and v.op in (Op.REDUCE_SUM, Op.REDUCE_MAX, Op.REDUCE_MIN)
             and len(nest) == 1 and upper(total, program.symbols) >= 4 * LANES
             and all(lin.opaque is None for lin in ev.seen))  # lanes rename affine indices only
    if not lanes:
        body = ev.lines + [f"{acc} = {reduce_combine(v, acc, val)};"]
        return [f"{ctype} {acc} = {reduce_init(v)};"] + loops(nest, body)
    name = nest[0][0]
    group = [(g, n) for g, n in ev.merge][0][0] if ev.merge else [(name, total)]
    lane_ev = Evaluator(program, {**ext, "l": LANES}, merge=[(group, f"({name} + l)")],
                        prefix="t", **ev_kwargs)
    lane_val = lane_ev.value(x_id, outer_index + inner_index)
    main = (lane_ev.lines + [f"{acc}_l[l] = {reduce_combine(v, f'{acc}_l[l]', lane_val)};"])
    tail = ev.lines + [f"{acc}_l[0] = {reduce_combine(v, f'{acc}_l[0]', val)};"]
    # a symbolic row length splits at run time: the tail loop may run 0 times
    main_end = f"{c_expr(total)} / {LANES} * {LANES}" if is_symbolic(total) else \
        total // LANES * LANES
    lines = [f"{ctype} {acc};", "{",
             f"  {ctype} {acc}_l[{LANES}];",
             f"  for (int l = 0; l < {LANES}; l++) {acc}_l[l] = {reduce_init(v)};",
             f"  for (long {name} = 0; {name} < {main_end}; {name} += {LANES}) {{",
             "    for (int l = 0; l < %d; l++) {" % LANES]
    lines += ["      " + s for s in main] + ["    }", "  }"]
    if is_symbolic(total) or main_end < total:
        lines += [f"  for (long {name} = {main_end}; {name} < {total}; {name}++) {{"]
        lines += ["    " + s for s in tail] + ["  }"]
    lines += [f"  {acc} = {acc}_l[0];",
              f"  for (int l = 1; l < {LANES}; l++) "
              f"{acc} = {reduce_combine(v, acc, f'{acc}_l[l]')};",
              "}"]
    return lines


def reduce(program: Program, k: Kernel) -> list[str]:
    v = program.values[k.outputs[0]]
    x = program.values[v.inputs[0]]
    axes = sorted(v.attrs["axes"])
    kept = [a for a in range(len(x.shape)) if a not in axes]
    buffers = {i: f"b{i}" for i in k.inputs}
    if v.size == 0:
        return ["/* empty output */"]
    if x.size == 0:
        return loops([("i", v.size, "")], [f"b{v.id}[i] = {ct.store(v.dtype, reduce_init(v))};"])
    if all(a > b for a in axes for b in kept):  # trailing: one accumulator per output
        out_index, out_ext = axis_vars(v.shape, "k")
        out_axes = [(f"k{a}", d) for a, d in enumerate(v.shape) if d != 1]
        inner = [x.shape[a] for a in axes]
        lines = reduce_loop(program, v, x.id, out_index, inner, out_ext, {"buffers": buffers},
                            "acc", "r")
        store = f"b{v.id}[{ix.flatten(out_index, v.shape).c()}] = {ct.store(v.dtype, 'acc')};"
        nest = [(n, d, "") for n, d in out_axes]
        if nest and v.size != 1:
            nest[0] = (nest[0][0], nest[0][1], omp_for(v.size * math.prod(inner)))
        return loops(nest, lines + [store])
    return _reduce_strided(program, k, v, x, axes, buffers)


def _reduce_strided(program, k, v, x, axes, buffers) -> list[str]:
    """Reductions over leading or middle axes: accumulate whole rows of the kept inner axes."""
    first = axes[0]
    outer = list(range(first))           # kept axes before the first reduced one
    rest = list(range(first, len(x.shape)))
    inner_kept = [a for a in rest if a not in axes]
    width = math.prod(x.shape[a] for a in inner_kept)
    index, extents = axis_vars(x.shape, "a")
    ctype = ct.compute(v.dtype)
    ev = Evaluator(program, extents, buffers)
    val = ev.value(x.id, index)
    acc_index = ix.flatten([index[a] for a in inner_kept], [x.shape[a] for a in inner_kept])
    out_index = ix.flatten([index[a] for a in outer + inner_kept],
                           [x.shape[a] for a in outer + inner_kept])
    body = ev.lines + [f"acc[{acc_index.c()}] = {reduce_combine(v, f'acc[{acc_index.c()}]', val)};"]
    nest_rest = [(f"a{a}", x.shape[a], "") for a in rest if x.shape[a] != 1]
    inner = [f"{ctype} acc[{upper(width, program.symbols)}];",
             f"for (long j = 0; j < {width}; j++) acc[j] = {reduce_init(v)};"]
    inner += loops(nest_rest, body) if nest_rest else body
    store_index = ix.flatten([index[a] for a in outer], [x.shape[a] for a in outer])
    inner += [f"for (long j = 0; j < {width}; j++) "
              f"b{v.id}[({store_index.c()}) * {width} + j] = {ct.store(v.dtype, 'acc[j]')};"]
    del out_index
    nest = [(f"a{a}", x.shape[a], "") for a in outer if x.shape[a] != 1]
    if nest:
        nest[0] = (nest[0][0], nest[0][1], omp_for(x.size))
    return loops(nest, inner) if nest else inner


# ---- row-wise kernels ---------------------------------------------------------------

def rowwise(program: Program, k: Kernel) -> list[str]:
    dims, nrow = k.dims, k.rows
    row, row_ext = axis_vars(dims[:nrow], "r")
    col, col_ext = axis_vars(dims[nrow:], "c")
    cols = math.prod(dims[nrow:])
    row_flat = ix.flatten(row, dims[:nrow]).c()
    buffers = {i: f"b{i}" for i in k.inputs}
    scalars: dict[int, str] = {}
    rowbufs: dict[int, tuple[str, int]] = {}  # value -> (row buffer, rank of its rows)
    body = []
    for s in k.stages:
        v = program.values[s]
        kind = stage_kind(program, k, s)
        kw: dict[str, Any] = dict(buffers=buffers, rowbufs=dict(rowbufs),
                                  scalars=dict(scalars), row_index=row, row_dims=dims[:nrow])
        where = "over the row" if kind != "scalar" else "once per row"
        body.append(f"/* stage #{s}: {v.op.value} {where} */")
        if kind == "reduce":
            body += reduce_loop(program, v, v.inputs[0], row, dims[nrow:], row_ext, kw,
                                f"s{s}", "c")
        if kind == "scalar":
            ev = Evaluator(program, {**row_ext, **col_ext}, prefix=f"p{s}_", **kw)
            val = ev.value(s, row_index_of(v.shape, row, dims[:nrow]))
            body += ev.lines + [f"const {ct.compute(v.dtype)} s{s} = {val};"]
        if kind != "row":
            scalars[s] = f"s{s}"
            if s in k.outputs:
                body.append(f"b{s}[{row_flat}] = {ct.store(v.dtype, f's{s}')};")
            continue
        targets = []
        if s != k.stages[-1]:
            body.append(f"{ct.STORAGE[v.dtype]} row{s}[{upper(cols, program.symbols)}];")
            targets.append(f"row{s}")
            rowbufs[s] = (f"row{s}", nrow)
        if s in k.outputs:
            targets.append(f"b{s} + ({row_flat}) * {cols}")
        axes = [(f"c{a}", d) for a, d in enumerate(dims[nrow:]) if d != 1]

        def build(ev, v=v):
            return ev.value(v.id, row + col), ev.flat(col, dims[nrow:])

        ev, nest, (val, at) = merged_nest(
            lambda merge, kw=kw: Evaluator(program, {**row_ext, **col_ext}, merge=merge, **kw),
            axes, build, 0)
        stores = [f"({t})[{at}] = {ct.store(v.dtype, val)};" for t in targets]
        body += loops(nest, ev.lines + stores)
    nest = [(f"r{a}", d, "") for a, d in enumerate(dims[:nrow]) if d != 1]
    if nest:
        nest[0] = (nest[0][0], nest[0][1], omp_for(math.prod(dims)))
    return loops(nest, body) if nest else body
