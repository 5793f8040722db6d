"""Sub-graphs: tracing a Python function into the body of a control-flow node, and
copying a sub-graph back into another graph.

    body, out_tree = trace(fn, (carry_specs, x_specs), "scan_body")

A body is traced once, into a `Graph` nested in the graph being traced (its
`parent`). Its parameters are the function's arguments, then the captures: values
of enclosing graphs the function reads, which the control-flow node passes as
explicit operands (`Graph.capture`).
"""
from __future__ import annotations

from mlframework.core import pytree
from mlframework.graph import custom_gradients
from mlframework.graph.broadcasting import as_node
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Graph, Node, build, current_graph, parameter, tracing
from mlframework.graph.shape_rules_control import result_specs


def trace(fn, args, name: str):
    """Traces `fn(*args)` into a new sub-graph of the graph being traced.

    `args` is a tuple of pytrees of `Shape`s; each leaf becomes a parameter, in
    order. Returns the graph (outputs set, Python scalars in the result made
    constants) and the pytree structure of the result.
    """
    parent = current_graph()
    graph = Graph(f"{parent.name}/{name}")
    graph.parent = parent
    leaves, tree = pytree.flatten(tuple(args))
    with tracing(graph):
        params = [parameter(s) for s in leaves]
        result = fn(*pytree.unflatten(tree, params))
        out_leaves, out_tree = pytree.flatten(result)
        outputs = []
        for o in out_leaves:
            o = as_node(o)
            outputs.append(o if o.graph is graph else graph.capture(o))
        graph.outputs = outputs
    return graph, out_tree


def align_captures(graphs: list[Graph], explicit: int) -> list[Node]:
    """Gives every graph of `graphs` (all nested in one graph, each with `explicit`
    parameters before its captures) the same captures in the same order: the union,
    in order of first use. Returns those outer values, the node's extra operands."""
    union: dict[int, Node] = {}
    for g in graphs:
        for c in g.captures:
            union.setdefault(id(c), c)
    for g in graphs:
        for c in union.values():
            if id(c) not in {id(x) for x in g.captures}:
                g.capture(c)
        by_outer = {id(c): p for c, p in zip(g.captures, g.parameters[explicit:])}
        g.parameters = g.parameters[:explicit] + [by_outer[k] for k in union]
        g.captures = list(union.values())
        for i, p in enumerate(g.parameters):
            p.attrs["index"] = i
    return list(union.values())


def inline(graph: Graph, args: list[Node], values: dict[int, Node] | None = None) -> list[Node]:
    """Copies the nodes of `graph` into the graph being traced, its parameter i
    replaced by args[i]; returns the copies of its outputs. The copies keep the
    originals' shapes and source lines, and the copies of a `G.custom_vjp` call's nodes
    keep its gradient; `values`, if given, receives every node's copy (by the
    original's id)."""
    target = current_graph()
    values = {} if values is None else values
    for n in graph.nodes:
        if n.op is Op.PARAMETER:
            values[n.id] = args[n.attrs["index"]]
        else:
            values[n.id] = build(n.op, [values[i.id] for i in n.inputs], n.attrs, n.spec,
                                 target, n.source)
    custom_gradients.copy_calls(graph, values)
    return [values[o.id] for o in graph.outputs]


def results(node: Node) -> list[Node]:
    """The `tuple_get` nodes reading every result of control-flow node `node`, in order."""
    return [build(Op.TUPLE_GET, [node], {"index": i}, spec)
            for i, spec in enumerate(result_specs(node))]


__all__ = ["align_captures", "inline", "results", "trace"]
