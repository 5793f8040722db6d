"""`build`: compiles generated C with cffi into a cached shared library.

    lib = build(source)               # one translation unit; lib.mlf_run(...)
    lib = build_module(module)        # a CModule: kernels in parallel units, then linked

`build_module` is what the c backend runs: the kernel functions go into a few
units per CPU (each function to the unit its structural key picks), which gcc
compiles in parallel, each cached as an object file by its own source hash, so
a model that changes one layer recompiles only the units its new functions fall
in. The runtime's GEMM and conv (runtime_c/mlf_entries.h) are one more unit,
`mlf_runtime_unit.c`, linked into every model: compiling the GEMM is most of the
cost of a small model, so it is built ahead with the install (`prebuild`, which
`python -m aot.build.prebuild` and `make` run) and otherwise once per machine,
on first use, into the cache. cffi then compiles the entry point and links the
objects.

Cache keys hash the source, the runtime headers, the compiler flags and the
Python/cffi ABI; files live under `$MLF_CACHE_DIR`, else
`~/.cache/mlframework/c`. A compile error raises `CompileError` with the .c
file's path and the compiler's message. `-g0` overrides the `-g` that cffi
takes from Python's build flags: debug information doubled gcc's time.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import sysconfig
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aot.resources import runtime_dir

# A warm start only loads a cached library: the code generator, gcc's subprocesses and
# their thread pool are imported where a library is built.
if TYPE_CHECKING:
    import subprocess

    from aot.codegen.emit import CModule

RUNTIME = runtime_dir()
RUNTIME_UNIT = RUNTIME / "mlf_runtime_unit.c"
PREBUILT = Path(__file__).parent / "prebuilt"  # the runtime unit built with the install
CDEF = """
int mlf_run(void* const* inputs, void* const* outputs, char* arena, const char* consts);
int mlf_run_set_threads(int n);
"""
# a module with symbolic dimensions takes their values (templates/c/module.c.j2)
CDEF_SYMBOLIC = CDEF.replace("const char* consts)", "const char* consts, const int64_t* sizes)")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fwrapv", "-fno-strict-aliasing",
         "-std=gnu11", "-fPIC", "-g0"]
UNITS_PER_CPU = 4  # kernel units of a module: parallel and fine-grained, yet few gcc start-ups
WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-unused-function",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable"]


class CompileError(RuntimeError):
    """The C compiler rejected generated code; the message names the file."""


def cache_dir() -> Path:
    return Path(os.environ.get("MLF_CACHE_DIR") or Path.home() / ".cache" / "mlframework" / "c")


def openmp_flags() -> list[str]:
    return [] if os.environ.get("MLF_NO_OPENMP") else ["-fopenmp"]


@functools.cache
def native_target() -> str:
    """What `-march=native` means here: gcc's version and its expansion of the flag into
    the CPU's instruction sets and cache sizes, so a runtime object built on another CPU
    (a shared home folder, a copied install) is never linked."""
    import subprocess

    probe = subprocess.run(["gcc", "-march=native", "-E", "-v", "-"], input="",
                           capture_output=True, text=True)
    return "\n".join(line for line in probe.stderr.splitlines()
                     if line.startswith("gcc version") or "-march=" in line)


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


def build_module(module: CModule, timings: dict | None = None):
    """The cffi `lib` of `module`, its kernels compiled as parallel, cached units.

    timings: if given, receives "gcc <unit>" (or "cached <unit>") and "link" seconds, and
    "load" (hashing the source, finding the library and loading it; on a warm start the
    only entry).
    """
    started = time.perf_counter()
    flags = FLAGS + openmp_flags()
    entry = module.entry_unit()
    units = unit_sources(module)
    key = source_key("\0".join([entry] + [u for _, u in units]), flags)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"mlf_{key}"
    so = folder / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    hashing = time.perf_counter() - started
    if not so.exists():
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            runtime = pool.submit(runtime_object, flags, timings)
            kernels = pool.map(lambda u: _unit_object(u[0], u[1], folder, flags, timings), units)
            objects = [runtime.result(), *kernels]  # the runtime compiles beside the kernels
        linking = time.perf_counter()
        _compile(entry, folder, name, flags, so, objects,
                 CDEF_SYMBOLIC if module.context.get("symbols") else CDEF)
        if timings is not None:
            timings["link"] = time.perf_counter() - linking
    loading = time.perf_counter()
    lib = _load(name, so).lib
    if timings is not None:
        timings["load"] = hashing + time.perf_counter() - loading
    return lib


def unit_sources(module: CModule) -> list[tuple[str, str]]:
    """(label, source) of the translation units of `module`'s kernel functions.

    A function goes to the unit its name (which ends in its structural key) hashes to,
    UNITS_PER_CPU units per CPU: a function keeps its unit whatever else the model holds,
    so changing a layer recompiles only the units that its changed functions fall in,
    and the units stay balanced on average.
    """
    return [(f"unit {n}: {len(g)} functions", module.unit_source(g))
            for n, g in enumerate(unit_groups(module), 1)]


def unit_groups(module: CModule) -> list[list]:
    """The kernel functions of each unit (see `unit_sources`), empty units left out."""
    count = UNITS_PER_CPU * (os.cpu_count() or 1)
    groups: list[list] = [[] for _ in range(count)]
    for f in module.functions:
        groups[zlib.crc32(f.name.encode()) % count].append(f)
    return [g for g in groups if g]


def runtime_object(flags: list[str], timings: dict | None = None) -> str:
    """The object file of the runtime unit (GEMM, conv) for `flags`: the prebuilt one
    where `prebuild` made it for this runtime, these flags and this CPU, else the
    cache's, compiled on first use. timings: gets "prebuilt runtime (GEMM, conv)", or
    the "cached ..."/"gcc ..." entry of a kernel unit."""
    key = runtime_key(flags)
    prebuilt = PREBUILT / f"runtime_{key}.o"
    if prebuilt.exists():
        if timings is not None:
            timings["prebuilt runtime (GEMM, conv)"] = 0.0
        return str(prebuilt)
    return _unit_object("runtime (GEMM, conv)", RUNTIME_UNIT.read_text(), cache_dir(), flags,
                        timings, key)


def runtime_key(flags: list[str]) -> str:
    """The runtime unit's key: its source, the runtime headers, `flags` and this CPU."""
    return source_key(RUNTIME_UNIT.read_text() + native_target(), flags)


