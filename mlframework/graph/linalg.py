"""Matrix products on top of `dot_general`: matmul (NumPy semantics) and einsum; `solve`
on top of `triangular_solve`."""
from __future__ import annotations

import string

from mlframework.core import symbolic
from mlframework.core.symbolic import DimLike
from mlframework.graph import gen_ops as ops
from mlframework.graph.broadcasting import as_node, broadcast_shapes, broadcast_to
from mlframework.graph.composites import where
from mlframework.graph.errors import ShapeError
from mlframework.graph.graph import Node, Operand
from mlframework.graph.layout import take_along_axis


def matmul(x: Operand, y: Operand) -> Node:
    """Matrix product with numpy.matmul semantics.

    Shapes: [..., n, k] @ [..., k, m] -> [..., n, m] with the leading batch
    axes broadcast; a 1-D operand is a vector (its axis is dropped from the
    result). Raises ShapeError when the k axes differ.
    """
    x, y = as_node(x), as_node(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(f"matmul requires operands of rank >= 1, got {x.spec} and {y.spec}; "
                         "use * for scalars")
    if x.ndim == 1 and y.ndim == 1:
        return ops.dot_general(x, y, (0,), (0,))
    x_vec, y_vec = x.ndim == 1, y.ndim == 1
    if x_vec:
        x = ops.reshape(x, (1, x.shape[0]))
    if y_vec:
        y = ops.reshape(y, (y.shape[0], 1))
    if x.shape[-1] != y.shape[-2]:
        raise ShapeError(f"matmul requires x.shape[-1] == y.shape[-2], got {x.spec} @ {y.spec}: "
                         f"{x.shape[-1]} and {y.shape[-2]}")
    batch = broadcast_shapes("matmul", x.shape[:-2], y.shape[:-2])
    if x.ndim == 2 and y.ndim == 2:
        out = ops.dot_general(x, y, (1,), (0,))
    else:
        x = broadcast_to(x, batch + x.shape[-2:])
        y = broadcast_to(y, batch + y.shape[-2:])
        nb = len(batch)
        out = ops.dot_general(x, y, (nb + 1,), (nb,), tuple(range(nb)), tuple(range(nb)))
    if x_vec or y_vec:
        shape = out.shape[:-2] + (() if x_vec else out.shape[-2:-1]) + (
            () if y_vec else out.shape[-1:])
        out = ops.reshape(out, shape)
    return out


def solve(a: Operand, b: Operand) -> Node:
    """x with a @ x == b, as jax.numpy.linalg.solve: a [..., n, n], b [..., n, k] or [n]
    (a vector), leading batch axes broadcast.

    Gaussian elimination with partial pivoting (as LAPACK's getrf: at step j the row of
    the largest |a[i, j]|, i >= j, is swapped up), applied to b as it goes, then one
    `triangular_solve` with the upper factor. A composite: the n steps are unrolled into
    the graph (each a few whole-matrix ops), so it suits the small and moderate n it is
    meant for, and its gradients are those of the steps. A singular a gives inf or NaN.

    Raises:
        ShapeError: if a is not square or b does not have a's n rows.
    """
    a, b = as_node(a), as_node(b)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"solve requires square matrices a [..., n, n], got {a.spec}")
    n, vector = symbolic.static(a.shape[-1], "solve's matrix size a.shape[-1]"), b.ndim == 1
    if vector and b.shape[0] == n:
        b = ops.reshape(b, (n, 1))
    if b.ndim < 2 or b.shape[-2] != n:
        raise ShapeError(f"solve requires b [..., {n}, k] or [{n}], got {b.spec} for a {a.spec}")
    batch = broadcast_shapes("solve", a.shape[:-2], b.shape[:-2])
    u, rhs = broadcast_to(a, batch + (n, n)), broadcast_to(b, batch + b.shape[-2:])
    rows = ops.iota("int32", batch + (n,), len(batch))
    last = len(batch) + 1
    for j in range(n):
        column = ops.abs(ops.slice(u, (0,) * last + (j,), u.shape[:-1] + (j + 1,)))
        column = ops.reshape(column, batch + (n,))
        pivot = ops.argmax(where(ops.ge(rows, j), column, -1), len(batch))  # [...]
        pivot = ops.broadcast_in_dim(pivot, rows.shape, tuple(range(len(batch))))
        source = where(ops.eq(rows, j), pivot, where(ops.eq(rows, pivot), j, rows))
        u, rhs = (take_along_axis(m, broadcast_to(ops.reshape(source, batch + (n, 1)),
                                                  m.shape), last - 1) for m in (u, rhs))
        top = ops.slice(u, (0,) * (last - 1) + (j, j), batch + (j + 1, j + 1))
        below = ops.slice(u, (0,) * last + (j,), u.shape[:-1] + (j + 1,))
        factor = where(ops.reshape(ops.gt(rows, j), batch + (n, 1)), below / top, 0)
        u = u - factor * ops.slice(u, (0,) * (last - 1) + (j, 0), batch + (j + 1, n))
        rhs = rhs - factor * ops.slice(rhs, (0,) * (last - 1) + (j, 0),
                                       batch + (j + 1, rhs.shape[-1]))
    x = ops.triangular_solve(u, rhs, left_side=True, lower=False)
    return ops.reshape(x, batch + (n,)) if vector else x


