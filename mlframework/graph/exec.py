"""`Exec`: traces a Python function into a graph once per input signature,
compiles it with a backend, caches the executable and runs it.

    exe = G.Exec(backend, lambda x, w: G.tanh(x @ w))
    y = exe(np.ones((4, 3), np.float32), np.ones((3, 2), np.float32))  # a Tensor

Arguments and results are pytrees (nested tuples, lists, dicts) of arrays or
Tensors; the signature is their structure plus every leaf's dtype and shape.

Symbolic axes (a batch, a sequence length) keep one trace for every size:

    exe = G.Exec(backend, fn, symbolic={"x": "N, 64"}, maxima={"N": 256})
    exe(np.ones((1, 64), np.float32)); exe(np.ones((7, 64), np.float32))  # one trace

A trace may add inputs that later calls pass (`ContextExec` does, for the variables a
trace creates): fn adds parameters and returns `NewArguments`; the call compiles the
graph for those arguments and raises `ArgumentsChanged`, and the caller calls again.
"""
from __future__ import annotations

import html
import inspect
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, Protocol

import numpy as np

from mlframework.core import pytree, shapes, symbolic
from mlframework.core.pytree import TreeDef
from mlframework.core.shapes import Shape
from mlframework.core.tensors import Storage, Tensor
from mlframework.graph import symbolic_axes
from mlframework.graph.graph import Graph, Node, const, parameter, tracing

DEFAULT_CACHE_SIZE = 32


class Runnable(Protocol):
    """A compiled graph: buffers in, buffers out (`mlframework.backends.Executable`)."""

    def run(self, inputs: list) -> list: ...


class Compiler(Storage, Protocol):
    """What Exec needs of a backend (`mlframework.backends.Backend` is one)."""

    def compile(self, graph: Graph, donate: tuple[int, ...] = ()) -> Runnable: ...


# An executable, its result structure and shapes, and the graph it was compiled from.
_Entry = tuple[Runnable, TreeDef, list[Shape], Graph]


class NewArguments:
    """What `Exec`'s fn returns when its trace added parameters to the graph (`parameter`)
    for inputs that the calls after it pass.

    Args:
        result: fn's result (a node or a pytree of nodes).
        arguments: the arguments of those calls as a pytree of the graph's parameter nodes
            (every parameter once: those fn was given and those it added), in the
            structure the calls pass them.
    """

    __slots__ = ("result", "arguments")

    def __init__(self, result: Any, arguments: Any):
        self.result, self.arguments = result, arguments


class ArgumentsChanged(Exception):
    """Raised by an `Exec` call whose trace returned `NewArguments`: the graph is compiled
    and cached for calls shaped as those arguments; call again with them."""


