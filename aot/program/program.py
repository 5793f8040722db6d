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
from mlframework.graph.gen_optypes import Op, OpGroup


@dataclass
class Value:
    """One node of a program. `inputs` are value ids."""

    id: int
    op: Op
    inputs: tuple[int, ...]
    attrs: dict
    dtype: DType
    shape: tuple[int, ...]
    source: str = ""
    scope: str = ""

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


@dataclass
class Program:
    """Values in topological order, the parameter ids (in call order) and outputs."""

    name: str
    values: dict[int, Value] = field(default_factory=dict)
    params: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

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


def from_graph(graph) -> Program:
    """The program of a traced `Graph` (ids are kept).

    Raises:
        NotImplementedError: for control-flow nodes (cond, while_loop, scan), which the
            C compiler does not compile yet.
    """
    control = [n for n in graph.nodes if n.op in OpGroup.CONTROL and n.op is not Op.TUPLE_GET]
    if control:
        names = ", ".join(sorted({n.op.value for n in control}))
        raise NotImplementedError(
            f"the C compiler (c backend, aotc export) does not implement control flow yet: "
            f"{names} in graph {graph.name!r} (first at {control[0].source}); run it on the "
            f"xla backend")
    prog = Program(graph.name)
    for n in graph.nodes:
        prog.values[n.id] = Value(n.id, n.op, tuple(i.id for i in n.inputs), dict(n.attrs),
                                  n.dtype, tuple(n.shape), n.source or "", n.scope or "")
    prog.params = [p.id for p in sorted(graph.parameters, key=lambda p: p.attrs["index"])]
    prog.outputs = [o.id for o in graph.outputs]
    return prog
