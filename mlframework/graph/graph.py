"""The graph IR: `Graph` holds `Node`s in topological order; `build` adds one.

A node is created by an op function (see `gen_ops.py`), which calls `build`:
the op's shape rule checks the inputs and infers the output `Shape`, so bad
input fails here, naming the op, the shapes and the user's line.
"""
from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from mlframework.core import shapes, symbolic
from mlframework.core.dtypes import DTypeSpec, as_dtype
from mlframework.core.pytree import TreeDef
from mlframework.core.shapes import Shape, Typed
from mlframework.core.symbolic import Dim
from mlframework.core.tensors import host_array
from mlframework.graph import errors
from mlframework.graph.gen_optypes import Op


class Node(Typed):
    """One value of a graph: the op that computes it, its inputs and attributes.

    Nodes are immutable once built. `shape` is a tuple of dims, `dtype` the
    element type and `spec` the full `Shape`.
    """

    __slots__ = ("graph", "id", "op", "inputs", "attrs", "spec", "source", "scope")
    __hash__ = object.__hash__  # nodes are dict keys, by identity
    __array_ufunc__ = None  # `np_array + node` defers to Node.__radd__, as for JAX arrays

    def __init__(self, graph: Graph, id_: int, op: Op, inputs: tuple[Node, ...],
                 attrs: dict[str, Any], spec: Shape, source: str, scope: str):
        self.graph, self.id, self.op, self.inputs = graph, id_, op, inputs
        self.attrs, self.spec, self.source, self.scope = attrs, spec, source, scope

    def __repr__(self) -> str:
        return f"<Node #{self.id} {self.op.value} {self.spec}>"

    def __bool__(self) -> bool:
        raise TypeError(f"a graph node has no truth value at trace time, got {self!r}; "
                        "use G.where or G.select for data-dependent choices")

    if TYPE_CHECKING:  # the Python operators, attached by `mlframework.graph.operators`
        def __add__(self, other: Operand) -> Node: ...
        def __radd__(self, other: Operand) -> Node: ...
        def __sub__(self, other: Operand) -> Node: ...
        def __rsub__(self, other: Operand) -> Node: ...
        def __mul__(self, other: Operand) -> Node: ...
        def __rmul__(self, other: Operand) -> Node: ...
        def __truediv__(self, other: Operand) -> Node: ...
        def __rtruediv__(self, other: Operand) -> Node: ...
        def __pow__(self, other: Operand) -> Node: ...
        def __rpow__(self, other: Operand) -> Node: ...
        def __matmul__(self, other: Operand) -> Node: ...
        def __rmatmul__(self, other: Operand) -> Node: ...
        def __neg__(self) -> Node: ...
        def __abs__(self) -> Node: ...
        def __lt__(self, other: Operand) -> Node: ...
        def __le__(self, other: Operand) -> Node: ...
        def __gt__(self, other: Operand) -> Node: ...
        def __ge__(self, other: Operand) -> Node: ...
        def __and__(self, other: Operand) -> Node: ...
        def __rand__(self, other: Operand) -> Node: ...
        def __or__(self, other: Operand) -> Node: ...
        def __ror__(self, other: Operand) -> Node: ...
        def __xor__(self, other: Operand) -> Node: ...
        def __rxor__(self, other: Operand) -> Node: ...
        def __invert__(self) -> Node: ...
        def __lshift__(self, other: Operand) -> Node: ...
        def __rlshift__(self, other: Operand) -> Node: ...
        def __rshift__(self, other: Operand) -> Node: ...
        def __rrshift__(self, other: Operand) -> Node: ...
        def __getitem__(self, index: Any) -> Node: ...
        @property
        def T(self) -> Node: ...  # noqa: N802


Operand: TypeAlias = "Node | ArrayLike"
"""What op functions take as an operand: a node, or a Python or NumPy value made a constant."""


MAX_DRAWN_NODES = 1500  # `Graph._repr_html_` lists larger graphs instead of drawing them


