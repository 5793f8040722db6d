"""Walking a fused kernel: every value of the kernel as an expression at an index.

`Walker.value(id, index)` returns an expression for value `id` at `index` (one
`Lin` per axis), appending one line per computed node to `lines` (SSA style, so
a rendered body reads top to bottom like the graph). Leaves are loads from
materialized buffers, per-row scratch arrays, per-row scalars (a reduction
already finished for this row) and literals. Data-movement ops only change the
index; pad and concatenate choose with conditions, and what they guard is
inlined so that no load runs out of bounds.

The walk is target-neutral: it decides which element of which buffer each
value reads, and writes index arithmetic, conditions and choices in the syntax
that every C-family renderer shares (`+`, `%`, `&&`, `?:`). What is the
target's is behind hooks: `load`, `literal`, `elementwise`, `declare`,
`start_index`, `cast_index` and `bool_to_float` (`aot.codegen.expressions`
spells them in C). The base spelling is symbolic; the fusion pass walks with it
only to learn whether a kernel can read every value where it needs it.

`NotFusible` is raised when a value is needed at an index the kernel does not
have (a reduction read at another row); the fusion pass uses that to decide.
"""
from __future__ import annotations

import numpy as np

from aot.program import indexing as ix
from aot.program.indexing import Lin
from aot.program.program import Program
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import DimLike, nonnegative
from mlframework.graph.gen_optypes import Op, OpGroup

MOVEMENT_FUSIBLE = frozenset({Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.PAD,
                              Op.REVERSE, Op.CONCATENATE, Op.IOTA, Op.DYNAMIC_SLICE})
ELEMENTWISE = OpGroup.UNARY | OpGroup.BINARY | OpGroup.COMPARE | OpGroup.SELECT | OpGroup.CONVERT
FUSIBLE = ELEMENTWISE | MOVEMENT_FUSIBLE
EXPENSIVE = frozenset({Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.TANH, Op.LOGISTIC, Op.SIN, Op.COS,
                       Op.ERF, Op.ERFC, Op.ERF_INV, Op.POW, Op.ATAN2, Op.SQRT, Op.RSQRT, Op.DIV,
                       Op.REM, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH,
                       Op.ACOSH, Op.ATANH, Op.LGAMMA, Op.DIGAMMA, Op.CBRT, Op.EXP2, Op.LOG2,
                       Op.NEXTAFTER})


class NotFusible(Exception):
    """A value is read where the kernel cannot provide it."""


def splat(value) -> object | None:
    """The single value of a constant whose elements are all equal, else None."""
    flat = np.asarray(value).reshape(-1)
    if flat.size == 0 or flat.size > 1 and not (flat == flat[0]).all():
        return None
    if flat.dtype.kind == "f" and np.isnan(flat).any() and not np.isnan(flat).all():
        return None
    return flat[0]


