"""Symbolic graphs for the aot tests, made from a static trace: `symbolized(graph, sizes)`
replaces each symbol's stand-in size (a prime no other dimension is a multiple of) by the
symbol, in every node's shape and dim attributes, and declares the maxima."""
from __future__ import annotations

import dataclasses

from mlframework.core import symbolic
from mlframework.core.shapes import Shape

DIM_ATTRS = ("shape", "limit_indices", "slice_sizes")


def _dim(value: int, standins: dict[str, int]):
    """`value` as a monomial over the symbols whose stand-ins divide it (greedy)."""
    out = 1
    for name, p in standins.items():
        while value % p == 0 and value:
            value //= p
            out = out * symbolic.dim(name)
    return value * out if out != 1 else value


def _replaced(symbols: dict[str, tuple[int, int]]):
    """(shape fixer, attrs fixer) for symbols = {name: (stand-in, maximum)}."""
    standins = {name: p for name, (p, _) in symbols.items()}

    def fix(x):
        if isinstance(x, bool) or not isinstance(x, int | tuple | list):
            return x
        if isinstance(x, int):
            return _dim(x, standins)
        return type(x)(fix(i) for i in x)

    return (lambda dims: tuple(_dim(d, standins) for d in dims),
            lambda attrs: {k: fix(a) if k in DIM_ATTRS else a for k, a in attrs.items()})


def symbolized(graph, symbols: dict[str, tuple[int, int]]):
    """`graph` (changed in place and returned) with each symbol's stand-in size replaced:
    symbols = {name: (stand-in, maximum)}."""
    dims, attrs = _replaced(symbols)
    for n in graph.nodes:
        n.spec = Shape(n.spec.dtype, dims(n.spec.dims))
        n.attrs = attrs(n.attrs)
    graph.symbols = {name: top for name, (_, top) in symbols.items()}
    return graph


def symbolized_program(program, symbols: dict[str, tuple[int, int]]):
    """`symbolized` for an `aot.program.program.Program` (changed in place, returned)."""
    dims, attrs = _replaced(symbols)
    for vid, v in program.values.items():
        program.values[vid] = dataclasses.replace(v, shape=dims(v.shape), attrs=attrs(v.attrs))
    program.symbols = {name: top for name, (_, top) in symbols.items()}
    return program