def prebuild(folder: Path | None = None) -> list[Path]:
    """Builds the runtime unit into `folder` (default `PREBUILT`) for the c backend's
    flags, with OpenMP and without (MLF_NO_OPENMP), in parallel, unless they are there,
    and removes the objects of older runtimes, flags or CPUs. Returns the objects' paths.

    Raises:
        CompileError: gcc rejected the runtime.
        OSError: `folder` cannot be written (an install owned by another user: run this
            as its owner, or let the first model build the runtime into the cache).
    """
    from concurrent.futures import ThreadPoolExecutor

    folder = folder or PREBUILT
    folder.mkdir(parents=True, exist_ok=True)
    variants = [FLAGS + ["-fopenmp"], FLAGS]
    objects = [folder / f"runtime_{runtime_key(flags)}.o" for flags in variants]
    missing = [(obj, flags) for obj, flags in zip(objects, variants) if not obj.exists()]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: _gcc_object(RUNTIME_UNIT, *job), missing))
    for obj, _ in missing:
        obj.chmod(0o644)  # an install's other users link it too
    for stale in set(folder.glob("runtime_*.o")) - set(objects):
        stale.unlink()
    return objects


def _unit_object(label: str, source: str, folder: Path, flags: list[str], timings: dict | None,
                 key: str | None = None) -> str:
    """The object file of one unit, compiled unless the cache holds it (`key`: the
    source's unless given)."""
    key = key or source_key(source, flags)
    obj = folder / f"unit_{key}.o"
    if obj.exists():
        if timings is not None:
            timings[f"cached {label}"] = 0.0
        return str(obj)
    c_path = folder / f"unit_{key}.c"
    c_path.write_text(source)
    started = time.perf_counter()
    _gcc_object(c_path, obj, flags)
    if timings is not None:
        timings[f"gcc {label}"] = time.perf_counter() - started
    return str(obj)


