"""C bodies of kernels that hold one op each: gather, scatter, dynamic_update_slice,
argmax/argmin, cumulative scans (cumsum, cumprod, cummax, cummin, cumlogsumexp), bit
casts to another width, sort/argsort, reduce windows, select_and_scatter_add, rng_bits;
cholesky and triangular_solve come from `linalg`.

Each body is a plain loop nest over literal shapes; indices use the same
`Lin` arithmetic as fused kernels.
"""
from __future__ import annotations

import math
import re

from aot.codegen import ctypes_table as ct
from aot.codegen import linalg
from aot.codegen.nests import nest, omp_for
from aot.passes.layouts import window_row_capacity, window_rows
from aot.program import indexing as ix
from aot.program.symbols import c_expr
from mlframework.core.symbolic import nonnegative
from mlframework.graph.gen_optypes import Op


def body(program, k) -> list[str]:
    v = program.values[k.outputs[0]]
    if v.size == 0:
        return ["/* empty output */"]
    return _BODIES[v.op](program, v)


def _vars(prefix, dims):
    return [ix.var(f"{prefix}{a}") for a in range(len(dims))], \
        [(f"{prefix}{a}", d) for a, d in enumerate(dims)]


def _copy(dst, src, v) -> str:
    """Copies operand `src` into result `dst`, unless the caller made them one buffer
    (an exported decoder updates its key/value cache in place)."""
    return f"if ((const void*)b{dst} != (const void*)b{src}) memcpy(b{dst}, b{src}, {v.nbytes});"


def _split(shape, axis):
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _at(n, inner, i: str) -> str:
    """C of the flat position of element `i` (C text) of row (o, j) of a `_split` shape."""
    return f"(o * {c_expr(n)} + {i}) * {c_expr(inner)} + j"


def _last(n, i: str) -> str:
    """C of `n - 1 - i`: the position `i` counts back from the end of an axis of `n`."""
    return f"({c_expr(n - 1)} - {i})"


# ---- indexing ops --------------------------------------------------------------

def _dynamic_update_slice(program, v):
    x, upd = program.values[v.inputs[0]], program.values[v.inputs[1]]
    lines = [_copy(v.id, x.id, v)]
    if upd.size == 0:
        return lines
    idx, axes = _vars("u", upd.shape)
    starts = []
    for a, s in enumerate(v.inputs[2:]):
        hi = x.shape[a] - upd.shape[a]
        if hi == 0:  # a full-width axis starts at 0 whatever its index says
            starts.append(idx[a])
            continue
        lines.append(f"const int64_t s{a} = mlf_start_index((int64_t)b{s}[0], "
                     f"{c_expr(x.shape[a])}, {c_expr(hi)});")
        starts.append(ix.add(ix.opaque(f"s{a}"), idx[a]))
    lines += nest(axes, [f"b{v.id}[{ix.flatten(starts, x.shape).c()}] = "
                         f"b{upd.id}[{ix.flatten(idx, upd.shape).c()}];"])
    return lines


def _gather(program, v):
    x, ind = program.values[v.inputs[0]], program.values[v.inputs[1]]
    a = v.attrs
    out, axes = _vars("o", v.shape)
    batch = [out[d] for d in range(len(v.shape)) if d not in a["offset_dims"]]
    nvec = ind.shape[-1]
    base = ix.flatten(batch, ind.shape[:-1]).c()
    lines = [f"const long base = ({base}) * {c_expr(nvec)};"]
    window = [d for d in range(len(x.shape)) if d not in a["collapsed_slice_dims"]]
    x_index, starts = [], {}
    for d in range(len(x.shape)):
        off = ix.const(0) if d not in window else out[a["offset_dims"][window.index(d)]]
        if d in a["start_index_map"]:
            j = a["start_index_map"].index(d)
            clamp = "mlf_clamp_uindex((uint64_t)" if ind.dtype.is_unsigned else \
                "mlf_clamp_index((int64_t)"  # unsigned: 2**63 and above clamp high, as XLA
            starts[d] = (f"const int64_t s{d} = {clamp}b{ind.id}[base + {j}], "
                         f"{c_expr(x.shape[d] - a['slice_sizes'][d])});")
            off = ix.add(ix.opaque(f"s{d}"), off)
        x_index.append(off)
    load = f"b{x.id}[{ix.flatten(x_index, x.shape).c()}]"
    # the start of an axis of extent 1 drops out of the index: not declared (-Wunused-variable)
    lines += [line for d, line in starts.items() if re.search(rf"\bs{d}\b", load)]
    lines.append(f"b{v.id}[{ix.flatten(out, v.shape).c()}] = {load};")
    return nest(axes, lines, omp_for(v.size))


