"""Graphs drawn as SVG by the project's own layered layout: no graphviz needed.

    svg = to_svg([Box(0, "parameter", "f32[2, 3]"), Box(1, "tanh", "f32[2, 3]")],
                 [Arrow(0, 1, "f32[2, 3]")])

It works on a neutral description, boxes and arrows, so that both `Graph._repr_html_`
and `aotc inspect` draw with it. The layout is the classic layered (Sugiyama) one:

1. layers: every box one below its lowest input (longest path), and a box without
   inputs (a parameter, a constant) pulled down to just above its first consumer;
2. an arrow spanning several layers passes through invisible points, one per layer;
3. order within layers: barycentric sweeps, down then up, keeping the order with the
   fewest crossings;
4. x positions: each box moved towards the mean of its neighbours, then pushed apart
   to keep their order and a minimum gap.
"""
from __future__ import annotations

import hashlib
import html
from collections.abc import Hashable
from dataclasses import dataclass, field

CHAR_WIDTH = 7.2    # px per character of the 12px monospace labels
BOX_HEIGHT = 34.0
LAYER_GAP = 66.0    # vertical distance between layer centres
BOX_GAP = 22.0      # minimum horizontal gap between boxes
MARGIN = 16.0
LABEL_DROP = 10.0   # px below its source box where an arrow's label sits
SWEEPS = 6


@dataclass(frozen=True)
class Box:
    """One node to draw: `label` (first line), `detail` (second line), `group` (a colour
    index, or None for grey), `title` (the hover text) and `fill` (a CSS colour that
    overrides the group's)."""

    id: object
    label: str
    detail: str = ""
    group: int | None = None
    title: str = ""
    fill: str = ""

    @property
    def width(self) -> float:
        return max(len(self.label), len(self.detail), 4) * CHAR_WIDTH + 16


@dataclass(frozen=True)
class Arrow:
    """An edge from box id `src` to box id `dst`, drawn with `label` beside it."""

    src: object
    dst: object
    label: str = ""


@dataclass
class Layout:
    """Box centres (`x`, `y` by box id), arrow paths (a list of points per arrow, in the
    order given), and the drawing's `width` and `height`."""

    x: dict = field(default_factory=dict)
    y: dict = field(default_factory=dict)
    paths: list[list[tuple[float, float]]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def group_color(group: int | None) -> str:
    """The fill of a box of colour index `group` (None: light grey)."""
    if group is None:
        return "#e8e8e8"
    return f"hsl({(group * 67) % 360},65%,78%)"


def layers(boxes: list[Box], arrows: list[Arrow]) -> dict:
    """Layer index (0 at the top) of every box id.

    Raises:
        ValueError: when an arrow names an unknown box or the arrows form a cycle.
    """
    ids = [b.id for b in boxes]
    known = set(ids)
    preds: dict = {i: [] for i in ids}
    succs: dict = {i: [] for i in ids}
    for a in arrows:
        for end in (a.src, a.dst):
            if end not in known:
                raise ValueError(f"an arrow {a.src!r} -> {a.dst!r} names box {end!r}, which is "
                                 "not among the boxes; add a Box with that id")
        preds[a.dst].append(a.src)
        succs[a.src].append(a.dst)
    order = _topological(ids, preds, succs)
    layer: dict[Hashable, int] = {}
    for i in order:
        layer[i] = 1 + max((layer[p] for p in preds[i]), default=-1)
    for i in reversed(order):  # sources just above their first consumer
        if not preds[i] and succs[i]:
            layer[i] = min(layer[s] for s in succs[i]) - 1
    return layer


def _topological(ids, preds, succs) -> list:
    waiting = {i: len(preds[i]) for i in ids}
    ready = [i for i in ids if not waiting[i]]
    out = []
    while ready:
        i = ready.pop(0)
        out.append(i)
        for s in succs[i]:
            waiting[s] -= 1
            if not waiting[s]:
                ready.append(s)
    if len(out) != len(ids):
        stuck = [i for i in ids if waiting[i]]
        raise ValueError(f"the arrows form a cycle through boxes {stuck[:6]}; a layered "
                         "drawing needs an acyclic graph")
    return out


def layout(boxes: list[Box], arrows: list[Arrow]) -> Layout:
    """Positions for `boxes` and routes for `arrows` (see the module docstring).

    Raises:
        ValueError: from `layers`.
    """
    layer = layers(boxes, arrows)
    width = {b.id: b.width for b in boxes}
    # chains of points: an arrow over k layers gets k - 1 invisible points
    chains: list[list[Hashable]] = []
    up: dict[Hashable, list[Hashable]] = {}
    down: dict[Hashable, list[Hashable]] = {}
    for n, a in enumerate(arrows):
        chain = [a.src] + [("via", n, k) for k in range(layer[a.src] + 1, layer[a.dst])] + [a.dst]
        for k, point in enumerate(chain[1:-1], start=layer[a.src] + 1):
            layer[point], width[point] = k, 0.0
        for u, v in zip(chain, chain[1:]):
            down.setdefault(u, []).append(v)
            up.setdefault(v, []).append(u)
        chains.append(chain)
    rows: list[list] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for b in boxes:
        rows[layer[b.id]].append(b.id)
    for chain in chains:
        for point in chain[1:-1]:
            rows[layer[point]].append(point)
    rows = _order(rows, up, down)
    x = _place(rows, width, up, down)
    y = {p: MARGIN + BOX_HEIGHT / 2 + layer[p] * LAYER_GAP for p in x}
    out = Layout({b.id: x[b.id] for b in boxes}, {b.id: y[b.id] for b in boxes})
    out.paths = [[(x[p], y[p]) for p in chain] for chain in chains]
    out.width = max((x[p] + width[p] / 2 for p in x), default=0) + MARGIN
    out.height = (len(rows) - 1) * LAYER_GAP + BOX_HEIGHT + 2 * MARGIN if rows else 0
    return out


def _order(rows, up, down):
    """Barycentric sweeps; returns the rows with the fewest crossings seen."""
    best, best_crossings = [list(r) for r in rows], _crossings(rows, down)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indices = range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1)
        for i in indices:
            ref = rows[i - 1] if downward else rows[i + 1]
            pos = {p: k for k, p in enumerate(ref)}
            near = up if downward else down
            keyed = []
            for k, p in enumerate(rows[i]):
                ns = [pos[n] for n in near.get(p, ()) if n in pos]
                keyed.append((sum(ns) / len(ns) if ns else k, k, p))
            rows[i] = [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]
        crossings = _crossings(rows, down)
        if crossings < best_crossings:
            best, best_crossings = [list(r) for r in rows], crossings
    return best


