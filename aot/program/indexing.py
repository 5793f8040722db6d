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
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Lin:
    """`sum(c * v for v, c in terms) + const`, or `opaque` C text when not affine."""

    terms: tuple[tuple[str, int], ...] = ()
    const: int = 0
    opaque: str | None = None

    def c(self) -> str:
        if self.opaque is not None:
            return self.opaque
        parts = [v if k == 1 else f"{k}*{v}" for v, k in self.terms]
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts).replace("+ -", "- ")

    def is_zero(self) -> bool:
        return self.opaque is None and not self.terms and self.const == 0


def var(name: str) -> Lin:
    return Lin(((name, 1),))


def const(k: int) -> Lin:
    return Lin((), int(k))


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
    return Lin(tuple((v, k) for v, k in terms.items() if k), a.const + b.const)


def scale(a: Lin, k: int) -> Lin:
    if a.opaque is not None:
        return const(0) if k == 0 else (a if k == 1 else opaque(f"{k}*{a.c()}"))
    return Lin(tuple((v, c * k) for v, c in a.terms if c * k), a.const * k)


def _bounds(terms, const, extents: dict[str, int]) -> tuple[int, int]:
    lo = hi = const
    for v, k in terms:
        top = k * (extents[v] - 1)
        lo, hi = lo + min(0, top), hi + max(0, top)
    return lo, hi


def div(a: Lin, s: int, extents: dict[str, int]) -> Lin:
    """floor(a / s) for a >= 0; affine when the low part provably stays below s."""
    if s == 1:
        return a
    if a.opaque is None:
        hi_t = tuple((v, k // s) for v, k in a.terms if k % s == 0)
        lo_t = tuple((v, k) for v, k in a.terms if k % s)
        hi_c, lo_c = (a.const // s, 0) if a.const % s == 0 else (0, a.const)
        lo, hi = _bounds(lo_t, lo_c, extents)
        if 0 <= lo and hi < s:
            return Lin(hi_t, hi_c)
    return opaque(f"({a.c()}) / {s}")


def mod(a: Lin, d: int, extents: dict[str, int]) -> Lin:
    """a % d for a >= 0; drops multiples of d and the mod itself when provably in range."""
    if d == 1:
        return const(0)
    if a.opaque is None:
        t = tuple((v, k) for v, k in a.terms if k % d)
        # the constant may be reduced mod d where the terms cannot go negative: the sum
        # then stays >= 0, so C's % (which keeps the sign) agrees with the mathematical one
        c = a.const % d if a.const >= 0 or _bounds(t, 0, extents)[0] >= 0 else a.const
        lo, hi = _bounds(t, c, extents)
        if 0 <= lo and hi < d:
            return Lin(t, c)
        a = Lin(t, c)
    return opaque(f"({a.c()}) % {d}")


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
