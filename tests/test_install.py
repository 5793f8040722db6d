"""The set-up a user and `make` go through: the extras in pyproject.toml, and what the
Makefile's targets install, read through `make -n` (which prints the commands and runs
none) with the virtualenv pointed at a scratch folder."""
from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL_PARTS = {"onnx", "hf", "cross", "examples"}


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]


def _plan(target: str, venv: Path) -> str:
    """The commands `make TARGET` would run with the virtualenv at `venv`."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _installs(plan: str) -> list[str]:
    """The extras a plan's pip commands install."""
    return re.findall(r'pip install --quiet -e "\.\[(\w+)\]"', plan)


def _touch_stamps(plan: str) -> None:
    """Leaves the stamps a plan would leave, as if it had run."""
    for line in re.findall(r"^touch (.*)$", plan, re.M):
        for path in line.split():
            Path(path).touch()


def test_the_optional_parts_are_extras_and_the_test_extra_holds_them_all():
    extras = _extras()
    assert OPTIONAL_PARTS <= set(extras)
    held = [set(m.group(1).split(",")) for r in extras["test"]
            if (m := re.fullmatch(r"mlframework\[([\w,]+)\]", r))]
    assert held == [OPTIONAL_PARTS]
    assert any(r.startswith("scikit-learn") for r in extras["examples"])  # load_digits
    assert any(r.startswith("ziglang") for r in extras["cross"])


def test_demo_creates_the_venv_and_installs_only_the_examples_extra(tmp_path):
    plan = _plan("demo", tmp_path / "venv")
    assert f"-m venv {tmp_path / 'venv'}" in plan
    assert _installs(plan) == ["examples"]
    assert "examples/demo.py" in plan and "examples/export_demo.py" in plan


def test_test_creates_the_venv_and_installs_the_test_extra(tmp_path):
    plan = _plan("test", tmp_path / "venv")
    assert f"-m venv {tmp_path / 'venv'}" in plan
    assert _installs(plan) == ["test"]
    assert "pytest" in plan


def test_test_after_demo_adds_the_test_extra_to_the_demos_venv(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    _touch_stamps(_plan("demo", venv))
    assert _installs(_plan("demo", venv)) == []
    plan = _plan("test", venv)
    assert "-m venv" not in plan and _installs(plan) == ["test"]


def test_demo_after_test_installs_nothing_more(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    _touch_stamps(_plan("test", venv))
    assert _installs(_plan("test", venv)) == []
    assert _installs(_plan("demo", venv)) == []


def test_test_type_checks_after_the_generated_files_and_before_pytest(tmp_path):
    plan = _plan("test", tmp_path / "venv")
    steps = [line for line in plan.splitlines()
             if re.search(r"-m (generators\.generate --check|mypy|pytest)\b", line)]
    assert [re.search(r"-m (\S+)", s).group(1) for s in steps] == \
        ["generators.generate", "mypy", "pytest"], steps
    assert any(r.startswith("mypy") for r in _extras()["test"])


@pytest.mark.parametrize("target", ["demo", "test", "bench"])
def test_each_target_builds_the_runtime_before_it_runs_anything(target, tmp_path):
    plan = _plan(target, tmp_path / "venv").splitlines()
    runs = [n for n, line in enumerate(plan) if re.search(r"python -m (?!pip|venv)|\.py\b", line)]
    assert runs and "-m aot.build.prebuild" in plan[runs[0]], plan
