"""The C compiler's passes, in order. Each takes and returns plain data.

    compiled = compile_program(from_graph(graph))

Ordering: simplify before fuse (fusion trusts that identities are gone and
constants are folded); pack_weights after simplify (packed constants no longer
have their logical shape) and before fuse; plan after fuse (buffers are per kernel output); emit
needs the plan's offsets; build needs the source.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aot.build.pass_cache import cached_compile

if TYPE_CHECKING:
    from aot.passes.memory_plan import MemoryPlan
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
    timings: dict[str, float]  # seconds: the trace (if given), each pass, each gcc unit
    aliases: dict[int, int]    # output position -> donated parameter it may be written over


def compile_program(program: Program, build_lib: bool = True,
                    timings: dict[str, float] | None = None,
                    donated: tuple[int, ...] = ()) -> Compiled:
    """Runs every pass; `AOTC_DUMP=name[,name]` prints the result of those passes, and
    `AOTC_DUMP=timing` the seconds each pass and each gcc unit took (`Compiled.timings`,
    after the entries given in `timings`, such as the trace's). `donated`: parameter
    positions the caller gives up; `Compiled.aliases` says which outputs may be written
    over them (`aot.passes.donation`).

    The result is cached on disk by its input (`aot.build.pass_cache`): a warm start
    loads it and the built library, and its timings show "pass cache" and "load" in
    place of the passes. Dumping a pass's output runs the passes, bypassing the cache."""
    dump = set(filter(None, os.environ.get("AOTC_DUMP", "").split(",")))
    timings = dict(timings or {})
    if dump <= {"timing"}:
        compiled = cached_compile(program, build_lib, donated, timings,
                                  lambda: _run_passes(program, build_lib, timings, donated, dump))
    else:
        compiled = _run_passes(program, build_lib, timings, donated, dump)
    _dump(dump, "timing", "\n".join(f"  {name:<40} {s:8.3f} s"
                                    for name, s in compiled.timings.items()))
    return compiled


def _run_passes(program: Program, build_lib: bool, timings: dict[str, float],
                donated: tuple[int, ...], dump: set[str]) -> Compiled:
    """`compile_program` without the cache: every pass, emit and build, into `timings`.
    The passes are imported here: a warm start (the cache) needs none of them."""
    from aot.build.compiler import build_module
    from aot.codegen.emit import emit_module
    from aot.passes.donation import plan_donation
    from aot.passes.fusion import fuse
    from aot.passes.memory_plan import plan_memory
    from aot.passes.qdq import map_qdq
    from aot.passes.simplify import simplify
    from aot.passes.weight_packing import pack_weights

    with _timed(timings, "simplify"):
        program = simplify(program)              # program -> program
    _dump(dump, "simplify", program)
    with _timed(timings, "map_qdq"):
        mapped, _ = map_qdq(program)             # QDQ products -> int8 kernels
        program = simplify(mapped) if mapped is not program else program
    _dump(dump, "map_qdq", program)
    with _timed(timings, "pack_weights"):
        program = pack_weights(program)          # program -> program (constant weights)
    _dump(dump, "pack_weights", program)
    with _timed(timings, "fuse"):
        kernels = fuse(program)                  # program -> kernels
    _dump(dump, "fuse", "\n".join(f"{k.name} [{k.kind}]: {k.nodes}" for k in kernels))
    with _timed(timings, "plan"):
        plan = plan_memory(program, kernels)     # program, kernels -> memory plan
    aliases = plan_donation(program, kernels, plan, donated) if donated else {}
    _dump(dump, "plan", f"{plan}\nin place (output: parameter): {aliases}" if aliases else plan)
    with _timed(timings, "emit"):
        module = emit_module(program, kernels, plan)  # -> C functions and entry point
        source = module.source()
    _dump(dump, "emit", source)
    lib = build_module(module, timings) if build_lib else None  # C -> cffi library
    return Compiled(program, kernels, plan, source, lib, timings, aliases)


@contextmanager
def _timed(timings: dict, name: str):
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started


def _dump(names, name, value) -> None:
    if name in names:
        print(f"==== after {name} ====\n{value}")
