"""XlaBackend: lowers a Graph to one jitted jax function.

64-bit types stay 64-bit: the backend turns on `jax_enable_x64` for the
process, so float64 and int64 are never silently narrowed. float16 and bfloat16
round after every op, as op-by-op XLA does: the jitted function is compiled without
XLA's excess precision (which would keep float32 between the ops of a fusion, so
that results depend on how XLA fuses).
"""
from __future__ import annotations

from collections import OrderedDict

import jax
import numpy as np

from mlframework.backends.base import Backend, Executable
from mlframework.core import symbolic
from mlframework.core.shapes import Shape
from mlframework.graph.gen_optypes import Op, OpGroup
from mlframework.graph.graph import Graph

jax.config.update("jax_enable_x64", True)

from mlframework.backends.xla.gen_lowering import LOWERINGS  # noqa: E402  after x64 is set


COMPILER_OPTIONS = {"xla_allow_excess_precision": False}
SYMBOLIC_CACHE_SIZE = 16  # concrete size sets compiled per symbolic graph


class XlaExecutable(Executable):
    """A graph as one `jax.jit` function over flat arrays."""

    def __init__(self, graph: Graph, donate: tuple[int, ...]):
        self.graph = graph
        self._fn = jax.jit(interpreter(graph), donate_argnums=donate,
                           compiler_options=COMPILER_OPTIONS)

    def run(self, buffers: list) -> list:
        return self._fn(*buffers)


class SymbolicXlaExecutable(Executable):
    """A symbolic graph (`graph.symbols`): each call reads the symbols' sizes from its
    inputs' shapes (`symbolic.match`), then runs the graph bound to those sizes, jitted
    once per size set and kept in an LRU cache of `cache_size` entries."""

    def __init__(self, graph: Graph, donate: tuple[int, ...], cache_size: int):
        self.graph, self.donate, self.cache_size = graph, donate, cache_size
        self._specs = [p.spec for p in sorted(graph.parameters, key=lambda p: p.attrs["index"])]
        self._names = [str(p.attrs["name"]) for p in
                       sorted(graph.parameters, key=lambda p: p.attrs["index"])]
        self._cache: OrderedDict[tuple[tuple[str, int], ...], XlaExecutable] = OrderedDict()

    def executable(self, sizes: dict[str, int]) -> XlaExecutable:
        """The executable of the graph bound to `sizes` (compiled on first use)."""
        key = tuple(sorted(sizes.items()))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = XlaExecutable(self.graph.bind(sizes), self.donate)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return found

    def run(self, buffers: list) -> list:
        sizes = symbolic.match(self._specs, [b.shape for b in buffers], self.graph.symbols,
                               self._names)
        return self.executable(sizes).run(buffers)


def interpreter(graph: Graph):
    """A Python function of the graph's parameters (arrays, in order) returning its outputs
    (a list), evaluating `graph` with jax.lax for jax.jit to trace."""
    nodes, outputs = list(graph.nodes), [o.id for o in graph.outputs]

    def evaluate(*args):
        values = {}
        for node in nodes:
            if node.op is Op.PARAMETER:
                values[node.id] = args[node.attrs["index"]]
            elif node.op is Op.CONSTANT:
                values[node.id] = node.attrs["value"]
            else:
                inputs = [values[i.id] for i in node.inputs]
                attrs = _functions(node.attrs) if node.op in SUBGRAPH_OPS else node.attrs
                values[node.id] = LOWERINGS[node.op](*inputs, **attrs)
        return [jax.numpy.asarray(values[i]) for i in outputs]

    return evaluate


SUBGRAPH_OPS = OpGroup.CONTROL - {Op.TUPLE_GET}


def _functions(attrs: dict) -> dict:
    """attrs with each sub-graph made a jax function of its parameters returning a tuple
    (how the control-flow lowerings take them)."""
    def lowered(graph):
        evaluate = interpreter(graph)
        return lambda *args: tuple(evaluate(*args))
    return {k: lowered(v) if isinstance(v, Graph) else
            tuple(map(lowered, v)) if isinstance(v, tuple) and v and isinstance(v[0], Graph)
            else v for k, v in attrs.items()}


class XlaBackend(Backend):
    name = "xla"

    def supported_ops(self) -> frozenset[Op]:
        return frozenset(LOWERINGS) | {Op.PARAMETER, Op.CONSTANT}

    def compile(self, graph: Graph, donate: tuple[int, ...] = ()) -> Executable:
        """One jitted function; for a symbolic graph, one per size set seen at run time
        (the last `SYMBOLIC_CACHE_SIZE` kept)."""
        self.check_supported(graph)
        if graph.symbols:
            return SymbolicXlaExecutable(graph, donate, SYMBOLIC_CACHE_SIZE)
        return XlaExecutable(graph, donate)

    def to_device(self, array: np.ndarray, spec: Shape):
        return jax.device_put(array)

    def to_host(self, buffer, spec: Shape) -> np.ndarray:
        return np.asarray(buffer)
