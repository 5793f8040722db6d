"""Pass `fuse`: groups the values of a program into kernels (`aot.program.kernel.Kernel`).

    kernels = fuse(program)

Rules (measured in shared/research/cpu-codegen.md):
  * pointwise chains with their broadcasts, reshapes, slices, pads and
    transposes become one loop over the output; movement is index math and is
    never materialized;
  * a reduction absorbs its pointwise producers;
  * a reduction over trailing axes whose result is broadcast back over the
    same rows joins its consumers in one row-wise kernel (softmax, layer norm,
    RMS norm): an outer row loop with a pass per reduction over a
    cache-resident row;
  * dot_general and conv_general take a pointwise epilogue (bias, activation,
    residual, cast) that reads the contraction only at the element being stored;
  * scores, softmax and weighted sum of attention become one kernel
    (`aot.passes.attention.fuse_attention`, after the rules above);
  * a value is materialized when it is a graph output, when a consumer reuses
    its elements (contractions, windows, gathers, sorts...), when it is
    expensive and read more than once or broadcast, or when a fused body
    would grow past MAX_FUSED_OPS; a value of iotas and constants alone (a causal
    mask) is recomputed by every reader, however broadcast;
  * a reshape of a materialized value is an alias of its buffer; a fused chain that only a
    reshape into contractions reads gets the buffer (its loop then needs no div/mod of the
    reshaped index);
  * a pointwise kernel that reads another's outputs only at the element it writes
    takes that kernel in: one loop writing both outputs (an optimizer's moment and
    parameter updates: one pass over the gradient, one OpenMP region).
"""
from __future__ import annotations

import math

from aot.passes.attention import fuse_attention
from aot.passes.layouts import scratch_bytes
from aot.program import indexing as ix
from aot.program.kernel import Kernel
from aot.program.program import SUBGRAPH_OPS, Program
from aot.program.symbols import upper
from aot.program.walk import EXPENSIVE, FUSIBLE, NotFusible, Walker, splat
from mlframework.graph.gen_optypes import Op, OpGroup

MAX_FUSED_OPS = 48       # Inductor materializes bodies past ~30-64 ops
EXPENSIVE_COST = 8       # weight of a transcendental in the cost model
SHARED_MAX_COST = 8      # a value read by several kernels is recomputed only below this cost
BROADCAST_MAX_COST = 4   # a value broadcast to a larger shape is recomputed only below this


def fuse(program: Program) -> list[Kernel]:
    """The kernels computing `program`, in execution order."""
    consumers = program.consumers()
    materialized = _materialized(program, consumers)
    kernels = [_kernel(program, vid, materialized) for vid in program.values
               if vid in materialized and program.values[vid].op
               not in (Op.PARAMETER, Op.CONSTANT)]
    kernels = _control_flow(program, kernels)
    kernels = _merge_rowwise(program, kernels, consumers)
    kernels = _merge_epilogues(program, kernels, consumers)
    kernels = fuse_attention(program, kernels)
    kernels = _merge_pointwise(program, kernels)
    for k in kernels:
        k.scratch_bytes = scratch_bytes(program, k)
    return kernels


# ---- which values get a buffer -------------------------------------------------

def _cost(program, vid, materialized, memo) -> int:
    v = program.values[vid]
    if vid in materialized or v.op in (Op.PARAMETER, Op.CONSTANT):
        return 0
    own = EXPENSIVE_COST if v.op in EXPENSIVE else (1 if v.op in FUSIBLE else 0)
    if vid not in memo:
        memo[vid] = own + sum(_cost(program, i, materialized, memo) for i in v.inputs)
    return memo[vid]


