"""C bodies of dot_general and conv_general kernels (with their epilogues).

float32 contractions whose operands are strided views of [batch, M, K] and
[batch, K, N] call the register-blocked GEMM of `runtime_c/mlf_gemm.h`; a
2-d, stride-1, undilated, ungrouped float32 convolution is an implicit GEMM
over a zero-padded NHWC copy of the input (`mlf_conv2d`, runtime_c/mlf_conv.h),
1x1 included; dense-layer weights packed by aot/passes/weight_packing.py go through
`mlf_sgemm_panels` or `mlf_sgemm_bf16p` (runtime_c/mlf_gemm_bf16.h). Everything
else runs a plain loop nest with the accumulator in the compute type.
"""
from __future__ import annotations

import math

from aot.codegen import ctypes_table as ct
from aot.codegen.expressions import Evaluator
from aot.codegen.nests import axis_vars, loops, merged_nest, nest, omp_for
from aot.passes.layouts import (conv_fast, conv_geometry, conv_im2col, conv_oc,
                                conv_oc_image_floats, conv_oc_packed, conv_oc_weights_offset,
                                conv_small, dot_layout, packing, s8_conv_args, sgemm_fits,
                                widened_weights_offset)
from aot.program import indexing as ix
from aot.program.symbols import c_expr
from mlframework.core.dtypes import DType
from mlframework.core.symbolic import divide, is_symbolic


def _epilogue_nest(program, k, out, rows: bool):
    """The epilogue's merged loop nest over the contraction's result `out`:
    (evaluator, loop axes, store line). rows: keep every axis (the first is the row axis
    the GEMM's threads own) and leave the nest serial; else drop unit axes and let a large
    nest run in parallel."""
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
    ev, loop_axes, store = _epilogue_nest(program, k, out, rows=False)
    return ["/* epilogue: the fused pointwise ops, applied while the result is cache-hot */"] + \
        loops(loop_axes, ev.lines + [store])


def _row_epilogue(program, k, out, M, N):
    """The epilogue as a loop over rows [r0, r1) of the [M, N] result, or None if its
    loop nest does not start with the row axis."""
    if not k.epilogue or tuple(program.values[k.outputs[0]].shape) != (M, N) or M == 1 \
            or N == 1 or not is_symbolic(M) and M < 2 or not is_symbolic(N) and N < 2:
        return None
    ev, loop_axes, store = _epilogue_nest(program, k, out, rows=True)
    if not loop_axes or not loop_axes[0][0].startswith("e0") or \
            divide(loop_axes[0][1], M) is None:
        return None
    lines = loops(loop_axes, ev.lines + [store])
    var, per_row = loop_axes[0][0], divide(loop_axes[0][1], M)
    assert per_row is not None
    first = f"for (long {var} = 0; {var} < {loop_axes[0][1]}; {var}++) {{"
    if lines[0] != first:
        return None
    lo, hi = ("r0", "r1") if per_row == 1 else (f"r0 * {c_expr(per_row)}",
                                                 f"r1 * {c_expr(per_row)}")
    lines[0] = f"for (long {var} = {lo}; {var} < {hi}; {var}++) {{"
    return ["/* epilogue on this thread's rows */"] + lines


