"""Symbolic dimensions in the program form: their C names, and concrete samples of them.

    c_name("N")                            # "sym_N": the C variable holding N's value
    renamed(program)                       # every Dim over C names (what kernels render)
    samples({"N": 256})                    # [{"N": 1}, {"N": 6}, {"N": 7}, {"N": 256}]

A program's shapes may hold `Dim`s (`Program.symbols` lists them with their maxima).
Generated C spells a Dim as C arithmetic over one variable per symbol; `renamed` gives
each symbol a name no generated identifier has (`sym_` + the user's name), so a symbol
called `n` or `batch` cannot shadow a loop variable, and `str(dim)` is then C.

Decisions that need a number (a heuristic such as the GEMM's "few rows" path, which
also decides how much workspace the runtime asks for) are taken at `samples`: every
symbol at 1, at the runtime's thresholds and at its maximum, so a workspace sized as the
largest over the samples is enough for every size in [1, maximum] as long as the size
is monotone between thresholds (it is: workspaces grow with the rows they pack).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

from aot.program.program import Program, Value, subprograms
from mlframework.core import symbolic
from mlframework.core.symbolic import Dim, DimLike
from mlframework.graph.gen_optypes import Op, OpGroup

C_PREFIX = "sym_"
THRESHOLDS = (6, 7)  # MLF_MR rows and one more: the GEMM's few-rows paths (runtime_c/mlf_gemm.h)


def c_name(symbol: str) -> str:
    return C_PREFIX + symbol


def rename_dim(d: DimLike, names: Mapping[str, str]) -> DimLike:
    """`d` with each symbol renamed by `names` (an int is itself)."""
    if not isinstance(d, Dim):
        return d
    return Dim({tuple(sorted(names.get(s, s) for s in m)): c for m, c in d.terms})


def _renamed_attr(x, names):
    if isinstance(x, Dim):
        return rename_dim(x, names)
    if isinstance(x, tuple | list) and any(_holds_dim(i) for i in x):
        return type(x)(_renamed_attr(i, names) for i in x)
    return x


def _holds_dim(x) -> bool:
    return isinstance(x, Dim) or isinstance(x, tuple | list) and any(_holds_dim(i) for i in x)


def renamed(program: Program) -> Program:
    """`program` with every symbol of its shapes and attributes spelled as its C name
    (`c_name`); `symbols` then maps C names to maxima. A static program is returned as is."""
    if not program.symbols:
        return program
    names = {s: c_name(s) for s in program.symbols}
    values = {}
    for vid, v in program.values.items():
        attrs = {k: _renamed_attr(a, names) for k, a in v.attrs.items()}
        values[vid] = dataclasses.replace(v, attrs=attrs,
                                          shape=tuple(rename_dim(d, names) for d in v.shape))
    return Program(program.name, values, list(program.params), list(program.outputs),
                   {names[s]: top for s, top in program.symbols.items()})


def bound_value(v: Value, sizes: Mapping[str, int]) -> Value:
    """`v` with its shape and dim-valued attributes evaluated at `sizes`."""
    attrs = {k: _bound_attr(a, sizes) for k, a in v.attrs.items()}
    return dataclasses.replace(v, attrs=attrs,
                               shape=tuple(symbolic.evaluate(d, sizes) for d in v.shape))


def _bound_attr(x, sizes):
    if isinstance(x, Dim):
        return x.evaluate(sizes)
    if isinstance(x, tuple | list) and any(_holds_dim(i) for i in x):
        return type(x)(_bound_attr(i, sizes) for i in x)
    return x


def bound(program: Program, sizes: Mapping[str, int], ids=None) -> Program:
    """The values `ids` (default: all) of `program` at concrete `sizes`, as a static program."""
    keep = program.values if ids is None else {i: program.values[i] for i in ids}
    return Program(program.name, {i: bound_value(v, sizes) for i, v in keep.items()},
                   list(program.params), list(program.outputs), {})


def samples(maxima: Mapping[str, int]) -> list[dict[str, int]]:
    """Size sets at which a decision over the whole range [1, maximum] is taken: each
    symbol at 1, the THRESHOLDS and its maximum (those within range), all combinations."""
    if not maxima:
        return [{}]
    axes = [sorted({v for v in (1, *THRESHOLDS, top) if 1 <= v <= top})
            for top in maxima.values()]
    return [dict(zip(maxima, point)) for point in itertools.product(*axes)]


def upper(d: DimLike, maxima: Mapping[str, int]) -> int:
    """The largest value of `d` over every symbol in [1, its maximum] (an int is itself)."""
    return symbolic.upper(d, maxima)


def c_expr(d: DimLike) -> str:
    """`d` as a C expression, parenthesized when it is a sum (to sit inside a product)."""
    if isinstance(d, Dim) and len(d.terms) > 1:
        return f"({d})"
    return str(d)


def c_of(program: Program, d: DimLike) -> str:
    """`d` (a size over `program`'s symbols) as a C expression over their C variables
    (`c_name`), parenthesized when it is a sum; an int is its literal."""
    return c_expr(rename_dim(d, {s: c_name(s) for s in program.symbols}))


def check_compilable(program: Program) -> None:
    """Raises NotImplementedError naming the op, its shapes and the fix when a value with
    symbolic dimensions is one the C code generator does not take at run time sizes (an
    op outside `SYMBOLIC_OPS`: today every op is in it, so this guards a primitive added
    later); the sub-programs of control flow are checked too. (Values of static shape
    may use any op. A window's stride over a symbolic axis whose output size is no
    polynomial is refused by shape inference already.)"""
    for v in program.values.values():
        for body in subprograms(v):
            check_compilable(body)
        ins = [program.values[i] for i in v.inputs]
        shapes = [v.shape] + [i.shape for i in ins]
        symbols = set().union(*(symbolic.symbols_of(s) for s in shapes))
        if not symbols:
            continue
        where = (f"{v.op.value} #{v.id} ({', '.join(_typed(x) for x in ins)} -> {_typed(v)}"
                 f"{', ' + v.source if v.source else ''})")
        if v.op not in SYMBOLIC_OPS:
            raise NotImplementedError(
                f"{where}: the C backend does not compile {v.op.value} with symbolic "
                f"dimensions ({', '.join(sorted(symbols))}) yet; make those dimensions static "
                "(export with a fixed size, or bind the graph)")


def _typed(v: Value) -> str:
    return f"{v.dtype.value}[{', '.join(map(str, v.shape))}]"


# Ops whose generated C takes symbolic sizes at run time: every op today
# (tests/backends/test_c_symbolic*.py, tests/aot/test_export_symbolic*.py). A new
# primitive joins once its C takes them; until then `check_compilable` refuses it.
SYMBOLIC_OPS = frozenset(
    OpGroup.UNARY | OpGroup.BINARY | OpGroup.COMPARE | OpGroup.SELECT | OpGroup.CONVERT
    | OpGroup.REDUCE
    | {Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.PAD, Op.REVERSE,
       Op.CONCATENATE, Op.IOTA, Op.DOT_GENERAL, Op.CONV_GENERAL, Op.REDUCE_WINDOW_MAX,
       Op.REDUCE_WINDOW_MIN, Op.REDUCE_WINDOW_SUM, Op.SELECT_AND_SCATTER_ADD, Op.PARAMETER,
       Op.CONSTANT,
       Op.GATHER, Op.SCATTER_ADD, Op.SCATTER_MAX, Op.SCATTER_MIN, Op.SCATTER_MUL,
       Op.SCATTER_SET, Op.DYNAMIC_SLICE, Op.DYNAMIC_UPDATE_SLICE, Op.ARGMAX, Op.ARGMIN,
       Op.CUMSUM, Op.CUMPROD, Op.CUMMAX, Op.CUMMIN, Op.CUMLOGSUMEXP, Op.SORT, Op.ARGSORT,
       Op.RNG_BITS, Op.CHOLESKY, Op.TRIANGULAR_SOLVE, Op.COND, Op.WHILE_LOOP, Op.SCAN,
       Op.TUPLE_GET})
