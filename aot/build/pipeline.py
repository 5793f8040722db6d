"""The C compiler's passes, in order. Each takes and returns plain data.

    compiled = compile_program(from_graph(graph))

Ordering: simplify before fuse (fusion trusts that identities are gone and
constants are folded); pack_weights after simplify (packed constants no longer
have their logical shape) and before fuse; plan after fuse (buffers are per kernel output); emit
needs the plan's offsets; build needs the source.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from aot.build.compiler import build
from aot.codegen.emit import emit_c
from aot.passes.fusion import fuse
from aot.passes.memory_plan import MemoryPlan, plan_memory
from aot.passes.simplify import simplify
from aot.passes.weight_packing import pack_weights
from aot.program.kernel import Kernel
from aot.program.program import Program


@dataclass
class Compiled:
    """What the passes produced for one program, the built library included."""

    program: Program
    kernels: list[Kernel]
    plan: MemoryPlan
    source: str
    lib: object


def compile_program(program: Program, build_lib: bool = True) -> Compiled:
    """Runs every pass; `AOTC_DUMP=name[,name]` prints the result of those passes."""
    dump = set(filter(None, os.environ.get("AOTC_DUMP", "").split(",")))
    program = simplify(program)                  # program -> program
    _dump(dump, "simplify", program)
    program = pack_weights(program)              # program -> program (constant weights)
    _dump(dump, "pack_weights", program)
    kernels = fuse(program)                      # program -> kernels
    _dump(dump, "fuse", "\n".join(f"{k.name} [{k.kind}]: {k.nodes}" for k in kernels))
    plan = plan_memory(program, kernels)         # program, kernels -> memory plan
    _dump(dump, "plan", plan)
    source = emit_c(program, kernels, plan)      # program, kernels, plan -> C source
    _dump(dump, "emit", source)
    lib = build(source) if build_lib else None   # C source -> cffi library
    return Compiled(program, kernels, plan, source, lib)


def _dump(names, name, value) -> None:
    if name in names:
        print(f"==== after {name} ====\n{value}")