class Walker:
    """Walks the values of one loop body.

    Args:
        program: the program the values belong to.
        extents: loop variable -> trip count (for index simplification).
        buffers: value id -> pointer name, for materialized values (full index).
        rowbufs: value id -> (name, row rank): scratch holding the current row.
        scalars: value id -> variable holding the current row's reduction.
        row_index: the index of the current row (the leading axes).
        merge: loop-axis groups [([(var, extent), ...], new_var)] rendered as one variable.
        prefix: of the names of computed values.
        row_dims: the extents of the row axes (size-1 axes carry no row variable).
    """

    def __init__(self, program: Program, extents: dict[str, int], buffers: dict[int, str],
                 rowbufs: dict | None = None, scalars: dict | None = None,
                 row_index: list[Lin] | None = None, merge=None, prefix: str = "t",
                 row_dims=None):
        self.prog, self.extents, self.buffers = program, extents, buffers
        self.rowbufs, self.scalars = rowbufs or {}, scalars or {}
        self.row_index, self.merge, self.prefix = row_index or [], merge, prefix
        self.row_dims = row_dims
        self.lines: list[str] = []
        self.seen: list[Lin] = []
        self._cache: dict[tuple, str] = {}

    # ---- how expressions are spelled: the renderer's hooks ---------------

    def load(self, dtype: DType, pointer: str, at: str) -> str:
        return f"{pointer}[{at}]"

    def literal(self, value, dtype: DType) -> str:
        return repr(value.item() if hasattr(value, "item") else value)

    def elementwise(self, v, ins, args: list[str]) -> str:
        return f"{v.op.value}({', '.join(args)})"

    def declare(self, v, name: str, expr: str) -> str:
        return f"{name} = {expr}"

    def start_index(self, start: str, size: DimLike, hi: DimLike) -> str:
        return f"clamp({start}, {size}, {hi})"

    def cast_index(self, v, at: str) -> str:
        return f"{v.dtype.value}({at})"

    def bool_to_float(self, v, cond: str) -> str:
        return f"(({cond}) ? 1 : 0)"

    # ---- indices --------------------------------------------------------

    def render(self, lin: Lin) -> str:
        self.seen.append(lin)
        if not self.merge or lin.opaque is not None:
            return lin.c()
        coefs, terms = dict(lin.terms), []
        for group, name in self.merge:
            k = coefs.pop(group[-1][0], 0)
            for v, _ in group[:-1]:
                coefs.pop(v, None)
            if k:
                terms.append((name, k))
        return Lin(tuple(terms) + tuple(coefs.items()), lin.const).c()

    def flat(self, index, dims) -> str:
        return self.render(ix.flatten(index, dims))

    # ---- values ---------------------------------------------------------

    def value(self, vid: int, index: list[Lin], guarded: bool = False) -> str:
        v = self.prog.values[vid]
        key = (vid, tuple(i.c() for i in index))
        if key in self._cache:
            return self._cache[key]
        expr, hoist = self._compute(v, index, guarded)
        if hoist and not guarded:
            name = f"{self.prefix}{vid}" if not any(k[0] == vid for k in self._cache) \
                else f"{self.prefix}{vid}_{len(self._cache)}"
            self.lines.append(self.declare(v, name, expr))
            expr = name
        if not guarded:
            self._cache[key] = expr
        return expr

    def _compute(self, v, index, guarded):
        if v.id in self.scalars:
            dims = self.row_dims if self.row_dims is not None else [2] * len(self.row_index)
            want = [r for r, d in zip(self.row_index, dims) if d != 1]
            if [i for i, d in zip(index, v.shape) if d != 1] != want:
                raise NotFusible(f"#{v.id} read outside its row")
            return self.scalars[v.id], False
        if v.id in self.rowbufs:
            name, nrow = self.rowbufs[v.id]
            if list(index[:nrow]) != list(self.row_index[:nrow]):
                raise NotFusible(f"#{v.id} read outside its row")
            return self.load(v.dtype, name, self.flat(index[nrow:], v.shape[nrow:])), True
        if v.id in self.buffers:
            return self.load(v.dtype, self.buffers[v.id], self.flat(index, v.shape)), True
        if v.op is Op.CONSTANT:
            s = splat(v.attrs["value"])
            if s is None:
                raise NotFusible(f"constant #{v.id} has no buffer")
            return self.literal(s, v.dtype), False
        if v.op in ELEMENTWISE:
            return self._elementwise(v, index, guarded), True
        if v.op in MOVEMENT_FUSIBLE:
            return getattr(self, "_" + v.op.value)(v, index, guarded)
        raise NotFusible(f"{v.op.value} #{v.id} is not fusible")

    def _elementwise(self, v, index, guarded):
        ins = [self.prog.values[i] for i in v.inputs]
        if v.op is Op.CONVERT and ins[0].dtype is DType.BOOL and v.dtype.is_float:
            return self._bool_to_float(v, ins[0], index, guarded)
        return self.elementwise(v, ins, [self.value(i.id, index, guarded) for i in ins])

    def _bool_to_float(self, v, x, index, guarded):
        """convert(bool -> float) as `cond ? 1 : 0` with a computed condition inlined:
        gcc does not vectorize a loop that keeps a uint8_t bool between float ops
        (ReLU's derivative in every backward pass)."""
        if x.op in OpGroup.COMPARE and not (x.id in self.buffers or x.id in self.rowbufs
                                             or x.id in self.scalars):
            cond, _ = self._compute(x, index, guarded)
        else:
            cond = self.value(x.id, index, guarded)
        return self.bool_to_float(v, cond)

    # ---- data movement: new index, same value ---------------------------

    def _broadcast_in_dim(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        idx = ix.broadcast_in_dim(index, x.shape, v.shape, v.attrs["broadcast_dimensions"])
        return self.value(x.id, idx, guarded), False

    def _reshape(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        return self.value(x.id, ix.reshape(index, x.shape, v.shape, self.extents), guarded), False

    def _transpose(self, v, index, guarded):
        idx = ix.transpose(index, v.attrs["permutation"])
        return self.value(v.inputs[0], idx, guarded), False

    def _slice(self, v, index, guarded):
        idx = ix.slice_(index, v.attrs["start_indices"], v.attrs["strides"])
        return self.value(v.inputs[0], idx, guarded), False

    def _reverse(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        return self.value(x.id, ix.reverse(index, x.shape, v.attrs["axes"]), guarded), False

    def _iota(self, v, index, guarded):
        return self.cast_index(v, self.render(index[v.attrs["dimension"]])), False

    def _dynamic_slice(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        idx = []
        for a, (i, s) in enumerate(zip(index, v.inputs[1:])):
            hi = x.shape[a] - v.attrs["slice_sizes"][a]
            if hi != 0:  # a full-width axis starts at 0 whatever its index says
                clamped = self.start_index(self.value(s, [], guarded), x.shape[a], hi)
                i = ix.add(ix.opaque(clamped), i)
            idx.append(i)
        return self.value(x.id, idx, guarded), False

    def _pad(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        conds, idx = [], []
        for i, d_in, d_out, (lo, _, interior) in zip(index, x.shape, v.shape,
                                                     v.attrs["padding_config"]):
            q = ix.add(i, ix.const(-lo))
            step, span = interior + 1, (d_in - 1) * (interior + 1) + 1 if d_in else 0
            q_text = None
            if lo > 0 or d_in == 0:
                q_text = self.render(q)
                conds.append(f"{q_text} >= 0")
            if not nonnegative(span - d_out + lo):  # positions past the last input element
                conds.append(f"{q_text or self.render(q)} < {span}")
            if step > 1:
                conds.append(f"({q_text or self.render(q)}) % {step} == 0")
            idx.append(ix.div(q, step, self.extents) if step > 1 else q)
        fill = self.literal(v.attrs["value"], v.dtype)
        if not conds:
            return self.value(x.id, idx, guarded), False
        if x.size == 0:
            return fill, False
        inner = self.value(x.id, idx, True)
        return f"(({' && '.join(conds)}) ? {inner} : {fill})", True

    def _concatenate(self, v, index, guarded):
        axis, parts, offset = v.attrs["axis"], [], 0
        for i in v.inputs:
            parts.append((offset, i))
            offset += self.prog.values[i].shape[axis]
        parts = [(o, i) for o, i in parts if self.prog.values[i].shape[axis]]
        expr = None
        for o, i in reversed(parts):
            idx = list(index)
            idx[axis] = ix.add(index[axis], ix.const(-o))
            val = self.value(i, idx, True)
            end = o + self.prog.values[i].shape[axis]
            expr = val if expr is None else \
                f"({self.render(index[axis])} < {end} ? {val} : {expr})"
        return expr, True