def _materialized(program: Program, consumers) -> set[int]:
    out = set(program.outputs)
    memo: dict[int, int] = {}
    for vid, v in program.values.items():
        if v.op is Op.PARAMETER:
            out.add(vid)
        elif v.op is Op.CONSTANT:
            users = [program.values[c] for c in consumers[vid]]
            if splat(v.attrs["value"]) is None or any(_needs_buffer(program, u, -1)
                                                       for u in users):
                out.add(vid)
        elif v.op not in FUSIBLE or _reinterprets(program, v):
            out.add(vid)
    for vid, v in program.values.items():
        if vid in out or v.op not in FUSIBLE:
            continue
        cost = _cost(program, vid, out, memo)
        users = [program.values[c] for c in consumers[vid]]
        if any(_needs_buffer(program, u, vid) for u in users) or cost > MAX_FUSED_OPS:
            out.add(vid)
        elif len(users) > 1 and (cost >= SHARED_MAX_COST or _reads(program, vid, out) > 4):
            out.add(vid)
        elif any(u.op is Op.BROADCAST_IN_DIM and u.size != v.size for u in users) \
                and cost > BROADCAST_MAX_COST and not _from_indices(program, vid, out):
            out.add(vid)
        memo.clear()
    for vid in list(out):  # a contraction's operand reshaped from a fused chain: the chain
        v = program.values[vid]  # gets the buffer (free of div/mod), the reshape aliases it
        if v.op is Op.RESHAPE and v.inputs[0] not in out and len(consumers[v.inputs[0]]) == 1 \
                and program.values[v.inputs[0]].op in FUSIBLE and consumers[vid] and all(
                    program.values[c].op in (Op.DOT_GENERAL, Op.CONV_GENERAL)
                    for c in consumers[vid]):
            out.add(v.inputs[0])
    return out


def _from_indices(program, vid, materialized) -> bool:
    """vid is computed from iotas and splat constants alone, without transcendentals (a
    causal mask, position ids): each element read costs a few integer ops and no memory,
    so its consumers recompute it (as XLA does) and their loops vectorize over it."""
    stack, seen = [vid], set()
    while stack:
        v = program.values[stack.pop()]
        if v.id in materialized or v.op in EXPENSIVE:
            return False
        seen.add(v.id)
        stack += [i for i in v.inputs if i not in seen]
    return True


def _reinterprets(program, v) -> bool:
    """A bit cast that changes the element width (and so the shape): a kernel of its own."""
    return v.op is Op.BITCAST_CONVERT_TYPE and v.shape != program.values[v.inputs[0]].shape


def _needs_buffer(program, user, vid) -> bool:
    if _reinterprets(program, user):
        return True
    if user.op in FUSIBLE:
        return user.op is Op.DYNAMIC_SLICE and vid in user.inputs[1:]
    return user.op not in OpGroup.REDUCE


def _reads(program, vid, materialized, seen=None) -> int:
    seen = set() if seen is None else seen
    for i in program.values[vid].inputs:
        if i in seen:
            continue
        seen.add(i)
        if i not in materialized:
            _reads(program, i, materialized, seen)
    return sum(1 for i in seen if i in materialized)


def _kernel(program: Program, root: int, materialized: set[int]) -> Kernel:
    v = program.values[root]
    nodes, inputs = [], []
    stack, seen = [root], set()
    while stack:
        vid = stack.pop()
        if vid in seen:
            continue
        seen.add(vid)
        if vid != root and vid in materialized:
            inputs.append(vid)
            continue
        val = program.values[vid]
        if val.op is Op.CONSTANT:
            continue
        nodes.append(vid)
        stack.extend(val.inputs)
    nodes.sort(key=list(program.values).index)
    inputs.sort(key=list(program.values).index)
    if v.op in OpGroup.REDUCE:
        kind, reason = "reduce", "reduction with its pointwise producers inside the loop"
    elif v.op is Op.RESHAPE and v.inputs[0] in materialized and root not in program.outputs:
        kind, reason, nodes = "alias", "a reshape of a materialized buffer is a view of it", [root]
    elif _reinterprets(program, v):
        kind, reason, nodes = v.op.value, "a bit cast to another width copies bytes", [root]
    elif v.op in FUSIBLE:
        kind, reason = "pointwise", "pointwise chain: one loop over the output"
    elif v.op is Op.DOT_GENERAL:
        kind, reason = "dot", "contraction"
    elif v.op is Op.CONV_GENERAL:
        kind, reason = "conv", "contraction"
    else:
        kind, reason = v.op.value, "op with its own kernel"
    return Kernel(_name(program, nodes), kind, [root], nodes, inputs, reason, stages=[root],
                  contraction=root if kind in ("dot", "conv") else None)


