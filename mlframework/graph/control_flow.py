"""Structured control flow: `cond`, `switch`, `while_loop`, `fori_loop` and `scan`.

    h, ys = G.scan(lambda h, x: (G.tanh(h @ w + x), h), h0, xs)

Each function traces its Python callables once into sub-graphs held by one node
(not unrolled), in the style of jax.lax. Operands and results are pytrees of
nodes (Python scalars become constants); a callable may read any value of the
enclosing graphs, which becomes an extra operand of the node. The node is a
tuple of results read by `tuple_get` nodes, which these functions return in the
callables' result structure.

Errors: a branch or body whose results differ in structure, shape or dtype from
what is required raises ShapeError or DTypeError naming the op, the pytree path,
both types, where the callable is defined and the user's line.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import numpy as np

from mlframework.core import dtypes, pytree
from mlframework.core.shapes import Shape
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import as_node
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Node, Operand, build
from mlframework.graph.subgraphs import align_captures, results, trace


def cond(pred: Operand, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
         *operands: Any) -> Any:
    """`true_fn(*operands)` if the scalar `pred` is true, else `false_fn(*operands)`.

    pred is a bool scalar (a number is true where nonzero). Both functions return
    pytrees of the same structure, shapes and dtypes. Only the chosen branch runs.

    Raises:
        ShapeError, DTypeError: pred is not a scalar, or the branches' results differ.
    """
    pred = as_node(pred)
    if pred.ndim:
        raise ShapeError(f"cond requires a scalar predicate, got {pred.spec}")
    if pred.dtype is not dtypes.BOOL:
        pred = ops.ne(pred, as_node(0, pred.dtype))
    return _branch("cond", pred, [false_fn, true_fn], operands)


def switch(index: Operand, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """`branches[index](*operands)` for an integer scalar `index`, clamped to
    [0, len(branches) - 1] (as jax.lax.switch). Every branch returns a pytree of
    the same structure, shapes and dtypes.

    Raises:
        ShapeError, DTypeError: index is not an integer scalar, or the results differ.
        ValueError: no branches.
    """
    branches = list(branches)
    if not branches:
        raise ValueError("switch requires at least one branch, got none")
    index = as_node(index, index=True)
    if index.ndim or not index.dtype.is_int:
        raise DTypeError(f"switch requires an integer scalar index, got {index.spec}")
    if index.dtype is not dtypes.DType.INT32:
        index = ops.convert(index, np.int32)
    return _branch("switch", index, branches, operands)


def _branch(name, index, fns, operands):
    leaves, tree = pytree.flatten(tuple(operands))
    leaves = [as_node(x) for x in leaves]
    args = pytree.unflatten(tree, [x.spec for x in leaves])
    traced = [trace(f, args, f"{name}_branch{i}") for i, f in enumerate(fns)]
    first, first_tree = traced[0]
    for (g, t), f in zip(traced[1:], fns[1:]):
        _check(name, f"the result of branch {_where(f)}", t, g.outputs, first_tree,
               first.outputs, f"the result of branch {_where(fns[0])}")
    graphs = [g for g, _ in traced]
    captures = align_captures(graphs, len(leaves))
    node = build(Op.COND, [index, *leaves, *captures], {"branches": tuple(graphs)})
    return pytree.unflatten(first_tree, results(node))


def while_loop(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any], init: Any) -> Any:
    """Repeats `carry = body_fn(carry)` while `cond_fn(carry)` is true, from `init`.

    cond_fn returns a bool scalar; body_fn returns a pytree of init's structure,
    shapes and dtypes. Differentiable only forward: reverse mode needs a trip count
    (use `fori_loop` with int bounds, or `scan`).

    Raises:
        ShapeError, DTypeError: cond_fn's result is not a bool scalar, or body_fn's
            differs from init.
    """
    leaves, tree = pytree.flatten(init)
    leaves = [as_node(x) for x in leaves]
    specs = pytree.unflatten(tree, [x.spec for x in leaves])
    test, test_tree = trace(cond_fn, (specs,), "while_cond")
    if test_tree is not pytree.LEAF or test.outputs[0].spec != Shape(dtypes.BOOL, ()):
        got = ", ".join(str(o.spec) for o in test.outputs)
        raise DTypeError(f"while_loop requires cond_fn {_where(cond_fn)} to return a bool "
                         f"scalar, got {test_tree} of ({got})")
    body, body_tree = trace(body_fn, (specs,), "while_body")
    _check("while_loop", f"the carry body_fn {_where(body_fn)} returns", body_tree,
           body.outputs, tree, leaves, "init")
    captures = align_captures([test, body], len(leaves))
    node = build(Op.WHILE_LOOP, [*leaves, *captures],
                 {"cond": test, "body": body, "num_carry": len(leaves)})
    return pytree.unflatten(tree, results(node))


def fori_loop(lower: int | Operand, upper: int | Operand, body_fn: Callable[[Any, Any], Any],
              init: Any) -> Any:
    """`carry = body_fn(i, carry)` for i from lower up to upper (exclusive), from init.

    With Python int bounds the trip count is static and the loop is a `scan`
    (so reverse-mode autodiff goes through it); with node bounds it is a
    `while_loop` (forward only). i has the bounds' dtype (int32 for Python ints).

    Raises:
        ShapeError, DTypeError: body_fn's result differs from init; bounds are not
            integer scalars.
    """
    if _static_int(lower) and _static_int(upper):
        lower = int(lower)

        def step(carry, _):
            i, value = carry
            return (i + 1, body_fn(i, value)), None
        (_, out), _ = _scan("fori_loop", step, (as_node(lower, np.int32), init), None,
                            max(int(upper) - lower, 0), False, body_fn)
        return out
    lower, upper = as_node(lower, index=True), as_node(upper, index=True)
    for b in (lower, upper):
        if b.ndim or not b.dtype.is_int:
            raise DTypeError(f"fori_loop requires integer scalar bounds, got {b.spec}")
    if lower.dtype is not upper.dtype:
        raise DTypeError(f"fori_loop requires bounds of one dtype, got {lower.spec} and "
                         f"{upper.spec}")
    _, out = while_loop(lambda c: ops.lt(c[0], upper),
                        lambda c: (c[0] + 1, body_fn(c[0], c[1])), (lower, init))
    return out


def _static_int(x: object) -> TypeGuard[int | np.integer]:
    return not isinstance(x, Node | bool) and isinstance(x, int | np.integer)


def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any | None = None,
         length: DimLike | None = None, reverse: bool = False) -> tuple[Any, Any]:
    """Loops `carry, y = f(carry, x)` over the slices x of xs along axis 0.

    xs is a pytree of nodes with one leading length (or None, with `length`
    given); `reverse` runs from the last slice to the first (ys stay aligned with
    xs). Returns (final carry, ys): the ys of every step stacked along a new
    axis 0, in f's structure (None for none).

    Raises:
        ShapeError, DTypeError: f's carry differs from init, xs leaves disagree on
            their leading length or with `length`, or f does not return a pair.
    """
    return _scan("scan", f, init, xs, length, reverse, f)


def _scan(name, f, init, xs, length, reverse, user_fn):
    carry, carry_tree = pytree.flatten(init)
    carry = [as_node(c) for c in carry]
    xleaves, xs_tree = pytree.flatten(xs)
    xleaves = [as_node(x) for x in xleaves]
    lengths = {x.shape[0] if x.ndim else None for x in xleaves}
    if None in lengths or len(lengths) > 1 or length is not None and lengths - {length}:
        got = ", ".join(str(x.spec) for x in xleaves)
        raise ShapeError(f"{name} requires xs with one leading length"
                         f"{'' if length is None else f' equal to length={length}'}, "
                         f"got ({got})")
    if length is None:
        if not lengths:
            raise ShapeError(f"{name} requires length= when xs has no arrays, got xs={xs!r}")
        length = lengths.pop()
    x_specs = pytree.unflatten(xs_tree, [_slice_spec(x) for x in xleaves])
    body, out_tree = trace(f, (pytree.unflatten(carry_tree, [c.spec for c in carry]),
                               x_specs), f"{name}_body")
    if out_tree.kind not in ("tuple", "list") or len(out_tree.children) != 2:
        raise ShapeError(f"{name} requires {_where(user_fn)} to return a pair (carry, y), "
                         f"got {out_tree}")
    new_tree, y_tree = out_tree.children
    n = len(carry)
    _check(name, f"the carry {_where(user_fn)} returns", new_tree, body.outputs[:n],
           carry_tree, carry, "init")
    captures = align_captures([body], n + len(xleaves))
    node = build(Op.SCAN, [*carry, *xleaves, *captures],
                 {"body": body, "length": length if isinstance(length, Dim) else int(length),
                  "reverse": bool(reverse),
                  "num_carry": n, "num_xs": len(xleaves)})
    out = results(node)
    return pytree.unflatten(carry_tree, out[:n]), pytree.unflatten(y_tree, out[n:])


def _slice_spec(x: Node) -> Shape:
    return Shape(x.dtype, x.shape[1:])


def _where(fn) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__name__", type(fn).__name__)
    return f"{name} (defined at {code.co_filename}:{code.co_firstlineno})" if code else name


def _check(op: str, what: str, tree, nodes, want_tree, want_nodes, want_what: str) -> None:
    """Raises unless `nodes` (of structure `tree`) match `want_nodes` leaf by leaf."""
    if tree != want_tree:
        raise ShapeError(f"{op} requires {what} to have the structure of {want_what}, got "
                         f"{tree} for {want_tree}")
    for path, got, want in zip(pytree.leaf_paths(tree), nodes, want_nodes):
        if got.spec == want.spec:
            continue
        error = DTypeError if got.dtype is not want.dtype else ShapeError
        raise error(f"{op} requires {what} to match {want_what} at {path or 'the root'}: "
                    f"got {got.spec} for {want.spec}")


__all__ = ["cond", "fori_loop", "scan", "switch", "while_loop"]
