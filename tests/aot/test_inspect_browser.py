"""The `aotc inspect` page in a real browser (headless Chromium over the DevTools pipe):
it loads without script errors, a mouse click on a node fills the side panel with that
node's source line and kernel, and the pass buttons switch the drawing. A screenshot is
kept in build/test-artifacts/ (and the test's tmp folder)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aot.tools.inspection import inspect_model
from aot.tools.page import to_html
from aot.tools.roofline import Peaks
from browser import Browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    report = inspect_model(str(ROOT / "tests/aot/inspect_models.py") + ":mlp",
                           ["x:float32[32,64]"])
    path = tmp_path_factory.mktemp("inspect") / "mlp.html"
    path.write_text(to_html(report, Peaks(30.0, 20.0, "given")))
    return path.as_uri()


def _panel(browser: Browser, part: str) -> str:
    return browser.evaluate(f"document.getElementById('panel-{part}').textContent")


def test_click_a_node_shows_its_source_line(page_url, tmp_path):
    lines = (ROOT / "tests/aot/inspect_models.py").read_text().splitlines()
    gemm_line = next(i for i, line in enumerate(lines, start=1) if "the first GEMM" in line)
    with Browser() as browser:
        browser.open(page_url)
        assert browser.evaluate("document.querySelector('#view-fuse').offsetHeight") > 100
        assert _panel(browser, "source") == ""
        browser.click("#view-fuse g.node[data-node='2']")
        assert _panel(browser, "title") == "#2 dot_general"
        assert _panel(browser, "source") == f"tests/aot/inspect_models.py:{gemm_line}"
        assert _panel(browser, "code").startswith("h = G.dot_general(x, G.const(W1)")
        assert _panel(browser, "kernel") == "k0_max_dot_general"
        assert browser.evaluate("document.querySelector('#panel-kernel a').hash") == "#k0"
        shot = browser.screenshot()
        # the pass buttons: the traced graph still holds the multiplication simplify removes
        browser.click("#passes button[data-show='traced']")
        assert browser.evaluate("document.querySelector('#view-traced').offsetHeight") > 100
        assert browser.evaluate("document.querySelector('#view-fuse').offsetHeight") == 0
        mul = browser.evaluate("[...document.querySelectorAll('#view-traced g.node')]"
                               ".find(g => g.querySelector('text').textContent === 'mul')"
                               ".dataset.node")
        browser.click(f"#view-traced g.node[data-node='{mul}']")
        assert _panel(browser, "kernel") == "none: a later pass removed it"
        assert browser.errors() == []
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (tmp_path / "aotc-inspect.png").write_bytes(shot)
    shutil.copy(tmp_path / "aotc-inspect.png", ARTIFACTS / "aotc-inspect.png")


def test_make_test_installs_chromium():
    """`make test` depends on the `chromium` target, which apt-gets Debian's package."""
    makefile = (ROOT / "Makefile").read_text()
    test_rule = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "chromium" in test_rule.split(":", 1)[1].split()
    plan = subprocess.run(["make", "-n", "chromium"], cwd=ROOT, capture_output=True, text=True)
    assert plan.returncode == 0 and "apt-get install -y -q chromium" in plan.stdout