def _crossings(rows, down) -> int:
    """Pairs of arrows that cross between adjacent rows."""
    total = 0
    for upper, lower in zip(rows, rows[1:]):
        pos = {p: k for k, p in enumerate(lower)}
        ends = sorted((k, pos[v]) for k, u in enumerate(upper) for v in down.get(u, ())
                      if v in pos)
        seen: list[int] = []
        for _, b in ends:  # inversions among the lower ends, upper ends already sorted
            total += sum(1 for s in seen if s > b)
            seen.append(b)
    return total


def _place(rows, width, up, down) -> dict:
    """x centres: rows packed, then pulled towards their neighbours a few times."""
    x = {}
    for row in rows:
        at = MARGIN
        for p in row:
            x[p] = at + width[p] / 2
            at += width[p] + BOX_GAP
    # A box follows the inputs that are computed, not the sources (weights, constants)
    # pulled down beside it; a source asks for the place beside its consumer's computed
    # input rather than above the consumer itself. Otherwise the two would share that
    # place, and a chain of ops would drift sideways at every constant it reads.
    leaves = {p for p in x if p not in up and p in down}
    followed = {p: [n for n in ns if n not in leaves] or ns for p, ns in up.items()}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        for row in (rows if downward else rows[::-1]):
            order = {p: k for k, p in enumerate(row)}
            wanted = []
            for p in row:
                if downward:
                    ns = followed.get(p)
                    wanted.append(sum(x[n] for n in ns) / len(ns) if ns else x[p])
                elif p in leaves:
                    wanted.append(_beside(p, down[p][0], followed, order, width, x))
                else:
                    ns = down.get(p)
                    wanted.append(sum(x[n] for n in ns) / len(ns) if ns else x[p])
            _spread(row, wanted, width, x)
    left = min(x[p] - width[p] / 2 for p in x) if x else MARGIN
    return {p: v - left + MARGIN for p, v in x.items()}


