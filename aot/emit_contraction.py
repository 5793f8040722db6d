"""C bodies of dot_general and conv_general kernels (with their epilogues).

float32 contractions whose operands are strided views of [batch, M, K] and
[batch, K, N] call the register-blocked GEMM of `runtime_c/mlf_gemm.h`; a
2-d, stride-1, undilated, ungrouped float32 convolution is an implicit GEMM
over a zero-padded NHWC copy of the input (`mlf_conv2d`, runtime_c/mlf_conv.h),
1x1 included; dense-layer weights packed by aot/weight_packing.py go through
`mlf_sgemm_panels` or `mlf_sgemm_bf16p` (runtime_c/mlf_gemm_bf16.h). Everything
else runs a plain loop nest with the accumulator in the compute type.
"""
from __future__ import annotations

import math

from aot import ctypes_table as ct
from aot import indexing as ix
from aot.emit_ops import nest
from aot.loops import Evaluator
from mlframework.core.dtypes import DType


def _group_stride(shape, axes):
    """Stride of `axes` viewed as one axis of a row-major array, or None if they are not one."""
    st = ix.strides(shape)
    axes = [a for a in axes if shape[a] != 1]
    for a, b in zip(axes, axes[1:]):
        if st[a] != st[b] * shape[b]:
            return None
    return st[axes[-1]] if axes else 0


def dot_layout(program, v):
    """(B, M, N, K, strides) of a dot_general, strides None when not a strided GEMM view."""
    lhs, rhs = (program.values[i] for i in v.inputs)
    lb, rb = v.attrs["lhs_batch"], v.attrs["rhs_batch"]
    lc, rc = v.attrs["lhs_contracting"], v.attrs["rhs_contracting"]
    lf = [a for a in range(len(lhs.shape)) if a not in lb and a not in lc]
    rf = [a for a in range(len(rhs.shape)) if a not in rb and a not in rc]
    size = lambda x, axes: math.prod(x.shape[a] for a in axes)  # noqa: E731
    n = rhs.attrs.get("columns") or size(rhs, rf)  # packed weights are wider than N
    dims = (size(lhs, lb), size(lhs, lf), n, size(lhs, lc))
    strides = [_group_stride(lhs.shape, lb), _group_stride(lhs.shape, lf),
               _group_stride(lhs.shape, lc), _group_stride(rhs.shape, rb),
               _group_stride(rhs.shape, rc), _group_stride(rhs.shape, rf)]
    return dims, (None if None in strides else strides)


def sgemm_packs(M, N, K, csb) -> bool:
    """Mirrors mlf_sgemm_packs in runtime_c/mlf_gemm.h: B needs `work` (panels or B^T)."""
    return not (csb == 1 and ((N % 16 == 0 and K * N <= 1024 * 1024) or M <= 6))


def _packing(program, v) -> str | None:
    """How aot/weight_packing.py laid out the right operand ("panels", "bf16_pairs"), if it did."""
    return program.values[v.inputs[1]].attrs.get("packing")


def _conv_fast(program, v) -> bool:
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    return (v.dtype is DType.FLOAT32 and len(lhs.shape) == 4 and set(a["window_strides"]) == {1}
            and set(a["lhs_dilation"]) == {1} and set(a["rhs_dilation"]) == {1}
            and a["feature_group_count"] == 1 and a["batch_group_count"] == 1
            and all(lo >= 0 and hi >= 0 for lo, hi in a["padding"]) and v.size > 0
            and lhs.size > 0)


def _conv_geometry(program, v):
    lhs, rhs = (program.values[i] for i in v.inputs)
    (plo_h, phi_h), (plo_w, phi_w) = v.attrs["padding"]
    n, c, h, w = lhs.shape
    o, _, kh, kw = rhs.shape
    hp, wp = h + plo_h + phi_h, w + plo_w + phi_w
    ho, wo = v.shape[2], v.shape[3]
    return dict(n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw, hp=hp, wp=wp, ho=ho, wo=wo,
                ph=plo_h, pw=plo_w)


