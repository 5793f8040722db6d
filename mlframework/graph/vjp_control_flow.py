"""VJP rules of the control-flow ops.

A control-flow node is a tuple of results, so its cotangent is a `Cotangents`
tuple (one entry per result, None where a result has none) that the `tuple_get`
rule builds and autodiff sums like any cotangent. The rules build new
control-flow nodes whose sub-graphs are traced from the forward ones:

- cond: a cond over the same index whose branch i is the VJP of branch i.
- scan: a forward scan that also stacks each step's carry (the residuals, one
  per iteration), then a scan in the other direction whose body recomputes the
  step from its carry and applies the step's VJP, carrying the carry's cotangent
  and the sums of the captures' cotangents.

while_loop has none (autodiff refuses it: reverse mode needs a trip count).
"""
from __future__ import annotations

from mlframework.graph.composites import zeros_like
from mlframework.graph.control_flow import scan
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Node, build, current_graph
from mlframework.graph.shape_rules_control import parameter_specs, result_specs
from mlframework.graph.subgraphs import align_captures, inline, trace


class Cotangents(tuple):
    """The cotangents of a control-flow node's results; `+` sums them entry by entry."""

    def __add__(self, other):
        return Cotangents(a if b is None else b if a is None else a + b
                          for a, b in zip(self, other))


def _tuple_get_vjp(node, g):
    cf = node.inputs[0]
    entries = [None] * len(result_specs(cf))
    entries[node.attrs["index"]] = g
    return (Cotangents(entries),)


def _differentiable(specs, wanted=None) -> list[int]:
    return [i for i, s in enumerate(specs) if s.dtype.is_float and (wanted is None or wanted[i])]


def _results(node):
    return [build(Op.TUPLE_GET, [node], {"index": i}, spec)
            for i, spec in enumerate(result_specs(node))]


def _cond_vjp(node, cts, reverse):
    index, operands = node.inputs[0], list(node.inputs[1:])
    specs = [o.spec for o in operands]
    wrt = _differentiable(specs)
    live = [i for i, c in enumerate(cts) if c is not None]
    if not wrt or not live:
        return [None] * len(node.inputs)

    def branch_vjp(graph):
        def backward(args, seeds):
            outs = inline(graph, args)
            return reverse([outs[i] for i in live], seeds, [args[i] for i in wrt])
        return backward

    seeds = [cts[i] for i in live]
    traced = [trace(branch_vjp(b), (specs, [s.spec for s in seeds]), f"{b.name}_vjp")[0]
              for b in node.attrs["branches"]]
    captures = align_captures(traced, len(operands) + len(seeds))
    back = build(Op.COND, [index, *operands, *seeds, *captures], {"branches": tuple(traced)})
    grads = dict(zip(wrt, _results(back)))
    return [None] + [grads.get(i) for i in range(len(operands))]


def _scan_vjp(node, cts, reverse):
    a = node.attrs
    body, n, nx, length = a["body"], a["num_carry"], a["num_xs"], a["length"]
    carry, xs, caps = (list(node.inputs[:n]), list(node.inputs[n:n + nx]),
                       list(node.inputs[n + nx:]))
    params = parameter_specs(body)
    c_specs, x_specs, cap_specs = params[:n], params[n:n + nx], params[n + nx:]
    dc, dx, dcap = (_differentiable(c_specs), _differentiable(x_specs),
                    _differentiable(cap_specs))
    if not (dc or dx or dcap):
        return [None] * len(node.inputs)

    # The forward again, stacking each step's carry: the residuals of the backward steps.
    def forward(c, x, k):
        outs = inline(body, [*c, *x, *k])
        return outs + list(c)
    residual_body = trace(forward, (c_specs, x_specs, cap_specs), f"{body.name}_residuals")[0]
    fwd = build(Op.SCAN, node.inputs, dict(a, body=residual_body))
    stacked = _results(fwd)[len(result_specs(node)):]

    ct_c = [cts[i] if cts[i] is not None else zeros_like(carry[i]) for i in dc]
    dys = [i for i in _differentiable([o.spec for o in body.outputs[n:]])
           if cts[n + i] is not None]
    ct_ys = [cts[n + i] for i in dys]
    acc = [zeros_like(caps[i]) for i in dcap]

    def backward(state, step):
        g_c, g_k = state
        c, x, g_y = step
        k = [current_graph().capture(cap) for cap in caps]
        args = [*c, *x, *k]
        outs = inline(body, args)
        seeds = [g_c[j] for j in range(len(dc))] + list(g_y)
        ys = [outs[i] for i in dc] + [outs[n + i] for i in dys]
        wrt = [args[i] for i in dc] + [args[n + i] for i in dx] + \
              [args[n + nx + i] for i in dcap]
        grads = reverse(ys, seeds, wrt) if wrt else []
        new_c = grads[:len(dc)]
        new_k = [s + g for s, g in zip(g_k, grads[len(dc) + len(dx):])]
        return (new_c, new_k), grads[len(dc):len(dc) + len(dx)]

    (g_c, g_k), g_x = scan(backward, (ct_c, acc), (stacked, xs, ct_ys), length=length,
                           reverse=not a["reverse"])
    grads: dict[int, Node] = {}
    grads.update(zip(dc, g_c))
    grads.update(zip((n + i for i in dx), g_x))
    grads.update(zip((n + nx + i for i in dcap), g_k))
    return [grads.get(i) for i in range(len(node.inputs))]


# Rules of the ops holding sub-graphs take a third argument, `reverse`: the reverse pass
# (`autodiff.vjp_outputs`), which they run on their sub-graphs.
SUBGRAPH_RULES = {
    Op.COND: _cond_vjp,
    Op.SCAN: _scan_vjp,
}
RULES = {**SUBGRAPH_RULES, Op.TUPLE_GET: _tuple_get_vjp}