def _beside(leaf, consumer, followed, order, width, x) -> float:
    """Where source `leaf` wants to be: next to `consumer`'s computed input in its row
    (on the side the order puts it), else right above `consumer`."""
    ops = [n for n in followed.get(consumer, ()) if n in order and n != leaf]
    if not ops:
        return x[consumer]
    op = min(ops, key=lambda n: abs(order[n] - order[leaf]))
    side = 1 if order[leaf] > order[op] else -1
    return x[consumer] + side * ((width[op] + width[leaf]) / 2 + BOX_GAP)


def _spread(row, wanted, width, x) -> None:
    """Sets x of `row` as near `wanted` as the order and the gaps allow: the mean of a
    left-to-right pass that pushes boxes right and a right-to-left one that pushes them
    left (both keep every gap, so their mean does too)."""
    gaps = [(width[a] + width[b]) / 2 + BOX_GAP for a, b in zip(row, row[1:])]
    right, left = list(wanted), list(wanted)
    for k, gap in enumerate(gaps, start=1):
        right[k] = max(right[k], right[k - 1] + gap)
    for k in range(len(row) - 2, -1, -1):
        left[k] = min(left[k], left[k + 1] - gaps[k])
    for p, a, b in zip(row, right, left):
        x[p] = (a + b) / 2


def to_svg(boxes: list[Box], arrows: list[Arrow], *, css_class: str = "mlf-graph") -> str:
    """The drawing as one `<svg>` element: each box a `<g class="node" data-node="ID">`
    (so a page can react to clicks), each arrow a path with its label (a label that
    several arrows leaving one box share is drawn once, by the first).

    Raises:
        ValueError: from `layers`.
    """
    lay = layout(boxes, arrows)
    esc = html.escape
    # a marker id of its own: a page may hold several drawings, some of them hidden
    marker = "arrow-" + hashlib.sha1(repr((boxes, arrows)).encode()).hexdigest()[:10]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" '
             f'width="{lay.width:.0f}" height="{lay.height:.0f}" '
             f'viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" '
             'font-family="ui-monospace,Menlo,monospace" font-size="12">',
             f'<defs><marker id="{marker}" viewBox="0 0 8 8" refX="8" refY="4" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#666"/></marker></defs>']
    labelled = set()  # a label repeated on arrows leaving one box is drawn once
    for a, path in zip(arrows, lay.paths):
        (x0, y0), (x1, y1) = path[0], path[-1]
        points = [(x0, y0 + BOX_HEIGHT / 2)] + path[1:-1] + [(x1, y1 - BOX_HEIGHT / 2)]
        d = "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<path class="edge" d="{d}" fill="none" stroke="#888" '
                     f'stroke-width="1.2" marker-end="url(#{marker})"/>')
        if a.label and (a.src, a.label) not in labelled:  # just below the source box,
            labelled.add((a.src, a.label))                 # on the arrow: clear of siblings
            (ax, ay), (bx, by) = points[0], points[1]
            at = min(LABEL_DROP / max(by - ay, 1e-9), 0.5)
            parts.append(f'<text class="edge-label" x="{ax + (bx - ax) * at:.1f}" '
                         f'y="{ay + (by - ay) * at + 3.5:.1f}" text-anchor="middle" '
                         f'font-size="10" fill="#555" '
                         f'stroke="#fff" stroke-width="3" paint-order="stroke">'
                         f'{esc(a.label)}</text>')
    for b in boxes:
        cx, cy, w = lay.x[b.id], lay.y[b.id], b.width
        title = f"<title>{esc(b.title)}</title>" if b.title else ""
        parts.append(f'<g class="node" data-node="{esc(str(b.id))}" style="cursor:pointer">'
                     f'{title}<rect x="{cx - w / 2:.1f}" y="{cy - BOX_HEIGHT / 2:.1f}" '
                     f'width="{w:.1f}" height="{BOX_HEIGHT:.0f}" rx="5" '
                     f'fill="{b.fill or group_color(b.group)}" stroke="#555"/>'
                     f'<text x="{cx:.1f}" y="{cy - 3 if b.detail else cy + 4:.1f}" '
                     f'text-anchor="middle" font-weight="600">{esc(b.label)}</text>')
        if b.detail:
            parts.append(f'<text x="{cx:.1f}" y="{cy + 11:.1f}" text-anchor="middle" '
                         f'fill="#333" font-size="10">{esc(b.detail)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["Arrow", "Box", "Layout", "group_color", "layers", "layout", "to_svg"]
