"""Rendering the body of a fused loop nest: every value of a kernel as C at an index.

`Evaluator.value(id, index)` returns a C expression for value `id` at `index`
(one `Lin` per axis), appending one `const` line per computed node to
`lines` (SSA style, so the C reads top to bottom like the graph). Leaves are
loads from materialized buffers, per-row scratch arrays, per-row scalars (a
reduction already finished for this row) and literals. Data-movement ops only
change the index; pad and concatenate choose with conditions, and what they
guard is inlined so that no load runs out of bounds.

`NotFusible` is raised when a value is needed at an index the kernel does not
have (a reduction read at another row); the fusion pass uses that to decide.
"""
from __future__ import annotations

import numpy as np

from aot import ctypes_table as ct
from aot import indexing as ix
from aot.indexing import Lin
from aot.program import Program
from mlframework.core.dtypes import DType
from mlframework.graph.gen_optypes import C_EXPRESSIONS, Op, OpGroup

MOVEMENT_FUSIBLE = frozenset({Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.PAD,
                              Op.REVERSE, Op.CONCATENATE, Op.IOTA, Op.DYNAMIC_SLICE})
ELEMENTWISE = OpGroup.UNARY | OpGroup.BINARY | OpGroup.COMPARE | OpGroup.SELECT | OpGroup.CONVERT
FUSIBLE = ELEMENTWISE | MOVEMENT_FUSIBLE
EXPENSIVE = frozenset({Op.EXP, Op.EXPM1, Op.LOG, Op.LOG1P, Op.TANH, Op.LOGISTIC, Op.SIN, Op.COS,
                       Op.ERF, Op.ERF_INV, Op.POW, Op.ATAN2, Op.SQRT, Op.RSQRT, Op.DIV, Op.REM})
_ARG_NAMES = {Op.SELECT: ("pred", "on_true", "on_false")}


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


class Evaluator:
    """Builds the C of one loop body.

    Args:
        program: the program the values belong to.
        extents: loop variable -> trip count (for index simplification).
        buffers: value id -> C pointer name, for materialized values (full index).
        rowbufs: value id -> (name, row rank): scratch holding the current row.
        scalars: value id -> C variable holding the current row's reduction.
        row_index: the index of the current row (the leading axes).
        merge: loop-axis groups [([(var, extent), ...], new_var)] rendered as one variable.
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
            self.lines.append(f"const {ct.compute(v.dtype)} {name} = {expr};")
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
            return ct.load(v.dtype, name, self.flat(index[nrow:], v.shape[nrow:])), True
        if v.id in self.buffers:
            return ct.load(v.dtype, self.buffers[v.id], self.flat(index, v.shape)), True
        if v.op is Op.CONSTANT:
            s = splat(v.attrs["value"])
            if s is None:
                raise NotFusible(f"constant #{v.id} has no buffer")
            return ct.literal(s, v.dtype), False
        if v.op in ELEMENTWISE:
            return self._elementwise(v, index, guarded), True
        if v.op in MOVEMENT_FUSIBLE:
            return getattr(self, "_" + v.op.value)(v, index, guarded)
        raise NotFusible(f"{v.op.value} #{v.id} is not fusible")

    def _elementwise(self, v, index, guarded):
        ins = [self.prog.values[i] for i in v.inputs]
        if v.op is Op.CONVERT and ins[0].dtype is DType.BOOL and v.dtype.is_float:
            return self._bool_to_float(v, ins[0], index, guarded)
        args = [self.value(i.id, index, guarded) for i in ins]
        names = _ARG_NAMES.get(v.op, ("x", "y"))
        tag = ct.TAG[ins[1].dtype if v.op is Op.SELECT else ins[0].dtype]
        fields = dict(zip(names, args), T=tag)
        if v.op is Op.CONVERT:
            fields.update(S=ct.TAG[ins[0].dtype], T=ct.TAG[v.dtype])
        return ct.narrow(v.dtype, C_EXPRESSIONS[v.op].format(**fields))

    def _bool_to_float(self, v, x, index, guarded):
        """convert(bool -> float) as `cond ? 1 : 0` with a computed condition inlined:
        gcc does not vectorize a loop that keeps a uint8_t bool between float ops
        (ReLU's derivative in every backward pass)."""
        if x.op in OpGroup.COMPARE and not (x.id in self.buffers or x.id in self.rowbufs
                                             or x.id in self.scalars):
            cond, _ = self._compute(x, index, guarded)
        else:
            cond = self.value(x.id, index, guarded)
        return f"(({cond}) ? {ct.literal(1, v.dtype)} : {ct.literal(0, v.dtype)})"

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
        return f"({ct.compute(v.dtype)})({self.render(index[v.attrs['dimension']])})", False

    def _dynamic_slice(self, v, index, guarded):
        x = self.prog.values[v.inputs[0]]
        idx = []
        for a, (i, s) in enumerate(zip(index, v.inputs[1:])):
            start = self.value(s, [], guarded)
            hi = x.shape[a] - v.attrs["slice_sizes"][a]
            clamped = f"mlf_start_index((int64_t){start}, {x.shape[a]}, {hi})"
            idx.append(ix.add(ix.opaque(clamped), i) if hi > 0 else i)
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
            if d_out - 1 - lo >= span:
                conds.append(f"{q_text or self.render(q)} < {span}")
            if step > 1:
                conds.append(f"({q_text or self.render(q)}) % {step} == 0")
            idx.append(ix.div(q, step, self.extents) if step > 1 else q)
        fill = ct.literal(v.attrs["value"], v.dtype)
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


def mergeable_groups(lins: list[Lin], axes: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """Splits adjacent loop axes into groups that every index treats as one flat axis."""
    if any(lin.opaque is not None for lin in lins):
        return [[a] for a in axes]
    coefs = [dict(lin.terms) for lin in lins]
    groups = [[axes[0]]] if axes else []
    for prev, cur in zip(axes, axes[1:]):
        if all(c.get(prev[0], 0) == c.get(cur[0], 0) * cur[1] for c in coefs):
            groups[-1].append(cur)
        else:
            groups.append([cur])
    return groups
