"""Every code block of README.md and docs/*.md runs: the docs cannot drift from the code.

A block's info string (the text after the opening fence) says what it is:

    ```python            run as written, in a fresh interpreter
    ```sh  / ```bash     run by bash -e -o pipefail, with the venv's bin first on PATH
    ```sh dry-run        set-up commands too long or too heavy to run here (make, pip
                         install): each `make ...` line runs as `make -n` (the target must
                         exist and plan without error); each `pip install` line must name
                         this project (`.`, `mlframework`, a built wheel) and only extras
                         pyproject.toml defines
    ```c                 compiled (gcc -c, warnings are errors) as a file of its own
    ```c fragment        statements: compiled inside `int main(void) { ... }`, its
                         #include lines above it
    ```text              output, an error message, a diagram: not run

A block without one of these fails the test. The blocks of a page run in order in one
scratch folder laid out like a checkout after `make demo`: `examples/` (this checkout's),
`.venv` (this interpreter's environment) and `build/demo/checkpoints` (a digits MLP
checkpoint trained once per test session and shared with the aotc tests), so a later
block sees what an earlier one wrote (an export, then its `aotc verify`). C blocks see the
headers under the page's `build/` folder (an earlier block's export) on their include path.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "aot"))
import export_support as es  # noqa: E402  the shared, cached digits checkpoint

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KINDS = {"python": set(), "sh": {"dry-run"}, "bash": {"dry-run"}, "c": {"fragment"},
         "text": set()}
VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 900
C_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-variable",
           "-Wno-unused-but-set-variable", "-Wno-unused-parameter"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int        # of the opening fence, 1-based
    kind: str        # the info string's first word ("" when it has none)
    flags: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line} ({' '.join((self.kind, *self.flags)) or 'no info string'})"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order; a block indented under a list
    item loses that indentation."""
    out, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].split()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^ *{fence[0]}{{{len(fence)},}} *$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page}:{i + 1}: code block never closed")
        out.append(Block(page, i + 1, info[0] if info else "", tuple(info[1:]),
                         "\n".join(body) + "\n"))
        i = j + 1
    return out


def _run(argv: list[str], cwd: Path, block: Block, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT_S, **kw)
    if out.returncode != 0:
        raise AssertionError(f"{block} failed with exit status {out.returncode}:\n"
                             f"{block.text}\n--- stdout:\n{out.stdout[-4000:]}\n"
                             f"--- stderr:\n{out.stderr[-4000:]}")
    return out


def _run_python(block: Block, scratch: Path) -> None:
    script = scratch / f"block_{block.page.stem}_{block.line}.py"
    script.write_text(block.text)
    _run([sys.executable, script.name], scratch, block)


def _run_shell(block: Block, scratch: Path) -> None:
    _run(["bash", "-e", "-o", "pipefail", "-c", block.text], scratch, block)


def _commands(text: str) -> list[list[str]]:
    """The command lines of a shell block (continuations joined, comments dropped)."""
    return [argv for line in text.replace("\\\n", " ").splitlines()
            if (argv := shlex.split(line, comments=True))]


def _check_pip_install(block: Block, args: list[str]) -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"])
    specs = [a for a in args if not a.startswith("-")]
    assert specs, f"{block}: `pip install` of nothing"
    for spec in specs:
        m = re.fullmatch(r"(?P<base>[^\[\]]+?)(\[(?P<extras>[\w,-]+)\])?", spec)
        assert m, f"{block}: cannot read the requirement {spec!r}"
        base = m["base"]
        assert base in (".", "mlframework") or re.fullmatch(
            r"(.*/)?mlframework-[\w.*-]+\.whl", base), \
            f"{block}: `pip install {spec}` installs something other than this project"
        unknown = set((m["extras"] or "").split(",")) - {""} - extras
        assert not unknown, (f"{block}: `pip install {spec}` names extras pyproject.toml "
                             f"lacks: {sorted(unknown)} (it has {sorted(extras)})")


def _dry_run(block: Block, scratch: Path) -> None:
    commands = _commands(block.text)
    assert commands, f"{block}: no commands"
    for argv in commands:
        if argv[0] == "make":
            _run(["make", "-n", "-C", str(ROOT), *argv[1:], f"VENV={scratch / 'venv'}"],
                 scratch, block)
        elif argv[:2] == ["pip", "install"]:
            _check_pip_install(block, argv[2:])
        elif len(argv) > 4 and argv[1:4] == ["-m", "pip", "install"]:
            _check_pip_install(block, argv[4:])
        else:
            raise AssertionError(f"{block}: a dry-run block holds only make and pip install "
                                 f"commands, got {shlex.join(argv)!r}")


