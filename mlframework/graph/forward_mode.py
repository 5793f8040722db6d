"""Forward-mode autodiff on the graph IR: `jvp` and `jacfwd`.

`jvp(fn, primals, tangents)` traces fn on the primals, then walks the nodes fn
added, in order, building each one's tangent from its inputs' tangents with
one JVP rule per primitive (`jvp_rules.py`). Tangents are new nodes of the same
graph, so every backend runs them, and reverse mode can differentiate them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlframework.core import pytree, symbolic
from mlframework.graph import custom_gradients
from mlframework.graph import gen_ops as ops
from mlframework.graph.composites import zeros_like
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import Op, OpGroup
from mlframework.graph.graph import Node, const, current_graph
from mlframework.graph.jvp_rules import RULES, SUBGRAPH_RULES
from mlframework.graph.layout import stack

_TUPLES = OpGroup.CONTROL - {Op.TUPLE_GET}  # control-flow nodes: tuples of results


def jvp(fn: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Forward mode: fn's outputs at `primals` and their derivatives along `tangents`.

    Args:
        fn: takes nodes (pytrees of them) and returns a node or a pytree of nodes.
        primals: a tuple or list of fn's arguments: pytrees of nodes or arrays.
        tangents: the same structure; each leaf a node or array of its primal's shape,
            converted to the primal's dtype. Leaves for integer or bool primals are ignored
            (pass zeros), as they have no tangent.

    Returns:
        (outputs, output tangents): fn's result and, in the same structure, each output's
        derivative along the tangents (zeros where it does not depend on the primals,
        and for integer outputs). Values fn closes over are constants.

    Raises:
        TypeError: primals or tangents is not a tuple or list, or their structures differ;
            fn goes through a `G.custom_vjp` function (which defines reverse mode only).
        ShapeError: a tangent's shape differs from its primal's.
    """
    args, seeds = _seeded_arguments("jvp", primals, tangents)
    graph = current_graph()
    start = len(graph.nodes)
    out_leaves, out_tree = _traced(fn, args)
    tangent_of = push_tangents(graph.nodes[start:], seeds)
    out_tangents = [_tangent(tangent_of, o) for o in out_leaves]
    return pytree.unflatten(out_tree, out_leaves), pytree.unflatten(out_tree, out_tangents)


