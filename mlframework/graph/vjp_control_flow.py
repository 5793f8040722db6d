"""VJP rules of the control-flow ops.

A control-flow node is a tuple of results, so its cotangent is a `Cotangents`
tuple (one entry per result, None where a result has none) that the `tuple_get`
rule builds and autodiff sums like any cotangent. The rules build new
control-flow nodes whose sub-graphs are traced from the forward ones:

- cond: a cond over the same index whose branch i is the VJP of branch i.
- scan: the VJP of one step is traced with the step recomputed inside it; the
  recomputed values its VJP part reads become residuals: a forward scan stacks them
  (and each step's carry) per iteration, and a scan in the other direction runs the
  step's VJP on them, carrying the carry's cotangent and the sums of the captures'.

while_loop has none (autodiff refuses it: reverse mode needs a trip count).
"""
from __future__ import annotations

from mlframework.core import pytree
from mlframework.core.shapes import Shape
from mlframework.graph.composites import zeros_like
from mlframework.graph.gen_optypes import Op, OpGroup
from mlframework.graph.graph import Node, build, current_graph
from mlframework.graph.shape_rules_control import parameter_specs, result_specs
from mlframework.graph.subgraphs import align_captures, inline, results, trace


_TUPLES = OpGroup.CONTROL - {Op.TUPLE_GET}


class Cotangents(tuple):
    """The cotangents of a control-flow node's results; `+` sums them entry by entry."""

    def __add__(self, other):
        return Cotangents(a if b is None else b if a is None else a + b
                          for a, b in zip(self, other))


def _leaf(graph) -> str:
    """A sub-graph's own name (without the names of the graphs enclosing it)."""
    return graph.name.rsplit("/", 1)[-1]


def _tuple_get_vjp(node, g):
    cf = node.inputs[0]
    entries = [None] * len(result_specs(cf))
    entries[node.attrs["index"]] = g
    return (Cotangents(entries),)


def _differentiable(specs, wanted=None) -> list[int]:
    return [i for i, s in enumerate(specs) if s.dtype.is_float and (wanted is None or wanted[i])]


def _cond_vjp(node, cts, wants, reverse):
    index, operands = node.inputs[0], list(node.inputs[1:])
    specs = [o.spec for o in operands]
    wrt = _differentiable(specs, wants[1:])
    live = [i for i, c in enumerate(cts) if c is not None]
    if not wrt or not live:
        return [None] * len(node.inputs)

    def branch_vjp(graph):
        def backward(args, seeds):
            outs = inline(graph, args)
            return reverse([outs[i] for i in live], seeds, [args[i] for i in wrt])
        return backward

    seeds = [cts[i] for i in live]
    traced = [trace(branch_vjp(b), (specs, [s.spec for s in seeds]), f"{_leaf(b)}_vjp")[0]
              for b in node.attrs["branches"]]
    captures = align_captures(traced, len(operands) + len(seeds))
    back = build(Op.COND, [index, *operands, *seeds, *captures], {"branches": tuple(traced)})
    grads = dict(zip(wrt, results(back)))
    return [None] + [grads.get(i) for i in range(len(operands))]