class Exec:
    """A function of graph nodes, compiled per input signature.

    Args:
        backend: from `mlf.backends.new()`.
        fn: takes nodes (in the pytree structure of the call's arguments) and
            returns a node or a pytree of nodes.
        donate: positions of arguments whose buffers the backend may reuse
            for outputs; such arguments must not be used after the call.
        max_cache_size: executables kept, least recently used dropped first.
        name: shown in graph dumps and generated code (default: fn's name).
        symbolic: which argument axes are named symbolic sizes, so that one trace (and on
            the c backend one compiled module) serves every size. A dict by fn's parameter
            name, or a sequence by position, of axes specs: a string of comma-separated
            entries as in the export spec `x:float32[N,64]` -- a symbol (an identifier),
            a static int the argument must have, `_` (static, any size), one `...` (any
            number of `_`). A string applies to every array of a pytree argument; a
            tuple, list or dict mirroring the argument gives each its own spec; None is
            static. `symbolic={"x": "N, 64", "y": "N"}` makes axis 0 of x and y the size
            N: calls with N = 1, 7, 64 trace once. Inside fn, `x.shape[0]` is the `Dim`
            N; shapes built from it (`G.reshape(x, (x.shape[0], 8, 8))`) stay symbolic.
            Parameters that fn adds (`NewArguments`) are static.
        maxima: each symbol's largest size (`{"N": 256}`, as `aotc export --max N=256`);
            a symbol without one is unbounded (the c backend and aotc require one). It
            becomes `graph.symbols`.

    Each call reads the symbols' sizes from its arguments' shapes; the results have the
    shapes of fn's output specs bound to those sizes.

    Raises:
        TypeError: fn is not callable, backend is neither a backend nor None (None
            traces only: `exe.graph(...)`), donate is not argument positions, or
            symbolic is not a dict, sequence or None.
        ValueError: max_cache_size < 1; a maximum is not an int >= 1 or names a symbol
            that `symbolic` does not declare; a spec entry is malformed; fn returned
            `NewArguments` whose arguments are not the graph's parameters, each once.
        At call time, ValueError names the argument, axis and symbol when shapes
            disagree (x.shape[0] = 7 but y.shape[0] = 8, both N), when a size is 0 or
            above its maximum, or when a static size differs from the spec.
    """

    def __init__(self, backend: Compiler | None, fn: Callable[..., Any], *,
                 donate: tuple[int, ...] = (), max_cache_size: int = DEFAULT_CACHE_SIZE,
                 name: str | None = None, symbolic: Any = None,
                 maxima: dict[str, int] | None = None):
        _check_arguments(backend, fn, donate, max_cache_size)
        self.backend, self.fn, self.donate = backend, fn, tuple(donate)
        self.max_cache_size = max_cache_size
        self.name = name or str(getattr(fn, "__name__", "graph"))
        self._cache: OrderedDict[tuple, _Entry] = OrderedDict()
        self._min_args, self._max_args = _arity(fn)
        self.symbolic, self.maxima = symbolic, _check_symbolic(symbolic, maxima)
        self._names = _parameter_names(fn)
        self._layouts: dict[TreeDef, tuple[list, list[str]]] = {}

    def __call__(self, *args: Any) -> Any:
        """Runs on `args` (a pytree of arrays or Tensors); returns a Tensor or a pytree of
        them, shaped as fn's result. Compiles on the first call of each signature.

        Raises:
            TypeError: for a wrong number of arguments; fn's own ShapeError and DTypeError.
            ArgumentsChanged: fn returned `NewArguments` (nothing ran; call again with them).
        """
        if not self._min_args <= len(args) <= self._max_args:
            raise TypeError(f"Exec({self.name}) requires {self._arity_text()} arguments, as "
                            f"{self.name} takes, got {len(args)}")
        leaves, treedef = pytree.flatten(args)
        backend = _runnable(self.backend, self.name)
        inputs = []
        key: list[Any] = [treedef]
        for x in leaves:
            if type(x) is not np.ndarray:  # host arrays go in as they are: the fast path
                if isinstance(x, Tensor):
                    inputs.append(x.buffer(backend))
                    key.append((x.spec.dtype.numpy, x.spec.dims))
                    continue
                x = Tensor(x).numpy()
            inputs.append(x)
            key.append((x.dtype, x.shape))
        signature = tuple(key)
        specs: list[Shape] | None = None
        sizes: dict[str, int] = {}
        if self.symbolic is not None:
            signature, specs, sizes = self._symbolic_signature(treedef, key)
        cache = self._cache
        entry = cache.get(signature)
        if entry is None:
            entry = self._compile(backend, signature, treedef, leaves, specs)
        elif len(cache) > 1:
            cache.move_to_end(signature)
        executable, out_tree, out_specs, _ = entry
        if sizes:
            out_specs = [s.bind(sizes) for s in out_specs]
        results = list(map(Tensor.on_backend, repeat(backend), executable.run(inputs), out_specs))
        return results[0] if out_tree is pytree.LEAF else pytree.unflatten(out_tree, results)

    def __repr__(self) -> str:
        backend = getattr(self.backend, "name", type(self.backend).__name__)
        return (f"<Exec {self.name!r} on {backend}: {len(self._cache)} compiled "
                f"signature{'s' if len(self._cache) != 1 else ''}>")

    def _repr_html_(self) -> str:
        """The graph of each compiled signature drawn as SVG (Jupyter shows it)."""
        graphs = [entry[3] for entry in self._cache.values()]
        if not graphs:
            return (f"<pre>{html.escape(repr(self))}: nothing compiled yet; call it, or "
                    f"draw exe.graph(*example_args)</pre>")
        return f"<div><b>{html.escape(repr(self))}</b>" + "".join(
            f"<div>{g._repr_html_()}</div>" for g in graphs) + "</div>"

    def _arity_text(self) -> str:
        if self._min_args == self._max_args:
            return str(self._min_args)
        return f"{self._min_args} to {self._max_args}"

    def graph(self, *args: Any) -> Graph:
        """The graph traced for these example arguments (arrays, Tensors or `Shape`s);
        symbolic axes (see `symbolic`) hold their symbols. Where fn returned
        `NewArguments`, its parameters and `in_tree` are those arguments'."""
        leaves, treedef = pytree.flatten(args)
        specs = [x if isinstance(x, shapes.Shape) else
                 (x if isinstance(x, Tensor) else Tensor(x)).spec for x in leaves]
        if self.symbolic is not None:
            templates, names = self._layout(treedef)
            specs = [symbolic_axes.abstract(t, s, n) for t, s, n in zip(templates, specs, names)]
        return self._trace(treedef, specs)[0]

    def _layout(self, treedef: TreeDef) -> tuple[list, list[str]]:
        """The axes template and the name of every leaf of a call of this structure."""
        found = self._layouts.get(treedef)
        if found is None:
            found = self._layouts[treedef] = (
                symbolic_axes.templates(self.symbolic, treedef, self._names),
                symbolic_axes.leaf_names(treedef, self._names))
        return found

    def _symbolic_signature(self, treedef: TreeDef, key: list) -> tuple[tuple, list[Shape],
                                                                       dict[str, int]]:
        """The call's signature with symbolic axes abstracted, the leaves' symbolic specs
        and the symbols' sizes. Raises ValueError naming argument, axis and symbol."""
        templates, names = self._layout(treedef)
        specs = [symbolic_axes.abstract(t, Shape(dtype, dims), n)
                 for (dtype, dims), t, n in zip(key[1:], templates, names)]
        sizes = symbolic.match(specs, [dims for _, dims in key[1:]], self.maxima, names)
        return (treedef, *((s.dtype, s.dims) for s in specs)), specs, sizes

    def _trace(self, treedef: TreeDef, specs: Sequence[Shape]
               ) -> tuple[Graph, TreeDef, TreeDef]:
        """The graph, its arguments' structure (`treedef`, or that of fn's `NewArguments`)
        and its result's structure."""
        started = time.perf_counter()
        graph = Graph(self.name)
        with tracing(graph):
            nodes = [parameter(s) for s in specs]
            result = self.fn(*pytree.unflatten(treedef, nodes))
            if isinstance(result, NewArguments):
                treedef = _rebind(graph, result.arguments, self.name)
                result = result.result
            out_leaves, out_tree = pytree.flatten(result)
            graph.outputs = [o if isinstance(o, Node) else const(o) for o in out_leaves]
        graph.in_tree, graph.out_tree = treedef, out_tree
        graph.symbols = {s: self.maxima.get(s) for s in graph.symbols}
        graph.trace_seconds = time.perf_counter() - started
        return graph, treedef, out_tree

    def _compile(self, backend: Compiler, key: tuple, treedef: TreeDef, leaves: list,
                 specs: list[Shape] | None = None) -> _Entry:
        if specs is None:
            specs = [x.spec if isinstance(x, Tensor) else Tensor(x).spec for x in leaves]
        graph, in_tree, out_tree = self._trace(treedef, specs)
        rebound = in_tree is not treedef
        if rebound:  # fn added inputs: the calls that pass them find this entry
            treedef, key = in_tree, self._rebound_key(graph, key)
        executable = backend.compile(graph, _donated_leaves(treedef, self.donate))
        entry: _Entry = (executable, out_tree, [o.spec for o in graph.outputs], graph)
        self._cache[key] = entry
        while len(self._cache) > self.max_cache_size:
            self._cache.popitem(last=False)
        if rebound:
            raise ArgumentsChanged(f"Exec({self.name}): the trace added inputs; call again "
                                   "with the arguments its NewArguments named")
        return entry

    def _rebound_key(self, graph: Graph, key: tuple) -> tuple:
        """The signature of calls passing the arguments of a rebound graph: the call's own
        leaves keep their entries of `key` (they are the graph's first nodes), an added
        parameter (static) has the entry a Tensor of its spec gets."""
        given = {graph.nodes[i].id: entry for i, entry in enumerate(key[1:])}
        return (graph.in_tree, *(
            given[p.id] if p.id in given else
            (p.spec.dtype, p.spec.dims) if self.symbolic is not None else
            (p.spec.dtype.numpy, p.spec.dims) for p in graph.parameters))


