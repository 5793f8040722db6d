"""The `aotc inspect --html` page: one self-contained file (no network, works offline).

    Path("mlp.html").write_text(to_html(report, machine_peaks()))

What it shows, for people learning how a compiler works:

- the graph after each pass that rewrites it (traced, simplify, pack_weights), drawn by
  `mlframework.graph.drawing`, with what the pass removed, added and rewired; and the
  graph the kernels are made from, each node coloured by its fusion group;
- a side panel: click a node for its op, type, attributes, Python source line (relative
  to the project) and the kernel it went into;
- the memory plan, scratch buffers named after their kernel;
- a roofline per kernel (FLOPs, bytes, intensity, bound) against the machine's peaks;
- each kernel's C.
"""
from __future__ import annotations

import html
import json
import linecache

import numpy as np

from aot.program.program import Program, subprograms
from aot.program.symbols import upper
from aot.tools.inspection import Report, listing, relative_source, subprogram_text
from aot.tools.roofline import Peaks, roofline_svg
from mlframework.graph.drawing import Arrow, Box, group_color, to_svg

ABOUT = {
    "traced": "The program as traced from Python: one node per op the model called.",
    "simplify": "simplify folds constants, merges equal nodes (CSE), drops nodes nobody "
                "reads and applies algebraic identities such as x * 1 = x.",
    "pack_weights": "pack_weights rewrites constant weights into the layout (and storage "
                    "type) the GEMM kernels read fastest.",
    "fuse": "fuse groups nodes into kernels, one C function each: elementwise chains become "
            "one loop nest, reductions absorb their producers, GEMMs take an epilogue. "
            "Colours are the fusion groups.",
}
ADDED, REWIRED = "#9fe09a", "#ffd27a"


def _op(v) -> str:
    return f"{v.scope}/{v.op.value}" if v.scope else v.op.value


def _type(v) -> str:
    return f"{v.dtype.value}[{','.join(map(str, v.shape))}]"


def _attr(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}" if value.size > 4 else repr(value.tolist())
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _changes(before: Program, after: Program) -> tuple[set, set, list[str]]:
    """(ids added, ids rewired, readable lines) of one pass."""
    added = {i for i in after.values if i not in before.values}
    rewired = {i for i, v in after.values.items() if i in before.values
               and (v.inputs != before.values[i].inputs or v.op is not before.values[i].op
                    or v.dtype is not before.values[i].dtype)}
    lines = [f"removed #{i} {_op(v)} {_type(v)}" for i, v in before.values.items()
             if i not in after.values]
    lines += [f"added #{i} {_op(after.values[i])} {_type(after.values[i])}" for i in sorted(added)]
    lines += [f"rewired #{i} {_op(after.values[i])}: inputs "
              f"{list(before.values[i].inputs)} -> {list(after.values[i].inputs)}"
              if after.values[i].op is before.values[i].op else
              f"replaced #{i}: {_op(before.values[i])} -> {_op(after.values[i])}"
              for i in sorted(rewired)]
    return added, rewired, lines


def _nodes(report: Report, program: Program, kernel_of: dict[int, int], final: Program) -> dict:
    """The side panel's data: value id -> what to show for it, with the kernel that
    computes it in the `final` program (ids survive the passes)."""
    out = {}
    for v in program.values.values():
        file, _, line = v.source.rpartition(":")
        code = linecache.getline(file, int(line)).strip() if line.isdigit() else ""
        t = kernel_of.get(v.id)
        fate = ("none: a parameter or constant, read by the kernels" if v.id in final.values
                else "none: a later pass removed it")
        out[v.id] = {
            "title": f"#{v.id} {_op(v)}", "op": v.op.value, "scope": v.scope,
            "type": _type(v), "inputs": " ".join(f"#{i}" for i in v.inputs) or "none",
            "attrs": {k: _attr(a) for k, a in v.attrs.items()},
            "source": relative_source(v.source, report.root) or "(not recorded)",
            "code": code,
            "kernel": fate if t is None else report.stage.costs[t]["kernel"],
            "kernel_index": t}
    return out


