"""Index math for fused loops: affine index expressions and how each data-movement
op maps an output index to its input's index.

A fused kernel loops over its output; each value inside is evaluated at an
index, one `Lin` per axis. A `Lin` is `sum(coef * var) + const` over loop
variables with known extents, or an opaque C expression when division does not
simplify. Keeping indices affine lets gcc see unit strides (so it vectorizes)
and lets the fusion pass prove that a reduction is read at its own row.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aot.program.symbols import c_expr
from mlframework.core.symbolic import Dim, DimLike, divide, nonnegative


@dataclass(frozen=True)
class Lin:
    """`sum(c * v for v, c in terms) + const`, or `opaque` C text when not affine.

    Coefficients and the constant are ints, or `Dim`s of symbols spelled by their C
    names (`aot.program.symbols.renamed`): the stride of an axis after a symbolic one."""

    terms: tuple[tuple[str, DimLike], ...] = ()
    const: DimLike = 0
    opaque: str | None = None

    def c(self) -> str:
        if self.opaque is not None:
            return self.opaque
        parts = [v if k == 1 else f"{c_expr(k)}*{v}" for v, k in self.terms]
        if self.const != 0 or not parts:
            parts.append(c_expr(self.const))
        return " + ".join(parts).replace("+ -", "- ")

    def is_zero(self) -> bool:
        return self.opaque is None and not self.terms and self.const == 0


def var(name: str) -> Lin:
    return Lin(((name, 1),))


def const(k: DimLike) -> Lin:
    return Lin((), k if isinstance(k, Dim) else int(k))


def opaque(text: str) -> Lin:
    return Lin(opaque=f"({text})")


def add(a: Lin, b: Lin) -> Lin:
    if a.opaque is not None or b.opaque is not None:
        if a.is_zero():
            return b
        if b.is_zero():
            return a
        return opaque(f"{a.c()} + {b.c()}")
    terms = dict(a.terms)
    for v, k in b.terms:
        terms[v] = terms.get(v, 0) + k
    return Lin(tuple((v, k) for v, k in terms.items() if k != 0), a.const + b.const)


def scale(a: Lin, k: DimLike) -> Lin:
    if a.opaque is not None:
        return const(0) if k == 0 else (a if k == 1 else opaque(f"{c_expr(k)}*{a.c()}"))
    return Lin(tuple((v, c * k) for v, c in a.terms if c * k != 0), a.const * k)


def _bounds(terms, const, extents: Mapping[str, DimLike]) -> tuple[DimLike, DimLike] | None:
    """(lowest, highest) value of `sum(terms) + const` over the loop variables' ranges,
    None when a symbolic term's sign is not provable (then nothing is simplified)."""
    lo = hi = const
    for v, k in terms:
        top = k * (extents[v] - 1)
        if nonnegative(top):
            hi = hi + top
        elif nonnegative(-top):
            lo = lo + top
        else:
            return None
    return lo, hi


def _within(bounds, s: DimLike) -> bool:
    """True if bounds (lo, hi) provably lie in [0, s) for every symbol value."""
    return bounds is not None and nonnegative(bounds[0]) and nonnegative(s - 1 - bounds[1])


def div(a: Lin, s: DimLike, extents: Mapping[str, DimLike]) -> Lin:
    """floor(a / s) for a >= 0; affine when the low part provably stays below s."""
    if s == 1:
        return a
    if a.opaque is None:
        hi_t: list[tuple[str, DimLike]] = []
        lo_t: list[tuple[str, DimLike]] = []
        for v, k in a.terms:
            q_k = divide(k, s)
            if q_k is None:
                lo_t.append((v, k))
            else:
                hi_t.append((v, q_k))
        q = divide(a.const, s)
        hi_c, lo_c = (q, 0) if q is not None else (0, a.const)
        if _within(_bounds(lo_t, lo_c, extents), s):
            return Lin(tuple(hi_t), hi_c)
    return opaque(f"({a.c()}) / {c_expr(s)}")


def mod(a: Lin, d: DimLike, extents: Mapping[str, DimLike]) -> Lin:
    """a % d for a >= 0; drops multiples of d and the mod itself when provably in range."""
    if d == 1:
        return const(0)
    if a.opaque is None:
        t = tuple((v, k) for v, k in a.terms if divide(k, d) is None)
        # the constant may be reduced mod d where the terms cannot go negative: the sum
        # then stays >= 0, so C's % (which keeps the sign) agrees with the mathematical one
        c = a.const
        if isinstance(c, int) and isinstance(d, int):
            low = _bounds(t, 0, extents)
            if c >= 0 or low is not None and nonnegative(low[0]):
                c = c % d
        elif divide(c, d) is not None and _within(_bounds(t, 0, extents), d):
            c = 0
        if _within(_bounds(t, c, extents), d):
            return Lin(t, c)
        a = Lin(t, c)
    return opaque(f"({a.c()}) % {c_expr(d)}")


def strides(dims) -> list[int]:
    out, s = [], 1
    for d in reversed(dims):
        out.append(s)
        s *= d
    return out[::-1]


def flatten(index, dims) -> Lin:
    """The row-major flat position of a multi-index into `dims`."""
    total = const(0)
    for i, s, d in zip(index, strides(dims), dims):
        if d != 1:
            total = add(total, scale(i, s))
    return total


def unflatten(flat: Lin, dims, extents: dict[str, int]) -> list[Lin]:
    """The multi-index into `dims` of a row-major flat position."""
    out = []
    for i, (s, d) in enumerate(zip(strides(dims), dims)):
        q = div(flat, s, extents)
        out.append(const(0) if d == 1 else (q if i == 0 else mod(q, d, extents)))
    return out


def broadcast_in_dim(index, in_dims, out_dims, bdims) -> list[Lin]:
    return [const(0) if d == 1 and out_dims[b] != 1 else index[b]
            for d, b in zip(in_dims, bdims)]


def reshape(index, in_dims, out_dims, extents) -> list[Lin]:
    if math.prod(in_dims) == 0:
        return [const(0)] * len(in_dims)
    return unflatten(flatten(index, out_dims), in_dims, extents)


def transpose(index: Sequence[Lin], perm: Sequence[int]) -> list[Lin]:
    out = list(index)
    for i, p in enumerate(perm):
        out[p] = index[i]
    return out


def slice_(index, starts, steps) -> list[Lin]:
    return [add(const(s), scale(i, k)) for i, s, k in zip(index, starts, steps)]


def reverse(index, dims, axes) -> list[Lin]:
    return [add(const(d - 1), scale(i, -1)) if a in axes else i
            for a, (i, d) in enumerate(zip(index, dims))]