def _scatter(program, v):
    x, ind, upd = (program.values[i] for i in v.inputs)
    a = v.attrs
    lines = [_copy(v.id, x.id, v)]
    if upd.size == 0:
        return lines
    u, axes = _vars("u", upd.shape)
    scatter_dims = [d for d in range(len(upd.shape)) if d not in a["update_window_dims"]]
    nvec = ind.shape[-1]
    base = ix.flatten([u[d] for d in scatter_dims], ind.shape[:-1]).c()
    inner = [f"const long base = ({base}) * {c_expr(nvec)};"]
    window = [d for d in range(len(x.shape)) if d not in a["inserted_window_dims"]]
    x_index, checks = [], []
    for d in range(len(x.shape)):
        if d in window:
            wdim = a["update_window_dims"][window.index(d)]
            off, size = u[wdim], upd.shape[wdim]
        else:
            off, size = ix.const(0), 1
        if d in a["scatter_dims_to_operand_dims"]:
            j = a["scatter_dims_to_operand_dims"].index(d)
            inner.append(f"const int64_t s{d} = (int64_t)b{ind.id}[base + {j}];")
            checks.append(f"s{d} < 0 || s{d} > {c_expr(x.shape[d] - size)}")
            off = ix.add(ix.opaque(f"s{d}"), off)
        x_index.append(off)
    if checks:
        inner.append(f"if ({' || '.join(checks)}) continue;  /* out of bounds: dropped */")
    at, at_update = ix.flatten(x_index, x.shape).c(), ix.flatten(u, upd.shape).c()
    if v.op is Op.SCATTER_SET:
        inner.append(f"b{v.id}[{at}] = b{upd.id}[{at_update}];")
    elif v.dtype.value == "bool":
        inner.append(f"b{v.id}[{at}] = b{v.id}[{at}] || b{upd.id}[{at_update}];")
    else:
        combined = _SCATTER_COMBINE[v.op].format(a=ct.load(v.dtype, f"b{v.id}", at),
                                                 b=ct.load(v.dtype, f"b{upd.id}", at_update),
                                                 T=ct.TAG[v.dtype])
        inner.append(f"b{v.id}[{at}] = {ct.store(v.dtype, combined)};")
    return lines + nest(axes, inner)


# How a scatter combines the operand's element {a} with an update {b} (in the compute type).
_SCATTER_COMBINE = {Op.SCATTER_ADD: "{a} + {b}", Op.SCATTER_MUL: "{a} * {b}",
                    Op.SCATTER_MIN: "mlf_min_{T}({a}, {b})",
                    Op.SCATTER_MAX: "mlf_max_{T}({a}, {b})"}


# ---- scans and index reductions ---------------------------------------------------

def _arg(program, v):
    x = program.values[v.inputs[0]]
    outer, n, inner = _split(x.shape, v.attrs["axis"])
    better = ">" if v.op is Op.ARGMAX else "<"
    # floats: a NaN wins (the first one); ints have none, and `best == best` on them is a
    # self-comparison gcc warns of (-Wtautological-compare)
    test = (f"(best == best && val {better} best) || (val != val && best == best)"
            if x.dtype.is_float else f"val {better} best")
    ctype = ct.compute(x.dtype)
    load = ct.load(x.dtype, f"b{x.id}", _at(n, inner, "i"))
    first = ct.load(x.dtype, f"b{x.id}", f"o * {c_expr(n)} * {c_expr(inner)} + j")
    body = [f"{ctype} best = {first};",
            "long arg = 0;",
            f"for (long i = 1; i < {c_expr(n)}; i++) {{",
            f"  const {ctype} val = {load};",
            f"  if ({test}) {{ best = val; arg = i; }}",
            "}", f"b{v.id}[o * {c_expr(inner)} + j] = ({ct.STORAGE[v.dtype]})arg;"]
    return nest([("o", outer), ("j", inner)], body, omp_for(x.size))


