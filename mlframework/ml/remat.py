"""Gradient checkpointing: recompute chosen blocks' forward pass during the backward pass.

    block = remat.checkpoint(lambda ctx, x: layers.dense(ctx, G.relu(x), 512))
    y = block(ctx / "block1", x)          # traced as usual, and recorded
    grads = remat.grad(loss, params)      # as G.grad, but re-traces each block

`grad` walks the graph backwards like `G.grad`. When it reaches a recorded
block it traces the block's function again on its (saved) inputs and
back-propagates through the new copy, so the activations inside the block
are needed only briefly: the forward copy's intermediates die as soon as the
block's output exists. The copy's inputs get a zero that depends on the
incoming cotangent, which keeps a backend's common-subexpression pass from
merging the copy back into the forward pass and forces it to run late.

Blocks must be pure functions of their arguments and the variables they
read. State they touch (a context's RNG state and assigned variables) is
rewound through `register_trace_state` hooks to what it was when the block
first ran, so a recomputed dropout draws the same mask as the forward pass,
and is put back afterwards, so the recomputation changes no state.
"""
from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from mlframework import graph as G
from mlframework.core import pytree
from mlframework.graph.autodiff import backprop_node

_SEGMENTS: "weakref.WeakKeyDictionary[G.Graph, list[_Segment]]" = weakref.WeakKeyDictionary()
_STATE_HOOKS: list = []


def register_trace_state(save: Callable[[], Any], restore: Callable[[Any], None]) -> None:
    """Registers `save() -> snapshot` and `restore(snapshot)` for trace-time state
    that a block may change (called around every recomputation)."""
    _STATE_HOOKS.append((save, restore))


class _Segment:
    """A recorded call of a checkpointed block: nodes [start, end) of its graph."""

    def __init__(self, fn, tree, leaves, start, end, outputs, state_before):
        self.fn, self.tree, self.leaves = fn, tree, leaves
        self.start, self.end, self.outputs = start, end, outputs
        self.state_before = state_before


def checkpoint(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Marks `fn` (any function of nodes and other values) for recomputation by `grad`."""
    @functools.wraps(fn)
    def block(*args, **kwargs):
        leaves, tree = pytree.flatten((args, kwargs))
        nodes = [x for x in leaves if isinstance(x, G.Node)]
        graph = nodes[0].graph if nodes else G.current_graph()
        before = [save() for save, _ in _STATE_HOOKS]
        start = len(graph.nodes)
        out = fn(*args, **kwargs)
        outputs = [o for o in pytree.flatten(out)[0] if isinstance(o, G.Node)]
        _SEGMENTS.setdefault(graph, []).append(
            _Segment(fn, tree, leaves, start, len(graph.nodes), outputs, before))
        return out
    return block


def grad(y: G.Node, wrt: G.Node | Sequence[G.Node]) -> list[G.Node]:
    """Gradients of scalar `y` with respect to `wrt`, as `G.grad`, recomputing
    checkpointed blocks in the backward pass. Same errors as `G.grad`."""
    wrt = [wrt] if isinstance(wrt, G.Node) else list(wrt)
    if not any(s.end <= y.id + 1 for s in _SEGMENTS.get(y.graph, [])):
        return G.grad(y, wrt)
    if y.ndim != 0 or not y.dtype.is_float:
        return G.grad(y, wrt)  # G.grad raises the right error
    graph = y.graph
    depends = {w.id for w in wrt}
    _extend_depends(graph, depends, 0)
    cotangents = {y.id: G.const(1, y.dtype, graph)}
    _walk(graph, cotangents, depends, y.id, 0)
    return [cotangents[w.id] if w.id in cotangents else G.zeros_like(w) for w in wrt]


def _extend_depends(graph, depends: set, start: int) -> None:
    """Adds the ids of float nodes from `start` on that depend on a node in `depends`."""
    for node in graph.nodes[start:]:
        if node.dtype.is_float and any(i.id in depends for i in node.inputs):
            depends.add(node.id)


def _outermost(graph, lo: int, hi: int) -> dict[int, _Segment]:
    """Segments inside [lo, hi], not nested in another, by their last node id."""
    inside = [s for s in _SEGMENTS.get(graph, []) if s.start >= lo and s.end - 1 <= hi
              and s.end > s.start]
    outer = [s for s in inside
             if not any(o is not s and o.start <= s.start and s.end <= o.end for o in inside)]
    return {s.end - 1: s for s in outer}


def _walk(graph, cotangents: dict, depends: set, hi: int, lo: int) -> None:
    """Back-propagates cotangents through nodes hi..lo, recomputing segments."""
    segments = _outermost(graph, lo, hi)
    i = hi
    while i >= lo:
        segment = segments.get(i)
        if segment is not None:
            _backprop_segment(graph, segment, cotangents, depends)
            i = segment.start - 1
            continue
        backprop_node(graph.nodes[i], cotangents, depends)
        i -= 1


def _backprop_segment(graph, seg: _Segment, cotangents: dict, depends: set) -> None:
    inner = [(k, o) for k, o in enumerate(seg.outputs) if seg.start <= o.id < seg.end]
    inner_ids = {o.id for _, o in inner}
    leaked = [n for n in cotangents if seg.start <= n < seg.end and n not in inner_ids]
    if leaked:
        raise ValueError(f"a checkpointed block ({seg.fn.__name__}) computed node "
                         f"#{leaked[0]} that is used outside the block without being "
                         "returned by it; return every value used later")
    cts = [(k, cotangents.pop(o.id, None)) for k, o in inner]
    cts = [(k, ct) for k, ct in cts if ct is not None]
    if not cts or not any(n in depends for n in range(seg.start, seg.end)):
        return
    probe = cts[0][1]
    start = len(graph.nodes)
    zero = G.reshape(G.slice(probe, [0] * probe.ndim, [1] * probe.ndim), ()) * 0
    leaves = [x + G.convert(zero, x.dtype) if isinstance(x, G.Node) and x.dtype.is_float
              else x for x in seg.leaves]
    now = [save() for save, _ in _STATE_HOOKS]  # the state after the whole forward pass
    for (_, restore), snapshot in zip(_STATE_HOOKS, seg.state_before):
        restore(snapshot)
    try:
        args, kwargs = pytree.unflatten(seg.tree, leaves)
        redo = [o for o in pytree.flatten(seg.fn(*args, **kwargs))[0] if isinstance(o, G.Node)]
    finally:
        for (_, restore), snapshot in zip(_STATE_HOOKS, now):
            restore(snapshot)
    if len(redo) != len(seg.outputs):
        raise ValueError(f"checkpointed block {seg.fn.__name__} returned {len(redo)} nodes "
                         f"when recomputed, {len(seg.outputs)} the first time; it must be pure")
    _extend_depends(graph, depends, start)
    for k, ct in cts:
        node = redo[k]
        prev = cotangents.get(node.id)
        cotangents[node.id] = ct if prev is None else prev + ct
    _walk(graph, cotangents, depends, len(graph.nodes) - 1, start)


__all__ = ["checkpoint", "grad", "register_trace_state"]
