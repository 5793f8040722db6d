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

import re

from collections.abc import Callable
from dataclasses import dataclass

from aot.codegen import attention, contraction, control, fused, single_ops
from aot.codegen import ctypes_table as ct
from aot.codegen.templates import environment
from aot.passes.memory_plan import MemoryPlan
from aot.program.canonical import canonical
from aot.program.kernel import Kernel
from aot.program.program import Program
from aot.program.symbols import c_name, c_of, check_compilable

ENTRY = "mlf_run"
_BODIES = {"pointwise": fused.pointwise, "reduce": fused.reduce, "rowwise": fused.rowwise,
           "dot": contraction.dot_body, "conv": contraction.conv_body,
           "attention": attention.attention_body}


@dataclass
class CFunction:
    """One kernel function, written once however many kernels it serves."""

    name: str
    kind: str
    calls: list[int]   # the indices of the kernels it runs as
    render: Callable[[str, bool], str]  # render(linkage, annotated) -> its C
    prototype: str

    def text(self, linkage: str, annotated: bool = True) -> str:
        """The definition with `linkage` ("static ", or the units' "MLF_UNIT_KERNEL ");
        annotated: the comment names the calls, the graph nodes and their source lines
        (else it holds only what the structure decides, so that a unit's text, and its
        cache entry, is the same in every model that has the function)."""
        return self.render(linkage, annotated)


@dataclass
class CModule:
    """The C of a program: its kernel functions (deduplicated) and the entry point.

    `source()` is one translation unit: what `aotc export` writes and what a c backend
    executable shows as `.source`. `entry_unit()` is the same module with prototypes
    in place of the kernels, for builds that compile the functions as units of their own.
    """

    functions: list[CFunction]
    context: dict  # of templates/c/module.c.j2

    def source(self) -> str:
        return self._render([f.text("static ") for f in self.functions], linked=False)

    def entry_unit(self) -> str:
        return self._render([f"MLF_UNIT_KERNEL {f.prototype};" for f in self.functions],
                            linked=True)

    def unit_source(self, functions: list[CFunction]) -> str:
        """A translation unit holding `functions` (external, hidden from outside the library)."""
        return environment().get_template("unit.c.j2").render(functions=functions)

    def _render(self, kernels: list[str], linked: bool) -> str:
        return environment().get_template("module.c.j2").render(kernels=kernels, linked=linked,
                                                                **self.context)


def emit_c(program: Program, kernels: list[Kernel], plan: MemoryPlan, entry: str = ENTRY,
           public: bool = True) -> str:
    """The C source of `program`: kernels as planned, entry point `entry` (`mlf_run`;
    `aotc export` names it after the model); one translation unit. `public`: the entry
    point and `ENTRY_set_threads` are external (what cffi loads); False: `entry` is
    static and there is no `_set_threads` (the export wraps the entry in its documented
    API)."""
    return emit_module(program, kernels, plan, entry, public).source()


def emit_module(program: Program, kernels: list[Kernel], plan: MemoryPlan,
                entry: str = ENTRY, public: bool = True) -> CModule:
    """The C of `program` as a `CModule`: each distinct kernel (by the structural key of
    `aot.program.canonical`) is one function, rendered from its canonical form, and the
    entry point calls it once per kernel it serves. Control-flow kernels are loops and
    branches in the entry point calling one function per sub-program (`subprograms`).
    `public`: as for `emit_c`."""
    distinct: dict[str, tuple] = {}  # key -> (its program, first kernel, canonical form, calls)
    bodies: list[str] = []
    if program.symbols:
        check_compilable(program)
    setup, calls = _entry(program, kernels, plan, distinct, bodies, entry)
    functions = [_function(key, *first) for key, first in distinct.items()]
    context = dict(name=program.name, kernel_count=sum(k.kind != "alias" for k in kernels),
                   arena_bytes=plan.arena_bytes, const_bytes=plan.const_bytes, entry=entry,
                   public=public, setup=setup, calls=calls, subprograms=bodies,
                   symbols=symbol_lines(program),
                   params=[_type(program.values[p]) for p in program.params],
                   outputs=[_type(program.values[o]) for o in program.outputs])
    return CModule(functions, context)


