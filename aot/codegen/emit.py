"""`emit_c`: the C translation unit of a program, one function per kernel.

    source = emit_c(program, kernels, plan)

It reads what the passes decided (the kernels of `fuse`, the buffers of
`plan_memory`, the layouts of `aot.passes.layouts`) and decides nothing itself.
Each kernel is rendered through `templates/c/kernel.c.j2` (its header comment
names the fused nodes, their shapes, source lines and why they were fused)
with a body from `fused` (pointwise, reduce, rowwise), `contraction` (dot,
conv) or `single_ops`; `module.c.j2` adds the entry point `mlf_run`, which
calls the kernels in order. Shapes are literals.
"""
from __future__ import annotations

from aot.codegen import contraction, fused, single_ops
from aot.codegen import ctypes_table as ct
from aot.codegen.templates import environment
from aot.passes.memory_plan import MemoryPlan
from aot.program.kernel import Kernel
from aot.program.program import Program

ENTRY = "mlf_run"
_BODIES = {"pointwise": fused.pointwise, "reduce": fused.reduce, "rowwise": fused.rowwise,
           "dot": contraction.dot_body, "conv": contraction.conv_body}


def emit_c(program: Program, kernels: list[Kernel], plan: MemoryPlan, entry: str = ENTRY,
           public: bool = True) -> str:
    """The C source of `program`: kernels as planned, entry point `entry` (`mlf_run`;
    `aotc export` names it after the model). `public`: the entry point and
    `ENTRY_set_threads` are external (what cffi loads); False: `entry` is static and
    there is no `_set_threads` (the export wraps the entry in its documented API)."""
    funcs, calls, setup = [], [], []
    names = {}
    for vid, b in plan.buffers.items():
        names[vid] = f"b{vid}"
        v = program.values[vid]
        t = ct.STORAGE[v.dtype]
        if b.kind == "input":
            setup.append(f"{t}* b{vid} = ({t}*)inputs[{program.params.index(vid)}]; (void)b{vid};")
        elif b.kind == "const":
            setup.append(f"const {t}* b{vid} = (const {t}*)(consts + {b.offset}); (void)b{vid};")
        elif b.kind == "output":
            setup.append(f"{t}* b{vid} = ({t}*)outputs[{b.output_index}];")
        elif b.kind == "arena":
            setup.append(f"{t}* b{vid} = ({t}*)(arena + {b.offset});")
    for vid, b in plan.buffers.items():  # aliases after their bases
        if b.kind == "alias":
            t = ct.STORAGE[program.values[vid].dtype]
            setup.append(f"{t}* b{vid} = ({t}*)b{b.base};")
    for t, k in enumerate(kernels):
        if k.kind == "alias":
            continue
        fname = f"k{t}_{k.name}"
        scratch = plan.scratch.get(t)
        params = [f"const {ct.STORAGE[program.values[i].dtype]}* MLF_RESTRICT b{i}"
                  for i in k.inputs]
        params += [f"{ct.STORAGE[program.values[o].dtype]}* MLF_RESTRICT b{o}" for o in k.outputs]
        args = [names[i] for i in k.inputs] + [names[o] for o in k.outputs]
        if scratch is not None:
            params.append("char* MLF_RESTRICT scratch")
            args.append(f"arena + {scratch.offset}")
        body = _BODIES[k.kind](program, k) if k.kind in _BODIES else single_ops.body(program, k)
        funcs.append(environment().get_template("kernel.c.j2").render(
            title=f"kernel {t}: {k.name} ({k.kind})", reason=k.reason,
            nodes=[_describe(program.values[n]) for n in k.nodes], fname=fname,
            params=params or ["void"], body=body))
        calls.append(f"{fname}({', '.join(args)});")
    return environment().get_template("module.c.j2").render(
        name=program.name, kernels=funcs, arena_bytes=plan.arena_bytes,
        const_bytes=plan.const_bytes, entry=entry, public=public, setup=setup, calls=calls,
        params=[_type(program.values[p]) for p in program.params],
        outputs=[_type(program.values[o]) for o in program.outputs])


def _type(v) -> str:
    return f"{v.dtype.value}[{', '.join(map(str, v.shape))}]"


def _describe(v) -> dict:
    scope = f"{v.scope}/" if v.scope else ""
    return {"id": v.id, "op": scope + v.op.value, "type": _type(v),
            "source": v.source.replace("*/", "* /")}
