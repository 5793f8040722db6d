"""Reverse-mode autodiff on the graph IR.

`grad(y, wrt)` walks the graph backwards from a scalar `y`, applying one VJP
rule per primitive (`vjp.py`, `vjp_contraction.py`) and summing cotangents;
the gradients are new nodes of the same graph, so every backend runs them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlframework.core import symbolic
from mlframework.graph import custom_gradients
from mlframework.graph import gen_ops as ops
from mlframework.graph.composites import zeros_like
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import DIFFERENTIABLE, Op, OpGroup
from mlframework.graph.graph import Node, const
from mlframework.graph.layout import stack
from mlframework.graph.vjp import input_cotangents


# Non-differentiable ops carry no gradient, which is right for all of them (their derivative
# is zero) but these, whose derivative is simply not written yet: fail rather than be wrong.
_NO_RULE_YET = frozenset({Op.SELECT_AND_SCATTER_ADD})
_TUPLES = OpGroup.CONTROL - {Op.TUPLE_GET}


def grad(y: Node, wrt: Node | Sequence[Node]) -> list[Node]:
    """Gradients of the scalar `y` with respect to each node in `wrt` (a node or a list).

    Returns a list with one node per `wrt` entry, of that node's shape and dtype
    (zeros where `y` does not depend on it). Paths through `stop_gradient`,
    integer or bool values and non-differentiable ops (comparisons, argmax,
    floor...) carry no gradient.

    Raises:
        ShapeError: if y is not a scalar. DTypeError: if y or a `wrt` node is not a float.
    """
    if y.ndim != 0:
        raise ShapeError(f"grad requires a scalar output, got {y.spec}; use G.jacobian for "
                         "non-scalar outputs or reduce it first")
    if not y.dtype.is_float:
        raise DTypeError(f"grad requires a float output, got {y.spec}")
    return vjp(y, wrt, const(1, y.dtype, y.graph))


def vjp(y: Node, wrt: Node | Sequence[Node], cotangent: Node) -> list[Node]:
    """Vector-Jacobian products d<cotangent, y>/d(wrt) for y of any float shape.

    `cotangent` has y's shape and dtype. Returns one node per `wrt` entry, as `grad`.
    """
    return vjp_outputs([y], [cotangent], wrt)


def vjp_outputs(ys: Sequence[Node], cotangents: Sequence[Node | None],
                wrt: Node | Sequence[Node]) -> list[Node]:
    """`vjp` for several outputs of one graph at once: sum_k <cotangents[k], ys[k]>
    differentiated; a None cotangent (or a non-float y) contributes nothing."""
    nodes = [wrt] if isinstance(wrt, Node) else list(wrt)
    graph = ys[0].graph
    for w in nodes:
        if not isinstance(w, Node) or w.graph is not graph:
            raise TypeError(f"grad requires nodes of the output's graph to differentiate "
                            f"with respect to, got {w!r}")
        if not w.dtype.is_float:
            raise DTypeError(f"grad requires float inputs to differentiate with respect to, "
                             f"got {w.spec}")
    seeds: dict[int, Node] = {}
    for y, ct in zip(ys, cotangents):
        if ct is not None and y.dtype.is_float:
            seeds[y.id] = ct if y.id not in seeds else seeds[y.id] + ct
    if not seeds:
        return [zeros_like(w) for w in nodes]
    last = max(seeds)
    needed = _nodes_between(nodes, [graph.nodes[i] for i in seeds])
    for node in reversed(graph.nodes[: last + 1]):
        backprop_node(node, seeds, needed)
    return [seeds[w.id] if w.id in seeds else zeros_like(w) for w in nodes]


def backprop_node(node: Node, cotangents: dict[int, Node], needed: set[int]) -> None:
    """One step of reverse mode: adds node's input cotangents to `cotangents`.

    `cotangents` maps node ids to their accumulated cotangent; only inputs
    whose id is in `needed` receive one. Nodes without a cotangent, and
    non-differentiable ops (zero derivative), add nothing.

    Raises:
        NotImplementedError: for an op whose derivative is not written yet.
        TypeError, ShapeError, DTypeError, ValueError: from a `G.custom_vjp` function's bwd.
    """
    ct = cotangents.get(node.id)
    if ct is None:
        return
    wants = [x.id in needed for x in node.inputs]
    if not any(wants):  # a `wrt` node whose own inputs are not needed
        return
    call = custom_gradients.call_of(node)
    if call is not None:  # the output of a G.custom_vjp function: its bwd gives the gradient
        call.backprop(node, cotangents, needed)
        return
    if node.op not in DIFFERENTIABLE:
        if node.op is Op.WHILE_LOOP:
            raise NotImplementedError(
                f"grad through while_loop is not supported: reverse mode needs a trip count "
                f"known when the graph is built; use G.fori_loop with Python int bounds or "
                f"G.scan with a fixed length (the loop is at {node.source})")
        if node.op in _NO_RULE_YET:
            raise NotImplementedError(
                f"grad through {node.op.value} is not implemented (it is the gradient of "
                f"reduce_window_max, so this is a second-order gradient of max pooling), "
                f"at {node.source}")
        return  # a zero derivative: comparisons, floor, sign, stop_gradient...
    for x, g, want in zip(node.inputs, input_cotangents(node, ct, wants, vjp_outputs),
                            wants):
        if g is None or not want:
            continue
        prev = cotangents.get(x.id)
        cotangents[x.id] = g if prev is None else prev + g


def _nodes_between(sources: list[Node], targets: list[Node]) -> set[int]:
    """Ids of the float nodes (and control-flow nodes, tuples of results) on some path
    from a source to a target (inclusive)."""
    last = max(t.id for t in targets)
    nodes = targets[0].graph.nodes[: last + 1]
    reaches_target = {t.id for t in targets}
    for node in reversed(nodes):
        if node.id in reaches_target:
            reaches_target.update(i.id for i in node.inputs)
    from_sources = {s.id for s in sources}
    for node in nodes:
        if (node.dtype.is_float or node.op in _TUPLES) and \
                any(i.id in from_sources for i in node.inputs):
            from_sources.add(node.id)
    return reaches_target & from_sources


def jacobian(y: Node, x: Node) -> Node:
    """The Jacobian dy/dx, of shape y.shape + x.shape (both float).

    Built as one reverse pass per element of y, so its graph grows with y.size:
    meant for small outputs.

    Raises:
        DTypeError: if y or x is not a float.
    """
    if not y.dtype.is_float:
        raise DTypeError(f"jacobian requires a float output, got {y.spec}")
    size = symbolic.static(y.size, "jacobian's number of outputs y.size")
    flat = ops.reshape(y, (size,))
    basis = np.eye(size, dtype=y.dtype.numpy)
    rows = [vjp(flat, [x], const(basis[i], graph=y.graph))[0] for i in range(size)]
    if not rows:
        return ops.broadcast_in_dim(const(0, x.dtype, y.graph), y.shape + x.shape, ())
    return ops.reshape(stack(rows), y.shape + x.shape)
