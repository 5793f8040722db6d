"""`aotc inspect`: how the compiler turned a model into C, for people learning.

    report = inspect_model("examples/digits_mlp.py:model", ["x:float32[1,64]"],
                           checkpoint="runs/mlp")
    print(report.text())              # graph, passes, fusion groups, memory plan, kernels
    Path("mlp.html").write_text(to_html(report))

The report is built from the same passes as `aotc export` (`compile_stage`).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from aot.export.artifact import Stage, compile_stage
from aot.export.signature import load_function, parse_input
from aot.export.trace import trace_model
from aot.program.program import Program


@dataclass
class Report:
    title: str
    traced: Program
    stage: Stage
    kernel_sources: list[str]

    # ---- text ----

    def text(self) -> str:
        parts = [f"aotc inspect {self.title}", "",
                 _banner("traced graph"), listing(self.traced), ""]
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
                lines.append(f"    #{n:<5} {_op(v):<36} {_type(v):<22} {v.source}")
            if k.inputs:
                lines.append(f"    reads {', '.join(f'#{i}' for i in k.inputs)}; writes "
                             f"{', '.join(f'#{o}' for o in k.outputs)}")
        return "\n".join(lines)

    def plan_text(self) -> str:
        plan, prog = self.stage.plan, self.stage.program
        lines = [f"arena {plan.arena_bytes:,} bytes (the workspace NAME_run needs); constants "
                 f"{plan.const_bytes:,} bytes (read-only segment)",
                 f"{'buffer':<8} {'kind':<7} {'offset':>10} {'bytes':>10}  {'live (kernels)':<15} "
                 "value"]
        for b in sorted(plan.buffers.values(), key=lambda b: (b.kind, b.offset, b.start)):
            v = prog.values[b.value]
            live = f"[{b.start}, {b.end}]"
            lines.append(f"#{b.value:<7} {b.kind:<7} {b.offset:>10} {b.nbytes:>10}  {live:<15} "
                         f"{_op(v)} {_type(v)}")
        for t, b in sorted(plan.scratch.items()):
            lines.append(f"{'scratch':<8} {'arena':<7} {b.offset:>10} {b.nbytes:>10}  "
                         f"[{t}, {t}]{'':<9} scratch of kernel {t}")
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


def listing(program: Program) -> str:
    """One line per value: id, op (with scope), inputs, type, source line."""
    lines = []
    for v in program.values.values():
        args = ", ".join(f"#{i}" for i in v.inputs)
        lines.append(f"#{v.id:<5} {_op(v) + '(' + args + ')':<48} {_type(v):<22} {v.source}")
    lines.append("outputs: " + ", ".join(f"#{o}" for o in program.outputs))
    return "\n".join(lines)


def split_kernels(source: str, count: int) -> list[str]:
    """The C text of each kernel function in an emitted module, by kernel index."""
    starts = [(int(m.group(1)), m.start()) for m in
              re.finditer(r"^/\* kernel (\d+):", source, re.M)]
    end = source.find("/* Runs the graph")
    out = [""] * count
    for j, (t, s) in enumerate(starts):
        e = starts[j + 1][1] if j + 1 < len(starts) else (end if end > s else len(source))
        if t < count:
            out[t] = source[s:e]
    return out


def inspect_model(fn, inputs, *, checkpoint=None, ctx=None, name: str = "model",
                  weight_storage: str = "float32") -> Report:
    """Traces and compiles `fn` for `inputs` (InputSpecs or "NAME:DTYPE[DIMS]") as
    `aotc export` would with `weight_storage`."""
    title = fn if isinstance(fn, str) else getattr(fn, "__name__", "model")
    if isinstance(fn, str):
        fn = load_function(fn)
    specs = [parse_input(i) if isinstance(i, str) else i for i in inputs]
    traced = trace_model(fn, specs, name=name, checkpoint=checkpoint, ctx=ctx)
    original = Program(traced.program.name, dict(traced.program.values),
                       list(traced.program.params), list(traced.program.outputs))
    stage = compile_stage(traced.program, entry=f"{name}_forward", weight_storage=weight_storage,
                          variables=set(traced.variables))
    return Report(f"{title} ({', '.join(f'{s.name}: {s.spec}' for s in specs)})", original,
                  stage, split_kernels(stage.source, len(stage.kernels)))


# ---- HTML ----

_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:12px 20px;background:#223;color:#fff}
h2{font-size:15px;margin:14px 0 6px}
.cols{display:grid;grid-template-columns:minmax(320px,1fr) minmax(320px,1fr) minmax(420px,1.4fr);
gap:14px;padding:14px}
.col{overflow:auto;max-height:calc(100vh - 70px)}
pre{font:12px ui-monospace,monospace;background:#fff;border:1px solid #ddd;padding:8px;
overflow:auto;margin:4px 0}
table{border-collapse:collapse;font:12px ui-monospace,monospace;background:#fff}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.k{border-left:6px solid var(--c);padding-left:6px;margin:6px 0;background:#fff}
.node{font:12px ui-monospace,monospace;white-space:pre}
.src{color:#777}
details summary{cursor:pointer;font-weight:600}
"""