def _graph_svg(report: Report, program: Program, style) -> str:
    """`style(id)` gives a box's (group, fill); its hover text is its source line."""
    boxes = [Box(v.id, _op(v), _type(v), style(v.id)[0],
                 title=relative_source(v.source, report.root), fill=style(v.id)[1])
             for v in program.values.values()]
    arrows = [Arrow(i, v.id, _type(program.values[i])) for v in program.values.values()
              for i in v.inputs]
    return to_svg(boxes, arrows, css_class="graph")


def _views(report: Report) -> tuple[list[str], dict]:
    """(the HTML of each graph view, the side panel's data by view)."""
    esc, html_views, data = html.escape, [], {}
    programs = report.stage.programs
    final, kernel_of = report.stage.program, report.kernel_of()
    for k, (name, program) in enumerate(programs):
        if k == 0:
            added: set[int] = set()
            rewired: set[int] = set()
            lines: list[str] = []
        else:
            added, rewired, lines = _changes(programs[k - 1][1], program)

        def style(i, added=added, rewired=rewired):
            return None, ADDED if i in added else REWIRED if i in rewired else ""
        changed = "".join(f"<li>{esc(x)}</li>" for x in lines)
        summary = "" if k == 0 else (f"<ul class=changes>{changed}</ul>" if lines
                                     else "<p class=changes>(no change)</p>")
        html_views.append(_view(name, ABOUT[name], summary, _graph_svg(report, program, style)))
        data[name] = _nodes(report, program, kernel_of, final)

    def by_group(i):
        return kernel_of.get(i), ""
    groups = "".join(
        f"<li><span class=swatch style='background:{group_color(t)}'></span>"
        f"<a href='#k{t}'>{c['kernel']}</a> [{k.kind}] {esc(k.reason)}: "
        f"{', '.join(f'#{n}' for n in k.nodes)}</li>"
        for t, (k, c) in enumerate(zip(report.stage.kernels, report.stage.costs)))
    html_views.append(_view("fuse", ABOUT["fuse"], f"<ul class=changes>{groups}</ul>",
                            _graph_svg(report, final, by_group)))
    data["fuse"] = _nodes(report, final, kernel_of, final)
    return html_views, data


def _view(name: str, about: str, summary: str, svg: str) -> str:
    return (f"<section class=view id=view-{name} data-view={name}><p>{html.escape(about)}</p>"
            f"{summary}<div class=drawing>{svg}</div></section>")


def _plan(report: Report) -> str:
    """The memory map and its table; scratch buffers named after their kernel."""
    st, esc = report.stage, html.escape
    prog, plan = st.program, st.plan
    rows = [(f"#{b.value}", b.kind, b.offset, b.nbytes, b.start, b.end,
             f"{_op(prog.values[b.value])} {_type(prog.values[b.value])}")
            for b in sorted(plan.buffers.values(), key=lambda b: (b.kind, plan.position(b)))]
    rows += [(f"scratch k{t}", "scratch", b.offset, b.nbytes, b.start, b.end,
              report.scratch_name(t)) for t, b in sorted(plan.scratch.items())]
    table = "".join(f"<tr><td>{esc(a)}</td><td>{k}</td><td>{o}</td><td>{n}</td>"
                    f"<td>[{s}, {e}]</td><td>{esc(w)}</td></tr>" for a, k, o, n, s, e, w in rows)
    bufs = [(f"#{b.value}", b) for b in plan.buffers.values() if b.kind == "arena"]
    bufs += [(report.scratch_name(t), b) for t, b in plan.scratch.items()]
    n, w, h = max(len(st.kernels), 1), 360, 220
    rects = []
    for label, b in bufs:
        x, bw = b.start / n * w, max((b.end - b.start + 1) / n * w, 2)
        size = upper(b.nbytes, st.program.symbols)  # a symbolic buffer: at the maxima
        y, bh = plan.position(b) / max(plan.arena_bytes, 1) * h, max(size / max(plan.arena_bytes, 1)
                                                             * h, 1)
        scratch = b.kind == "scratch"
        dashes = " stroke-dasharray='3,2'" if scratch else ""
        rects.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw:.1f}' height='{bh:.1f}' "
                     f"fill='{'#ddd' if scratch else group_color(b.start)}' stroke='#333' "
                     f"stroke-width='.5'{dashes}>"
                     f"<title>{esc(label)}: offset {b.offset}, {b.nbytes} bytes, live "
                     f"[{b.start}, {b.end}]</title></rect>")
    svg = (f"<svg width='{w}' height='{h + 16}' class=plan>{''.join(rects)}"
           f"<text x='2' y='{h + 13}' font-size='10'>kernels &#8594; (height: arena offset, "
           f"{plan.arena_bytes:,} bytes; dashed: scratch)</text></svg>") if bufs \
        else "<p>(no arena buffers)</p>"
    return (f"{svg}<table><tr><th>buffer</th><th>kind</th><th>offset</th><th>bytes</th>"
            f"<th>live (kernels)</th><th>what</th></tr>{table}</table>")