def _rebind(graph: Graph, arguments: Any, name: str) -> TreeDef:
    """Makes the leaves of `arguments` (`NewArguments.arguments`) the graph's parameters,
    in their order; returns the arguments' structure."""
    leaves, treedef = pytree.flatten(arguments)
    if len(leaves) != len(graph.parameters) or \
            {id(p) for p in leaves} != {id(p) for p in graph.parameters}:
        raise ValueError(f"Exec({name}): NewArguments requires every parameter of the graph "
                         f"once, got {len(leaves)} leaves for {len(graph.parameters)} "
                         "parameters")
    graph.parameters = list(leaves)
    for i, p in enumerate(leaves):
        p.attrs["index"], p.attrs["name"] = i, f"p{i}"
    return treedef


def _runnable(backend: Compiler | None, name: str) -> Compiler:
    if backend is None:
        raise TypeError(f"Exec({name}) was made with backend None, which traces only: "
                        f"exe.graph(*args) gives the graph; give a backend to run it")
    return backend


def _check_arguments(backend: Any, fn: Any, donate: Any, max_cache_size: Any) -> None:
    if not callable(fn):
        hint = "; the backend comes first: G.Exec(backend, fn)" if callable(backend) else ""
        raise TypeError(f"G.Exec(backend, fn) requires a callable fn, got "
                        f"{type(fn).__name__}{hint}")
    if backend is not None and not (hasattr(backend, "compile") and
                                    hasattr(backend, "to_device")):
        raise TypeError(f"G.Exec(backend, fn) requires a backend from mlf.backends.new() (or "
                        f"None, to trace only), got {type(backend).__name__}")
    if not isinstance(donate, tuple | list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in donate):
        raise TypeError(f"G.Exec(donate=...) requires a tuple of argument positions, got "
                        f"{donate!r}")
    if isinstance(max_cache_size, bool) or not isinstance(max_cache_size, int) or \
            max_cache_size < 1:
        raise ValueError(f"G.Exec(max_cache_size=...) requires an int >= 1, got "
                         f"{max_cache_size!r}")