def _control_flow(program: Program, kernels: list[Kernel]) -> list[Kernel]:
    """A control-flow value is one kernel writing its results (the `tuple_get` values,
    in index order; results nobody reads are left out): it runs its sub-programs, which
    `plan_memory` lowers."""
    results: dict[int, list[int]] = {}
    for v in program.values.values():
        if v.op is Op.TUPLE_GET:
            results.setdefault(v.inputs[0], []).append(v.id)
    out = []
    for k in kernels:
        v = program.values[k.outputs[0]]
        if v.op is Op.TUPLE_GET:
            continue
        if v.op in SUBGRAPH_OPS:
            k.outputs = sorted(results.get(v.id, []),
                               key=lambda r: program.values[r].attrs["index"])
            k.nodes = [v.id, *k.outputs]
            k.reason = "control flow: runs its sub-programs (loop bodies, branches)"
        out.append(k)
    return out


def _name(program: Program, nodes) -> str:
    ops = []
    for vid in reversed(nodes):
        op = program.values[vid].op
        if op not in (Op.RESHAPE, Op.BROADCAST_IN_DIM, Op.CONSTANT) and op.value not in ops:
            ops.append(op.value)
    return "_".join(ops[:4]) or program.values[nodes[-1]].op.value


# ---- row-wise kernels (softmax, layer norm) -------------------------------------

def _strip(dims):
    return [d for d in dims if d != 1]


def _row_split(program, k: Kernel):
    """(full dims or None, row rank or 0 if free, scalar shape or None) of a kernel."""
    v = program.values[k.stages[-1]]
    if k.kind == "reduce":
        x = program.values[v.inputs[0]]
        axes, nrow = sorted(v.attrs["axes"]), len(x.shape) - len(v.attrs["axes"])
        if not axes or axes != list(range(nrow, len(x.shape))) or nrow == 0:
            return None
        return x.shape, nrow, None
    if k.kind == "rowwise":
        return k.dims, k.rows, None
    if k.kind == "pointwise":
        return v.shape, 0, v.shape
    return None


def _compatible(dst, src):
    """(dims, nrow) of a row-wise kernel holding both, or None."""
    (d_dims, d_rows, d_scalar), (s_dims, s_rows, s_scalar) = dst, src
    if d_rows and s_rows:
        return (d_dims, d_rows) if d_dims == s_dims and d_rows == s_rows else None
    if d_rows or s_rows:
        dims, nrow = (d_dims, d_rows) if d_rows else (s_dims, s_rows)
        other_dims, other_scalar = (s_dims, s_scalar) if d_rows else (d_dims, d_scalar)
        if other_dims == dims:
            return dims, nrow
        if other_scalar is not None and _strip(other_scalar) == _strip(dims[:nrow]):
            return dims, nrow
    return None


def _merge_rowwise(program, kernels, consumers):
    """Merges producer kernels into their consumer while every read stays in its row."""
    changed = True
    while changed:
        changed = False
        by_out = {o: k for k in kernels for o in k.outputs}
        for k in kernels:
            split = _row_split(program, k)
            if split is None:
                continue
            for src_id in k.inputs:
                src = by_out.get(src_id)
                if src is None:
                    continue
                s_split = _row_split(program, src)
                both = None if s_split is None else _compatible(split, s_split)
                if both is None:
                    continue
                if any(x is not k and x is not src and set(x.inputs) & set(src.outputs)
                       for x in kernels):
                    continue  # another kernel reads src: keep src's position
                merged = _try_merge(program, src, k, both, consumers)
                if merged is not None:
                    kernels = [merged if x is k else x for x in kernels if x is not src]
                    changed = True
                    break
            if changed:
                break
    return kernels