def jacfwd(fn: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """The Jacobian of `fn` by forward mode, as a function of fn's arguments.

    `jacfwd(fn)(*args)` returns, for each output leaf y of fn, dy/dx of shape
    y.shape + x.shape and y's dtype for x = args[argnums] (a float node or array; for a
    pytree of them, a pytree of such Jacobians), in the structure of fn's result; with a
    tuple `argnums`, each leaf is a tuple of those, one per listed argument, as jax.jacfwd.
    fn is traced once; its tangents are pushed once per element of x, so the graph grows
    with x.size: meant for small inputs (`G.jacobian`, in reverse mode, grows with the
    output's size instead).

    Raises:
        DTypeError: an output or a differentiated argument is not a float.
        TypeError: argnums is not an int or a tuple of ints indexing the arguments.
    """
    def jacobian(*args):
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        if not nums or not all(isinstance(i, int) and -len(args) <= i < len(args)
                               for i in nums):
            raise TypeError(f"jacfwd(argnums={argnums!r}) requires positions among fn's "
                            f"{len(args)} arguments")
        values = list(args)
        for i in nums:
            values[i] = pytree.tree_map(lambda x: _copy(x, "jacfwd"), values[i])
        graph = current_graph()
        start = len(graph.nodes)
        out_leaves, out_tree = _traced(fn, values)
        for y in out_leaves:
            if not y.dtype.is_float:
                raise DTypeError(f"jacfwd requires float outputs, got {y.spec}")
        added = graph.nodes[start:]
        per_arg = []  # per argument, per output leaf: the Jacobians in the argument's structure
        for i in nums:
            x_leaves, x_tree = pytree.flatten(values[i])
            per_leaf = [_jacobians(added, out_leaves, x) for x in x_leaves]
            per_arg.append([pytree.unflatten(x_tree, [j[k] for j in per_leaf])
                            for k in range(len(out_leaves))])
        leaves = [per_arg[0][k] if isinstance(argnums, int) else tuple(j[k] for j in per_arg)
                  for k in range(len(out_leaves))]
        return pytree.unflatten(out_tree, leaves)
    return jacobian


def _jacobians(added, outputs, x):
    """dy/dx for each y in `outputs`, one tangent push per element of x."""
    basis = np.eye(symbolic.static(x.size, "jacfwd's number of inputs x.size"),
                   dtype=x.dtype.numpy)
    columns: list[list[Node]] = [[] for _ in outputs]
    for e in basis:
        tangent_of = push_tangents(added, {x.id: const(e.reshape(x.shape), graph=x.graph)})
        for column, y in zip(columns, outputs):
            column.append(_tangent(tangent_of, y))
    if not x.size:
        return [ops.broadcast_in_dim(const(0, y.dtype, y.graph), y.shape + x.shape, ())
                for y in outputs]
    return [ops.reshape(stack(c, y.ndim), y.shape + x.shape) for c, y in zip(columns, outputs)]


def push_tangents(nodes, seeds: dict[int, Node]) -> dict[int, Node]:
    """Tangents of `nodes` (in topological order, of one graph) given `seeds`, a map from
    node ids to their tangents. Returns the map extended with every node that has a nonzero
    tangent (for a control-flow node, a tuple with one entry per result, None for none).

    Raises:
        TypeError: a node is the output of a `G.custom_vjp` function and has a tangent.
        NotImplementedError: from a rule that refuses a case (scatter_mul's updates with
            repeated indices).
    """
    tangent_of = dict(seeds)
    for node in nodes:
        if node.id in tangent_of or not (node.dtype.is_float or node.op in _TUPLES):
            continue
        tangents = [tangent_of.get(x.id) for x in node.inputs]
        if all(t is None for t in tangents):
            continue
        call = custom_gradients.call_of(node)
        if call is not None:
            raise TypeError(f"jvp cannot differentiate through the custom_vjp function "
                            f"{call.name} (called at {node.source}): custom_vjp defines reverse "
                            f"mode only; use G.grad, or a function without custom_vjp")
        if node.op not in RULES:
            continue  # a zero derivative: floor, sign, stop_gradient...
        rule = RULES[node.op]
        tangent_of[node.id] = rule(node, tangents, push_tangents) \
            if node.op in SUBGRAPH_RULES else rule(node, tangents)
    return tangent_of


def _tangent(tangent_of, node) -> Node:
    t = tangent_of.get(node.id)
    return zeros_like(node) if t is None else t


def _traced(fn, args):
    """fn's result on `args`, flattened into nodes (Python numbers become constants)."""
    leaves, tree = pytree.flatten(fn(*args))
    return [o if isinstance(o, Node) else const(o) for o in leaves], tree


def _seeded_arguments(what, primals, tangents):
    """fn's arguments (a copy of each float primal, so that only these carry tangents,
    not other uses of the same node) and the map from the copies' ids to the tangents."""
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise TypeError(f"{what} requires primals and tangents as tuples or lists of fn's "
                        f"arguments, got {type(primals).__name__} and {type(tangents).__name__}")
    p_leaves, p_tree = pytree.flatten(tuple(primals))
    t_leaves, t_tree = pytree.flatten(tuple(tangents))
    if p_tree != t_tree:
        raise TypeError(f"{what} requires tangents in the structure of the primals, got "
                        f"{t_tree} for {p_tree}")
    args, seeds = [], {}
    for p, t in zip(p_leaves, t_leaves):
        p = p if isinstance(p, Node) else const(p)
        if p.dtype.is_float:
            t = const(t, p.dtype, p.graph) if not isinstance(t, Node) else \
                ops.convert(t, p.dtype) if t.dtype is not p.dtype else t
            if t.shape != p.shape:
                raise ShapeError(f"{what} requires each tangent in its primal's shape, got "
                                 f"{t.spec} for {p.spec}")
            p = _copy(p, what)
            seeds[p.id] = t
        args.append(p)
    return pytree.unflatten(p_tree, args), seeds


def _copy(x, what) -> Node:
    """A new node equal to float x (array-likes become constants)."""
    x = x if isinstance(x, Node) else const(x)
    if not x.dtype.is_float:
        raise DTypeError(f"{what} requires float inputs to differentiate with respect to, "
                         f"got {x.spec}")
    return ops.reshape(x, x.shape)
