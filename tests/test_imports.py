"""Which modules a fresh process imports: `import mlframework` and `aotc --help` leave the
heavy dependencies (jax, ml_dtypes, cffi, jinja2) to the calls that need them. How long
start-up takes is measured in benchmarks/test_startup.py, not here."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("jax", "jaxlib", "ml_dtypes", "cffi", "jinja2", "aot", "sklearn", "torch",
         "matplotlib", "tqdm", "safetensors", "onnx", "onnxruntime", "transformers",
         "tokenizers")


def _imported_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in " \
                   "sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_mlframework_leaves_the_heavy_dependencies_alone():
    code = textwrap.dedent("""
        import numpy as np
        import mlframework as mlf
        from mlframework import graph as G
        assert "xla" in mlf.backends.names() and mlf.core.Shape(mlf.float32, (2, 3)).size == 6
        assert callable(G.exp) and callable(G.softmax) and G.Exec
        assert mlf.float32.numpy == np.float32 and mlf.core.as_dtype("bfloat16") is mlf.bfloat16
    """)
    assert _imported_after(code) & set(HEAVY) == set()


def test_bfloat16_imports_ml_dtypes_when_first_asked_for():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import mlframework as mlf
        assert "ml_dtypes" not in sys.modules
        a = np.zeros(3, mlf.bfloat16)
        assert str(a.dtype) == "bfloat16" and mlf.core.as_dtype(a.dtype) is mlf.bfloat16
        assert mlf.bfloat16.itemsize == 2
    """)
    assert "ml_dtypes" in _imported_after(code)


def test_a_bfloat16_from_ml_dtypes_is_recognized_before_mlframework_asked_for_it():
    code = textwrap.dedent("""
        import ml_dtypes
        import numpy as np
        from mlframework.core.dtypes import as_dtype, bfloat16
        assert as_dtype(np.zeros(2, ml_dtypes.bfloat16).dtype) is bfloat16
        assert as_dtype(ml_dtypes.bfloat16) is bfloat16
    """)
    _imported_after(code)


def test_aotc_help_imports_neither_numpy_nor_mlframework():
    code = textwrap.dedent("""
        import contextlib, io
        from aot.tools.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit as e:
                assert e.code == 0
        assert "export" in out.getvalue()
    """)
    assert _imported_after(code) & {"numpy", "mlframework", *HEAVY} == {"aot"}


def test_aotc_version_still_names_the_package_version():
    import mlframework
    out = subprocess.run([sys.executable, "-m", "aot.tools.cli", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"aotc {mlframework.__version__}"
