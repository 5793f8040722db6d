"""VJP rules of cholesky and triangular_solve, and the triangle helpers their JVP
rules (`jvp_rules.py`) share.

Both primitives read one triangle of their matrix only, so their cotangents are
zero on the other (cholesky: the symmetric cotangent folded onto the lower
triangle; triangular_solve: masked to the triangle it reads).
"""
from __future__ import annotations

from mlframework.graph import gen_ops as ops
from mlframework.graph.composites import where
from mlframework.graph.gen_optypes import Op
from mlframework.graph.graph import Node
from mlframework.graph.linalg import matmul
from mlframework.graph.vjp_contraction import Rule


def transposed(x: Node) -> Node:
    """x with its last two axes swapped."""
    return ops.transpose(x, [*range(x.ndim - 2), x.ndim - 1, x.ndim - 2])


def triangle(x: Node, lower: bool, k: int = 0) -> Node:
    """numpy.tril(x, k) (lower) or numpy.triu(x, k) over the last two axes."""
    rows = ops.iota("int32", x.shape, x.ndim - 2)
    cols = ops.iota("int32", x.shape, x.ndim - 1)
    keep = ops.le(cols - rows, k) if lower else ops.ge(cols - rows, k)
    return where(keep, x, 0)


def read_triangle(node: Node, x: Node) -> Node:
    """x masked to the part of triangular_solve's matrix that `node` reads."""
    a = node.attrs
    k = (1 if a["unit_diagonal"] else 0) * (-1 if a["lower"] else 1)
    return triangle(x, a["lower"], k)


def halved_lower(x: Node) -> Node:
    """The lower triangle of x with its diagonal halved (the Cholesky rules' Phi)."""
    return triangle(x, True, -1) + (triangle(x, True) - triangle(x, True, -1)) * 0.5


def _cholesky_vjp(node, g):
    # S = L^-T Phi(L^T g) L^-1; the matrix is read as tril(x) + tril(x, -1)^T, so the
    # cotangent of x is S + S^T below the diagonal, S on it and 0 above.
    low = node
    p = halved_lower(matmul(transposed(low), g))
    s = ops.triangular_solve(low, p, left_side=True, lower=True, transpose_a=True)
    s = ops.triangular_solve(low, s, left_side=False, lower=True)
    return (triangle(s + transposed(s), True, -1) + (triangle(s, True) -
                                                      triangle(s, True, -1)),)


def _triangular_solve_b_vjp(node, g):
    a = node.attrs
    return ops.triangular_solve(node.inputs[0], g, a["left_side"], a["lower"],
                                not a["transpose_a"], a["unit_diagonal"])


def _triangular_solve_a_vjp(node, g):
    a, x = node.attrs, node
    gb = _triangular_solve_b_vjp(node, g)
    if a["left_side"]:
        full = matmul(x, transposed(gb)) if a["transpose_a"] else matmul(gb, transposed(x))
    else:
        full = matmul(transposed(gb), x) if a["transpose_a"] else matmul(transposed(x), gb)
    return read_triangle(node, -full)


RULES: dict[Op, Rule] = {
    Op.CHOLESKY: _cholesky_vjp,
    Op.TRIANGULAR_SOLVE: (_triangular_solve_a_vjp, _triangular_solve_b_vjp),
}