def _roofline(report: Report, peaks: Peaks) -> str:
    costs, rows = report.stage.costs, []
    for t, c in enumerate(costs):
        if not c["bytes"]:
            rows.append(f"<tr><td><a href='#k{t}'>{c['kernel']}</a></td><td>{c['kind']}</td>"
                        "<td colspan=6>moves no data (a view of its input)</td></tr>")
            continue
        i = c["flops"] / c["bytes"]
        roof = peaks.attainable(i)
        rows.append(f"<tr><td><a href='#k{t}'>{c['kernel']}</a></td><td>{c['kind']}</td>"
                    f"<td>{c['flops']:,}</td><td>{c['bytes']:,}</td><td>{i:.3g}</td>"
                    f"<td>{peaks.bound(i)}</td><td>{roof:.3g}</td>"
                    f"<td>{100 * roof / peaks.gflops:.1f}%</td></tr>")
    return (f"<p>Peaks: {peaks.gflops:.3g} GFLOP/s and {peaks.gbs:.3g} GB/s "
            f"({html.escape(peaks.source)}); "
            f"ridge point {peaks.ridge:.3g} FLOP/byte. A kernel left of the ridge is bound by "
            f"memory: it can go no faster than intensity &times; bandwidth.</p>"
            f"{roofline_svg(costs, peaks)}<table><tr><th>kernel</th><th>kind</th><th>FLOPs</th>"
            f"<th>bytes</th><th>FLOP/byte</th><th>bound</th><th>roof GFLOP/s</th>"
            f"<th>of peak</th></tr>{''.join(rows)}</table>")


def _kernels(report: Report, peaks: Peaks) -> str:
    out = []
    for t, (c, src) in enumerate(zip(report.stage.costs, report.kernel_sources)):
        chart = roofline_svg(report.stage.costs, peaks, highlight=t, width=300, height=190) \
            if c["bytes"] and c["flops"] else ""
        out.append(f"<div class=k id=k{t} style='--c:{group_color(t)}'><b>{c['kernel']}</b>: "
                   f"{c['flops']:,} FLOPs, {c['bytes']:,} bytes<div class=kbody>{chart}"
                   f"<pre>{html.escape(src)}</pre></div></div>")
    return "".join(out)


def _subgraphs(report: Report) -> str:
    """The sub-graphs of control-flow nodes (loop bodies, branches) as nested listings,
    with the kernels each became; nothing for a model without control flow."""
    st, esc = report.stage, html.escape
    if not any(k.bodies for k in st.kernels):
        return ""
    out = ["<h2>Sub-graphs</h2>"]
    for v in report.traced.values.values():
        for sub in subprograms(v):
            out.append(f"<h3>{esc(v.op.value)} #{v.id}: {esc(sub.name)}</h3>"
                       f"<pre>{esc(listing(sub, report.where))}</pre>")
    kernels = "\n".join(subprogram_text(st.program, st.kernels, report.where, ""))
    out.append(f"<h3>Their kernels</h3><pre>{esc(kernels)}</pre>")
    return "".join(out)