# cumulative op: (C of the start value, C of one step over `acc` and the loaded `val`)
_CUMULATIVE = {
    Op.CUMSUM: lambda v, tag: ("-0.0" if v.dtype.is_float else "0", "acc + val"),  # -0.0 + x == x
    Op.CUMPROD: lambda v, tag: ("1", "acc * val"),
    Op.CUMMAX: lambda v, tag: (ct.lowest(v.dtype), f"mlf_max_{tag}(acc, val)"),
    Op.CUMMIN: lambda v, tag: (ct.highest(v.dtype), f"mlf_min_{tag}(acc, val)"),
    Op.CUMLOGSUMEXP: lambda v, tag: ("-INFINITY", f"mlf_logaddexp_{tag}(acc, val)"),
}


def _cumulative(program, v):
    """A scan along one axis; half types round after every step, as XLA's ops do."""
    x = program.values[v.inputs[0]]
    outer, n, inner = _split(x.shape, v.attrs["axis"])
    at = _at(n, inner, _last(n, "i") if v.attrs["reverse"] else "i")
    start, step = _CUMULATIVE[v.op](v, ct.TAG[v.dtype])
    step = f"MLF_NARROW_{ct.HALF[v.dtype].upper()}({step})" if v.dtype in ct.HALF else \
        ct.narrow(v.dtype, step)
    ctype = ct.compute(v.dtype)
    body = [f"{ctype} acc = {start};",
            f"for (long i = 0; i < {c_expr(n)}; i++) {{",
            f"  const {ctype} val = {ct.load(x.dtype, f'b{x.id}', at)};",
            f"  acc = {step};",
            f"  b{v.id}[{at}] = {ct.store(v.dtype, 'acc')};", "}"]
    return nest([("o", outer), ("j", inner)], body, omp_for(x.size))


def _sort(program, v):
    x = program.values[v.inputs[0]]
    axis = v.attrs["axis"]
    outer, n, inner = _split(x.shape, axis)
    ctype, tag = ct.compute(x.dtype), ct.TAG[x.dtype]
    desc = 1 if v.attrs["descending"] else 0
    at = _at(n, inner, "i")
    key = ct.load(x.dtype, f"b{x.id}", at)
    if v.attrs.get("total_order") and x.dtype.is_float:  # -NaN < -inf < ... < -0 < +0 < NaN
        ctype, tag, key = "int64_t", "i64", f"mlf_total_order_{ct.TAG[x.dtype]}({key})"
    lines = [f"{ctype}* keys = ({ctype}*)scratch;",
             f"int64_t* idx = (int64_t*)(scratch + {c_expr(8 * n)});",
             f"int64_t* tmp = (int64_t*)(scratch + {c_expr(16 * n)});"]
    n = c_expr(n)
    body = [f"for (long i = 0; i < {n}; i++) keys[i] = {key};"]
    if v.op is Op.ARGSORT:
        body.append(f"mlf_argsort_{tag}(keys, {n}, idx, tmp, {desc});")
        body.append(f"for (long i = 0; i < {n}; i++) b{v.id}[{at}] = "
                    f"({ct.STORAGE[v.dtype]})idx[i];")
    else:
        src = _last(x.shape[axis], "i") if desc else "i"
        body.append(f"mlf_argsort_{tag}(keys, {n}, idx, tmp, 0);")
        body.append(f"for (long i = 0; i < {n}; i++) b{v.id}[{at}] = "
                    f"{ct.store(v.dtype, f'keys[idx[{src}]]')};")
    return lines + nest([("o", outer), ("j", inner)], body)


# ---- windows ---------------------------------------------------------------------

