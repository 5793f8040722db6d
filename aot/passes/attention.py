"""Pass `fuse_attention`: scores -> softmax -> weighted sum as one kernel.

    kernels = fuse_attention(program, kernels)     # run by `fuse`, after its own rules

Finds three kernels that `fuse` made from scaled dot-product attention,

    scores = dot_general(q, k)           # [batch..., rows..., keys], contracting the head size
    probs  = softmax(logits(scores))     # one row-wise kernel: logits are pointwise in
                                         # scores (scale, additive or boolean mask)
    out    = dot_general(probs, v)       # [batch..., rows..., dv], contracting the keys

and replaces them with one kernel of kind "attention" (aot/codegen/attention.py,
runtime_c/mlf_attention.h): blocks of query rows against blocks of keys with an online
softmax, so neither the scores nor the probabilities get a buffer. The kernel's `stages`
are [scores, logits, probs, out]; its `contraction` is the scores' dot_general.

It fires only on float32 programs with static shapes whose operands the GEMM reads as
strided views (`dot_layout`), with head sizes up to MAX_HEAD, where the scores and
probabilities have no other reader (nor are outputs);
anything else keeps the three kernels. Symbolic shapes and other dtypes are left alone.
"""
from __future__ import annotations

import numpy as np

from aot.passes.layouts import dot_layout, packing
from aot.program import indexing as ix
from aot.program.kernel import Kernel
from aot.program.program import Program
from aot.program.walk import ELEMENTWISE, splat
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import is_symbolic
from mlframework.graph.gen_optypes import Op

# A masked logit at or below this (a select's fill) underflows exp() to 0 next to any
# allowed logit: a key block whose logits are all masked is skipped.
SKIP_FILL = -1e9
MAX_HEAD = 256  # head sizes up to this: a work item's blocks (~70 KB at 256) live on its stack


def fuse_attention(program: Program, kernels: list[Kernel]) -> list[Kernel]:
    """`kernels` with each matched scores/softmax/weighted-sum triple as one kernel."""
    if program.symbols or any(is_symbolic(d) for v in program.values.values()
                              for d in v.shape):
        return kernels
    consumers = program.consumers()
    made = {o: t for t, k in enumerate(kernels) for o in k.outputs}
    replace: dict[int, Kernel] = {}
    drop: set[int] = set()
    for t, k in enumerate(kernels):
        if k.kind != "rowwise" or t in drop:
            continue
        found = _match(program, kernels, made, consumers, k)
        if found is None:
            continue
        a, b, stages = found
        fused = _fused(program, kernels[a], k, kernels[b], stages)
        replace[b] = fused
        drop |= {a, t}
    return [replace.get(t, k) for t, k in enumerate(kernels) if t not in drop]


def _fused(program, a: Kernel, r: Kernel, b: Kernel, stages: list[int]) -> Kernel:
    scores, _, probs, out = stages
    inputs = list(a.inputs) + [i for i in r.inputs if i != scores and i not in a.inputs]
    inputs += [i for i in b.inputs if i != probs and i not in inputs]
    order = list(program.values)
    nodes = sorted(set(a.nodes) | set(r.nodes) | set(b.nodes), key=order.index)
    return Kernel("attention", "attention", [out], nodes, sorted(inputs, key=order.index),
                  "scores, softmax and weighted sum: online softmax over key blocks, "
                  "the score matrix never stored", stages=stages, contraction=scores)


def _match(program, kernels, made, consumers, r: Kernel):
    """(index of the scores kernel, of the weighted-sum kernel, stages) or None."""
    vals = program.values
    if len(r.outputs) != 1:
        return None
    p = vals[r.outputs[0]]
    if p.op is not Op.DIV or p.dtype is not DType.FLOAT32 or len(consumers[p.id]) != 1:
        return None
    e, den = (vals[i] for i in p.inputs)
    total = _row_source(program, den)
    if e.op is not Op.EXP or total is None or total.op is not Op.REDUCE_SUM \
            or total.inputs[0] != e.id:
        return None
    sub = vals[e.inputs[0]]
    if sub.op is not Op.SUB:
        return None
    x, top = vals[sub.inputs[0]], _row_source(program, vals[sub.inputs[1]])
    if top is None or top.op is not Op.REDUCE_MAX or top.inputs[0] != x.id:
        return None
    n = len(x.shape)
    if any(tuple(v.attrs["axes"]) != (n - 1,) for v in (total, top)):
        return None
    scores = _scores_of(program, r, x)
    if scores is None or scores not in made or made[p.id] != kernels.index(r):
        return None
    a = made[scores]
    b_vid = consumers[p.id][0]
    if b_vid not in made:
        return None
    b = made[b_vid]
    ka, kb = kernels[a], kernels[b]
    if not (_plain_dot(program, ka, scores) and _plain_dot(program, kb, b_vid)):
        return None
    if vals[b_vid].inputs[0] != p.id or vals[b_vid].inputs[1] == p.id \
            or set(consumers[scores]) - set(r.nodes) or {p.id, scores} & set(program.outputs):
        return None
    if not _compatible(program, vals[scores], vals[b_vid]):
        return None
    return a, b, [scores, x.id, p.id, b_vid]


