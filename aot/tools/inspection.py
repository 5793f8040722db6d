"""`aotc inspect`: how the compiler turned a model into C, for people learning.

    report = inspect_model("examples/digits_mlp.py:model", ["x:float32[1,64]"],
                           checkpoint="runs/mlp")
    print(report.text())              # graph, passes, fusion groups, memory plan, kernels
    Path("mlp.html").write_text(to_html(report))   # aot.tools.page: the drawn graphs

The report is built from the same passes as `aotc export` (`compile_stage`). Source
lines are shown relative to the model's project: the nearest folder above the model's
file holding pyproject.toml, setup.py, setup.cfg or .git (else the file's folder).
"""
from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aot.export.artifact import Stage, compile_stage
from aot.export.calibration import traced_scales
from aot.export.model import storage_of
from aot.export.onnx_model import load_model_function
from aot.export.trace import trace_model
from aot.export.signature import InputSpec, symbol_maxima
from aot.program.program import Program, subprograms

if TYPE_CHECKING:
    from mlframework.ml.context import Context

PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
_SCRATCH_HOLDS = {"dot": "packed GEMM panels", "conv": "padded input and packed filters"}


@dataclass
class Report:
    """What `aotc inspect` shows: the traced program, the compiled stage (programs after
    each pass, kernels, memory plan, C), each kernel's C text, and the project folder
    that source lines are shown relative to."""

    title: str
    traced: Program
    stage: Stage
    kernel_sources: list[str]
    root: Path = field(default_factory=Path.cwd)

    def where(self, source: str) -> str:
        """`source` ("FILE:LINE") with FILE relative to the project (or to the current
        folder) when it lies inside it; other files keep their path."""
        return relative_source(source, self.root)

    def kernel_of(self) -> dict[int, int]:
        """Value id -> index of the kernel it was fused into (values computed by one)."""
        return {n: t for t, k in enumerate(self.stage.kernels) for n in k.nodes}

    def scratch_name(self, t: int) -> str:
        """How the scratch buffer of kernel `t` is shown: its kernel and what it holds
        (see `aot.passes.layouts.scratch_bytes`)."""
        holds = _SCRATCH_HOLDS.get(self.stage.kernels[t].kind, "sort keys and indices")
        return f"scratch of {self.stage.costs[t]['kernel']} ({holds})"

    # ---- text ----

    def at_maxima(self) -> str:
        symbols = self.stage.program.symbols
        return f" at {', '.join(f'{s}={top}' for s, top in symbols.items())}" if symbols else ""

    def symbols_text(self) -> str:
        """The symbolic dimensions and their maxima ("" for a static model)."""
        symbols = self.stage.program.symbols
        if not symbols:
            return ""
        return "symbols (sizes chosen at run time, each an int64_t argument of NAME_run): " + \
            ", ".join(f"{s} in [1, {top}]" for s, top in symbols.items())

    def text(self) -> str:
        parts = [f"aotc inspect {self.title}", ""] + \
            ([self.symbols_text(), ""] if self.stage.program.symbols else []) + [
                 _banner("traced graph"), listing(self.traced, self.where), ""]
        for name, snapshot in self.stage.snapshots[1:]:
            parts += [_banner(f"after pass: {name}"), snapshot, ""]
        parts += [_banner("fusion groups"), self.fusion_text(), "",
                  _banner("memory plan"), self.plan_text(), "",
                  _banner("kernels"), self.kernels_text()]
        return "\n".join(parts)

    def fusion_text(self) -> str:
        prog, lines = self.stage.program, []
        for k, cost in zip(self.stage.kernels, self.stage.costs):
            lines.append(f"{cost['kernel']} [{k.kind}] — {k.reason}")
            for n in k.nodes:
                v = prog.values[n]
                lines.append(f"    #{n:<5} {_op(v):<36} {_type(v):<22} {self.where(v.source)}")
            if k.inputs:
                lines.append(f"    reads {', '.join(f'#{i}' for i in k.inputs)}; writes "
                             f"{', '.join(f'#{o}' for o in k.outputs)}")
            lines += subprogram_text(prog, [k], self.where)
        return "\n".join(lines)

    def plan_text(self) -> str:
        plan, prog = self.stage.plan, self.stage.program
        lines = [f"arena {plan.arena_bytes:,} bytes (the workspace NAME_run needs"
                 f"{self.at_maxima()}); constants {plan.const_bytes:,} bytes (read-only segment)",
                 f"{'buffer':<8} {'kind':<7} {'offset':>10} {'bytes':>10}  {'live (kernels)':<15} "
                 "value"]
        for b in sorted(plan.buffers.values(), key=lambda b: (b.kind, plan.position(b), b.start)):
            v = prog.values[b.value]
            live = f"[{b.start}, {b.end}]"
            lines.append(f"#{b.value:<7} {b.kind:<7} {b.offset!s:>10} {b.nbytes!s:>10}  {live:<15} "
                         f"{_op(v)} {_type(v)}")
        for t, b in sorted(plan.scratch.items()):
            lines.append(f"{'scratch':<8} {'arena':<7} {b.offset!s:>10} {b.nbytes!s:>10}  "
                         f"[{t}, {t}]{'':<9} {self.scratch_name(t)}")
        return "\n".join(lines)

    def kernels_text(self) -> str:
        out = []
        for cost, src in zip(self.stage.costs, self.kernel_sources):
            out.append(f"// {cost['kernel']}: {cost['flops']:,} FLOPs, {cost['bytes']:,} bytes "
                       f"moved, {cost['intensity']} FLOP/byte")
            out.append(src.rstrip() + "\n")
        return "\n".join(out)


