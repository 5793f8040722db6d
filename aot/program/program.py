"""`Program`: the plain-data form of a graph that the aot passes read and write.

A `Value` is one node: its op, the ids of its inputs, its attributes, dtype,
dims, and where the user built it. `Program.values` keeps them in topological
order (a dict keyed by id). Passes copy and rebuild programs; nothing here
points back at the tracing machinery, so a program can be pickled, printed or
built by hand in a test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlframework.core.dtypes import DType
from mlframework.core.symbolic import DimLike
from mlframework.graph.gen_optypes import Op, OpGroup
from mlframework.graph.graph import subgraphs


@dataclass
class Value:
    """One node of a program. `inputs` are value ids."""

    id: int
    op: Op
    inputs: tuple[int, ...]
    attrs: dict
    dtype: DType
    shape: tuple[DimLike, ...]
    source: str = ""
    scope: str = ""

    @property
    def size(self) -> DimLike:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> DimLike:
        return self.size * self.dtype.itemsize


@dataclass
class Program:
    """Values in topological order, the parameter ids (in call order) and outputs.

    symbols: each symbolic dimension the shapes hold (a `mlframework.core.symbolic.Dim`
    of that name) and its maximum, in the order the compiled code takes their values;
    empty for a static program.
    """

    name: str
    values: dict[int, Value] = field(default_factory=dict)
    params: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    symbols: dict[str, int] = field(default_factory=dict)

    def consumers(self) -> dict[int, list[int]]:
        """For every value id, the ids of the values that read it (once per use)."""
        out: dict[int, list[int]] = {i: [] for i in self.values}
        for v in self.values.values():
            for i in v.inputs:
                out[i].append(v.id)
        return out

    def __str__(self) -> str:
        lines = [f"program {self.name}:"]
        for v in self.values.values():
            args = ", ".join(f"#{i}" for i in v.inputs)
            lines.append(f"  #{v.id} = {v.op.value}({args}) : {v.dtype.value}{list(v.shape)}")
        lines.append("  return " + ", ".join(f"#{o}" for o in self.outputs))
        return "\n".join(lines)


def from_graph(graph, maxima: dict[str, int] | None = None,
               enclosing: dict[str, int] | None = None) -> Program:
    """The program of a traced `Graph` (ids are kept). Its `symbols` are the graph's
    (`graph.symbols`, name -> maximum), with the maxima in `maxima` taking precedence;
    sub-graphs take the enclosing graph's (`enclosing`: all of them, so that a body's
    shapes over the enclosing symbols are sized at the same maxima).

    Raises:
        ValueError: a symbol of the graph without a maximum.

    A control-flow node's sub-graphs become programs in its attributes (`subprograms`),
    without constants: each constant of a body is moved out to the enclosing program
    and passed in as one more operand (a new parameter of every sub-program of the
    node, unused by the others), so that one constant segment serves every level.
    Moved constants take ids after the graph's nodes.
    """
    prog = Program(graph.name)
    prog.symbols = dict(enclosing) if enclosing is not None else _maxima(graph, maxima or {})
    fresh = [len(graph.nodes)]
    for n in graph.nodes:
        attrs, inputs = dict(n.attrs), tuple(i.id for i in n.inputs)
        if n.op in SUBGRAPH_OPS:
            bodies, consts = _hoisted([from_graph(g, enclosing=prog.symbols)
                                     for g in subgraphs(n)], fresh)
            for c in consts:
                prog.values[c.id] = c
            inputs += tuple(c.id for c in consts)
            it = iter(bodies)
            attrs = {k: (tuple(next(it) for _ in v) if isinstance(v, tuple) else next(it))
                     if k in SUBGRAPH_ATTRS else v for k, v in attrs.items()}
        prog.values[n.id] = Value(n.id, n.op, inputs, attrs, n.dtype, tuple(n.shape),
                                  n.source or "", n.scope or "")
    prog.params = [p.id for p in sorted(graph.parameters, key=lambda p: p.attrs["index"])]
    prog.outputs = [o.id for o in graph.outputs]
    return prog


def _maxima(graph, maxima: dict[str, int]) -> dict[str, int]:
    """`graph.symbols` (name -> maximum) updated by `maxima`, checked: the compiled code
    needs every maximum."""
    symbols = dict(getattr(graph, "symbols", None) or {})
    symbols.update({s: top for s, top in maxima.items() if s in symbols})
    missing = sorted(s for s, top in symbols.items() if top is None)
    if missing:
        raise ValueError(f"graph {graph.name!r}: the C compiler sizes its buffers at each "
                         f"symbol's maximum, and {', '.join(missing)} has none; declare one "
                         f"(e.g. aotc export --max {missing[0]}=256)")
    order = list(maxima) + sorted(set(symbols) - set(maxima))  # maxima's order, then by name
    return {s: int(symbols[s]) for s in order if s in symbols}


SUBGRAPH_OPS = OpGroup.CONTROL - {Op.TUPLE_GET}
SUBGRAPH_ATTRS = ("branches", "cond", "body")  # in the order `subgraphs` lists them


def subprograms(v: Value) -> list[Program]:
    """The sub-programs of a control-flow value, in attribute order (else empty)."""
    out: list[Program] = []
    for k in SUBGRAPH_ATTRS:
        a = v.attrs.get(k) if v.op in SUBGRAPH_OPS else None
        if isinstance(a, Program):
            out.append(a)
        elif isinstance(a, tuple):
            out.extend(a)
    return out


def _hoisted(bodies: list[Program], fresh: list[int]) -> tuple[list[Program], list[Value]]:
    """The bodies without constants, and those constants as values of the enclosing
    program (fresh ids), which every body now takes as its last parameters."""
    moved: list[tuple[int, Value]] = []  # (body index, constant)
    for b, body in enumerate(bodies):
        moved += [(b, v) for v in body.values.values() if v.op is Op.CONSTANT]
    consts = []
    for _, v in moved:
        consts.append(Value(fresh[0], Op.CONSTANT, (), v.attrs, v.dtype, v.shape, v.source,
                            v.scope))
        fresh[0] += 1
    out = []
    for b, body in enumerate(bodies):
        values = dict(body.values)
        params = list(body.params)
        spare = max(values, default=-1) + 1
        for owner, v in moved:
            if owner == b:
                values[v.id] = Value(v.id, Op.PARAMETER, (), {"index": len(params),
                                     "name": "constant"}, v.dtype, v.shape, v.source, v.scope)
                params.append(v.id)
            else:
                values[spare] = Value(spare, Op.PARAMETER, (), {"index": len(params),
                                      "name": "unused"}, v.dtype, v.shape, v.source, v.scope)
                params.append(spare)
                spare += 1
        out.append(Program(body.name, values, params, list(body.outputs), dict(body.symbols)))
    return out, consts