def scratch_bytes(program, k) -> int:
    """Workspace a contraction kernel needs during its run (GEMM packing, padded input)."""
    v = program.values[k.contraction]
    if k.kind == "dot":
        (_, m, n, kk), strides = dot_layout(program, v)
        if _packing(program, v) == "panels":
            return 0
        if _packing(program, v):  # mirrors mlf_sgemm_bf16p_work_floats
            if m <= 6:
                return 0
            return 4 * (kk * n + (kk * (-(-n // 64) * 64) if sgemm_packs(m, n, kk, 1) else 0))
        if v.dtype is DType.FLOAT32 and strides is not None and sgemm_packs(m, n, kk, strides[5]):
            return kk * (-(-n // 64) * 64) * 4
        return 0
    if k.kind == "conv" and _conv_fast(program, v):
        g = _conv_geometry(program, v)
        # mirrors mlf_conv2d_work_floats in runtime_c/mlf_conv.h
        if _conv_small(g):  # padded NCHW rows of 16-lane multiples (+ KW - 1)
            if g["wo"] < 16 and g["kw"] >= 8:  # kv path: rows wo - 1 + kwp, kw-padded weights
                kwp = -(-g["kw"] // 16) * 16
                return 4 * (g["n"] * g["c"] * g["hp"] * (g["wo"] - 1 + kwp)
                            + g["o"] * g["c"] * g["kh"] * kwp)
            return 4 * g["n"] * g["c"] * g["hp"] * (-(-g["wo"] // 16) * 16 + g["kw"] - 1)
        panels = -(-g["o"] // 64)
        return 4 * (g["n"] * (g["hp"] * g["wp"] + g["kw"]) * g["c"]
                    + panels * g["kh"] * g["kw"] * g["c"] * 64)
    return 0


def _epilogue_nest(program, k, out, rows: bool):
    """The epilogue's merged loop nest over the contraction's result `out`:
    (evaluator, loop axes, store line). rows: keep every axis (the first is the row axis
    the GEMM's threads own) and leave the nest serial; else drop unit axes and let a large
    nest run in parallel."""
    from aot.emit import axis_vars, merged_nest  # emit imports this module

    root = program.values[k.outputs[0]]
    index, extents = axis_vars(root.shape, "e")
    axes = [(f"e{a}", d) for a, d in enumerate(root.shape) if rows or d != 1]
    buffers = {i: f"b{i}" for i in k.inputs}
    buffers[k.contraction] = out

    def build(ev):
        val = ev.value(root.id, index)
        return f"{out}[{ev.flat(index, root.shape)}] = {ct.store(root.dtype, val)};"

    return merged_nest(lambda merge: Evaluator(program, extents, buffers, merge=merge),
                       axes, build, 0 if rows else root.size)


def _epilogue(program, k, out) -> list[str]:
    if not k.epilogue:
        return []
    from aot.emit import loops  # emit imports this module

    ev, loop_axes, store = _epilogue_nest(program, k, out, rows=False)
    return ["/* epilogue: the fused pointwise ops, applied while the result is cache-hot */"] + \
        loops(loop_axes, ev.lines + [store])


def _row_epilogue(program, k, out, M, N):
    """The epilogue as a loop over rows [r0, r1) of the [M, N] result, or None if its
    loop nest does not start with the row axis."""
    if not k.epilogue or tuple(program.values[k.outputs[0]].shape) != (M, N) or M < 2 or N < 2:
        return None
    from aot.emit import loops  # emit imports this module

    ev, loop_axes, store = _epilogue_nest(program, k, out, rows=True)
    if not loop_axes or not loop_axes[0][0].startswith("e0") or loop_axes[0][1] % M:
        return None
    lines = loops(loop_axes, ev.lines + [store])
    var, per_row = loop_axes[0][0], loop_axes[0][1] // M
    first = f"for (long {var} = 0; {var} < {loop_axes[0][1]}; {var}++) {{"
    if lines[0] != first:
        return None
    lo, hi = ("r0", "r1") if per_row == 1 else (f"r0 * {per_row}", f"r1 * {per_row}")
    lines[0] = f"for (long {var} = {lo}; {var} < {hi}; {var}++) {{"
    return ["/* epilogue on this thread's rows */"] + lines


def dot_body(program, k) -> list[str]:
    v = program.values[k.contraction]
    out = f"b{k.outputs[0]}"
    lhs, rhs = v.inputs
    (B, M, N, K), s = dot_layout(program, v)
    if _packing(program, v) == "panels":
        return [f"/* [{M}x{K}] @ [{K}x{N}] with the constant weights packed into 64-column "
                "panels at compile time (runtime_c/mlf_gemm.h) */",
                f"mlf_sgemm_panels({M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, b{rhs}, {out}, {N});"] \
            + _epilogue(program, k, out)
    if _packing(program, v):
        work = "(float*)scratch" if k.scratch_bytes else "0"
        return [f"/* [{M}x{K}] @ [{K}x{N}] with the weights stored as bfloat16 pairs "
                "(runtime_c/mlf_gemm_bf16.h) */",
                f"mlf_sgemm_bf16p({M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, b{rhs}, {out}, {N}, "
                f"{work});"] + _epilogue(program, k, out)
    if v.dtype is DType.FLOAT32 and s is not None and v.size:
        work = "(float*)scratch" if k.scratch_bytes else "0"
        lines = [f"/* [{B}] x [{M}x{K}] @ [{K}x{N}] through the register-tiled GEMM "
                 "(runtime_c/mlf_gemm.h) */",
                 f"for (long batch = 0; batch < {B}; batch++)",
                 f"  mlf_sgemm({M}, {N}, {K}, b{lhs} + batch * {s[0]}, {s[1]}, {s[2]}, "
                 f"b{rhs} + batch * {s[3]}, {s[4]}, {s[5]}, {out} + batch * {M * N}, {N}, {work});"]
        fused = _row_epilogue(program, k, out, M, N) if B == 1 else None
        if fused is None:
            return lines + _epilogue(program, k, out)
        args = (f"{M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, b{rhs}, {s[4]}, {s[5]}, {out}, {N}, "
                f"{work}")
        return [f"/* [{M}x{K}] @ [{K}x{N}] through the register-tiled GEMM (runtime_c/mlf_gemm.h)",
                " * and the fused pointwise ops in the same parallel region: each thread applies",
                " * them to the rows of the result it owns while they are cache-hot (no second",
                " * fork) */",
                f"const int T = mlf_sgemm_threads({M}, {N}, {K}, {s[2]}, {s[5]}, {work});",
                "(void)T;",
                "MLF_OMP(omp parallel num_threads(T) if (T > 1))",
                "{",
                "  long r0, r1;",
                f"  mlf_sgemm_part({args}, &r0, &r1);"] + ["  " + x for x in fused] + ["}"]
    return _dot_loops(program, v, out) + _epilogue(program, k, out)


def _dot_loops(program, v, out) -> list[str]:
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    lf = [x for x in range(len(lhs.shape))
          if x not in a["lhs_batch"] and x not in a["lhs_contracting"]]
    rf = [x for x in range(len(rhs.shape))
          if x not in a["rhs_batch"] and x not in a["rhs_contracting"]]
    o = [f"o{i}" for i in range(len(v.shape))]
    kv = [f"p{i}" for i in range(len(a["lhs_contracting"]))]
    nb = len(a["lhs_batch"])
    li, ri = [None] * len(lhs.shape), [None] * len(rhs.shape)
    for j, (x, y) in enumerate(zip(a["lhs_batch"], a["rhs_batch"])):
        li[x] = ri[y] = ix.var(o[j])
    for j, x in enumerate(lf):
        li[x] = ix.var(o[nb + j])
    for j, x in enumerate(rf):
        ri[x] = ix.var(o[nb + len(lf) + j])
    for j, (x, y) in enumerate(zip(a["lhs_contracting"], a["rhs_contracting"])):
        li[x] = ri[y] = ix.var(kv[j])
    ctype, tag = ct.compute(v.dtype), ct.TAG[v.dtype]
    del tag
    mul = ct.narrow(v.dtype, f"{ct.load(v.dtype, f'b{lhs.id}', ix.flatten(li, lhs.shape).c())} * "
                             f"{ct.load(v.dtype, f'b{rhs.id}', ix.flatten(ri, rhs.shape).c())}")
    inner = [f"acc = {ct.narrow(v.dtype, f'acc + {mul}')};"]
    kdims = [lhs.shape[x] for x in a["lhs_contracting"]]
    body = [f"{ctype} acc = 0;"]
    body += nest(list(zip(kv, kdims)), inner)
    body.append(f"{out}[{ix.flatten([ix.var(x) for x in o], v.shape).c()}] = "
                f"{ct.store(v.dtype, 'acc')};")
    return [f"/* plain loop nest ({v.dtype.value} or a layout the GEMM cannot view) */"] + \
        nest(list(zip(o, v.shape)), body, parallel=v.size * max(1, math.prod(kdims)) >= 65536)


def _conv_small(g) -> bool:
    """Mirrors mlf_conv_small in runtime_c/mlf_conv_small.h."""
    return g["o"] <= 16 and g["wo"] <= 64


def conv_body(program, k) -> list[str]:
    v = program.values[k.contraction]
    out = f"b{k.outputs[0]}"
    lhs, rhs = v.inputs
    if _conv_fast(program, v):
        g = _conv_geometry(program, v)
        what = (f"few output channels (runtime_c/mlf_conv_small.h): zero-padded NCHW rows, "
                f"up to 8 channels x one {g['wo']}-pixel output row per register tile"
                if _conv_small(g) else
                "direct implicit GEMM (runtime_c/mlf_conv.h): zero-padded NHWC copy of the "
                "input, weights in 64-channel panels, 6 pixels x 64 channels per register tile")
        return [f"/* {what}, K = {g['kh']}x{g['kw']}x{g['c']} */",
                "mlf_conv2d(" + ", ".join(str(g[x]) for x in (
                    "n", "c", "h", "w", "o", "kh", "kw", "ph", "pw", "hp", "wp", "ho", "wo"))
                + f", b{lhs}, b{rhs}, {out}, (float*)scratch);"] + _epilogue(program, k, out)
    return _conv_loops(program, v, out) + _epilogue(program, k, out)


def _conv_loops(program, v, out) -> list[str]:
    lhs, rhs = (program.values[i] for i in v.inputs)
    a = v.attrs
    nsp = len(lhs.shape) - 2
    n_feat, i_feat = rhs.shape[:2]  # output features, input features per group
    G, BG = a["feature_group_count"], a["batch_group_count"]
    n_out = v.shape[0]
    ctype = ct.compute(v.dtype)
    sp = [f"s{d}" for d in range(nsp)]
    wv = [f"w{d}" for d in range(nsp)]
    body = [f"const long g = o / {n_feat // G}, bg = o / {n_feat // BG};",
            f"const long n_in = bg * {n_out} + n;", f"{ctype} acc = 0;"]
    inner = []
    conds, pos = [], []
    for d in range(nsp):
        st, dil_r, dil_l = a["window_strides"][d], a["rhs_dilation"][d], a["lhs_dilation"][d]
        lo = a["padding"][d][0]
        inner.append(f"const long q{d} = {sp[d]} * {st} - ({lo}) + {wv[d]} * {dil_r};")
        conds.append(f"q{d} >= 0 && q{d} < {(lhs.shape[2 + d] - 1) * dil_l + 1}")
        if dil_l > 1:
            conds.append(f"q{d} % {dil_l} == 0")
        pos.append(f"(q{d} / {dil_l})" if dil_l > 1 else f"q{d}")
    lst = ix.strides(lhs.shape)
    rst = ix.strides(rhs.shape)
    l_off = " + ".join([f"n_in * {lst[0]}", f"(g * {i_feat} + i) * {lst[1]}"] +
                       [f"{p} * {lst[2 + d]}" for d, p in enumerate(pos)])
    r_off = " + ".join([f"o * {rst[0]}", f"i * {rst[1]}"] +
                       [f"{w} * {rst[2 + d]}" for d, w in enumerate(wv)])
    product = f"{ct.load(v.dtype, f'b{lhs.id}', l_off)} * {ct.load(v.dtype, f'b{rhs.id}', r_off)}"
    inner.append(f"if ({' && '.join(conds)}) acc += {product};")
    body += nest([("i", i_feat)] + list(zip(wv, rhs.shape[2:])), inner)
    o_off = ix.flatten([ix.var("n"), ix.var("o")] + [ix.var(s) for s in sp], v.shape).c()
    body.append(f"{out}[{o_off}] = {ct.store(v.dtype, 'acc')};")
    return ["/* direct loop nest over (n, o, spatial) x (i, window) */"] + \
        nest([("n", n_out), ("o", n_feat)] + list(zip(sp, v.shape[2:])), body,
              parallel=v.size * i_feat * math.prod(rhs.shape[2:]) >= 65536)
