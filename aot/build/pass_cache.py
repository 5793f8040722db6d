"""`cached_compile`: the passes' results on disk, so a warm start runs none of them.

    compiled = cached_compile(program, build_lib, donated, timings, run)

`run()` is `compile_program`'s own work (every pass, emit, build); its result,
without the loaded library and the timings, is pickled to
`$MLF_CACHE_DIR/passes/<key>.pkl` with the name of the library it loaded. The
key hashes the input program (pickled), `donated`, `build_lib`, the compiler
flags and Python's version, and a fingerprint of the compiler's own code: the
`aot` and `mlframework` packages' Python files, the C templates and the runtime
headers (computed once per process), so editing any pass misses.

A hit loads the entry and the built library (`compiler.load_library`) and adds
"pass cache" (hashing and loading the entry) and "load" to `timings`. An entry
that cannot be read or unpickled, is not this key's, or whose library is gone
is a miss; a program that cannot be pickled, or whose constants exceed
`MAX_CONSTANT_BYTES` (an imported model's weights, which the entry would copy to
disk), is compiled without the cache.
Entries are written to a temporary file and renamed into place, so concurrent
compilers of one key agree. The folder is the one the built libraries live in
and run from, so unpickling its entries trusts nothing the libraries do not.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aot
import mlframework
from aot.build import compiler
from aot.program.program import Program
from aot.resources import runtime_dir, templates_dir
from mlframework.graph.gen_optypes import Op

MAX_CONSTANT_BYTES = 16 << 20


def cached_compile(program: Program, build_lib: bool, donated: tuple[int, ...],
                   timings: dict[str, float], run: Callable[[], Any]) -> Any:
    """`run()`'s result (a `pipeline.Compiled`), from the cache where an entry for this
    input is there (its `timings` are `timings` plus "pass cache" and "load"), else
    computed and stored (its `timings` as `run` made them)."""
    started = time.perf_counter()
    if sum(int(v.nbytes) for v in program.values.values()
           if v.op is Op.CONSTANT) > MAX_CONSTANT_BYTES:
        return run()
    try:
        key = _key(program, build_lib, donated)
    except (pickle.PicklingError, TypeError, AttributeError):
        return run()  # attributes pickle cannot hold: nothing to key by
    path = compiler.cache_dir() / "passes" / f"{key}.pkl"
    entry = _read(path, key)
    if entry is not None:
        stored, name = entry
        hashed = time.perf_counter()
        lib = compiler.load_library(name) if build_lib else None
        if lib is not None or not build_lib:
            loaded = time.perf_counter()
            timings = dict(timings)
            timings["pass cache"] = hashed - started
            if build_lib:
                timings["load"] = loaded - hashed
            return dataclasses.replace(stored, lib=lib, timings=timings)
    compiled = run()
    name = compiler.library_name(compiled.lib) if build_lib else None
    if name is not None or not build_lib:
        _write(path, (key, dataclasses.replace(compiled, lib=None, timings={}), name))
    return compiled


def _key(program: Program, build_lib: bool, donated: tuple[int, ...]) -> str:
    h = hashlib.sha256()
    flags = " ".join(compiler.FLAGS + compiler.openmp_flags())
    for part in (_fingerprint(), repr((build_lib, tuple(donated), flags, sys.version)).encode(),
                 pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:32]


@functools.cache
def _fingerprint() -> bytes:
    """A hash of the code the passes run: every .py of `aot` and `mlframework`, the
    templates and the runtime sources."""
    h = hashlib.sha256()
    roots = [Path(aot.__file__).parent, Path(mlframework.__file__).parent]
    files = [(root, p) for root in roots for p in root.rglob("*.py")]
    files += [(root, p) for root in (templates_dir(), runtime_dir()) for p in root.rglob("*")
              if p.is_file()]
    for root, p in sorted(files, key=lambda rp: (str(rp[0]), str(rp[1]))):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.digest()


def _read(path: Path, key: str):
    """(stored result, library name) of the entry at `path`, or None for a miss."""
    try:
        entry = pickle.loads(path.read_bytes())
    except Exception:  # missing, truncated, corrupt or from another version: a miss
        return None
    if not (isinstance(entry, tuple) and len(entry) == 3 and entry[0] == key
            and dataclasses.is_dataclass(entry[1])):
        return None
    return entry[1], entry[2]


def _write(path: Path, entry: tuple) -> None:
    """Stores `entry` atomically; a cache that cannot be written is left alone."""
    import tempfile  # a warm start writes nothing

    try:
        data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
