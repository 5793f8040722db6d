"""User-defined gradients: `custom_vjp`.

    f = G.custom_vjp(fn)
    f.defvjp(fwd, bwd)  # fwd(*args) -> (out, residuals); bwd(residuals, g) -> (dargs...)

Calling `f` traces `fwd` (inside it, `f` is plain `fn`) and passes each float
output through a `stop_gradient` node recorded as the call's output.
Reverse mode (`G.grad`, and everything built on it) stops there and calls
`bwd` instead of differentiating fn's nodes; forward mode (`G.jvp`) refuses
such a node, as JAX does. Any other use of the graph sees plain nodes.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from mlframework.core import pytree
from mlframework.graph import gen_ops as ops
from mlframework.graph.composites import zeros_like
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Graph, Node, current_graph

# The recorded calls of each graph, by the ids of their output nodes.
_CALLS: "weakref.WeakKeyDictionary[Graph, dict[int, _Call]]" = weakref.WeakKeyDictionary()


class CustomVJP:
    """A function with a user-defined reverse-mode gradient; made by `custom_vjp`."""

    def __init__(self, fn: Callable[..., Any]):
        if not callable(fn):
            raise TypeError(f"custom_vjp requires a function, got {type(fn).__name__}")
        self.fn = fn
        self.fwd: Callable[..., tuple[Any, Any]] | None = None
        self.bwd: Callable[..., Any] | None = None
        self._in_fwd = False
        self.name = getattr(fn, "__name__", "fn")
        self.__doc__ = getattr(fn, "__doc__", None)

    def defvjp(self, fwd: Callable[..., tuple[Any, Any]], bwd: Callable[..., Any]) -> None:
        """Sets the gradient: `fwd(*args)` returns (fn's result, residuals, any pytree of
        nodes), and may call this function for the result (it then runs fn itself);
        `bwd(residuals, g)`, with g the cotangent of fn's result (in its structure;
        zeros where the loss does not depend on an output), returns a tuple with one entry per
        argument: a pytree like that argument of cotangents of its shapes and dtypes, or None
        (zero)."""
        if not callable(fwd) or not callable(bwd):
            raise TypeError(f"{self.name}.defvjp(fwd, bwd) requires two functions, got "
                            f"{type(fwd).__name__} and {type(bwd).__name__}")
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: Any) -> Any:
        if self.fwd is None:
            raise TypeError(f"custom_vjp function {self.name} has no gradient: call "
                            f"{self.name}.defvjp(fwd, bwd) before calling it")
        if self._in_fwd:  # fwd computing its output by calling this function
            return self.fn(*args)
        graph = current_graph()
        arg_leaves, in_tree = pytree.flatten(args)
        start = len(graph.nodes)
        self._in_fwd = True
        try:
            result = self.fwd(*args)
        finally:
            self._in_fwd = False
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"fwd of custom_vjp function {self.name} must return a pair "
                            f"(output, residuals), got {type(result).__name__}")
        closure = _closed_over(graph.nodes[start:], arg_leaves, start)
        out_leaves, out_tree = pytree.flatten(result[0])
        leaves = [ops.stop_gradient(o) if isinstance(o, Node) and o.dtype.is_float else o
                  for o in out_leaves]
        call = _Call(self, (arg_leaves, in_tree), (leaves, out_tree), result[1], closure)
        calls = _CALLS.setdefault(graph, {})
        for o in call.outputs:
            calls[o.id] = call
        return pytree.unflatten(out_tree, leaves)

    def __repr__(self) -> str:
        return f"<custom_vjp {self.name}>"


def custom_vjp(fn: Callable[..., Any]) -> CustomVJP:
    """`fn` (a function of nodes) with a gradient to be given by `.defvjp(fwd, bwd)`.

    Usable as a decorator. Calling it traces fwd, whose output is the value. bwd
    gives cotangents of the arguments only: a gradient that needs a node fn closes over
    raises, so pass anything to be differentiated as an argument. Forward mode (G.jvp,
    G.jacfwd) through the function raises TypeError, as in JAX.

    Raises:
        TypeError: fn is not callable; at call time, no `defvjp` was given, fwd does not
            return a pair, or bwd does not return one entry per argument.
        ValueError: at gradient time, the gradient needs a node that fn closes over.
        ShapeError, DTypeError: bwd's cotangents do not match the arguments.
    """
    return CustomVJP(fn)


class _Call:
    """One call of a custom_vjp function: its arguments and outputs (flattened, with their
    structures), the outputs marked with stop_gradient, the residuals and the float nodes
    fn closed over."""

    def __init__(self, function, args, outs, residuals, closure):
        self.function, self.name = function, function.name
        (self.arg_leaves, self.in_tree), (self.out_leaves, self.out_tree) = args, outs
        self.residuals, self.closure = residuals, closure
        self.outputs = [o for o in self.out_leaves if isinstance(o, Node) and o.dtype.is_float]

    def backprop(self, node, cotangents: dict[int, Node], needed: set[int]) -> None:
        """Adds bwd's cotangents of the arguments in `needed` to `cotangents`, once: at the
        last output holding a cotangent, when all of them are complete.

        Raises:
            ValueError: the gradient needs a node fn closed over (bwd cannot give it).
        """
        if any(o.id > node.id and o.id in cotangents for o in self.outputs):
            return
        lost = [x for x in self.closure if x.id in needed]
        if lost:
            raise ValueError(f"custom_vjp function {self.name} uses {lost[0]!r} (built at "
                             f"{lost[0].source}) without taking it as an argument, and the "
                             f"gradient depends on it: pass it as an argument, so that bwd "
                             f"gives its cotangent")
        g = [(cotangents[o.id] if o.id in cotangents else zeros_like(o))
             if isinstance(o, Node) else None for o in self.out_leaves]
        grads = self.function.bwd(self.residuals, pytree.unflatten(self.out_tree, g))
        args = pytree.unflatten(self.in_tree, self.arg_leaves)
        if not isinstance(grads, tuple) or len(grads) != len(args):
            got = f"a tuple of {len(grads)}" if isinstance(grads, tuple) else \
                type(grads).__name__
            raise TypeError(f"bwd of custom_vjp function {self.name} must return a tuple with "
                            f"one cotangent per argument ({len(args)}), got {got}")
        for arg, grad in zip(args, grads):
            if grad is None:
                continue
            arg_leaves, grad_leaves = pytree.flatten(arg), pytree.flatten(grad)
            _check_like(f"bwd of {self.name} returned a cotangent", grad_leaves, arg_leaves,
                        "the argument's")
            for x, gx in zip(arg_leaves[0], grad_leaves[0]):
                if isinstance(x, Node) and x.id in needed:
                    prev = cotangents.get(x.id)
                    cotangents[x.id] = gx if prev is None else prev + gx


def copy_calls(graph: Graph, copies: dict[int, Node]) -> None:
    """Records the custom_vjp calls of `graph` again for `copies` (ids of graph's nodes ->
    their copies in another graph, made by `subgraphs.inline`), so that gradients of the
    copies also go through bwd."""
    calls = {id(c): c for c in _CALLS.get(graph, {}).values()}
    for call in calls.values():
        def copy(tree):
            return pytree.tree_map(
                lambda x: copies[x.id] if isinstance(x, Node) and x.graph is graph else x, tree)
        new = _Call(call.function, (copy(call.arg_leaves), call.in_tree),
                    (copy(call.out_leaves), call.out_tree), copy(call.residuals),
                    copy(call.closure))
        targets = _CALLS.setdefault(new.outputs[0].graph, {}) if new.outputs else {}
        for o in new.outputs:
            targets[o.id] = new


def call_of(node: Node) -> _Call | None:
    """The custom_vjp call whose output `node` is, or None."""
    if node.op is not Op.STOP_GRADIENT:
        return None
    return _CALLS.get(node.graph, {}).get(node.id)


def _check_like(what, got, want, whose) -> None:
    """Raises unless pytrees `got` and `want` (flattened) have one structure and, where
    `want` has nodes, nodes of the same shapes and dtypes."""
    (got_leaves, got_tree), (want_leaves, want_tree) = got, want
    if got_tree != want_tree:
        raise TypeError(f"{what} of structure {got_tree}, expected {whose} {want_tree}")
    for g, w in zip(got_leaves, want_leaves):
        if not isinstance(w, Node):
            continue
        if not isinstance(g, Node) or g.shape != w.shape:
            raise ShapeError(f"{what} {getattr(g, 'spec', type(g).__name__)}, expected "
                             f"{whose} {w.spec}")
        if g.dtype is not w.dtype:
            raise DTypeError(f"{what} {g.spec}, expected {whose} {w.spec}")


def _closed_over(nodes, arg_leaves, start) -> list[Node]:
    """The float nodes built before the call (id < start), other than the arguments, that
    fn's `nodes` use."""
    args = {x.id for x in arg_leaves if isinstance(x, Node)}
    used = {x.id: x for node in nodes for x in node.inputs
            if x.id < start and x.id not in args and x.dtype.is_float}
    return list(used.values())


__all__ = ["CustomVJP", "custom_vjp"]