def _color(t: int) -> str:
    return f"hsl({(t * 67) % 360},60%,55%)"


def to_html(report: Report) -> str:
    """One self-contained page: graph and fusion groups, memory plan, generated code."""
    st, prog, esc = report.stage, report.stage.program, html.escape
    graph = []
    for t, (k, cost) in enumerate(zip(st.kernels, st.costs)):
        nodes = "".join(
            f"<div class=node>#{n} {esc(_op(prog.values[n]))} {esc(_type(prog.values[n]))} "
            f"<span class=src>{esc(prog.values[n].source)}</span></div>" for n in k.nodes)
        graph.append(f"<div class=k style='--c:{_color(t)}'><a href='#k{t}'><b>{cost['kernel']}"
                     f"</b></a> [{k.kind}] <i>{esc(k.reason)}</i>{nodes}</div>")
    rows = "".join(
        f"<tr><td>#{b.value}</td><td>{b.kind}</td><td>{b.offset}</td><td>{b.nbytes}</td>"
        f"<td>[{b.start}, {b.end}]</td><td>{esc(_op(prog.values[b.value]))} "
        f"{esc(_type(prog.values[b.value]))}</td></tr>"
        for b in sorted(st.plan.buffers.values(), key=lambda b: (b.kind, b.offset)))
    code = "".join(
        f"<div class=k id=k{t} style='--c:{_color(t)}'><b>{c['kernel']}</b>: {c['flops']:,} "
        f"FLOPs, {c['bytes']:,} bytes<pre>{esc(src)}</pre></div>"
        for t, (c, src) in enumerate(zip(st.costs, report.kernel_sources)))
    passes = "".join(f"<details><summary>after {esc(n)}</summary><pre>{esc(s)}</pre></details>"
                     for n, s in st.snapshots[1:])
    return f"""<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8><title>aotc inspect {esc(report.title)}</title>
<style>{_STYLE}</style></head><body>
<header><b>aotc inspect</b> {esc(report.title)} — {len(st.kernels)} kernels,
{sum(c['flops'] for c in st.costs):,} FLOPs, arena {st.plan.arena_bytes:,} bytes,
constants {st.plan.const_bytes:,} bytes</header>
<div class=cols>
<div class=col><h2>Graph and fusion groups</h2>{''.join(graph)}
<details><summary>traced graph</summary><pre>{esc(listing(report.traced))}</pre></details>
{passes}</div>
<div class=col><h2>Memory plan</h2>{_plan_svg(report)}
<table><tr><th>value</th><th>kind</th><th>offset</th><th>bytes</th><th>live</th><th>what</th></tr>
{rows}</table></div>
<div class=col><h2>Generated C</h2>{code}</div>
</div></body></html>
"""


def _plan_svg(report: Report) -> str:
    """Arena buffers as rectangles: x = kernels they live across, y = offset."""
    plan = report.stage.plan
    bufs = [b for b in plan.buffers.values() if b.kind == "arena"] + list(plan.scratch.values())
    if not bufs or not plan.arena_bytes:
        return "<p>(no arena buffers)</p>"
    n = max(len(report.stage.kernels), 1)
    w, h = 360, 220
    rects = []
    for b in bufs:
        x = b.start / n * w
        bw = max((b.end - b.start + 1) / n * w, 2)
        y = b.offset / plan.arena_bytes * h
        bh = max(b.nbytes / plan.arena_bytes * h, 1)
        label = f"#{b.value} offset {b.offset} size {b.nbytes} live [{b.start},{b.end}]"
        rects.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw:.1f}' height='{bh:.1f}' "
                     f"fill='{_color(b.start)}' stroke='#333' stroke-width='.5'>"
                     f"<title>{label}</title></rect>")
    return (f"<svg width='{w}' height='{h + 16}' style='background:#fff;border:1px solid #ddd'>"
            f"{''.join(rects)}<text x='2' y='{h + 13}' font-size='10'>kernels → "
            f"(height: arena offset, {plan.arena_bytes:,} bytes)</text></svg>")