def to_html(report: Report, peaks: Peaks) -> str:
    """The page (see the module docstring) as one string."""
    st, esc = report.stage, html.escape
    views, data = _views(report)
    names = [name for name, _ in st.programs] + ["fuse"]
    buttons = "".join(f"<button data-show={n}>{'after ' if i else ''}{n}</button>"
                      for i, n in enumerate(names))
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8><title>aotc inspect {esc(report.title)}</title>
<style>{_STYLE}</style></head><body>
<header><b>aotc inspect</b> {esc(report.title)} &mdash; {len(st.kernels)} kernels,
{sum(c['flops'] for c in st.costs):,} FLOPs, arena {st.plan.arena_bytes:,} bytes,
constants {st.plan.const_bytes:,} bytes</header>
<main>
<h2>The graph, pass by pass</h2><nav id=passes>{buttons}</nav>{''.join(views)}
{_subgraphs(report)}<h2>Roofline</h2>{_roofline(report, peaks)}
<h2>Memory plan</h2>{_plan(report)}
<h2>Generated C</h2>{_kernels(report, peaks)}
</main>
<aside id=panel><h3 id=panel-title>Click a node</h3>
<p class=hint>Its op, type, attributes, Python source line and kernel appear here.</p>
<dl><dt>op</dt><dd id=panel-op></dd><dt>type</dt><dd id=panel-type></dd>
<dt>inputs</dt><dd id=panel-inputs></dd><dt>scope</dt><dd id=panel-scope></dd>
<dt>attributes</dt><dd id=panel-attrs></dd><dt>source</dt><dd id=panel-source></dd>
<dd><code id=panel-code></code></dd><dt>kernel</dt><dd id=panel-kernel></dd></dl></aside>
<script type=application/json id=nodes>{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:12px 20px;background:#223;color:#fff}
main{margin-right:340px;padding:0 20px 40px}
h2{font-size:16px;margin:22px 0 8px}
nav button{margin:0 4px 6px 0;padding:4px 10px;border:1px solid #889;background:#fff;
border-radius:4px;cursor:pointer}
nav button.on{background:#223;color:#fff}
.view{display:none}.view.on{display:block}
.drawing{overflow:auto;max-height:75vh;background:#fff;border:1px solid #ddd}
.changes{font:12px ui-monospace,monospace;margin:4px 0 8px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border:1px solid #555}
g.node.selected rect{stroke:#d22;stroke-width:3}
aside{position:fixed;right:0;top:0;bottom:0;width:320px;overflow:auto;background:#fff;
border-left:1px solid #ccc;padding:12px 14px;box-sizing:border-box}
aside dt{font-weight:600;margin-top:8px}aside dd{margin:2px 0 0 0;
font:12px ui-monospace,monospace;word-break:break-all}
.hint{color:#777}
pre{font:12px ui-monospace,monospace;background:#fff;border:1px solid #ddd;padding:8px;
overflow:auto;margin:4px 0}
table{border-collapse:collapse;font:12px ui-monospace,monospace;background:#fff;margin:6px 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.k{border-left:6px solid var(--c);padding-left:8px;margin:10px 0;background:#fff}
.kbody{display:flex;gap:10px;align-items:flex-start}.kbody pre{flex:1;min-width:0}
"""

_SCRIPT = """
const DATA = JSON.parse(document.getElementById('nodes').textContent);
function show(name) {
  document.querySelectorAll('.view')
    .forEach(v => v.classList.toggle('on', v.dataset.view === name));
  document.querySelectorAll('#passes button')
    .forEach(b => b.classList.toggle('on', b.dataset.show === name));
}
function select(g) {
  const view = g.closest('.view').dataset.view, d = DATA[view][g.dataset.node];
  document.querySelectorAll('g.node.selected').forEach(n => n.classList.remove('selected'));
  g.classList.add('selected');
  document.querySelector('#panel .hint').style.display = 'none';
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  set('panel-title', d.title); set('panel-op', d.op); set('panel-type', d.type);
  set('panel-inputs', d.inputs); set('panel-scope', d.scope || '(root)');
  set('panel-attrs', Object.entries(d.attrs).map(([k, v]) => k + '=' + v).join(', ') || 'none');
  set('panel-source', d.source); set('panel-code', d.code);
  const k = document.getElementById('panel-kernel');
  k.textContent = '';
  if (d.kernel_index !== null) {
    const a = document.createElement('a'); a.href = '#k' + d.kernel_index; a.textContent = d.kernel;
    k.appendChild(a);
  } else {
    k.textContent = d.kernel;
  }
}
document.querySelectorAll('#passes button')
  .forEach(b => b.addEventListener('click', () => show(b.dataset.show)));
document.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () => select(g)));
show('fuse');
"""

__all__ = ["to_html"]
