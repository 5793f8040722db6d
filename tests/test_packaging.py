"""The distribution as a user gets it: the wheel built from this checkout, installed into
a scratch directory and used from outside the source tree; the sdist's contents; the
package list in pyproject.toml against the tree.

The installed run uses this checkout's interpreter with `-S` (no site-packages, so no
editable install of the checkout) and a path of exactly two entries: the scratch
directory holding the wheel's files, and the venv's site-packages for the
dependencies (numpy, jax, cffi...), whose .pth files `-S` leaves unread.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDIST_MUST_HOLD = ("LICENSE", "README.md", "Makefile", "pyproject.toml", "templates/c/kernel.c.j2",
                   "templates/c/export/model.h.j2", "runtime_c/mlf_gemm.h",
                   "generators/ops_table.py", "tests/test_packaging.py", "docs/aotc.md",
                   "examples/digits_mlp.py", "examples/c/digits_demo.c", "aot/resources.py")


def _build(kind: str, out: Path) -> tuple[Path, str]:
    """Builds the wheel or sdist of the checkout through setuptools' PEP 517 hooks
    (no network, no build isolation); returns the file and what the build printed."""
    code = (f"import sys; from setuptools import build_meta as b; "
            f"print('BUILT', b.build_{kind}(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    name = result.stdout.split("BUILT")[-1].strip()
    return out / name, result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return _build("wheel", tmp_path_factory.mktemp("wheel"))


def _python_warnings(log: str) -> list[str]:
    """Lines of Python warnings (SetuptoolsDeprecationWarning and the like); distutils'
    informational "warning: no files matching ..." lines are not among them."""
    return [line for line in log.splitlines() if "Warning" in line]


def test_build_does_not_warn(wheel):
    assert _python_warnings(wheel[1]) == []


def test_wheel_carries_the_templates_and_runtime(wheel):
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    for rel in ("aot/templates/c/kernel.c.j2", "aot/templates/c/loops.c.j2",
                "aot/templates/c/module.c.j2", "aot/templates/c/export/model.h.j2",
                "aot/templates/c/export/Makefile.j2", "aot/runtime_c/mlf_runtime.h",
                "aot/runtime_c/mlf_gemm.h", "aot/runtime_c/mlf_runtime_unit.c",
                "aot/resources.py", "mlframework/__init__.py",
                "mlframework/py.typed", "aot/py.typed"):  # PEP 561: typed packages
        assert rel in names, rel
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.j2")}
    assert {f"aot/{t}" for t in templates} <= names
    assert not any(n.startswith(("templates/", "runtime_c/", "tests/")) for n in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel[0]).read(meta).decode()
    assert "License-Expression: Apache-2.0" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "aotc = aot.tools.cli:main" in zipfile.ZipFile(wheel[0]).read(entry).decode()


def test_sdist_carries_what_rebuilding_and_testing_need(tmp_path):
    sdist, log = _build("sdist", tmp_path)
    assert _python_warnings(log) == []
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [rel for rel in SDIST_MUST_HOLD if rel not in names]
    assert missing == []
    assert not any("__pycache__" in n or n.endswith(".so") for n in names)


def test_pyproject_lists_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = config["package-dir"]
    tree = {".".join(p.parent.relative_to(ROOT).parts) for top in ("mlframework", "aot")
            for p in (ROOT / top).rglob("__init__.py")}
    for package, folder in mapped.items():
        tree.add(package)
        tree |= {package + "." + ".".join(d.relative_to(ROOT / folder).parts)
                 for d in (ROOT / folder).rglob("*") if d.is_dir() and d.name != "__pycache__"}
    assert sorted(config["packages"]) == sorted(tree)


USE = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import numpy as np
    scratch = Path(sys.argv[1]).resolve()
    source = Path(sys.argv[2]).resolve()
    # the checkout is not importable: no path entry holds its packages, no editable finder
    for top in ("mlframework", "aot"):
        assert not any((Path(p or ".") / top).resolve() == source / top for p in sys.path)
    assert not any("editable" in repr(f).lower() for f in sys.meta_path), sys.meta_path
    import mlframework as mlf, aot
    from mlframework import graph as G
    from aot import resources
    for where in (mlf.__file__, aot.__file__, resources.templates_dir(), resources.runtime_dir()):
        assert Path(where).resolve().is_relative_to(scratch), where

    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    w = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
    y = G.Exec(mlf.backends.new("c"), lambda x, w: G.tanh(x @ w) * 2.0)(x, w).numpy()
    np.testing.assert_allclose(y, np.tanh(x @ w) * 2.0, rtol=1e-5, atol=1e-6)

    from mlframework.ml import Context, layers, losses, optimizers, train
    def model(ctx, x):
        return layers.dense(ctx / "out", layers.dense(ctx / "h", x, 16, activation="relu"), 3)
    trainer = train.Trainer(mlf.backends.new("c"), Context(seed=0), model,
                            losses.sparse_categorical_cross_entropy_logits,
                            optimizers.Adam(0.05))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(32, 5)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int32) + (xs[:, 1] > 0).astype(np.int32)
    losses_seen = [float(trainer.train_step(xs, ys)["loss"].numpy()) for _ in range(30)]
    assert losses_seen[-1] < 0.5 * losses_seen[0], losses_seen
    print(json.dumps({"loss": losses_seen}))
''')

MODEL = textwrap.dedent('''
    import numpy as np
    from mlframework import graph as G
    W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    def model(x):
        """[2, 4] -> [2, 3]"""
        return G.tanh(x @ G.const(W)) + 1.0
''')

DRIVER = textwrap.dedent('''
    #include <stdio.h>
    #include "tiny.h"
    int main(void) {
      static float x[8] = {1, 2, 3, 4, -1, -2, -3, -4};
      static float y[6];
      int status = tiny_run(x, y, NULL);
      if (status != 0) { printf("status %d\\n", status); return 1; }
      for (int i = 0; i < 6; i++) printf("%.6f\\n", y[i]);
      return 0;
    }
''')


@pytest.mark.slow
def test_installed_wheel_works_outside_the_source_tree(wheel, tmp_path):
    scratch = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-compile", "--target", str(scratch), str(wheel[0])], check=True,
                   timeout=300)
    work = tmp_path / "user"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(scratch),
                                                        sysconfig.get_paths()["purelib"]]),
           "MLF_CACHE_DIR": str(tmp_path / "cache"), "PYTHONNOUSERSITE": "1"}

    def python(*args, **kw):
        result = subprocess.run([sys.executable, "-S", *args], cwd=work, env=env,
                                capture_output=True, text=True, timeout=600, **kw)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    (work / "use.py").write_text(USE)
    python("use.py", str(scratch), str(ROOT))

    (work / "tiny.py").write_text(MODEL)
    python("-m", "aot.tools.cli", "export", "tiny.py:model", "--input", "x:float32[2,4]",
           "--name", "tiny", "-o", "out")
    out = work / "out"
    assert (out / "libtiny.so").exists() and (out / "libtiny.a").exists()
    (work / "main.c").write_text(DRIVER)
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{out}", f"-I{out / 'runtime'}",
                    "main.c", str(out / "libtiny.a"), "-lm", "-o", "main"], cwd=work, check=True,
                   timeout=120)
    printed = subprocess.run(["./main"], cwd=work, capture_output=True, text=True, check=True,
                             timeout=60).stdout
    x = [[1, 2, 3, 4], [-1, -2, -3, -4]]
    w = [[(r * 3 + c) / 10.0 for c in range(3)] for r in range(4)]
    import numpy as np
    want = np.tanh(np.asarray(x, np.float32) @ np.asarray(w, np.float32)) + 1.0
    np.testing.assert_allclose(np.asarray(printed.split(), np.float32), want.reshape(-1),
                               rtol=1e-5, atol=1e-6)

    python("-m", "aot.tools.cli", "inspect", "tiny.py:model", "--input", "x:float32[2,4]",
           "--html", "tiny.html")
    page = (work / "tiny.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
    assert "tanh" in page and "dot_general" in page