def _banner(text: str) -> str:
    return f"==== {text} " + "=" * max(4, 72 - len(text))


def _op(v) -> str:
    return f"{v.scope}/{v.op.value}" if v.scope else v.op.value


def _type(v) -> str:
    return f"{v.dtype.value}{list(v.shape)}"


def listing(program: Program, where=str, indent: str = "") -> str:
    """One line per value: id, op (with scope), inputs, type, source line (shown through
    `where`); a control-flow value's sub-programs follow it, indented (their ids are
    their own)."""
    lines = []
    for v in program.values.values():
        args = ", ".join(f"#{i}" for i in v.inputs)
        lines.append(f"{indent}#{v.id:<5} {_op(v) + '(' + args + ')':<48} {_type(v):<22} "
                     f"{where(v.source)}")
        for sub in subprograms(v):
            lines.append(f"{indent}    sub-graph {sub.name} (parameters "
                         f"{', '.join(f'#{p}' for p in sub.params)}):")
            lines.append(listing(sub, where, indent + "    "))
    lines.append(f"{indent}outputs: " + ", ".join(f"#{o}" for o in program.outputs))
    return "\n".join(lines)


def subprogram_text(program: Program, kernels, where=str, indent: str = "    ") -> list[str]:
    """The kernels of each sub-program of control-flow kernels in `kernels`, nested."""
    lines = []
    for k in kernels:
        for body, body_kernels, plan in k.bodies:
            lines.append(f"{indent}sub-program {body.name}: {len(body_kernels)} kernels, "
                         f"arena {plan.arena_bytes:,} bytes in this kernel's scratch")
            for bk in body_kernels:
                ops = ", ".join(f"#{n} {_op(body.values[n])}" for n in bk.nodes)
                lines.append(f"{indent}    {bk.name} [{bk.kind}]: {ops}")
            lines += subprogram_text(body, body_kernels, where, indent + "    ")
    return lines


def split_kernels(source: str, count: int) -> list[str]:
    """The C text of each kernel function in an emitted module, by kernel index (a
    function that serves several kernels appears under each of them)."""
    starts = [([int(t) for t in m.group(1).split(", ")], m.start()) for m in
              re.finditer(r"^/\* \w+ \(\w+\): kernels? ([\d, ]+)", source, re.M)]
    end = source.find("/* Runs the graph")
    out = [""] * count
    for j, (calls, s) in enumerate(starts):
        e = starts[j + 1][1] if j + 1 < len(starts) else (end if end > s else len(source))
        for t in calls:
            if t < count:
                out[t] = source[s:e]
    return out