def _check_symbolic(spec: Any, maxima: Any) -> dict[str, int]:
    """The maxima, checked against the symbols `spec` declares (see Exec's docstring)."""
    if spec is not None and (isinstance(spec, str) or not isinstance(spec, dict | tuple | list)):
        raise TypeError(f"G.Exec(symbolic=...) requires a dict by parameter name or a sequence "
                        f"by position of axes specs such as 'N, 64', got {spec!r}")
    declared = symbolic_axes.symbols_of(spec)
    maxima = dict(maxima or {})
    for name, top in maxima.items():
        if name not in declared:
            raise ValueError(f"G.Exec(maxima=...) gives a maximum for {name!r}, which no "
                             f"axis in symbolic= declares (declared: "
                             f"{', '.join(sorted(declared)) or 'none'})")
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ValueError(f"G.Exec(maxima=...) requires an int >= 1 for {name}, got {top!r}")
    return maxima


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _arity(fn: Callable[..., Any]) -> tuple[int, float]:
    """(fewest, most) positional arguments `fn` accepts."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 0, math.inf
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    most = math.inf if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
    return sum(p.default is p.empty for p in positional), most


def _donated_leaves(treedef: TreeDef, donate: tuple[int, ...]) -> tuple[int, ...]:
    """Flat leaf positions of the top-level arguments listed in `donate`."""
    out: list[int] = []
    start = 0
    for i, child in enumerate(treedef.children):
        if i in donate:
            out.extend(range(start, start + child.num_leaves))
        start += child.num_leaves
    return tuple(out)


__all__ = ["ArgumentsChanged", "Exec", "NewArguments"]
