"""`Dim`: a symbolic dimension, a polynomial with integer coefficients over named sizes.

    n = symbolic.dim("N")
    Shape(float32, (n, 64))              # float32[N, 64]
    (n * 64 + 1) // 1, (2 * n) // 2      # exact arithmetic stays symbolic: 64*N + 1, N
    n == symbolic.dim("N")               # True: structural equality
    (n * 64).evaluate({"N": 3})          # 192

A `Dim` stands for a size unknown at trace time: a batch, a sequence length. Shape
inference carries it through sums, products and exact divisions; anything that
needs the number itself (`int(n)`, `n < 4`, a division that does not come out even)
raises `SymbolicError`, which names the symbol and what needed a concrete size.
Every symbol is a size >= 1, so a polynomial with non-negative coefficients is never 0.

Dims are normalized, so equal polynomials compare and hash equal, and a polynomial
that reduces to a constant is returned as a plain `int`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NoReturn, Protocol

# A monomial: sorted symbol names, a name repeated for powers; () is the constant term.
Monomial = tuple[str, ...]
SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SymbolicError(TypeError):
    """A symbolic dimension was used where a concrete size is required."""


class Dim:
    """`sum(coef * prod(symbols))`: immutable, hashable; see the module docstring."""

    __slots__ = ("terms", "_hash")
    terms: tuple[tuple[Monomial, int], ...]  # sorted by monomial, no zero coefficients
    _hash: int

    def __init__(self, terms: Mapping[Monomial, int]):
        object.__setattr__(self, "terms", tuple(sorted((m, c) for m, c in terms.items() if c)))
        object.__setattr__(self, "_hash", hash(self.terms))

    def __setattr__(self, name, value):
        raise AttributeError("Dim is immutable")

    # ---- inspection -------------------------------------------------------------------

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(s for m, _ in self.terms for s in m)

    def coefficient(self, monomial: Monomial = ()) -> int:
        return dict(self.terms).get(monomial, 0)

    def evaluate(self, sizes: Mapping[str, int]) -> int:
        """The size for concrete symbol values.

        Raises:
            SymbolicError: a symbol of this dim has no value in `sizes`.
        """
        missing = sorted(self.symbols - set(sizes))
        if missing:
            raise SymbolicError(f"dimension {self} needs a value for {', '.join(missing)}, "
                                f"got values for {sorted(sizes) or 'none'}")
        return sum(c * math.prod(sizes[s] for s in m) for m, c in self.terms)

    # ---- arithmetic -------------------------------------------------------------------

    def __add__(self, other: DimLike) -> DimLike:
        terms = dict(self.terms)
        for m, c in _terms(other):
            terms[m] = terms.get(m, 0) + c
        return _normal(terms)

    __radd__ = __add__

    def __neg__(self) -> DimLike:
        return _normal({m: -c for m, c in self.terms})

    def __sub__(self, other: DimLike) -> DimLike:
        return self + (-other)

    def __rsub__(self, other: DimLike) -> DimLike:
        return (-self) + other

    def __mul__(self, other: DimLike) -> DimLike:
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in _terms(other):
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, 0) + c1 * c2
        return _normal(terms)

    __rmul__ = __mul__

    def __floordiv__(self, other: DimLike) -> DimLike:
        """Exact division only: by an int dividing every coefficient, or by a dim that
        divides this one as a monomial times an int (`(6*N*S) // (3*N)` is `2*S`)."""
        quotient = divide(self, other)
        if quotient is None:
            raise SymbolicError(f"{self} // {other} does not divide evenly for every value "
                                f"of {', '.join(sorted(self.symbols))}; make the dimension "
                                "static or a multiple of the divisor")
        return quotient

    def __rfloordiv__(self, other: DimLike) -> DimLike:
        quotient = divide(other, self)
        if quotient is None:
            raise SymbolicError(f"{other} // {self} is not a whole size for every value of "
                                f"{', '.join(sorted(self.symbols))}")
        return quotient

    def __mod__(self, other: int) -> DimLike:
        """`self % k`: 0 when every coefficient is a multiple of k (a static remainder
        otherwise needs the symbol's value and raises)."""
        if isinstance(other, int) and other > 0 and all(c % other == 0 for _, c in self.terms):
            return 0
        raise SymbolicError(f"{self} % {other} depends on the value of "
                            f"{', '.join(sorted(self.symbols))}")

    # ---- comparison -------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dim):
            return self.terms == other.terms
        return False  # a normalized Dim is never a plain int

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return self._hash

    def __bool__(self) -> bool:
        return True  # symbols are sizes >= 1 and constants fold to int

    def _concrete(self, what: str) -> NoReturn:
        raise SymbolicError(f"{what} needs a concrete size, got the symbolic dimension "
                            f"{self}; make it static, or bind {', '.join(sorted(self.symbols))}")

    def __int__(self) -> int:
        self._concrete("int()")

    def __index__(self) -> int:
        self._concrete("an integer index or range")

    def __lt__(self, other: object) -> bool:
        self._concrete(f"comparing with {other}")

    __le__ = __gt__ = __ge__ = __lt__

    # ---- text -------------------------------------------------------------------------

    def __str__(self) -> str:
        parts = []
        for m, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            name = "*".join(m)
            parts.append(name if c == 1 and m else (f"{c}*{name}" if m else str(c)))
        return " + ".join(parts).replace("+ -", "- ")

    def __repr__(self) -> str:
        return f"Dim({self})"


DimLike = int | Dim
"""A dimension: a plain int, or a `Dim` when it depends on symbols."""


def dim(name: str) -> Dim:
    """The symbolic size called `name` (an identifier: it also names C arguments).

    Raises:
        ValueError: the name is not an identifier.
    """
    if not isinstance(name, str) or not SYMBOL.match(name):
        raise ValueError(f"a symbolic dimension is named by an identifier such as N or batch,"
                         f" got {name!r}")
    return Dim({(name,): 1})


def is_symbolic(d: object) -> bool:
    return isinstance(d, Dim)


def static(d: DimLike, what: str) -> int:
    """`d` as an int, for `what` (say "dense's input features x.shape[-1]"), which needs a
    concrete size.

    Raises:
        SymbolicError: `d` is symbolic, naming `what`, the symbol and the fix.
    """
    if isinstance(d, Dim):
        raise SymbolicError(f"{what} must be a static size, got the symbolic dimension {d}; "
                            f"declare that axis static (not {', '.join(sorted(d.symbols))})")
    return int(d)


def dims_text(dims: Sequence[DimLike]) -> str:
    """`(2,)`, `(N, 64)`: dims written as a Python tuple, symbols by name."""
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def symbols_of(dims: Iterable[DimLike]) -> frozenset[str]:
    """The symbols appearing in a sequence of dims."""
    out: frozenset[str] = frozenset()
    for d in dims:
        if isinstance(d, Dim):
            out |= d.symbols
    return out


def evaluate(d: DimLike, sizes: Mapping[str, int]) -> int:
    """`d`'s size for concrete symbol values (an int is itself)."""
    return d.evaluate(sizes) if isinstance(d, Dim) else int(d)


def upper(d: DimLike, maxima: Mapping[str, int]) -> int:
    """The largest value of `d` when every symbol ranges over [1, its maximum]: the value
    at the maxima for non-negative coefficients (negative ones are taken at 1).

    Raises:
        SymbolicError: a symbol has no maximum.
    """
    if not isinstance(d, Dim):
        return int(d)
    ones = {s: 1 for s in d.symbols}
    top = {s: maxima[s] for s in d.symbols if s in maxima}
    if len(top) < len(ones):
        missing = sorted(d.symbols - set(top))
        raise SymbolicError(f"dimension {d} needs a maximum for {', '.join(missing)}")
    return sum(c * math.prod((top if c > 0 else ones)[s] for s in m) for m, c in d.terms)


def divide(a: DimLike, b: DimLike) -> DimLike | None:
    """`a / b` when it is a polynomial for every value of the symbols, else None."""
    if isinstance(b, int) or not isinstance(b, Dim):
        k = int(b)
        if k == 0:
            return None
        if not isinstance(a, Dim):
            return a // k if a % k == 0 else None
        if all(c % k == 0 for _, c in a.terms):
            return _normal({m: c // k for m, c in a.terms})
        return None
    if len(b.terms) != 1:
        return None  # division by a sum: only as an exact multiple of the whole
    (bm, bc), = b.terms
    out: dict[Monomial, int] = {}
    for m, c in _terms(a):
        rest = list(m)
        for s in bm:
            if s not in rest:
                return None
            rest.remove(s)
        if c % bc:
            return None
        out[tuple(rest)] = c // bc
    return _normal(out)


def substitute(d: DimLike, values: Mapping[str, DimLike]) -> DimLike:
    """`d` with each symbol in `values` replaced by its value (an int or another dim);
    symbols not in `values` stay."""
    if not isinstance(d, Dim):
        return d
    out: DimLike = 0
    for m, c in d.terms:
        term: DimLike = c
        for s in m:
            term = term * values.get(s, Dim({(s,): 1}))
        out = out + term
    return out


def nonnegative(d: DimLike) -> bool:
    """Whether `d >= 0` for every value >= 1 of its symbols (provably: with each symbol
    written 1 + t, t >= 0, no coefficient is negative). False means "not provable"."""
    if not isinstance(d, Dim):
        return d >= 0
    shifted = substitute(d, {s: Dim({(s,): 1}) + 1 for s in d.symbols})
    return all(c >= 0 for _, c in _terms(shifted))


def cover(options: Sequence[DimLike]) -> DimLike:
    """A size at least each of `options` (one or more) for every value >= 1 of their
    symbols: the largest of ints, else the coefficient-wise maximum of the polynomials
    (every monomial is >= 0, so it bounds each)."""
    coefficients = [dict(_terms(o)) for o in options]
    return _normal({m: max(c.get(m, 0) for c in coefficients)
                    for m in set().union(*coefficients)})


def at_most(a: DimLike, b: DimLike) -> bool:
    """Whether `a <= b` for every value of the symbols (see `nonnegative`)."""
    if not isinstance(a, Dim) and not isinstance(b, Dim):
        return a <= b
    return nonnegative(b - a)


class HasDims(Protocol):
    """A shape's holder: `Shape`, a graph node."""

    @property
    def dims(self) -> tuple[DimLike, ...]: ...


def match(specs: Sequence[HasDims | Iterable[DimLike]], shapes: Sequence[Sequence[int]],
          maxima: Mapping[str, int | None] | None = None,
          names: Sequence[str] | None = None) -> dict[str, int]:
    """The value of every symbol, read from concrete `shapes` laid over `specs` (each a
    shape's dims, or anything with `.dims`, such as a `Shape` or a parameter node).

    A dim that is a single symbol (`N`) gives its value; every other dim (`64`, `2*N`) is
    then checked against the values found. `names` (default `input 0`, `input 1`...)
    name the inputs in errors.

    Raises:
        ValueError: a rank or a static dim differs, one symbol gets two values (naming
            both inputs and axes), a symbol is 0 or above its maximum in `maxima`, or a
            symbol appears only inside compound dims (its value cannot be read).
    """
    label = (lambda i: names[i]) if names is not None else (lambda i: f"input {i}")
    found: dict[str, int] = {}
    where: dict[str, str] = {}
    pending: list[tuple[int, int, Dim, int]] = []
    for i, (spec, shape) in enumerate(zip(specs, shapes)):
        dims = tuple(spec.dims if hasattr(spec, "dims") else spec)
        if len(dims) != len(shape):
            raise ValueError(f"{label(i)} requires rank {len(dims)} "
                             f"[{', '.join(map(str, dims))}], got shape {tuple(shape)}")
        for axis, (d, n) in enumerate(zip(dims, shape)):
            if not isinstance(d, Dim):
                if d != n:
                    raise ValueError(f"{label(i)} requires size {d} on axis {axis} "
                                     f"[{', '.join(map(str, dims))}], got shape {tuple(shape)}")
                continue
            symbol = _single_symbol(d)
            if symbol is None:
                pending.append((i, axis, d, int(n)))
                continue
            here = f"{label(i)}.shape[{axis}]"
            if symbol in found and found[symbol] != n:
                raise ValueError(f"symbol {symbol} is {found[symbol]} at {where[symbol]} but "
                                 f"{n} at {here}; inputs sharing {symbol} need equal sizes")
            if symbol not in found:
                _check_size(symbol, int(n), here, maxima)
                found[symbol], where[symbol] = int(n), here
    for i, axis, d, n in pending:
        unknown = sorted(d.symbols - set(found))
        if unknown:
            raise ValueError(f"{label(i)}.shape[{axis}] is {d}: its symbol "
                             f"{', '.join(unknown)} must also be a whole dim of some input "
                             "for its value to be read")
        if d.evaluate(found) != n:
            values = ", ".join(f"{s}={found[s]}" for s in sorted(d.symbols))
            raise ValueError(f"{label(i)}.shape[{axis}] must be {d} = {d.evaluate(found)} "
                             f"({values}), got {n}")
    return found


def _single_symbol(d: Dim) -> str | None:
    if len(d.terms) == 1 and d.terms[0][1] == 1 and len(d.terms[0][0]) == 1:
        return d.terms[0][0][0]
    return None


def _check_size(symbol: str, n: int, here: str, maxima: Mapping[str, int | None] | None
                ) -> None:
    if n < 1:
        raise ValueError(f"symbol {symbol} requires a size >= 1, got {n} at {here}")
    top = maxima.get(symbol) if maxima else None
    if top is not None and n > top:
        raise ValueError(f"symbol {symbol} is declared with maximum {top}, got {n} at {here}")


def _terms(x: DimLike) -> tuple[tuple[Monomial, int], ...]:
    if isinstance(x, Dim):
        return x.terms
    if isinstance(x, bool) or not hasattr(x, "__index__"):
        raise TypeError(f"a dimension is an int or a symbolic Dim, got {x!r}")
    return (((), int(x)),)


def _normal(terms: Mapping[Monomial, int]) -> DimLike:
    nonzero = {m: c for m, c in terms.items() if c}
    if all(m == () for m in nonzero):
        return nonzero.get((), 0)
    return Dim(nonzero)


__all__ = ["Dim", "DimLike", "SymbolicError", "at_most", "cover", "dim", "dims_text", "divide",
           "evaluate", "is_symbolic", "match", "nonnegative", "static", "substitute", "symbols_of",
           "upper"]