def _try_merge(program, src: Kernel, dst: Kernel, both, consumers):
    """`src` and `dst` as one row-wise kernel, or None if some read crosses rows."""
    dims, nrow = both
    stages = src.stages + [s for s in dst.stages if s not in src.stages]
    order = {n: i for i, n in enumerate(program.values)}
    nodes = sorted(set(src.nodes) | set(dst.nodes), key=order.__getitem__)
    inputs = [i for i in dict.fromkeys(src.inputs + dst.inputs) if i not in stages]
    outputs = [s for s in stages if s == stages[-1] or s in program.outputs]
    kernel = Kernel(_name(program, nodes), "rowwise", outputs, nodes, inputs,
                    "row-wise: reductions over trailing axes broadcast back over their rows; "
                    "one outer row loop, one pass per stage over a cache-resident row",
                    stages=stages, rows=nrow, dims=tuple(dims))
    try:
        check_rowwise(program, kernel)
    except NotFusible:
        return None
    return kernel


MAX_ROW = 65536  # elements of a row kept in per-thread scratch


def stage_kind(program, kernel: Kernel, s: int) -> str:
    """"reduce", "row" (a value per element of the row) or "scalar" (one value per row)."""
    v = program.values[s]
    if v.op in OpGroup.REDUCE:
        return "reduce"
    return "row" if tuple(v.shape) == tuple(kernel.dims) else "scalar"


def row_index_of(shape, row, row_dims):
    """The index into a per-row scalar of `shape` at the current row."""
    it = iter([r for r, d in zip(row, row_dims) if d != 1])
    return [ix.const(0) if d == 1 else next(it) for d in shape]


def check_rowwise(program, kernel: Kernel) -> None:
    """Raises NotFusible unless every stage reads earlier stages only in its own row."""
    dims, nrow = kernel.dims, kernel.rows
    row = [ix.var(f"r{a}") if d != 1 else ix.const(0) for a, d in enumerate(dims[:nrow])]
    col = [ix.var(f"c{a}") if d != 1 else ix.const(0) for a, d in enumerate(dims[nrow:])]
    extents = {f"r{a}": d for a, d in enumerate(dims[:nrow])}
    extents.update({f"c{a}": d for a, d in enumerate(dims[nrow:])})
    buffers = {i: "in" for i in kernel.inputs}
    scalars: dict[int, str] = {}
    rowbufs: dict[int, tuple[str, int]] = {}  # value -> (row buffer, rank of its rows)
    if upper(math.prod(dims[nrow:]), program.symbols) > MAX_ROW:
        raise NotFusible("rows too long for cache-resident passes")
    for s in kernel.stages:
        v = program.values[s]
        ev = Walker(program, extents, buffers, rowbufs, scalars, row, row_dims=dims[:nrow])
        kind = stage_kind(program, kernel, s)
        if kind == "reduce":
            if program.values[v.inputs[0]].shape != dims:
                raise NotFusible("stage over other dims")
            ev.value(v.inputs[0], row + col)
            scalars[s] = "acc"
        elif kind == "scalar":
            if _strip(v.shape) != _strip(dims[:nrow]):
                raise NotFusible("stage over other dims")
            ev.value(s, row_index_of(v.shape, row, dims[:nrow]))
            scalars[s] = "acc"
        else:
            ev.value(s, row + col)
            rowbufs[s] = ("row", nrow)


# ---- contraction epilogues ------------------------------------------------------

def _merge_epilogues(program, kernels, consumers):
    by_out = {k.outputs[0]: k for k in kernels}
    out = []
    absorbed = set()
    for k in kernels:
        if k.kind != "pointwise":
            continue
        for src_id in k.inputs:
            src = by_out.get(src_id)
            if src is None or src.kind not in ("dot", "conv") or src.epilogue:
                continue
            d, root = program.values[src_id], program.values[k.outputs[0]]
            position = {o: t for t, x in enumerate(kernels) for o in x.outputs}
            if any(position.get(i, -1) > position[src_id] for i in k.inputs if i != src_id):
                continue  # the epilogue reads a value computed after the contraction
            if any(x is not k and src_id in x.inputs for x in kernels):
                continue  # another kernel reads the contraction's result
            if (src_id in program.outputs or len(set(consumers[src_id])) != 1
                    or consumers[src_id][0] not in k.nodes or root.shape != d.shape
                    or root.dtype != d.dtype or not _reads_elementwise(program, k, src_id)):
                continue
            src.epilogue, src.outputs = k.nodes, k.outputs
            src.nodes = src.nodes + k.nodes
            src.inputs = [i for i in dict.fromkeys(src.inputs + k.inputs) if i != src_id]
            src.name = _name(program, src.nodes)
            src.reason = "contraction with its pointwise epilogue applied before the store"
            absorbed.add(id(k))
            break
    for k in kernels:
        if id(k) not in absorbed:
            out.append(k)
    return out