def einsum(subscripts: str, *operands: Operand) -> Node:
    """Einstein summation, as numpy.einsum: `einsum("bij,bjk->bik", a, b)`.

    Supports explicit and implicit outputs, `...` (its dimensions broadcast as NumPy's:
    size 1 against any size) and any number of operands (contracted pairwise, left to
    right). A label repeated inside one operand
    (a diagonal) is not supported and raises NotImplementedError.
    """
    nodes = [as_node(o) for o in operands]
    inputs, output, sizes = _parse(subscripts.replace(" ", ""), nodes)
    nodes = [o if all(sizes[c] == d for c, d in zip(spec, o.shape)) else
             broadcast_to(o, tuple(sizes[c] for c in spec))
             for o, spec in zip(nodes, inputs)]
    for spec in inputs:
        if len(set(spec)) != len(spec):
            raise NotImplementedError(f"einsum does not support repeated labels within one "
                                      f"operand (diagonals), got {subscripts!r}")
    acc, acc_spec = nodes[0], inputs[0]
    for k in range(1, len(nodes)):
        keep = set(output).union(*inputs[k + 1:])
        acc, acc_spec = _contract_pair(acc, acc_spec, nodes[k], inputs[k], keep)
    acc, acc_spec = _sum_out(acc, acc_spec, set(output))
    return ops.transpose(acc, [acc_spec.index(c) for c in output]) if acc_spec != output else acc


def _parse(subscripts: str, operands: list[Node]) -> tuple[list[str], str, dict[str, DimLike]]:
    """(one label string per operand, the output labels, each label's size). The labels
    standing for `...` broadcast as NumPy's dimensions do (size 1 against any size).

    Raises:
        ShapeError: on a wrong operand count, a label count that differs from an operand's
            rank, or a label (other than a broadcast `...` one) with two sizes.
    """
    lhs, _, out = subscripts.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise ShapeError(f"einsum requires {len(inputs)} operands for {subscripts!r}, "
                         f"got {len(operands)}")
    unused = [c for c in string.ascii_letters if c not in subscripts]
    ellipsis_rank = max((o.ndim - len(s) + 3 for s, o in zip(inputs, operands) if "..." in s),
                        default=0)
    fill = "".join(unused[:ellipsis_rank])
    expanded = []
    for spec, node in zip(inputs, operands):
        if "..." in spec:
            n = node.ndim - (len(spec) - 3)
            spec = spec.replace("...", fill[len(fill) - n:] if n else "")
        if len(spec) != node.ndim:
            raise ShapeError(f"einsum requires one label per axis, got {spec!r} for {node.spec}")
        expanded.append(spec)
    sizes: dict[str, DimLike] = {}
    for spec, node in zip(expanded, operands):
        for c, d in zip(spec, node.shape):
            if c in fill and 1 in (sizes.setdefault(c, d), d):
                sizes[c] = d if sizes[c] == 1 else sizes[c]  # 1 broadcasts (0 included)
            elif sizes.setdefault(c, d) != d:
                raise ShapeError(f"einsum requires label {c!r} to have one size, got "
                                 f"{sizes[c]} and {d} in {subscripts!r}")
    if "->" in subscripts:
        output = out.replace("...", fill)
    else:
        counts = "".join(expanded)
        output = fill + "".join(sorted(c for c in set(counts) if counts.count(c) == 1
                                       and c not in fill))
    return expanded, output, sizes


def _sum_out(x: Node, spec: str, keep: set) -> tuple[Node, str]:
    axes = [i for i, c in enumerate(spec) if c not in keep]
    if not axes:
        return x, spec
    return ops.reduce_sum(x, axes), "".join(c for c in spec if c in keep)


def _contract_pair(a: Node, sa: str, b: Node, sb: str, keep: set) -> tuple[Node, str]:
    a, sa = _sum_out(a, sa, keep | set(sb))
    b, sb = _sum_out(b, sb, keep | set(sa))
    shared = [c for c in sa if c in sb]
    batch = [c for c in shared if c in keep]
    contract = [c for c in shared if c not in keep]
    out = ops.dot_general(a, b, [sa.index(c) for c in contract], [sb.index(c) for c in contract],
                          [sa.index(c) for c in batch], [sb.index(c) for c in batch])
    spec = "".join(batch) + "".join(c for c in sa if c not in shared) + "".join(
        c for c in sb if c not in shared)
    return out, spec