def dot_body(program, k) -> list[str]:
    v = program.values[k.contraction]
    out = f"b{k.outputs[0]}"
    lhs, rhs = v.inputs
    (B, M, N, K), s = dot_layout(program, v)
    if packing(program, v) == "panels":
        return [f"/* [{M}x{K}] @ [{K}x{N}] with the constant weights packed into 64-column "
                "panels at compile time (runtime_c/mlf_gemm.h) */",
                f"mlf_sgemm_panels({M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, b{rhs}, {out}, {N});"] \
            + _epilogue(program, k, out)
    if packing(program, v) == "s8_panels":
        return [f"/* [{M}x{K}] int8 @ [{K}x{N}] int8 -> int32, exact: VNNI dot products where "
                "the target has them (runtime_c/mlf_gemm_s8.h) */",
                f"mlf_gemm_s8({M}, {N}, {K}, b{lhs}, {s[1]}, b{rhs}, {out}, {N});"] \
            + _epilogue(program, k, out)
    if packing(program, v) == "int8_columns":
        work = "(float*)scratch" if k.scratch_bytes else "0"
        return [f"/* [{M}x{K}] @ [{K}x{N}] with the weights stored as int8, one scale per "
                "column (runtime_c/mlf_gemm_i8.h) */",
                f"mlf_sgemm_i8w({M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, "
                f"(const float*)(const void*)b{rhs}, b{rhs} + {4 * N}, {out}, {N}, {work});"] \
            + _epilogue(program, k, out)
    if packing(program, v):
        work = "(float*)scratch" if k.scratch_bytes else "0"
        return [f"/* [{M}x{K}] @ [{K}x{N}] with the weights stored as bfloat16 pairs "
                "(runtime_c/mlf_gemm_bf16.h) */",
                f"mlf_sgemm_bf16p({M}, {N}, {K}, b{lhs}, {s[1]}, {s[2]}, b{rhs}, {out}, {N}, "
                f"{work});"] + _epilogue(program, k, out)
    if sgemm_fits(program, v) and s is not None and v.size:
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
    li = [ix.const(0)] * len(lhs.shape)  # every axis is batch, free or contracted: set below
    ri = [ix.const(0)] * len(rhs.shape)
    for j, (x, y) in enumerate(zip(a["lhs_batch"], a["rhs_batch"])):
        li[x] = ri[y] = ix.var(o[j])
    for j, x in enumerate(lf):
        li[x] = ix.var(o[nb + j])
    for j, x in enumerate(rf):
        ri[x] = ix.var(o[nb + len(lf) + j])
    for j, (x, y) in enumerate(zip(a["lhs_contracting"], a["rhs_contracting"])):
        li[x] = ri[y] = ix.var(kv[j])
    ctype = ct.compute(v.dtype)
    # Under a preferred_element_type the operands widen to the result's type before the
    # product: int8 x int8 accumulates in int32, float16/bfloat16 in float32.
    left, right = (ct.load(x.dtype, f"b{x.id}", ix.flatten(i, x.shape).c()) for x, i in
                   ((lhs, li), (rhs, ri)))
    if lhs.dtype is not v.dtype:
        left, right = f"({ctype}){left}", f"({ctype}){right}"
    mul = ct.narrow(v.dtype, f"{left} * {right}")
    inner = [f"acc = {ct.narrow(v.dtype, f'acc + {mul}')};"]
    kdims = [lhs.shape[x] for x in a["lhs_contracting"]]
    body = [f"{ctype} acc = 0;"]
    body += nest(list(zip(kv, kdims)), inner)
    body.append(f"{out}[{ix.flatten([ix.var(x) for x in o], v.shape).c()}] = "
                f"{ct.store(v.dtype, 'acc')};")
    what = v.dtype.value if lhs.dtype is v.dtype else f"{lhs.dtype.value} into {v.dtype.value}"
    return [f"/* plain loop nest ({what} or a layout the GEMM cannot view) */"] + \
        nest(list(zip(o, v.shape)), body, omp_for(v.size * math.prod(kdims)))


def conv_body(program, k) -> list[str]:
    v = program.values[k.contraction]
    if any(list(o) != list(range(len(v.shape))) for o in v.attrs["dimension_numbers"]):
        raise NotImplementedError(f"conv_general #{v.id} with dimension_numbers "
                                  f"{v.attrs['dimension_numbers']} reached code generation; "
                                  "aot.passes.conv_layout.canonical_convs (run by simplify) "
                                  "must put it in the canonical layouts first")
    out = f"b{k.outputs[0]}"
    lhs, rhs = v.inputs
    if packing(program, v) == "s8_conv_rows":
        return _s8_conv(program, v, out) + _epilogue(program, k, out)
    widen, weights = _widened_weights(program, v)
    return widen + _conv_call(program, k, v, out, weights) + _epilogue(program, k, out)


