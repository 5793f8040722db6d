"""C body of the fused attention kernel (aot/passes/attention.py; runtime_c/mlf_attention.h).

    lines = attention_body(program, kernel)

Work items are (batch, block of MLF_ATT_QB query rows), split over the threads. Each walks
the keys in blocks of MLF_ATT_KB (its queries packed once): computes a block's scores with
`mlf_att_scores`, applies the logits (the pointwise ops between the scores and the
softmax, the mask included: C from `expressions.Evaluator` with the score as a scalar),
and folds them into the online softmax with `mlf_att_update`. When the logits are
select(mask, ..., fill) with a fill at or below SKIP_FILL, a key block where the mask holds
nowhere for the item's rows is skipped before its scores are computed (the upper
triangle of a causal mask).
"""
from __future__ import annotations

from aot.codegen.expressions import Evaluator
from aot.codegen.nests import omp_for
from aot.passes.attention import masked_fill
from aot.passes.layouts import dot_layout
from aot.program import indexing as ix
from aot.program.kernel import Kernel
from aot.program.program import Program

QB, KB = 32, 32  # MLF_ATT_QB, MLF_ATT_KB of runtime_c/mlf_attention.h


def attention_body(program: Program, k: Kernel) -> list[str]:
    """Lines of the kernel's C body (static shapes, float32)."""
    scores, logits, _, out = (program.values[s] for s in k.stages)
    (nb, m, n, d), sq = dot_layout(program, scores)
    (_, _, dv, _), so = dot_layout(program, out)
    q, kk = scores.inputs
    v = out.inputs[1]
    buffers = {i: f"b{i}" for i in k.inputs}
    nbatch = len(scores.attrs["lhs_batch"])
    extents = {"z": nb, "i": m, "j": n}
    index = ix.unflatten(ix.var("z"), scores.shape[:nbatch], extents) + \
        ix.unflatten(ix.var("i"), scores.shape[nbatch:-1], extents) + [ix.var("j")]
    ev = Evaluator(program, extents, buffers, scalars={scores.id: "s"}, row_index=index,
                   row_dims=list(scores.shape))
    expr = ev.value(logits.id, index)
    apply = ["for (long jj = 0; jj < kn; jj++)",
             "  for (long ii = 0; ii < qn; ii++) {",
             "    const long i = i0 + ii, j = j0 + jj; (void)i; (void)j;",
             f"    const float s = x[jj * {QB} + ii]; (void)s;"]
    apply += ["    " + line for line in ev.lines] + [f"    x[jj * {QB} + ii] = {expr};", "  }"]
    skip: list[str] = []
    masked = masked_fill(program, logits.id)
    if masked is not None:
        cev = Evaluator(program, extents, buffers, prefix="m")
        cond = cev.value(masked[0], index)
        skip = ["int any = 0;",
                "for (long jj = 0; jj < kn && !any; jj++)",
                "  for (long ii = 0; ii < qn; ii++) {",
                "    const long i = i0 + ii, j = j0 + jj; (void)i; (void)j;"]
        skip += ["    " + line for line in cev.lines] + [f"    any |= ({cond}) != 0;", "  }",
                                                         "if (!any) continue;"]
    blocks = -(-m // QB)
    qv, kv, vv = f"b{q} + z * {sq[0]}", f"b{kk} + z * {sq[3]}", f"b{v} + z * {so[3]}"
    lines = [f"/* [{nb}] x softmax(logits([{m}x{d}] @ [{d}x{n}])) @ [{n}x{dv}], flash-style: "
             f"blocks of {QB} query rows", f" * against blocks of {KB} keys "
             "(runtime_c/mlf_attention.h)" + (", fully masked key blocks skipped"
                                             if skip else "") + " */"]
    parallel = nb * blocks > 1 and omp_for(nb * m * n * (d + dv)) != ""
    lines += ["MLF_OMP(omp parallel for schedule(dynamic, 1))" if parallel else "",
              f"for (long w = 0; w < {nb * blocks}; w++) {{",
              f"  const long z = w / {blocks}, i0 = (w % {blocks}) * {QB}; (void)z;",
              f"  const long qn = {m} - i0 < {QB} ? {m} - i0 : {QB};",
              f"  float qt[{d * QB}] __attribute__((aligned(64)));",
              f"  float x[{QB * KB}] __attribute__((aligned(64)));",
              f"  float o[{QB * dv}], mx[{QB}], l[{QB}];",
              f"  mlf_att_pack_queries({qv} + i0 * {sq[1]}, {sq[1]}, {sq[2]}, qn, {d}, qt);",
              f"  mlf_att_start({dv}, o, mx, l);",
              f"  for (long j0 = 0; j0 < {n}; j0 += {KB}) {{",
              f"    const long kn = {n} - j0 < {KB} ? {n} - j0 : {KB};"]
    lines += ["    " + line for line in skip]
    lines += [f"    mlf_att_scores(qt, {kv} + j0 * {sq[5]}, {sq[5]}, {sq[4]}, kn, {d}, x);"]
    lines += ["    " + line for line in apply]
    lines += [f"    mlf_att_update(x, qn, kn, {vv} + j0 * {so[4]}, {so[4]}, {so[5]}, {dv}, o, mx, "
              "l);", "  }",
              f"  mlf_att_finish(o, l, mx, qn, {dv}, {int(bool(skip))}, {vv}, {so[4]}, {so[5]}, "
              f"{n}, b{k.outputs[0]} + z * {m * dv} + i0 * {dv});", "}"]
    return [line for line in lines if line != ""]
