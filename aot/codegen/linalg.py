"""C bodies of the linear-algebra kernels: cholesky and triangular_solve.

Straight loops over each matrix of the batch (the leading axes), in the compute type
(float for float16/bfloat16/float32, double for float64), in a scratch matrix that is
stored once at the end: half types round once, as the xla backend's float32 path.
The scratch holds one matrix or one column (`scratch_bytes` in aot/passes/layouts.py).

Any axis may be symbolic (the program is over C names, `aot.program.symbols.renamed`):
a size is then C arithmetic over the symbols' run-time variables (`c_expr`), and a
static size stays a literal, so a static matrix keeps its constant loop bounds.
"""
from __future__ import annotations

import math

from aot.codegen import ctypes_table as ct
from aot.program.symbols import c_expr
from mlframework.graph.gen_optypes import Op


def _batch(shape) -> str:
    """The number of matrices (the leading axes) as C: a product of the symbols' C
    variables when a batch axis is symbolic."""
    return c_expr(math.prod(shape[:-2], start=1))


def cholesky(program, v) -> list[str]:
    """Cholesky-Banachiewicz, row by row over the lower triangle; a pivot that is not
    positive (or NaN) makes the matrix's lower triangle NaN (as XLA's)."""
    x = program.values[v.inputs[0]]
    n = c_expr(v.shape[-1])
    nn = c_expr(v.shape[-1] * v.shape[-1])
    ctype = ct.compute(v.dtype)
    sqrt = "sqrt" if ctype == "double" else "sqrtf"
    load = ct.load(x.dtype, f"b{x.id}", f"t * {nn} + i * {n} + j")
    store = ct.store(v.dtype, f"ok ? l[i * {n} + j] : (i >= j ? NAN : 0)")
    return [
        f"{ctype}* l = ({ctype}*)scratch;",
        f"for (long t = 0; t < {_batch(v.shape)}; t++) {{",
        "  int ok = 1;",
        f"  for (long i = 0; i < {n}; i++) {{",
        "    for (long j = 0; j <= i; j++) {",
        f"      {ctype} s = {load};",
        f"      for (long k = 0; k < j; k++) s -= l[i * {n} + k] * l[j * {n} + k];",
        "      if (i == j) {",
        "        if (!(s > 0)) ok = 0;",
        f"        l[i * {n} + i] = {sqrt}(s);",
        f"      }} else l[i * {n} + j] = s / l[j * {n} + j];",
        "    }",
        f"    for (long j = i + 1; j < {n}; j++) l[i * {n} + j] = 0;",
        "  }",
        f"  for (long i = 0; i < {n}; i++)",
        f"    for (long j = 0; j < {n}; j++) b{v.id}[t * {nn} + i * {n} + j] = {store};",
        "}",
    ]


def triangular_solve(program, v) -> list[str]:
    """op(a) y = c by substitution, with y and c the columns of x and b (left_side) or
    their rows (x @ op(a) = b is op(a).T @ x.T = b.T): the effective matrix M = op(a) or
    op(a).T is lower triangular when `lower` differs from whether it is transposed."""
    a, b = (program.values[i] for i in v.inputs)
    attrs = v.attrs
    size = a.shape[-1]
    left = attrs["left_side"]
    width = b.shape[-1] if left else b.shape[-2]
    m, cols = c_expr(size), c_expr(width)
    transposed = attrs["transpose_a"] != (not left)  # M[i][k] = a[k][i]
    forward = attrs["lower"] != transposed
    ctype = ct.compute(v.dtype)
    mat = f"t * {c_expr(size * size)} + " + (f"k * {m} + i" if transposed else f"i * {m} + k")
    diag = f"t * {c_expr(size * size)} + i * {c_expr(size + 1)}"
    at = f"t * {c_expr(size * width)} + " + (f"i * {cols} + c" if left else f"c * {m} + i")
    rows = (f"for (long i = 0; i < {m}; i++)" if forward else
            f"for (long i = {c_expr(size - 1)}; i >= 0; i--)")
    ks = "for (long k = 0; k < i; k++)" if forward else f"for (long k = i + 1; k < {m}; k++)"
    divide = [] if attrs["unit_diagonal"] else [f"    s /= {ct.load(a.dtype, f'b{a.id}', diag)};"]
    return [
        f"{ctype}* y = ({ctype}*)scratch;",
        f"for (long t = 0; t < {_batch(v.shape)}; t++)",
        f"  for (long c = 0; c < {cols}; c++) {{",
        f"    {rows} {{",
        f"      {ctype} s = {ct.load(b.dtype, f'b{b.id}', at)};",
        f"      {ks} s -= {ct.load(a.dtype, f'b{a.id}', mat)} * y[k];",
        *["  " + d for d in divide],
        "      y[i] = s;",
        "    }",
        f"    for (long i = 0; i < {m}; i++) b{v.id}[{at}] = {ct.store(v.dtype, 'y[i]')};",
        "  }",
    ]


BODIES = {Op.CHOLESKY: cholesky, Op.TRIANGULAR_SOLVE: triangular_solve}