def inspect_model(fn: Callable[..., Any] | str, inputs: Sequence[InputSpec | str], *,
                  checkpoint: str | os.PathLike | None = None, ctx: Context | None = None,
                  name: str = "model", weight_storage: str = "float32",
                  maxima: dict[str, int] | None = None, quantize: str | None = None,
                  calibration: str | os.PathLike | None = None) -> Report:
    """Traces and compiles `fn` for `inputs` (InputSpecs or "NAME:DTYPE[DIMS]") as
    `aotc export` would with `weight_storage` (and `maxima`, the largest value of each
    symbol of the inputs' dims; `quantize` and `calibration` as `export_model` takes them).

    Raises:
        UsageError: see `export_model`."""
    storage = storage_of(weight_storage, quantize, calibration)
    title = fn if isinstance(fn, str) else getattr(fn, "__name__", "model")
    fn, specs = load_model_function(fn, inputs)
    root = project_root(fn)
    if isinstance(title, str) and ":" in title:
        file, _, function = title.rpartition(":")
        title = f"{relative_file(file, root)}:{function}"
    maxima = symbol_maxima(specs, maxima)
    traced = trace_model(fn, specs, name=name, checkpoint=checkpoint, ctx=ctx, maxima=maxima)
    scales = traced_scales(fn, traced, specs, calibration, maxima, name=name,
                           checkpoint=checkpoint, ctx=ctx) \
        if quantize == "int8" and calibration is not None else None
    original = Program(traced.program.name, dict(traced.program.values),
                       list(traced.program.params), list(traced.program.outputs),
                       dict(traced.program.symbols))
    stage = compile_stage(traced.program, entry=f"{name}_forward", weight_storage=storage,
                          variables=set(traced.variables), activation_scales=scales)
    return Report(f"{title} ({', '.join(f'{s.name}: {s.spec}' for s in specs)})", original,
                  stage, [_relative_comments(src, root) for src in
                          split_kernels(stage.source, len(stage.kernels))], root)


def inspect_decoder(folder: str | os.PathLike, *, max_seq: int, prefill_len: int | None = None,
                    step: str = "decode", weight_storage: str = "float32",
                    name: str = "model") -> Report:
    """One program of `aotc export --hf folder --decode` ("decode": the one-token step;
    "prefill": the prompt's one pass), compiled as that export would. Errors as
    `compile_decoder`'s, and UsageError for another `step`."""
    from aot.export.decoder import compile_decoder
    from aot.export.signature import UsageError
    if step not in ("decode", "prefill"):
        raise UsageError(f"--step must be decode or prefill, got {step!r}")
    compiled = compile_decoder(folder, max_seq=max_seq, prefill_len=prefill_len, name=name,
                               weight_storage=weight_storage)
    stage = compiled.stages[step]
    root = project_root(compiled.model.family.forward)
    title = (f"--hf {folder} --decode --max-seq {max_seq} --prefill-len "
             f"{compiled.prefill_len}: {step}, {weight_storage} weights")
    return Report(title, stage.programs[0][1], stage,
                  [_relative_comments(src, root) for src in
                   split_kernels(stage.source, len(stage.kernels))], root)


def _relative_comments(c_source: str, root: Path) -> str:
    """The kernel's C with the source lines in its comments relative to `root`."""
    return c_source.replace(f"{root}{os.sep}", "")


def project_root(fn: Callable[..., Any]) -> Path:
    """The project folder of function `fn`'s file (see the module docstring); the
    current folder when the file is unknown."""
    try:
        path = Path(inspect.getsourcefile(inspect.unwrap(fn)) or "").resolve()
    except TypeError:
        return Path.cwd()
    if not path.is_file():
        return Path.cwd()
    for folder in path.parents:
        if any((folder / m).exists() for m in PROJECT_MARKERS):
            return folder
    return path.parent


def relative_source(source: str, root: Path) -> str:
    """"FILE:LINE" with FILE relative to `root`, else to the current folder, when inside."""
    file, sep, line = source.rpartition(":")
    if not sep or not line.isdigit():
        return source
    return f"{relative_file(file, root)}:{line}"


def relative_file(file: str, root: Path) -> str:
    """An absolute `file` relative to `root`, else to the current folder, when inside one."""
    if not os.path.isabs(file):
        return file
    for base in (root, Path.cwd()):
        try:
            return str(Path(file).resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return file