def _reads_elementwise(program, k: Kernel, src_id: int) -> bool:
    """True if kernel `k` reads `src_id` only at the element it writes."""
    return reads_at_element(program, k.outputs, k.inputs, [src_id])


def reads_at_element(program: Program, roots: list[int], inputs: list[int],
                     read: list[int]) -> bool:
    """True if computing `roots` (values of one output shape, over the buffers `inputs`)
    reads the values `read` only at the element being written."""
    shape = program.values[roots[0]].shape
    index = [ix.var(f"a{i}") if d != 1 else ix.const(0) for i, d in enumerate(shape)]
    extents: dict = {f"a{i}": d for i, d in enumerate(shape)}  # symbolic dims too
    ev = Walker(program, extents, {i: "in" for i in inputs if i not in read},
                scalars={i: "acc" for i in read}, row_index=index, row_dims=shape)
    try:
        for root in roots:
            ev.value(root, index)
    except NotFusible:
        return False
    return True


# ---- multi-output pointwise kernels ---------------------------------------------

def _merge_pointwise(program, kernels):
    """Merges a pointwise kernel into a later pointwise kernel of the same output shape
    that reads its outputs only at the element being written, when no kernel in between
    reads them: one loop computes and stores both kernels' outputs (Adam's m, v and
    parameter updates: 3 passes over the gradient and moments become 1)."""
    kernels, t = list(kernels), 0
    while t < len(kernels):
        restart = _merge_into(program, kernels, t)
        t = t + 1 if restart is None else restart
    return kernels


def _merge_into(program, kernels: list[Kernel], t: int) -> int | None:
    """Merges the nearest earlier pointwise kernel that `kernels[t]` can absorb, in place;
    returns the first position whose candidates changed (the merged kernel's old place:
    kernels before it kept their neighbours, so none of them can merge now), or None."""
    k = kernels[t]
    if k.kind != "pointwise":
        return None
    reads = set(k.inputs)
    for s in range(t - 1, -1, -1):
        src = kernels[s]
        if src.kind != "pointwise" or not reads.intersection(src.outputs):
            continue
        outputs = set(src.outputs)
        between = kernels[s + 1:t]
        if any(outputs.intersection(x.inputs) for x in between):
            continue  # a kernel before k reads src's result: src keeps its place
        merged = _pointwise_pair(program, src, k)
        if merged is not None:
            kernels[s:t + 1] = between + [merged]
            return s
    return None


def _pointwise_pair(program, src: Kernel, dst: Kernel) -> Kernel | None:
    """`src` and `dst` as one pointwise kernel with both outputs, or None when their
    output shapes differ, the body grows past MAX_FUSED_OPS or `dst` reads a result of
    `src` at another element than the one it writes."""
    shape = program.values[dst.outputs[0]].shape
    if any(program.values[o].shape != shape for o in src.outputs + dst.outputs):
        return None
    order = {n: i for i, n in enumerate(program.values)}
    nodes = sorted(set(src.nodes) | set(dst.nodes), key=order.__getitem__)
    if sum(program.values[n].op in FUSIBLE for n in nodes) > MAX_FUSED_OPS:
        return None
    if not reads_at_element(program, dst.outputs, dst.inputs,
                            [o for o in src.outputs if o in dst.inputs]):
        return None
    inputs = [i for i in dict.fromkeys(src.inputs + dst.inputs) if i not in src.outputs]
    return Kernel(_name(program, nodes), "pointwise", src.outputs + dst.outputs, nodes, inputs,
                  "pointwise chains over one output shape that read each other's results "
                  "only at the element written: one loop storing every output")