def _window_positions(x, v_attrs, out, out_shape):
    """Per axis, the input position of window var w<d>, and the bounds conditions that can
    fail ("1" when none can): only padded edges leave the input. With a base dilation b
    the position p runs over the spread input and reads element p / b where p % b == 0
    (the holes hold the reduction's identity: they are skipped)."""
    pos, conds = [], []
    ones = (1,) * len(x.shape)
    for d, n in enumerate(x.shape):
        st, (lo, _) = v_attrs["window_strides"][d], v_attrs["padding"][d]
        win = v_attrs["window_dimensions"][d]
        base = v_attrs.get("base_dilation", ones)[d]
        wd = v_attrs.get("window_dilation", ones)[d]
        w = ix.scale(ix.var(f"w{d}"), wd) if win > 1 else ix.const(0)
        p = ix.add(ix.add(ix.scale(out[d], st), ix.const(-lo)), w)
        spread = (n - 1) * base + 1
        if lo > 0:
            conds.append(f"{p.c()} >= 0")
        if not nonnegative(spread - 1 - ((out_shape[d] - 1) * st - lo + (win - 1) * wd)):
            conds.append(f"{p.c()} < {spread}")
        if base > 1:
            conds.append(f"({p.c()}) % {base} == 0")
            p = ix.opaque(f"({p.c()}) / {base}")
        pos.append(p)
    return pos, " && ".join(conds) or "1"


def _window_loops(v_attrs) -> list[tuple[str, int]]:
    return [(f"w{d}", w) for d, w in enumerate(v_attrs["window_dimensions"]) if w > 1]


def _guarded(cond: str, statement: str) -> str:
    return statement if cond == "1" else f"if ({cond}) {statement}"


_WINDOW_COMBINE = {Op.REDUCE_WINDOW_MAX: (ct.lowest, "mlf_max_{T}(acc, {x})"),
                   Op.REDUCE_WINDOW_MIN: (ct.highest, "mlf_min_{T}(acc, {x})"),
                   Op.REDUCE_WINDOW_SUM: (lambda dtype: "0", "acc + {x}")}


def _reduce_window(program, v):
    rows = window_rows(program, v)
    if rows is not None:
        return _reduce_window_rows(program, v, *rows)
    x = program.values[v.inputs[0]]
    out, axes = _vars("o", v.shape)
    pos, cond = _window_positions(x, v.attrs, out, v.shape)
    ctype = ct.compute(v.dtype)
    init, comb = _WINDOW_COMBINE[v.op]
    val = ct.load(x.dtype, f"b{x.id}", ix.flatten(pos, x.shape).c())
    comb = ct.narrow(v.dtype, comb.format(T=ct.TAG[v.dtype], x=val))
    body = [f"{ctype} acc = {init(v.dtype)};"] + nest(_window_loops(v.attrs),
                                                      [_guarded(cond, f"acc = {comb};")])
    body.append(f"b{v.id}[{ix.flatten(out, v.shape).c()}] = {ct.store(v.dtype, 'acc')};")
    return nest(axes, body, omp_for(v.size, 4096))