class Graph:
    """A traced computation: parameters, nodes in topological order, outputs."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: list[Node] = []
        self.parameters: list[Node] = []
        self.outputs: list[Node] = []
        # The pytree structures (`pytree.TreeDef`) of the arguments the parameters came
        # from and of the results the outputs went to; set by `Exec`, None otherwise.
        self.in_tree: TreeDef | None = None
        self.out_tree: TreeDef | None = None
        self.trace_seconds = 0.0  # how long the trace that built it took (set by Exec)
        # The symbolic dims of the parameters, each with its maximum (None: undeclared);
        # filled by `parameter`, maxima set by Exec. {} for a graph of static shapes.
        self.symbols: dict[str, int | None] = {}
        self._scope: list[str] = []
        # A sub-graph (the body of a control-flow node) has the graph it is nested in as
        # `parent`; values of enclosing graphs it reads become parameters of its own
        # (`capture`), and `captures` lists those outer values, in parameter order.
        self.parent: Graph | None = None
        self.captures: list[Node] = []
        self._captured: dict[int, Node] = {}

    def capture(self, node: Node) -> Node:
        """The parameter of this sub-graph that stands for `node`, a value of an enclosing
        graph (added on first use, after the existing parameters).

        Raises:
            ValueError: if node's graph does not enclose this one.
        """
        found = self._captured.get(id(node))
        if found is not None:
            return found
        if self.parent is None:
            raise ValueError(f"a node of graph {node.graph.name!r} is used in graph "
                             f"{self.name!r}, which is not nested in it")
        outer = node if node.graph is self.parent else self.parent.capture(node)
        index = len(self.parameters)
        found = build(Op.PARAMETER, [], {"index": index, "name": f"capture{index}"}, node.spec,
                      self, outer.source)
        self.parameters.append(found)
        self.captures.append(outer)
        self._captured[id(node)] = found
        return found

    def bind(self, sizes: Mapping[str, int]) -> Graph:
        """A copy of this graph with each symbol replaced by its size in `sizes`: every
        node's spec, every attribute holding dims (a reshape's shape, slice limits,
        iota's shape...) and the sub-graphs of control-flow nodes. A backend that compiles
        per concrete size (xla) binds once per size set; a static graph is returned as it
        is.

        Raises:
            SymbolicError: a symbol of the graph has no size in `sizes`.
            ValueError: a size is not an int >= 1.
        """
        if not self.symbols:
            return self
        missing = sorted(set(self.symbols) - set(sizes))
        if missing:
            raise symbolic.SymbolicError(f"binding graph {self.name!r} needs a size for "
                                         f"{', '.join(missing)}, got {dict(sizes)}")
        for name, n in sizes.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"binding graph {self.name!r} requires sizes >= 1, got "
                                 f"{name}={n!r}")
        bound = _bind(self, dict(sizes), {}, None)
        bound.in_tree, bound.out_tree = self.in_tree, self.out_tree
        bound.trace_seconds = self.trace_seconds
        return bound

    def encloses(self, other: Graph) -> bool:
        """Whether `other` is this graph or nested in it (at any depth)."""
        inner: Graph | None = other
        while inner is not None and inner is not self:
            inner = inner.parent
        return inner is self

    def __str__(self) -> str:
        lines = [f"graph {self.name}:"]
        for n in self.nodes:
            args = ", ".join(f"#{i.id}" for i in n.inputs)
            attrs = ", ".join(f"{k}={_short(v)}" for k, v in n.attrs.items())
            body = ", ".join(x for x in (args, attrs) if x)
            lines.append(f"  #{n.id} = {n.op.value}({body}) : {n.spec}")
            for sub in subgraphs(n):
                lines += ["    " + line for line in str(sub).splitlines()]
        lines.append("  return " + ", ".join(f"#{o.id}" for o in self.outputs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        ins = ", ".join(str(p.spec) for p in self.parameters)
        outs = ", ".join(str(o.spec) for o in self.outputs)
        return f"<Graph {self.name!r}: ({ins}) -> ({outs}), {len(self.nodes)} nodes>"

    def _repr_html_(self) -> str:
        """The graph drawn as SVG (Jupyter shows it): parameters blue, outputs green."""
        from mlframework.graph.drawing import to_svg
        if len(self.nodes) > MAX_DRAWN_NODES:
            return (f"<pre>{html.escape(repr(self))}: too many nodes to draw (more than "
                    f"{MAX_DRAWN_NODES}); print(graph) lists them</pre>")
        return f"<div><b>{html.escape(repr(self))}</b><br>{to_svg(*_drawable(self))}</div>"

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Names nodes built inside with `name/` (shown in dumps and generated code)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()


def _bind(graph: Graph, sizes: dict[str, int], copies: dict[int, Node],
          parent: Graph | None) -> Graph:
    """`graph` bound; `copies` maps id(original node) -> its copy, across nesting levels
    (a sub-graph's captures are nodes of the graphs around it)."""
    out = Graph(graph.name)
    out.parent = parent
    for n in graph.nodes:
        attrs = dict(n.attrs) if n.op is Op.PARAMETER else n.attrs
        attrs = _attrs(attrs, sizes, copies, out)
        copy = Node(out, n.id, n.op, tuple(copies[id(i)] for i in n.inputs), attrs,
                    n.spec.bind(sizes), n.source, n.scope)
        out.nodes.append(copy)
        copies[id(n)] = copy
    out.parameters = [copies[id(p)] for p in graph.parameters]
    out.outputs = [copies[id(o)] for o in graph.outputs]
    out.captures = [copies[id(c)] for c in graph.captures]
    out._captured = {id(c): p for c, p in zip(out.captures,
                                              out.parameters[len(out.parameters) -
                                                             len(out.captures):])}
    return out


def _attrs(attrs: dict[str, Any], sizes: dict[str, int], copies: dict[int, Node],
           graph: Graph) -> dict[str, Any]:
    changed = {k: _value(v, sizes, copies, graph) for k, v in attrs.items()
               if _holds_dims_or_graphs(v)}
    return {**attrs, **changed} if changed else attrs


def _holds_dims_or_graphs(value: Any) -> bool:
    if isinstance(value, Dim | Graph):
        return True
    return isinstance(value, tuple) and any(_holds_dims_or_graphs(v) for v in value)


def _value(value: Any, sizes: dict[str, int], copies: dict[int, Node], graph: Graph) -> Any:
    if isinstance(value, Dim):
        return value.evaluate(sizes)
    if isinstance(value, Graph):
        return _bind(value, sizes, copies, graph)
    if isinstance(value, tuple):
        return tuple(_value(v, sizes, copies, graph) for v in value)
    return value


def _drawable(graph: Graph) -> tuple[list, list]:
    """The boxes (one per node) and arrows (one per input, labelled with its shape)."""
    from mlframework.graph.drawing import Arrow, Box
    outputs = {o.id for o in graph.outputs}
    boxes = []
    for n in graph.nodes:
        group = 4 if n.op is Op.PARAMETER else 2 if n.id in outputs else None
        title = "\n".join(x for x in (f"#{n.id} {n.op.value} {n.spec}", n.scope, n.source) if x)
        label = f"parameter {n.attrs['name']}" if n.op is Op.PARAMETER else n.op.value
        boxes.append(Box(n.id, label, str(n.spec), group, title))
    arrows = [Arrow(i.id, n.id, str(i.spec)) for n in graph.nodes for i in n.inputs]
    return boxes, arrows


def _short(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}" if value.size > 4 else repr(value.tolist())
    if isinstance(value, Graph):
        return value.name
    if isinstance(value, tuple) and value and isinstance(value[0], Graph):
        return "[" + ", ".join(g.name for g in value) + "]"
    return str(value)


def subgraphs(node: Node) -> list[Graph]:
    """The sub-graphs a node holds (a control-flow node's branches or bodies), in
    attribute order; empty for every other node."""
    out = []
    for value in node.attrs.values():
        if isinstance(value, Graph):
            out.append(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Graph):
            out.extend(value)
    return out


_state = threading.local()


@contextlib.contextmanager
def tracing(graph: Graph) -> Iterator[Graph]:
    """Makes `graph` the current graph, where constants and sources are built."""
    previous = getattr(_state, "graph", None)
    _state.graph = graph
    try:
        yield graph
    finally:
        _state.graph = previous


def current_graph() -> Graph:
    """The graph being traced. Raises RuntimeError outside tracing."""
    graph = getattr(_state, "graph", None)
    if graph is None:
        raise RuntimeError("no graph is being traced: build nodes inside a function run by "
                           "G.Exec, or inside `with G.tracing(G.Graph()):`")
    return graph


def build(op: Op, inputs: Sequence[Node], attrs: dict[str, Any] | None = None,
          spec: Shape | None = None, graph: Graph | None = None,
          source: str | None = None) -> Node:
    """Adds a node computing `op` over `inputs` to their graph.

    `spec` is given only for source ops (parameters, constants), whose shape
    comes from outside the graph, for `tuple_get` and for copies of checked nodes;
    every other op infers it from its inputs.
    Ops without inputs go to `graph`, by default the graph being traced. While a
    sub-graph is traced, inputs from the graphs enclosing it are captured (see
    `Graph.capture`). `source` (default: the user's line) says where the node was built.

    Raises:
        ShapeError, DTypeError: from the op's shape rule, ending with the user's line.
    """
    from mlframework.graph.shape_rules import infer

    attrs = attrs or {}
    inner = getattr(_state, "graph", None)
    if inner is not None and inner.parent is not None:
        inputs = [_captured(inner, i) for i in inputs]
    graph = graph or _graph_of(op, inputs)
    spec = spec or infer(op, [i.spec for i in inputs], attrs)
    node = Node(graph, len(graph.nodes), op, tuple(inputs), attrs, spec,
                errors.user_frame() if source is None else source, "/".join(graph._scope))
    graph.nodes.append(node)
    return node


def _captured(inner: Graph, value: Node) -> Node:
    """`value`, or its capture in `inner` if it is a node of a graph enclosing `inner`."""
    if isinstance(value, Node) and value.graph is not inner and value.graph.encloses(inner):
        return inner.capture(value)
    return value


def _graph_of(op: Op, inputs: Sequence[Node]) -> Graph:
    if not inputs:
        return current_graph()
    graph = inputs[0].graph
    for i in inputs:
        if not isinstance(i, Node):
            raise TypeError(f"{op.value} requires graph nodes as inputs, got {type(i).__name__}")
        if i.graph is not graph:
            raise ValueError(f"{op.value} requires inputs from one graph, got nodes of "
                             f"{graph.name!r} and {i.graph.name!r}")
    return graph


def parameter(spec: Shape, name: str = "", graph: Graph | None = None) -> Node:
    """Adds an input of shape `spec` to `graph` (by default the current one), after its
    other parameters; a symbolic dim of `spec` (`Shape(float32, (dim("N"), 64))`) adds its
    symbol to `graph.symbols`."""
    graph = current_graph() if graph is None else graph
    index = len(graph.parameters)
    node = build(Op.PARAMETER, [], {"index": index, "name": name or f"p{index}"}, spec, graph)
    graph.parameters.append(node)
    for symbol in sorted(spec.symbols):
        graph.symbols.setdefault(symbol, None)
    return node


def const(value: Operand, dtype: DTypeSpec | None = None, graph: Graph | None = None
          ) -> Node:
    """A constant node (in `graph`, by default the current one) from a scalar,
    list or NumPy array.

    Python floats become float32 and ints int32 (int64 for values beyond int32) unless
    `dtype` says otherwise.
    """
    if isinstance(value, Node):
        return value if dtype is None else _convert(value, dtype)
    if dtype is not None:
        array = np.asarray(value).astype(as_dtype(dtype).numpy)
    else:
        array = host_array(value)
    array = np.array(array, order="C")  # a private copy (ascontiguousarray makes 0-d 1-d)
    array.flags.writeable = False
    return build(Op.CONSTANT, [], {"value": array}, shapes.make(array.dtype, *array.shape), graph)


def _convert(node: Node, dtype: DTypeSpec) -> Node:
    dtype = as_dtype(dtype)
    return node if node.dtype is dtype else build(Op.CONVERT, [node], {"dtype": dtype})
