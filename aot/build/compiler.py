"""`build`: compiles generated C with cffi into a cached shared library.

    lib = build(source)          # lib.mlf_run(...), lib.mlf_run_set_threads(n)

The cache key is a hash of the source, the runtime headers, the compiler
flags and the Python/cffi ABI; libraries live under `$MLF_CACHE_DIR`, else
`~/.cache/mlframework/c`. A compile error raises `CompileError` with the .c
file's path and the compiler's message.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from aot.resources import runtime_dir

RUNTIME = runtime_dir()
CDEF = """
int mlf_run(void* const* inputs, void* const* outputs, char* arena, const char* consts);
int mlf_run_set_threads(int n);
"""
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fwrapv", "-fno-strict-aliasing",
         "-std=gnu11", "-fPIC"]
WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable"]


class CompileError(RuntimeError):
    """The C compiler rejected generated code; the message names the file."""


def cache_dir() -> Path:
    return Path(os.environ.get("MLF_CACHE_DIR") or Path.home() / ".cache" / "mlframework" / "c")


def openmp_flags() -> list[str]:
    return [] if os.environ.get("MLF_NO_OPENMP") else ["-fopenmp"]


def _runtime_text() -> str:
    return "".join(p.read_text() for p in sorted(RUNTIME.glob("*.h")))


def source_key(source: str, flags: list[str]) -> str:
    h = hashlib.sha256()
    for part in (source, _runtime_text(), " ".join(flags), sys.version, "cffi-1"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def build(source: str, extra_flags: list[str] | None = None):
    """The cffi `lib` of `source` (compiled once per source, runtime and flags)."""
    flags = FLAGS + openmp_flags() + list(extra_flags or [])
    key = source_key(source, flags)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"mlf_{key}"
    so = folder / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    if not so.exists():
        _compile(source, folder, name, flags, so)
    return _load(name, so).lib


_LOADED: dict[str, object] = {}


def _load(name: str, so: Path):
    if name not in _LOADED:
        spec = importlib.util.spec_from_file_location(name, so)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]


def _compile(source: str, folder: Path, name: str, flags: list[str], so: Path) -> None:
    import cffi

    c_path = folder / f"{name}.c"
    c_path.write_text(source)
    check = subprocess.run(["gcc", "-fsyntax-only", *flags, *WARNINGS, f"-I{RUNTIME}", str(c_path)],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise CompileError(f"gcc failed on {c_path}:\n{check.stderr.strip()}")
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(name, source, include_dirs=[str(RUNTIME)], extra_compile_args=flags,
                   extra_link_args=openmp_flags() + ["-lm"])
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        try:
            built = ffi.compile(tmpdir=tmp, verbose=False)
        except Exception as e:  # cffi wraps distutils errors
            raise CompileError(f"compiling {c_path} failed: {e}") from None
        os.replace(built, so)  # atomic: concurrent builders of the same key agree


def compile_standalone(source: str, out: Path,
                       extra_flags: list[str]) -> subprocess.CompletedProcess:
    """Compiles `source` (plus a main elsewhere) with gcc directly; used by sanitizer tests."""
    c_path = out.with_suffix(".c")
    c_path.write_text(source)
    return subprocess.run(["gcc", *FLAGS, *openmp_flags(), *extra_flags, f"-I{RUNTIME}",
                           str(c_path), "-o", str(out), "-lm"], capture_output=True, text=True)