def _reduce_window_rows(program, v, extents, dense):
    """A padded window reduction without bounds tests: the input copied into a buffer
    filled with the identity, then per output row the last axis's window reduced at every
    position in whole vectors (contiguous, so gcc vectorizes it) and subsampled by the
    stride. Symbolic extents and rows are C expressions of the symbols."""
    x = program.values[v.inputs[0]]
    a = v.attrs
    ctype = ct.compute(v.dtype)
    init, comb = _WINDOW_COMBINE[v.op]
    comb = comb.format(T=ct.TAG[v.dtype], x="row[j]")
    pst, xst = ix.strides(extents), ix.strides(x.shape)
    lo = [p for p, _ in a["padding"]]
    size = math.prod(extents) + dense
    lines = [f"/* input padded to [{', '.join(map(str, extents))}] with the identity, rows "
             f"of {dense} */",
             f"{ctype}* MLF_RESTRICT xp = ({ctype}*)scratch;",
             f"for (long i = 0; i < {size}; i++) xp[i] = {init(v.dtype)};"]
    i, iaxes = _vars("i", x.shape[:-1])
    to = " + ".join([c_expr(sum(p * q for p, q in zip(pst, lo)))] +
                    [f"{c_expr(pst[d])}*i{d}" for d in range(len(i))])
    frm = " + ".join(["0"] + [f"{c_expr(xst[d])}*i{d}" for d in range(len(i))])
    lines += nest(iaxes, [f"memcpy(xp + {to}, b{x.id} + {frm}, "
                          f"sizeof({ctype}) * {c_expr(x.shape[-1])});"])
    o, oaxes = _vars("o", v.shape[:-1])
    ones = (1,) * len(x.shape)
    wd, st = a.get("window_dilation", ones), a["window_strides"]
    start = " + ".join(["0"] + [f"{c_expr(pst[d] * st[d])}*o{d}" for d in range(len(o))] +
                       [f"{c_expr(pst[d] * wd[d])}*w{d}"
                        for d, w in enumerate(a["window_dimensions"]) if w > 1])
    body = [f"{ctype} acc[{window_row_capacity(program, dense)}];",
            f"for (long j = 0; j < {dense}; j++) acc[j] = {init(v.dtype)};"]
    body += nest(_window_loops(a), [
        f"const {ctype}* MLF_RESTRICT row = xp + {start};",
        f"for (long j = 0; j < {dense}; j++) acc[j] = {comb.replace('acc', 'acc[j]')};"])
    out = " + ".join(["0"] + [f"{c_expr(s)}*o{d}"
                              for d, s in enumerate(ix.strides(v.shape)[:-1])])
    body.append(f"for (long j = 0; j < {v.shape[-1]}; j++) b{v.id}[{out} + j] = "
                f"acc[{st[-1]} * j];")
    return lines + nest(oaxes, body, omp_for(v.size, 4096))


def _select_and_scatter_add(program, v):
    src, x = (program.values[i] for i in v.inputs)
    s, axes = _vars("o", src.shape)
    pos, cond = _window_positions(x, v.attrs, s, src.shape)
    ctype = ct.compute(x.dtype)
    flat = ix.flatten(pos, x.shape).c()
    val = ct.load(x.dtype, f"b{x.id}", flat)
    # XLA's select with `>=`: the kept position moves on unless best >= val, so with a NaN
    # on either side it moves (the last NaN, or the value after one, wins).
    body = [f"{ctype} best = 0;", "long at = -1;"]
    body += nest(_window_loops(v.attrs), [
        _guarded(cond, "{"), f"  const {ctype} val = {val};",
        f"  if (at < 0 || !(best >= val)) {{ best = val; at = {flat}; }}", "}"])
    add = ct.load(v.dtype, f"b{v.id}", "at") + " + " + ct.load(src.dtype, f"b{src.id}",
                                                             ix.flatten(s, src.shape).c())
    body.append(f"if (at >= 0) b{v.id}[at] = {ct.store(v.dtype, ct.narrow(v.dtype, add))};")
    zero = [f"for (long i = 0; i < {v.size}; i++) b{v.id}[i] = 0;"]
    return zero + nest(axes, body)


def _bitcast(program, v):
    """A bit cast to another element width: the same bytes (little-endian, as XLA on CPU)."""
    return [_copy(v.id, v.inputs[0], v)]


def _rng_bits(program, v):
    return [f"mlf_rng_bits(b{v.inputs[0]}, b{v.id}, {v.size});"]


_BODIES = {
    Op.DYNAMIC_UPDATE_SLICE: _dynamic_update_slice, Op.GATHER: _gather,
    **{op: _scatter for op in (Op.SCATTER_ADD, Op.SCATTER_SET, Op.SCATTER_MUL, Op.SCATTER_MIN,
                               Op.SCATTER_MAX)},
    Op.ARGMAX: _arg, Op.ARGMIN: _arg,
    **{op: _cumulative for op in _CUMULATIVE}, Op.SORT: _sort, Op.ARGSORT: _sort,
    **{op: _reduce_window for op in _WINDOW_COMBINE},
    **linalg.BODIES,
    Op.SELECT_AND_SCATTER_ADD: _select_and_scatter_add, Op.RNG_BITS: _rng_bits,
    Op.BITCAST_CONVERT_TYPE: _bitcast,
}
SUPPORTED = frozenset(_BODIES)
