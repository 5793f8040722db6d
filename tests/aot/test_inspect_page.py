"""The `aotc inspect --html` page: the graph drawn after each pass with what each changed,
fusion colours, the side panel's data, relative source lines, named scratch buffers, the
roofline and one self-contained file. FLOP and byte counts are checked against hand counts
of the model in inspect_models.py."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aot.tools.cli import main
from aot.tools.inspection import inspect_model, relative_source
from aot.tools.page import to_html
from aot.tools.roofline import CACHE_NAME, Peaks, machine_peaks
from mlframework.graph.drawing import group_color

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tests/aot/inspect_models.py:mlp"
LINES = {n: i for i, n in enumerate((ROOT / "tests/aot/inspect_models.py").read_text()
                                    .splitlines(), start=1)}
GEMM_LINE = next(i for line, i in LINES.items() if "the first GEMM" in line)
PEAKS = Peaks(30.0, 20.0, "given")


@pytest.fixture(scope="module")
def report():
    return inspect_model(str(ROOT / MODEL.split(":")[0]) + ":mlp", ["x:float32[32,64]"])


@pytest.fixture(scope="module")
def page(report):
    return to_html(report, PEAKS)


def _data(page: str) -> dict:
    return json.loads(re.search(r'<script type=application/json id=nodes>(.*?)</script>', page,
                                re.S).group(1).replace("<\\/", "</"))


def _view(page: str, name: str) -> str:
    return re.search(rf"<section class=view id=view-{name} .*?</section>", page, re.S).group(0)


def test_one_drawing_per_pass_with_every_node(report, page):
    for name, program in report.stage.programs + [("fuse", report.stage.program)]:
        view = _view(page, name)
        assert view.count("<svg") == 1
        assert sorted(map(int, re.findall(r'data-node="(\d+)"', view))) == sorted(program.values)


def test_each_pass_says_what_it_changed(report, page):
    traced = report.stage.programs[0][1]
    mul = next(v.id for v in traced.values.values() if v.op.value == "mul")
    assert f"<li>removed #{mul} mul float32[32,96]</li>" in _view(page, "simplify")
    assert "(no change)" in _view(page, "pack_weights")  # float32 weights stay as they are


def test_fuse_view_colours_nodes_by_kernel(report, page):
    view = _view(page, "fuse")
    for t, k in enumerate(report.stage.kernels):
        for n in k.nodes:
            box = re.search(rf'data-node="{n}".*?<rect [^>]*fill="([^"]+)"', view).group(1)
            assert box == group_color(t)
    assert "<a href='#k0'>k0_max_dot_general</a>" in view


def test_side_panel_data(page):
    data = _data(page)
    gemm = data["fuse"]["2"]
    assert gemm["op"] == "dot_general" and gemm["type"] == "float32[32,96]"
    assert gemm["source"] == f"tests/aot/inspect_models.py:{GEMM_LINE}"
    assert gemm["code"].startswith("h = G.dot_general(x, G.const(W1)")
    assert gemm["kernel"] == "k0_max_dot_general" and gemm["kernel_index"] == 0
    assert gemm["attrs"] == {"lhs_contracting": "(1,)", "rhs_contracting": "(0,)",
                             "lhs_batch": "()", "rhs_batch": "()",
                             "preferred_element_type": "None"}
    removed = next(d for d in data["traced"].values() if d["op"] == "mul")
    assert removed["kernel"] == "none: a later pass removed it" and removed["kernel_index"] is None


def test_source_lines_are_relative_to_the_project(report, page):
    assert report.root == ROOT
    assert str(ROOT) not in page and str(ROOT) not in report.text()
    assert f"tests/aot/inspect_models.py:{GEMM_LINE}" in report.text()
    assert relative_source("/elsewhere/x.py:3", ROOT) == "/elsewhere/x.py:3"
    assert relative_source("--input x", ROOT) == "--input x"


def test_scratch_buffers_are_named_and_listed(report, page):
    assert list(report.stage.plan.scratch) == [1]  # the second GEMM packs its panels
    assert page.count("scratch of k1_dot_general (packed GEMM panels)") >= 2  # map and table
    assert "#-" not in page and "#-" not in report.plan_text()


def test_roofline_rows_match_hand_counts(page):
    # k0: x[32,64] @ W1[64,96] with its max epilogue: 2*32*64*96 FLOPs (+ one per max),
    # reading x and W1 and writing h once, 4 bytes each
    flops = 2 * 32 * 64 * 96 + 32 * 96
    nbytes = 4 * (32 * 64 + 64 * 96 + 32 * 96)
    row = re.search(r"<tr><td><a href='#k0'>k0_max_dot_general</a></td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[:6] == ["dot", f"{flops:,}", f"{nbytes:,}", f"{flops / nbytes:.3g}",
                         "compute", f"{PEAKS.gflops:.3g}"]
    assert "ridge point 1.5 FLOP/byte" in page
    assert page.count('class="roofline"') == 1 + 3  # the overview and one per kernel


def test_the_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(http", page)


def test_peaks_are_measured_once_and_cached(tmp_path):
    assert machine_peaks(50, 12, cache=tmp_path) == Peaks(50, 12, "given")
    assert not (tmp_path / CACHE_NAME).exists()
    measured = machine_peaks(cache=tmp_path)
    assert measured.gflops > 0.1 and measured.gbs > 0.1 and "measured" in measured.source
    stored = json.loads((tmp_path / CACHE_NAME).read_text())
    stored["gflops"] = 12345.0  # a second call reads the cache instead of measuring
    (tmp_path / CACHE_NAME).write_text(json.dumps(stored))
    again = machine_peaks(cache=tmp_path)
    assert again.gflops == 12345.0 and again.source.endswith(", cached")
    mixed = machine_peaks(gbs=7.0, cache=tmp_path)
    assert (mixed.gflops, mixed.gbs) == (12345.0, 7.0) and "bandwidth given" in mixed.source
    with pytest.raises(ValueError, match="Peaks.gbs requires a positive number"):
        Peaks(1.0, 0.0, "given")


def test_peaks_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["inspect", MODEL, "--input", "x:float32[32,64]", "--html", str(out),
                 "--no-text", "--peak-gflops", "40", "--peak-gbs", "10"]) == 0
    assert "Peaks: 40 GFLOP/s and 10 GB/s (given)" in out.read_text()
    assert main(["inspect", MODEL, "--input", "x:float32[32,64]", "--html", str(out),
                 "--peak-gbs", "-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "aotc inspect: error: --peak-gbs requires a positive number, got -3.0"


def test_control_flow_sub_graphs_are_shown_nested():
    """The scan RNN of test_export.py: its body and the cond's branches appear in the
    text report (traced listing, fusion groups) and the page, with their kernels."""
    rnn = inspect_model(str(ROOT / "tests/aot/test_export.py") + ":scan_rnn",
                        ["h0:float32[3,16]", "xs:float32[12,3,8]"])
    text = rnn.text()
    body = re.search(r"sub-graph (\S+scan_body) \(parameters", text)
    assert body, text
    assert re.search(r"^ {4}#\d+ +cond\(", text, re.M)  # the cond, inside the body
    assert text.count("sub-graph ") == 3  # the body and the cond's two branches
    fusion = rnn.fusion_text()
    assert re.search(r"\[scan\] — control flow", fusion)
    assert re.search(r"sub-program \S+scan_body: \d+ kernels, arena", fusion)
    page = to_html(rnn, PEAKS)
    assert "<h2>Sub-graphs</h2>" in page and f"{body.group(1)}</h3>" in page
    assert "tanh" in page.split("<h3>Their kernels</h3>")[1]
