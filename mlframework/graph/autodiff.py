"""Reverse-mode autodiff on the graph IR.

`grad(y, wrt)` walks the graph backwards from a scalar `y`, applying one VJP
rule per primitive (`vjp.py`, `vjp_contraction.py`) and summing cotangents;
the gradients are new nodes of the same graph, so every backend runs them.
"""
from __future__ import annotations

from mlframework.graph import gen_ops as ops
from mlframework.graph.composites import zeros_like
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import DIFFERENTIABLE
from mlframework.graph.graph import Node, const
from mlframework.graph.layout import stack
from mlframework.graph.vjp import RULES


def grad(y: Node, wrt) -> list[Node]:
    """Gradients of the scalar `y` with respect to each node in `wrt`.

    Returns a list with one node per `wrt` entry, of that node's shape (zeros
    where `y` does not depend on it).

    Raises:
        ShapeError: if y is not a scalar. DTypeError: if y is not a float.
    """
    if y.ndim != 0:
        raise ShapeError(f"grad requires a scalar output, got {y.spec}; use G.jacobian for "
                         "non-scalar outputs or reduce it first")
    if not y.dtype.is_float:
        raise DTypeError(f"grad requires a float output, got {y.spec}")
    return vjp(y, wrt, const(1, y.dtype, y.graph))


def vjp(y: Node, wrt, cotangent: Node) -> list[Node]:
    """Vector-Jacobian products: d<cotangent, y>/d(wrt), for y of any shape."""
    wrt = [wrt] if isinstance(wrt, Node) else list(wrt)
    needed = _nodes_between(wrt, y)
    cotangents: dict[int, Node] = {y.id: cotangent}
    for node in reversed(y.graph.nodes[: y.id + 1]):
        ct = cotangents.get(node.id)
        if ct is None or node.op not in DIFFERENTIABLE:
            continue
        for x, g in zip(node.inputs, RULES[node.op](node, ct)):
            if g is None or x.id not in needed:
                continue
            prev = cotangents.get(x.id)
            cotangents[x.id] = g if prev is None else prev + g
    return [cotangents.get(w.id) if w.id in cotangents else zeros_like(w) for w in wrt]


def _nodes_between(sources: list[Node], target: Node) -> set[int]:
    """Ids of nodes on some path from a source to the target (inclusive)."""
    reaches_target = {target.id}
    for node in reversed(target.graph.nodes[: target.id + 1]):
        if node.id in reaches_target:
            reaches_target.update(i.id for i in node.inputs)
    from_sources = {s.id for s in sources}
    for node in target.graph.nodes[: target.id + 1]:
        if any(i.id in from_sources for i in node.inputs):
            from_sources.add(node.id)
    return reaches_target & from_sources


def jacobian(y: Node, x: Node) -> Node:
    """The Jacobian dy/dx, of shape y.shape + x.shape.

    Built as one reverse pass per element of y, so its graph grows with y.size.
    """
    if not y.dtype.is_float:
        raise DTypeError(f"jacobian requires a float output, got {y.spec}")
    flat = ops.reshape(y, (y.size,))
    rows = []
    for i in range(y.size):
        onehot = ops.convert(ops.eq(ops.iota(flat.dtype, (y.size,), 0), float(i)), y.dtype)
        rows.append(vjp(flat, [x], onehot)[0])
    if not rows:
        return ops.broadcast_in_dim(const(0, y.dtype, y.graph), y.shape + x.shape, ())
    return ops.reshape(stack(rows), y.shape + x.shape)