def _s8_conv(program, v, out) -> list[str]:
    sizes = s8_conv_args(program, v)
    c, kh, kw = sizes[1], sizes[5], sizes[6]
    inverse = v.attrs.get("quantize_lhs")
    call, x = "mlf_conv2d_s8", f"b{v.inputs[0]}"
    if inverse is not None:
        call, x = "mlf_conv2d_s8_f32", f"{x}, {ct.literal(inverse, DType.FLOAT32)}"
    return ["/* int8 x int8 -> int32, exact: the whole batch as one GEMM "
            "(runtime_c/mlf_conv_s8.h),",
            " * each image padded once" + (", quantized to int8 on the way (x * 1/s_x rounded,"
                                           " clamped)," if inverse is not None else "")
            + " and unrolled into patches [K/4][pixels][4],",
            f" * VNNI where the target has it; strides {tuple(v.attrs['window_strides'])}, "
            f"K = {kh}x{kw}x{c} */",
            f"{call}({', '.join(map(str, sizes))}, {x}, b{v.inputs[1]}, {out}, (uint8_t*)scratch);"]


def _widened_weights(program, v) -> tuple[list[str], str]:
    """C lines widening a convolution's int8 or float16 weights into its scratch, and the
    name of the float32 weights the convolution reads."""
    rhs = program.values[v.inputs[1]]
    offset = widened_weights_offset(program, v)
    if offset is None:
        return [], f"b{rhs.id}"
    lines = [f"float* MLF_RESTRICT bw = (float*)(scratch + {offset});"]
    if rhs.attrs["packing"] == "float16":
        lines.insert(0, "/* the float16 weights widened to float32 */")
        lines.append(f"for (long i = 0; i < {rhs.size}; i++) bw[i] = mlf_load_f16(b{rhs.id}[i]);")
        return lines, "bw"
    scales = ", ".join(ct.literal(x, DType.FLOAT32) for x in rhs.attrs["scales"])
    per = rhs.size // rhs.shape[0]
    lines = ["/* the int8 weights widened to float32, times their output channel's scale */",
             f"static const float scales[{rhs.shape[0]}] = {{{scales}}};"] + lines
    lines.append(f"for (long i = 0; i < {rhs.size}; i++) "
                 f"bw[i] = (float)b{rhs.id}[i] * scales[i / {per}];")
    return lines, "bw"


def _conv_call(program, k, v, out, weights) -> list[str]:
    lhs = v.inputs[0]
    if conv_oc(program, v):
        return _conv_oc_call(program, v, out, weights)
    if conv_fast(program, v):
        g = conv_geometry(program, v)
        small = conv_small(g, program.symbols)
        what = (f"few output channels (runtime_c/mlf_conv_small.h): zero-padded NCHW rows, "
                f"up to 8 channels x one {g['wo']}-pixel output row per register tile"
                if small else
                "direct implicit GEMM (runtime_c/mlf_conv.h): zero-padded NHWC copy of the "
                "input, weights in 64-channel panels, 6 pixels x 64 channels per register tile"
                if small is False else
                "direct implicit GEMM (runtime_c/mlf_conv.h), its register tiles chosen at run "
                f"time: vectors along the output row while it has <= 64 pixels ({g['wo']}), "
                "else 64-channel panels")
        return [f"/* {what}, K = {g['kh']}x{g['kw']}x{g['c']} */",
                "mlf_conv2d(" + ", ".join(str(g[x]) for x in (
                    "n", "c", "h", "w", "o", "kh", "kw", "ph", "pw", "hp", "wp", "ho", "wo"))
                + f", b{lhs}, {weights}, {out}, (float*)scratch);"]
    if conv_im2col(program, v):
        x, w = program.values[lhs], program.values[v.inputs[1]]
        a = v.attrs
        args = (*x.shape, w.shape[0], *w.shape[2:], *a["window_strides"], *a["rhs_dilation"],
                a["padding"][0][0], a["padding"][1][0], *v.shape[2:])
        return [f"/* im2col + GEMM (runtime_c/mlf_conv.h): strides {a['window_strides']}, "
                f"K = {w.shape[2]}x{w.shape[3]}x{w.shape[1]} */",
                f"mlf_conv2d_im2col({', '.join(map(str, args))}, b{lhs}, {weights}, {out}, "
                "(float*)scratch);"]
    return _conv_loops(program, v, out, weights)


