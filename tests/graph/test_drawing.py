"""The layered graph drawing: layers follow the arrows, boxes in a layer never overlap,
crossings are removed where an order without them exists, and Graph/Exec draw themselves."""
from __future__ import annotations

import re
from xml.etree import ElementTree

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.graph.drawing import (BOX_GAP, Arrow, Box, group_color, layers, layout,
                                       to_svg)


def _boxes(n):
    return [Box(i, f"op{i}", "f32[2]") for i in range(n)]


def test_layers_follow_the_arrows_and_sources_sit_above_their_consumer():
    # 0 -> 1 -> 2 -> 3, and a constant 4 read only by 3
    arrows = [Arrow(0, 1), Arrow(1, 2), Arrow(2, 3), Arrow(4, 3)]
    lay = layers(_boxes(5), arrows)
    assert [lay[i] for i in range(4)] == [0, 1, 2, 3]
    assert lay[4] == 2  # pulled down next to its consumer, not left at the top


def test_long_arrows_bend_through_one_point_per_layer():
    lay = layout(_boxes(4), [Arrow(0, 1), Arrow(1, 2), Arrow(2, 3), Arrow(0, 3)])
    long = lay.paths[3]
    assert len(long) == 4  # source, two invisible points, target
    ys = [y for _, y in long]
    assert ys == sorted(ys) and len(set(ys)) == 4


def test_boxes_in_a_layer_keep_their_gap():
    boxes = [Box(0, "x")] + [Box(i, "a_rather_long_label" * (i % 2 + 1)) for i in range(1, 9)]
    lay = layout(boxes, [Arrow(0, i) for i in range(1, 9)])
    row = sorted(range(1, 9), key=lambda i: lay.x[i])
    for a, b in zip(row, row[1:]):
        assert lay.x[b] - lay.x[a] >= (boxes[a].width + boxes[b].width) / 2 + BOX_GAP - 1e-9
    assert min(lay.x[i] - boxes[i].width / 2 for i in range(9)) >= 0
    assert max(lay.x[i] + boxes[i].width / 2 for i in range(9)) <= lay.width


def test_barycentric_ordering_removes_a_crossing():
    # given order a0 a1 / b0 b1 with a0->b1, a1->b0 crosses; swapping one row does not
    boxes = [Box("a0", "a0"), Box("a1", "a1"), Box("b0", "b0"), Box("b1", "b1"),
             Box("c0", "c0"), Box("c1", "c1")]
    arrows = [Arrow("a0", "b1"), Arrow("a1", "b0"), Arrow("b0", "c0"), Arrow("b1", "c1")]
    lay = layout(boxes, arrows)
    assert (lay.x["a0"] < lay.x["a1"]) == (lay.x["b1"] < lay.x["b0"])
    assert (lay.x["b0"] < lay.x["b1"]) == (lay.x["c0"] < lay.x["c1"])


def test_bad_descriptions():
    with pytest.raises(ValueError, match="names box 7, which is not among the boxes"):
        layout(_boxes(2), [Arrow(0, 7)])
    with pytest.raises(ValueError, match="cycle through boxes"):
        layout(_boxes(2), [Arrow(0, 1), Arrow(1, 0)])


def test_svg_is_well_formed_with_one_group_per_box():
    boxes = [Box(0, "a<b", "f32[2]", group=0, title="line 3"), Box(1, "c", group=None)]
    svg = to_svg(boxes, [Arrow(0, 1, "f32[2]")])
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    nodes = [g for g in root.iter(f"{ns}g") if g.get("class") == "node"]
    assert [g.get("data-node") for g in nodes] == ["0", "1"]
    assert nodes[0].find(f"{ns}rect").get("fill") == group_color(0) != group_color(None)
    assert "a&lt;b" in svg and ">f32[2]</text>" in svg and "<title>line 3</title>" in svg


def test_graph_and_exec_draw_themselves():
    exe = G.Exec(mlf.backends.new("xla"), lambda x, w: G.tanh(x @ w), name="layer")
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    assert repr(exe) == "<Exec 'layer' on xla: 0 compiled signatures>"
    assert "nothing compiled yet" in exe._repr_html_()
    graph = exe.graph(x, w)
    assert repr(graph) == (f"<Graph 'layer': (float32[2, 3], float32[3, 4]) -> "
                           f"(float32[2, 4]), {len(graph.nodes)} nodes>")
    page = graph._repr_html_()
    assert page.count('class="node"') == len(graph.nodes)
    assert re.search(r">dot_general</text>", page) and "parameter p0" in page
    exe(x, w)
    assert repr(exe) == "<Exec 'layer' on xla: 1 compiled signature>"
    assert exe._repr_html_().count("<svg") == 1


def test_a_chain_reading_constants_stays_straight():
    # x -> op1 -> op2 -> ... where every op also reads a constant of its own
    boxes, arrows = [Box("x", "parameter", "f32[4, 16]")], []
    for i in range(1, 9):
        boxes += [Box(f"op{i}", "mul", "f32[4, 16]"), Box(f"c{i}", "constant", "f32[4, 16]")]
        arrows += [Arrow("x" if i == 1 else f"op{i - 1}", f"op{i}"), Arrow(f"c{i}", f"op{i}")]
    lay = layout(boxes, arrows)
    xs = [lay.x[f"op{i}"] for i in range(1, 9)]
    assert max(xs) - min(xs) < 1.0, xs
    assert all(lay.y[f"c{i}"] == lay.y[f"op{i - 1}" if i > 1 else "x"] for i in range(1, 9))


def test_the_hover_text_names_the_scope_and_the_line():
    graph = G.Graph("scoped")
    with G.tracing(graph), graph.name_scope("block"):
        x = G.parameter(mlf.Shape(mlf.float32, (2,)))
        y = G.exp(x)
        graph.outputs = [y]
    assert y.scope == "block"
    title = re.search(rf'data-node="{y.id}"[^>]*><title>(.*?)</title>', graph._repr_html_(), re.S)
    assert title.group(1).splitlines()[:2] == [f"#{y.id} exp float32[2]", "block"]
    assert title.group(1).splitlines()[2].endswith(f"test_drawing.py:{y.source.split(':')[-1]}")
