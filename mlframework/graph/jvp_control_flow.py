"""JVP rules of the control-flow ops.

A control-flow node is a tuple of results, so its tangent is a tuple (one
entry per result, None where a result has none) that the `tuple_get` rule
reads. Each rule builds a new control-flow node of the same kind whose
sub-graphs are the forward ones inlined and followed by their tangents:

- cond/switch: the same index chooses the branch; it returns its results'
  tangents.
- scan, while_loop: the carry gains one tangent per float carry (zeros where it
  starts without one, since an iteration can give it one); scan's xs gain the
  tangents of those that have one.

The new node recomputes the primal values it needs (the forward node stays for
the primal results). `while_loop` is differentiable forward only, as in JAX.
Rules take `push`, the forward pass over a list of nodes (`forward_mode.push_tangents`),
which they run on their sub-graphs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlframework.core import dtypes
from mlframework.graph.composites import zeros_like
from mlframework.graph.control_flow import cond, scan, switch, while_loop
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import current_graph
from mlframework.graph.shape_rules_control import result_specs
from mlframework.graph.subgraphs import inline


def _floats(nodes) -> list[int]:
    return [i for i, x in enumerate(nodes) if x.dtype.is_float]


def _with_tangents(graph, args, seeds, push):
    """`graph` inlined on `args` in the sub-graph being traced, and the tangents of its
    outputs (zeros where none) given `seeds`, a map from arg positions to tangents."""
    start = len(current_graph().nodes)
    outs = inline(graph, args)
    tangent_of = push(current_graph().nodes[start:], {args[k].id: t for k, t in seeds.items()})
    return outs, [tangent_of.get(o.id) if o.id in tangent_of and tangent_of[o.id] is not None
                  else zeros_like(o) for o in outs]


def _outer(values):
    """Values of the graph enclosing the sub-graph being traced, as seen inside it."""
    graph = current_graph()
    return [graph.capture(v) for v in values]


def _cond_jvp(node, tangents, push):
    index, operands = node.inputs[0], list(node.inputs[1:])
    seeded = [k for k, t in enumerate(tangents[1:]) if t is not None]
    floats = [i for i, s in enumerate(result_specs(node)) if s.dtype.is_float]

    def branch(graph):
        def tangents_of(args, seeds):
            _, touts = _with_tangents(graph, args, dict(zip(seeded, seeds)), push)
            return [touts[i] for i in floats]
        return tangents_of

    fns = [branch(g) for g in node.attrs["branches"]]
    seeds = [tangents[1 + k] for k in seeded]
    if index.dtype is dtypes.BOOL:
        touts = cond(index, fns[1], fns[0], operands, seeds)
    else:
        touts = switch(index, fns, operands, seeds)
    out = [None] * len(result_specs(node))
    for i, t in zip(floats, touts):
        out[i] = t
    return tuple(out)


def _carry_tangents(carry, tangents):
    floats = _floats(carry)
    return floats, [tangents[i] if tangents[i] is not None else zeros_like(carry[i])
                    for i in floats]


def _scan_jvp(node, tangents, push):
    a = node.attrs
    body, n, nx = a["body"], a["num_carry"], a["num_xs"]
    carry, xs, captures = node.inputs[:n], node.inputs[n:n + nx], node.inputs[n + nx:]
    floats, t_carry = _carry_tangents(carry, tangents)
    seeded_xs = [k for k in range(nx) if tangents[n + k] is not None]
    seeded_caps = [k for k in range(len(captures)) if tangents[n + nx + k] is not None]

    def step(state, x):
        (c, tc), (xv, tx) = state, x
        caps = _outer(captures)
        args = [*c, *xv, *caps]
        seeds = {**dict(zip(floats, tc)), **{n + k: t for k, t in zip(seeded_xs, tx)},
                 **{n + nx + k: t for k, t in
                    zip(seeded_caps, _outer([tangents[n + nx + k] for k in seeded_caps]))}}
        outs, touts = _with_tangents(body, args, seeds, push)
        ys = range(n, len(outs))
        return ((outs[:n], [touts[i] for i in floats]),
                (outs[n:], [touts[i] for i in ys if outs[i].dtype.is_float]))

    (_, t_final), (_, t_ys) = scan(step, (list(carry), t_carry),
                                   (list(xs), [tangents[n + k] for k in seeded_xs]),
                                   length=a["length"], reverse=a["reverse"])
    out = [None] * len(result_specs(node))
    for i, t in zip(floats, t_final):
        out[i] = t
    for i, t in zip([n + j for j, o in enumerate(body.outputs[n:]) if o.dtype.is_float], t_ys):
        out[i] = t
    return tuple(out)


def _while_loop_jvp(node, tangents, push):
    a = node.attrs
    n = a["num_carry"]
    carry, captures = node.inputs[:n], node.inputs[n:]
    floats, t_carry = _carry_tangents(carry, tangents)
    seeded_caps = [k for k in range(len(captures)) if tangents[n + k] is not None]

    def test(state):
        return inline(a["cond"], [*state[0], *_outer(captures)])[0]

    def body(state):
        c, tc = state
        seeds = {**dict(zip(floats, tc)), **{n + k: t for k, t in
                 zip(seeded_caps, _outer([tangents[n + k] for k in seeded_caps]))}}
        outs, touts = _with_tangents(a["body"], [*c, *_outer(captures)], seeds, push)
        return outs, [touts[i] for i in floats]

    _, t_final = while_loop(test, body, (list(carry), t_carry))
    out = [None] * n
    for i, t in zip(floats, t_final):
        out[i] = t
    return tuple(out)


RULES: dict[Op, Callable[..., Any]] = {
    Op.TUPLE_GET: lambda node, tangents, push: tangents[0][node.attrs["index"]],
    Op.COND: _cond_jvp,
    Op.SCAN: _scan_jvp,
    Op.WHILE_LOOP: _while_loop_jvp,
}