def _conv_oc_call(program, v, out, weights) -> list[str]:
    """mlf_conv2d_oc over the batch (in parallel when large), with literal sizes; the
    weights packed into the scratch first unless pack_weights packed them."""
    x, w = program.values[v.inputs[0]], program.values[v.inputs[1]]
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    a = v.attrs
    ho, wo = v.shape[2:]
    lines = [f"/* small image, vectors over the output channels (runtime_c/mlf_conv_oc.h): "
             f"strides {tuple(a['window_strides'])}, dilations {tuple(a['rhs_dilation'])}, "
             f"K = {kh}x{kw}x{c} */"]
    if not conv_oc_packed(program, v):
        lines += [f"float* MLF_RESTRICT wk = (float*)(scratch + "
                  f"{conv_oc_weights_offset(program, v)});",
                  f"mlf_conv_oc_pack({o}, {c}, {kh}, {kw}, {weights}, wk);"]
        weights = "wk"
    args = (c, h, wd, o, kh, kw, *a["window_strides"], *a["rhs_dilation"], a["padding"][0][0],
            a["padding"][1][0], ho, wo)
    pragma = omp_for(n * o * ho * wo * c * kh * kw, 65536 * 16) if n != 1 else ""
    if pragma:
        lines.append(pragma)
    lines += [f"for (long n = 0; n < {n}; n++)",
              f"  mlf_conv2d_oc({', '.join(map(str, args))}, b{x.id} + n * {c * h * wd}, "
              f"{weights}, {out} + n * {o * ho * wo}, "
              f"(float*)scratch + n * {conv_oc_image_floats(program, v)});"]
    return lines


def _conv_loops(program, v, out, weights) -> list[str]:
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
            f"const long n_in = bg * {c_expr(n_out)} + n;", f"{ctype} acc = 0;"]
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
    l_off = " + ".join([f"n_in * {c_expr(lst[0])}",
                        f"(g * {c_expr(i_feat)} + i) * {c_expr(lst[1])}"] +
                       [f"{p} * {c_expr(lst[2 + d])}" for d, p in enumerate(pos)])
    r_off = " + ".join([f"o * {c_expr(rst[0])}", f"i * {c_expr(rst[1])}"] +
                       [f"{w} * {c_expr(rst[2 + d])}" for d, w in enumerate(wv)])
    w_dtype = v.dtype if weights == f"b{rhs.id}" else DType.FLOAT32
    product = f"{ct.load(v.dtype, f'b{lhs.id}', l_off)} * {ct.load(w_dtype, weights, r_off)}"
    inner.append(f"if ({' && '.join(conds)}) acc += {product};")
    body += nest([("i", i_feat)] + list(zip(wv, rhs.shape[2:])), inner)
    o_off = ix.flatten([ix.var("n"), ix.var("o")] + [ix.var(s) for s in sp], v.shape).c()
    body.append(f"{out}[{o_off}] = {ct.store(v.dtype, 'acc')};")
    return ["/* direct loop nest over (n, o, spatial) x (i, window) */"] + \
        nest([("n", n_out), ("o", n_feat)] + list(zip(sp, v.shape[2:])), body,
              omp_for(v.size * i_feat * math.prod(rhs.shape[2:])))