def _row_source(program, v):
    """The reduction over the last axis that v broadcasts back over its rows, or None."""
    n = len(v.shape)
    index = [ix.var(f"a{i}") for i in range(n)]
    extents = {f"a{i}": d for i, d in enumerate(v.shape)}
    while v.op in (Op.RESHAPE, Op.BROADCAST_IN_DIM):
        x = program.values[v.inputs[0]]
        if v.op is Op.RESHAPE:
            index = ix.reshape(index, x.shape, v.shape, extents)
        else:
            index = ix.broadcast_in_dim(index, x.shape, v.shape, v.attrs["broadcast_dimensions"])
        v = x
    if v.op not in (Op.REDUCE_SUM, Op.REDUCE_MAX):
        return None
    kept = [i.c() for i, d in zip(index, v.shape) if d != 1]
    want = [f"a{i}" for i in range(n - 1) if program.values[v.inputs[0]].shape[i] != 1]
    return v if kept == want else None


def _scores_of(program, r: Kernel, x):
    """The scores value that the logits x are a pointwise function of, or None: every
    value between them is elementwise, of the scores' shape, inside kernel r."""
    found = set()
    inside = set(r.nodes)

    def reaches(vid) -> bool:  # does vid depend on a materialized dot_general result?
        v = program.values[vid]
        if vid not in inside:
            if v.op is Op.DOT_GENERAL and vid in r.inputs:
                found.add(vid)
                return True
            return False
        hits = [reaches(i) for i in v.inputs]
        if any(hits) and (v.op not in ELEMENTWISE or v.shape != x.shape):
            found.add(-1)  # a reshuffle or reduction of the scores: not attention's logits
        return any(hits)

    if not reaches(x.id) or len(found) != 1 or -1 in found:
        return None
    return found.pop()


def _plain_dot(program, k: Kernel, vid) -> bool:
    """k is a float32 GEMM of vid alone (no epilogue) over strided views, weights unpacked."""
    v = program.values[vid]
    lhs, rhs = (program.values[i] for i in v.inputs)
    return (k.kind == "dot" and k.contraction == vid and k.outputs == [vid] and not k.epilogue
            and v.dtype is DType.FLOAT32 and lhs.dtype is DType.FLOAT32
            and rhs.dtype is DType.FLOAT32 and packing(program, v) is None
            and dot_layout(program, v)[1] is not None)


def _compatible(program, s, o) -> bool:
    """The scores s [batch..., rows..., keys] (one key axis) and the weighted sum o read
    the same [batch, rows, keys] view: o's left operand is row-major over it."""
    sa, oa = s.attrs, o.attrs
    nb = len(sa["lhs_batch"])
    n = len(s.shape)
    (bs, m, keys, _), _ = dot_layout(program, s)
    (bo, mo, dv, ko), st = dot_layout(program, o)
    if max(dot_layout(program, s)[0][3], dv) > MAX_HEAD:
        return False
    rhs_free = len(program.values[s.inputs[1]].shape) - nb - len(sa["rhs_contracting"])
    return (list(sa["lhs_batch"]) == list(range(nb)) and list(sa["rhs_batch"]) == list(range(nb))
            and rhs_free == 1 and list(oa["lhs_batch"]) == list(range(nb))
            and list(oa["rhs_batch"]) == list(range(nb))
            and list(oa["lhs_contracting"]) == [n - 1] and len(oa["rhs_contracting"]) == 1
            and len(program.values[o.inputs[1]].shape) == nb + 2
            and (bo, mo, ko) == (bs, m, keys)
            and all(got == want or size == 1 for got, want, size in
                    zip(st[:3], (m * keys, keys, 1), (bo, mo, ko))))


def masked_fill(program: Program, logits: int) -> tuple[int, float] | None:
    """(the condition, the fill) when the logits are select(condition, ..., fill) with a
    constant fill at or below SKIP_FILL: key blocks where the condition holds nowhere are
    skipped by the attention kernel."""
    v = program.values[logits]
    if v.op is not Op.SELECT:
        return None
    fill = _splat_value(program, v.inputs[2])
    if fill is None or not fill <= SKIP_FILL or fill == float("-inf"):
        return None
    return v.inputs[0], fill


def _splat_value(program, vid) -> float | None:
    v = program.values[vid]
    while v.op in (Op.RESHAPE, Op.BROADCAST_IN_DIM):
        v = program.values[v.inputs[0]]
    if v.op is not Op.CONSTANT:
        return None
    one = splat(v.attrs["value"])
    return None if one is None else float(np.asarray(one))
