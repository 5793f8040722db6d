"""`Dim` arithmetic, `match` and `Shape` with symbolic dims (mlframework/core/symbolic.py),
checked against the same polynomials evaluated in plain Python."""
from __future__ import annotations

import itertools

import pytest

import mlframework as mlf
from mlframework.core import shapes, symbolic
from mlframework.core.symbolic import Dim, SymbolicError, dim

N, S = dim("N"), dim("S")
VALUES = [{"N": n, "S": s} for n, s in itertools.product((1, 2, 7), (1, 3, 16))]


@pytest.mark.parametrize("expr, fn", [
    (N + 1, lambda n, s: n + 1),
    (2 * N - 1, lambda n, s: 2 * n - 1),
    (N * S * 64, lambda n, s: n * s * 64),
    ((N + S) * (N - S), lambda n, s: n * n - s * s),
    ((6 * N * S) // (3 * N), lambda n, s: 2 * s),
    ((N * 64 + 128) // 64, lambda n, s: n + 2),
    (3 - N + N * N, lambda n, s: 3 - n + n * n),
])
def test_arithmetic_evaluates_as_python(expr, fn):
    for v in VALUES:
        assert symbolic.evaluate(expr, v) == fn(v["N"], v["S"])


def test_normal_form_equality_hash_and_text():
    assert N * 2 + S == S + 2 * N and hash(N * 2 + S) == hash(S + 2 * N)
    assert (N + 1) - N == 1 and type((N + 1) - N) is int
    assert N != S and N != 1 and (N * 0) == 0
    assert str(N * S * 2 + 3) == "2*N*S + 3" and str(N - 1) == "N - 1"
    assert repr(N) == "Dim(N)"


def test_concrete_uses_raise_naming_the_symbol():
    for use in (lambda: int(N), lambda: range(N), lambda: N < 4, lambda: (N + 1) // 2,
                lambda: N % 2, lambda: symbolic.static(N * 2, "dense's features")):
        with pytest.raises(SymbolicError, match="N"):
            use()
    assert (4 * N) % 2 == 0
    assert symbolic.static(5, "x") == 5


def test_provable_comparisons():
    assert symbolic.nonnegative(N - 1) and not symbolic.nonnegative(N - 2)
    assert symbolic.at_most(N, N * S) and symbolic.at_most(1, N)
    assert not symbolic.at_most(N * S, N) and not symbolic.at_most(2, N)
    assert symbolic.at_most(3, 4) and not symbolic.at_most(4, 3)


def test_cover_bounds_every_option():
    options = [3 * N + 5, 2 * N * S - 4 * S, 70]
    bound = symbolic.cover(options)
    assert bound == 3 * N + 2 * N * S + 70  # S: 0 (the first option has none) beats -4
    for n, s in itertools.product(range(1, 9), range(1, 9)):
        at = bound.evaluate({"N": n, "S": s})
        assert all(at >= symbolic.evaluate(o, {"N": n, "S": s}) for o in options)
    assert symbolic.cover([4, 9, 2]) == 9


def test_upper_divide_substitute():
    assert symbolic.upper(2 * N * S - N, {"N": 8, "S": 4}) == 2 * 8 * 4 - 1
    with pytest.raises(SymbolicError, match="maximum for S"):
        symbolic.upper(N * S, {"N": 8})
    assert symbolic.divide(N * 6, 3) == 2 * N and symbolic.divide(N + 1, 2) is None
    assert symbolic.divide(N * S, N) == S and symbolic.divide(N * S, N + 1) is None
    assert symbolic.substitute(N * S + 2, {"N": 3}) == 3 * S + 2
    assert symbolic.substitute(N * S, {"N": S}) == S * S


def test_names_are_identifiers():
    with pytest.raises(ValueError, match="identifier"):
        dim("2N")
    assert isinstance(dim("batch_size"), Dim)


def test_shape_with_dims():
    s = shapes.make(mlf.float32, N, 64)
    assert str(s) == "float32[N, 64]" and s.symbols == {"N"}
    assert s.size == 64 * N and s.nbytes == 256 * N
    assert s.bind({"N": 3}) == shapes.make(mlf.float32, 3, 64)
    static = shapes.make(mlf.float32, 2, 3)
    assert static.bind({}) is static and static.symbols == frozenset()
    with pytest.raises(SymbolicError, match="needs a value for N"):
        s.bind({"S": 2})


def test_match_reads_and_checks_sizes():
    specs = [(N, 64), (N, S), (2 * N,)]
    assert symbolic.match(specs, [(7, 64), (7, 5), (14,)], {"N": 8}) == {"N": 7, "S": 5}
    cases = [
        ([(7, 64), (8, 5), (14,)], "N is 7 at x.shape\\[0\\] but 8 at y.shape\\[0\\]"),
        ([(0, 64), (0, 5), (0,)], "N requires a size >= 1, got 0 at x.shape\\[0\\]"),
        ([(9, 64), (9, 5), (18,)], "N is declared with maximum 8, got 9 at x.shape\\[0\\]"),
        ([(7, 63), (7, 5), (14,)], "x requires size 64 on axis 1"),
        ([(7, 64), (7, 5), (13,)], "z.shape\\[0\\] must be 2\\*N = 14 \\(N=7\\), got 13"),
        ([(7, 64, 1), (7, 5), (14,)], "x requires rank 2"),
    ]
    for got, message in cases:
        with pytest.raises(ValueError, match=message):
            symbolic.match(specs, got, {"N": 8}, ["x", "y", "z"])
    with pytest.raises(ValueError, match="must also be a whole dim"):
        symbolic.match([(2 * N,)], [(4,)])