def _compile_c(block: Block, scratch: Path) -> None:
    source = block.text
    if "fragment" in block.flags:
        lines = source.splitlines()
        includes = [ln for ln in lines if ln.lstrip().startswith("#include")]
        body = [ln for ln in lines if not ln.lstrip().startswith("#include")]
        source = "\n".join([*includes, "int main(void) {", *body, "    return 0;", "}", ""])
    path = scratch / f"block_{block.page.stem}_{block.line}.c"
    path.write_text(source)
    headers = sorted({h.parent for h in (scratch / "build").rglob("*.h")}) \
        if (scratch / "build").is_dir() else []
    cc = os.environ.get("CC", "cc")
    _run([*shlex.split(cc), *C_FLAGS, *(f"-I{d}" for d in headers), "-c", path.name, "-o",
          path.with_suffix(".o").name], scratch, block)


RUNNERS = {"python": _run_python, "sh": _run_shell, "bash": _run_shell, "c": _compile_c}


def run_block(block: Block, scratch: Path) -> None:
    """Runs, checks or compiles one block in `scratch` (raises AssertionError on failure)."""
    if block.kind in ("sh", "bash") and "dry-run" in block.flags:
        _dry_run(block, scratch)
    elif block.kind in RUNNERS:
        RUNNERS[block.kind](block, scratch)


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.kind != "text"]


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory) -> Path:
    return es.checkpoint(es.shared_root(tmp_path_factory), "digits_mlp")


def _checkout_like(scratch: Path, checkpoint: Path) -> Path:
    (scratch / "examples").symlink_to(ROOT / "examples")
    (scratch / ".venv").symlink_to(VENV_BIN.parent)
    shutil.copytree(checkpoint, scratch / "build" / "demo" / "checkpoints",
                    ignore=shutil.ignore_patterns(".done", "*.lock"))
    return scratch


def test_every_block_says_what_it_is():
    wrong = [f"{b}: use one of {', '.join(f'```{k}' for k in KINDS)} (flags: "
             f"{', '.join(sorted(set().union(*KINDS.values())))})"
             for page in PAGES for b in blocks(page)
             if b.kind not in KINDS or not set(b.flags) <= KINDS[b.kind]]
    assert wrong == []


def test_the_pages_hold_code():
    counts = {p.relative_to(ROOT).as_posix(): len(_runnable(p)) for p in PAGES}
    assert counts["README.md"] >= 3 and counts["docs/aotc.md"] >= 3, counts


def test_every_relative_link_leads_to_a_file():
    """The README once sent newcomers to a DESIGN.md the repository did not hold."""
    broken = [f"{page.relative_to(ROOT)}: ({target})" for page in PAGES
              for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text())
              if not re.match(r"[a-z]+:|#", target)
              and not (page.parent / target.split("#")[0]).exists()]
    assert broken == []


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_runs(page, tmp_path, demo_checkpoint):
    scratch = _checkout_like(tmp_path, demo_checkpoint)
    for block in _runnable(page):
        run_block(block, scratch)


# The checks themselves, on made-up pages.

def _page(tmp_path: Path, text: str) -> list[Block]:
    path = tmp_path / "page.md"
    path.write_text(text)
    return blocks(path)


def test_blocks_are_read_with_their_info_strings_and_indentation(tmp_path):
    found = _page(tmp_path, "# t\n\n```python\nprint(1)\n```\n\n* item:\n\n  ```c fragment\n"
                            "  int x = 1;\n  ```\n\n````text\n```\n````\n\n```\nbare\n```\n")
    assert [(b.line, b.kind, b.flags, b.text) for b in found] == [
        (3, "python", (), "print(1)\n"), (9, "c", ("fragment",), "int x = 1;\n"),
        (13, "text", (), "```\n"), (17, "", (), "bare\n")]


@pytest.mark.parametrize("text, message", [
    ("```python\nimport sys\nsys.exit(3)\n```\n", "exit status 3"),
    ("```sh\nfalse | true\necho never\n```\n", "exit status 1"),
    ("```c fragment\nint x = undeclared_name;\n```\n", "undeclared_name"),
    ("```c\nint f(void) { return 1 }\n```\n", "expected"),
    ("```sh dry-run\nmake no-such-target\n```\n", "no-such-target"),
    ("```sh dry-run\npip install '.[no-such-extra]'\n```\n", "no-such-extra"),
    ("```sh dry-run\npip install numpy\n```\n", "something other than this project"),
    ("```sh dry-run\nrm -rf build\n```\n", "only make and pip install"),
])
def test_a_broken_block_fails(tmp_path, text, message):
    (block,) = _page(tmp_path, text)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_block(block, tmp_path)


def test_a_c_fragment_compiles_inside_main_with_its_includes_at_file_scope(tmp_path):
    (block,) = _page(tmp_path, "```c fragment\n#include <string.h>\n"
                               "static char buf[8];\nmemset(buf, 0, sizeof buf);\n```\n")
    run_block(block, tmp_path)
    assert (tmp_path / f"block_page_{block.line}.o").exists()