def _gcc_object(c_path: Path, obj: Path, flags: list[str]) -> None:
    """Compiles `c_path` to `obj`, atomically: concurrent builders of one key agree."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(dir=obj.parent, suffix=".o", delete=False) as tmp:
        pass
    result = subprocess.run(["gcc", "-c", *flags, *WARNINGS, f"-I{RUNTIME}", str(c_path),
                             "-o", tmp.name], capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(tmp.name)
        raise CompileError(f"gcc failed on {c_path}:\n{result.stderr.strip()}")
    os.replace(tmp.name, obj)


_LOADED: dict[str, object] = {}


def library_name(lib) -> str | None:
    """The name of the cached library that `lib` (of `build` or `build_module`) was
    loaded from, for `load_library`; None for a `lib` loaded otherwise."""
    return _loaded_as(lib)[0]


def library_ffi(lib):
    """The cffi `ffi` of the module that `lib` (of `build`, `build_module` or
    `load_library`) was loaded from: it makes pointers for `lib`'s calls without the C
    parser that a new `cffi.FFI()` loads. None for a `lib` loaded otherwise."""
    return getattr(_loaded_as(lib)[1], "ffi", None)


def _loaded_as(lib) -> tuple[str | None, object]:
    """(name, module) of the loaded library whose `lib` is `lib`, else (None, None)."""
    return next(((name, module) for name, module in _LOADED.items()
                 if getattr(module, "lib", None) is lib), (None, None))


def load_library(name: str):
    """The cffi `lib` of the library `name` (see `library_name`) in the cache, or None
    where it is not there (a cleared cache: build it again)."""
    so = cache_dir() / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    return _load(name, so).lib if so.exists() else None


def _load(name: str, so: Path):
    if name not in _LOADED:
        spec = importlib.util.spec_from_file_location(name, so)
        if spec is None or spec.loader is None:
            raise ImportError(f"{so} is not a loadable extension module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]


def _compile(source: str, folder: Path, name: str, flags: list[str], so: Path,
             objects: Sequence[str] = (), cdef: str = CDEF) -> None:
    import subprocess
    import tempfile

    import cffi

    c_path = folder / f"{name}.c"
    c_path.write_text(source)
    check = subprocess.run(["gcc", "-fsyntax-only", *flags, *WARNINGS, f"-I{RUNTIME}", str(c_path)],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise CompileError(f"gcc failed on {c_path}:\n{check.stderr.strip()}")
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(name, source, include_dirs=[str(RUNTIME)], extra_compile_args=flags,
                   extra_objects=list(objects), extra_link_args=openmp_flags() + ["-lm"])
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        try:
            built = ffi.compile(tmpdir=tmp, verbose=False)
        except Exception as e:  # cffi wraps distutils errors
            raise CompileError(f"compiling {c_path} failed: {e}") from None
        os.replace(built, so)  # atomic: concurrent builders of the same key agree


def compile_standalone(source: str, out: Path,
                       extra_flags: list[str]) -> subprocess.CompletedProcess:
    """Compiles `source` (plus a main elsewhere) with gcc directly; used by sanitizer tests."""
    import subprocess

    c_path = out.with_suffix(".c")
    c_path.write_text(source)
    return subprocess.run(["gcc", *FLAGS, *openmp_flags(), *extra_flags, f"-I{RUNTIME}",
                           str(c_path), "-o", str(out), "-lm"], capture_output=True, text=True)