def _scan_vjp(node, cts, wants, reverse):
    a = node.attrs
    body, n, nx, length = a["body"], a["num_carry"], a["num_xs"], a["length"]
    carry, xs, caps = (list(node.inputs[:n]), list(node.inputs[n:n + nx]),
                       list(node.inputs[n + nx:]))
    params = parameter_specs(body)
    c_specs, x_specs, cap_specs = params[:n], params[n:n + nx], params[n + nx:]
    # Every float carry's cotangent flows through the steps; xs and captures get one only
    # where autodiff wants it.
    dc, dx, dcap = (_differentiable(c_specs), _differentiable(x_specs, wants[n:n + nx]),
                    _differentiable(cap_specs, wants[n + nx:]))
    if not (dc or dx or dcap):
        return [None] * len(node.inputs)
    ct_c = [cts[i] if cts[i] is not None else zeros_like(carry[i]) for i in dc]
    dys = [i for i in _differentiable([o.spec for o in body.outputs[n:]])
           if cts[n + i] is not None]
    ct_ys = [cts[n + i] for i in dys]
    acc = [zeros_like(caps[i]) for i in dcap]
    copied: dict[int, int] = {}  # id in the backward step -> id of the forward body's node

    def step_vjp(state, step):
        """One backward step, the forward step recomputed inside it."""
        g_c, g_k = state
        c, x, g_y = step
        k = [current_graph().capture(cap) for cap in caps]
        args = [*c, *x, *k]
        mapping: dict[int, Node] = {}
        outs = inline(body, args, mapping)
        copied.update({m.id: i for i, m in mapping.items()
                       if body.nodes[i].op is not Op.PARAMETER})
        seeds = [g_c[j] for j in range(len(dc))] + list(g_y)
        ys = [outs[i] for i in dc] + [outs[n + i] for i in dys]
        wrt = [args[i] for i in dc] + [args[n + i] for i in dx] + \
              [args[n + nx + i] for i in dcap]
        grads = reverse(ys, seeds, wrt) if wrt else []
        new_c = grads[:len(dc)]
        new_k = [s + g for s, g in zip(g_k, grads[len(dc) + len(dx):])]
        return (new_c, new_k), grads[len(dc):len(dc) + len(dx)]

    state_specs = ([g.spec for g in ct_c], [z.spec for z in acc])
    step_specs = (c_specs, x_specs, [Shape(g.dtype, g.shape[1:]) for g in ct_ys])
    recomputing, out_tree = trace(step_vjp, (state_specs, step_specs), f"{_leaf(body)}_vjp")
    saved = _residuals(recomputing, copied)

    # The forward again, stacking per step its carry and the residuals the backward reads.
    def forward(c, x, k):
        mapping: dict[int, Node] = {}
        outs = inline(body, [*c, *x, *k], mapping)
        return outs + list(c) + [mapping[copied[r.id]] for r in saved]
    residual_body = trace(forward, (c_specs, x_specs, cap_specs), f"{_leaf(body)}_residuals")[0]
    fwd = build(Op.SCAN, node.inputs, dict(a, body=residual_body))
    stacked = results(fwd)[len(result_specs(node)):]

    explicit = len(ct_c) + len(acc) + n + nx + len(ct_ys)
    backward = _without_recomputation(recomputing, saved, explicit, out_tree)
    captures = align_captures([backward], explicit + len(saved))
    back = build(Op.SCAN, [*ct_c, *acc, *stacked[:n], *xs, *ct_ys, *stacked[n:], *captures],
                 {"body": backward, "length": length, "reverse": not a["reverse"],
                  "num_carry": len(ct_c) + len(acc),
                  "num_xs": n + nx + len(ct_ys) + len(saved)})
    out = results(back)
    g_c, g_k, g_x = out[:len(dc)], out[len(dc):len(dc) + len(dcap)], out[len(dc) + len(dcap):]
    grads: dict[int, Node] = {}
    grads.update(zip(dc, g_c))
    grads.update(zip((n + i for i in dx), g_x))
    grads.update(zip((n + nx + i for i in dcap), g_k))
    return [grads.get(i) for i in range(len(node.inputs))]


def _residuals(step, copied: dict[int, int]) -> list[Node]:
    """The recomputed forward values of the backward step `step` that its VJP part reads
    (`copied`: the ids of the recomputed nodes): what the forward scan stacks instead.
    None stacked (recompute all) if one is a control-flow tuple."""
    read = {}
    for n in step.nodes:
        if n.id not in copied:
            read.update({i.id: i for i in n.inputs if i.id in copied})
    read.update({o.id: o for o in step.outputs if o.id in copied})
    saved = [read[i] for i in sorted(read)]
    if any(r.op in _TUPLES for r in saved):
        return []
    return saved


def _without_recomputation(step, saved: list[Node], explicit: int, out_tree):
    """The backward step `step` with the nodes in `saved` read from per-step parameters
    (after its `explicit` ones) instead of recomputed, and what only they needed dropped."""
    if not saved:
        return step
    stop = {r.id for r in saved} | {p.id for p in step.parameters}
    needed = {o.id for o in step.outputs}
    for n in reversed(step.nodes):
        if n.id in needed and n.id not in stop:
            needed.update(i.id for i in n.inputs)

    def copy(explicit_args, residuals):
        g = current_graph()
        values: dict[int, Node] = {}
        for i, p in enumerate(step.parameters):
            values[p.id] = explicit_args[i] if i < explicit else \
                g.capture(step.captures[i - explicit])
        values.update({r.id: x for r, x in zip(saved, residuals)})
        for n in step.nodes:
            if n.id in needed and n.id not in values:
                values[n.id] = build(n.op, [values[i.id] for i in n.inputs], n.attrs, n.spec,
                                     g, n.source)
        return pytree.unflatten(out_tree, [values[o.id] for o in step.outputs])

    explicit_specs = [p.spec for p in step.parameters[:explicit]]
    return trace(copy, (explicit_specs, [r.spec for r in saved]), step.name)[0]


# Rules of the ops holding sub-graphs also take `wants` (which inputs need a cotangent) and
# `reverse`: the reverse pass (`autodiff.vjp_outputs`), which they run on their sub-graphs.
SUBGRAPH_RULES = {
    Op.COND: _cond_vjp,
    Op.SCAN: _scan_vjp,
}
RULES = {**SUBGRAPH_RULES, Op.TUPLE_GET: _tuple_get_vjp}