def _entry(program: Program, kernels: list[Kernel], plan: MemoryPlan, distinct: dict,
           bodies: list[str], entry: str) -> tuple[list[str], list[str]]:
    """(setup lines, call lines) of the function running `program`: buffer pointers, then
    one call per kernel; kernel functions go to `distinct`, the functions of
    sub-programs (named after `entry`) to `bodies`, innermost first."""
    calls, setup = [], []
    names = {}
    for vid, b in plan.buffers.items():
        names[vid] = f"b{vid}"
        v = program.values[vid]
        ctype = ct.STORAGE[v.dtype]
        if b.kind == "input":
            setup.append(f"{ctype}* b{vid} = ({ctype}*)inputs[{program.params.index(vid)}]; "
                         f"(void)b{vid};")
        elif b.kind == "const":
            setup.append(f"const {ctype}* b{vid} = (const {ctype}*)(consts + {b.offset}); "
                         f"(void)b{vid};")
        elif b.kind == "output":
            setup.append(f"{ctype}* b{vid} = ({ctype}*)outputs[{b.output_index}];")
        elif b.kind == "arena":
            setup.append(f"{ctype}* b{vid} = ({ctype}*)(arena + {_offset(program, b.offset)});")
    for vid, b in plan.buffers.items():  # aliases after their bases
        if b.kind == "alias":
            ctype = ct.STORAGE[program.values[vid].dtype]
            setup.append(f"{ctype}* b{vid} = ({ctype}*)b{b.base};")
    for t, k in enumerate(kernels):
        if k.kind == "alias":
            continue
        scratch = plan.scratch.get(t)
        if k.bodies:
            fns = []
            for j, (body, body_kernels, body_plan) in enumerate(k.bodies):
                fns.append(f"{entry}_k{t}_{j}")
                body_setup, body_calls = _entry(body, body_kernels, body_plan, distinct,
                                                bodies, fns[-1])
                body_calls += _copied_outputs(body, body_plan)
                bodies.append(environment().get_template("subprogram.c.j2").render(
                    name=fns[-1], title=body.name, arena_bytes=body_plan.arena_bytes,
                    symbols=[c_name(s) for s in body.symbols], setup=body_setup,
                    calls=body_calls))
            where = f"arena + {_offset(program, scratch.offset)}" if scratch is not None \
                else "arena"
            calls.append(control.render(program, k, t, names, where, fns))
            continue
        local, lk, key = canonical(program, k)
        first = distinct.setdefault(key, (program, k, local, lk, []))
        first[4].append(t)
        args = [names[i] for i in k.inputs] + [names[o] for o in k.outputs]
        if scratch is not None:
            args.append(f"arena + {_offset(program, scratch.offset)}")
        args += list(local.symbols)  # the C variables of the entry point (`symbol_lines`)
        calls.append(f"{_name(k, key)}({', '.join(args)});  /* kernel {t} */")
    return setup, calls


def _offset(program: Program, offset) -> str:
    """An arena offset as C: a polynomial of the symbols over their C variables."""
    return c_of(program, offset)


def symbol_lines(program: Program) -> list[tuple[str, str, int]]:
    """(symbol, C variable, maximum) per symbol, in the order of the entry point's
    `sizes` argument (`Program.symbols`)."""
    return [(s, c_name(s), top) for s, top in program.symbols.items()]


def _copied_outputs(program: Program, plan: MemoryPlan) -> list[str]:
    """Copies into a sub-program's outputs that no kernel writes: parameters returned as
    they are, and a value returned twice. (The top level leaves them to its caller.)"""
    lines = []
    for k, o in enumerate(program.outputs):
        b = plan.buffers[o]
        if b.kind != "output" or b.output_index != k:
            lines.append(f"memcpy(outputs[{k}], b{o}, {c_of(program, program.values[o].nbytes)});")
    return lines


def _name(k: Kernel, key: str) -> str:
    return f"{k.name}_{key[:8]}"


def _function(key: str, program: Program, k: Kernel, local: Program, lk: Kernel,
              calls: list[int]) -> CFunction:
    """The function of kernel `k` (run as the kernels `calls`) from its canonical form."""
    restrict = "" if lk.aliased else " MLF_RESTRICT"  # an output may be an input's memory
    params = [f"const {ct.STORAGE[local.values[i].dtype]}*{restrict} b{i}" for i in lk.inputs]
    params += [f"{ct.STORAGE[local.values[o].dtype]}*{restrict} b{o}" for o in lk.outputs]
    if lk.scratch_bytes:
        params.append("char* MLF_RESTRICT scratch")
    params += [f"const long {s}" for s in local.symbols]
    body = _BODIES[lk.kind](local, lk) if lk.kind in _BODIES else single_ops.body(local, lk)
    # operands never read (a start index on a full-width axis), outputs and scratch never
    # written (an empty output) and symbols never read (a static slice of a symbolic
    # operand) are marked used, for -Wextra
    text = "\n".join(body)
    names = [f"b{i}" for i in [*lk.inputs, *lk.outputs]] + \
        (["scratch"] if lk.scratch_bytes else []) + list(local.symbols)
    body = [f"(void){n};" for n in names if not re.search(rf"\b{n}\b", text)] + body
    name = _name(k, key)
    nodes = [_describe(local.values[n], program.values[o]) for n, o in zip(lk.nodes, k.nodes)]

    def render(linkage: str, annotated: bool) -> str:
        return environment().get_template("kernel.c.j2").render(
            title=f"{name} ({k.kind})", reason=k.reason, nodes=nodes, fname=name,
            params=params or ["void"], body=body, calls=calls, linkage=linkage,
            annotated=annotated)
    return CFunction(name, k.kind, calls, render,
                     f"void {name}({', '.join(params or ['void'])})")


def _type(v) -> str:
    return f"{v.dtype.value}[{', '.join(map(str, v.shape))}]"


def _describe(v, original) -> dict:
    scope = f"{v.scope}/" if v.scope else ""
    return {"id": f"{v.id} (#{original.id})", "op": scope + v.op.value, "type": _type(v),
            "source": v.source.replace("*/", "* /")}
