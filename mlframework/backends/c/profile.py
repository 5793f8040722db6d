"""Per-kernel times of a compiled C executable (a profiling build, no perf needed).

    from mlframework.backends.c.profile import profile_kernels
    rows = profile_kernels(exe, [x, w], repeats=50)   # [(kernel, median us, share)]

`exe` is a `CExecutable` (e.g. `G.Exec(...)`'s compiled entry). The generated
source is rebuilt with a timer around every kernel call in the entry point;
the timed library is separate from the real one, so nothing else changes.
Also runnable: `python -m mlframework.backends.c.profile` profiles the MLP
train step of benchmarks/test_c_kernels.py.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from aot.build import compiler as B

_CALL = re.compile(r"^(\s*)(\w+)\((.*)\);  /\* kernel \d+ \*/$")  # emit_module's calls
_BLOCK = re.compile(r"^(\s*)\{  /\* kernel \d+: (\w+), ")  # a control-flow kernel's block
_PRELUDE = """
#include <time.h>
static double mlf_prof_ns[4096];
static double mlf_prof_now(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec;
}
double* mlf_prof_times(void) { return mlf_prof_ns; }
"""


def timed_source(source: str) -> tuple[str, list[str]]:
    """`source` with every kernel call in `mlf_run` timed; also the kernel names in call order."""
    lines: list[str] = []
    names: list[str] = []
    in_run = False
    closing: tuple[str, int] | None = None  # the closing line of the open control block
    for line in source.split("\n"):
        if line.startswith("int mlf_run("):
            in_run = True
        if in_run and line.startswith("}"):
            in_run = False
        m = _CALL.match(line) if in_run else None
        block = _BLOCK.match(line) if in_run else None
        if m:
            ind, name, _ = m.groups()
            t = len(names)
            names.append(name)
            line = (f"{ind}{{ double t0 = mlf_prof_now(); {line.strip()} "
                    f"mlf_prof_ns[{t}] += mlf_prof_now() - t0; }}")
        elif block:  # a loop or branch: timed from its opening to its closing brace
            ind, name = block.groups()
            closing = (f"{ind}}}", len(names))
            names.append(name)
            line = f"{ind}{{ double t0 = mlf_prof_now(); {line.strip()}"
        elif closing is not None and line == closing[0]:
            line = f"{line} mlf_prof_ns[{closing[1]}] += mlf_prof_now() - t0; }}"
            closing = None
        lines.append(line)
    text = "\n".join(lines)
    head = text.index('#include "mlf_kernels.h"')
    head = text.index("\n", head) + 1
    return text[:head] + _PRELUDE + text[head:], names


def profile_kernels(exe, inputs, repeats: int = 30):
    """[(kernel name, mean microseconds per run, share of the total)] sorted by time."""
    import cffi

    source, names = timed_source(exe.source)
    flags = B.FLAGS + B.openmp_flags()
    key = B.source_key(source, flags)
    folder = B.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"mlfprof_{key}"
    so = folder / f"{name}{__import__('sysconfig').get_config_var('EXT_SUFFIX')}"
    if not so.exists():
        ffi = cffi.FFI()
        ffi.cdef(B.CDEF + "double* mlf_prof_times(void);")
        ffi.set_source(name, source, include_dirs=[str(B.RUNTIME)], extra_compile_args=flags,
                       extra_link_args=B.openmp_flags() + ["-lm"])
        import os
        import tempfile
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            os.replace(ffi.compile(tmpdir=tmp), so)
    lib = B._load(name, so).lib
    real = exe.compiled.lib
    exe.compiled.lib = lib
    try:
        exe.run(inputs)
        times = lib.mlf_prof_times()
        for t in range(len(names)):
            times[t] = 0.0
        for _ in range(repeats):
            exe.run(inputs)
        per = np.array([times[t] for t in range(len(names))]) / repeats / 1e3
    finally:
        exe.compiled.lib = real
    total = per.sum()
    rows = sorted(zip(names, per, per / max(total, 1e-9)), key=lambda r: -r[1])
    return rows


def _main():
    import sys
    import time
    sys.path.insert(0, "benchmarks")
    import mlframework as mlf
    from mlframework import graph as G

    import test_c_kernels as T  # type: ignore[import-not-found]  # benchmarks/, on sys.path
    holder: dict[str, Any] = {}
    real_exec = G.Exec

    class Spy(G.Exec):
        def _compile(self, backend, key, treedef, leaves, specs=None):
            entry = super()._compile(backend, key, treedef, leaves, specs)
            holder["exe"], holder["leaves"] = entry[0], leaves
            return entry
    T.G.Exec = Spy
    try:
        step = T._mlp_step("c")
    finally:
        T.G.Exec = real_exec
    del mlf
    exe, leaves = holder["exe"], holder["leaves"]
    ts = []
    for _ in range(30):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    print(f"step median {np.median(ts) * 1e3:.3f} ms")
    rows = profile_kernels(exe, [np.asarray(x) for x in leaves])
    print(f"kernels total {sum(r[1] for r in rows):.1f} us")
    for n, us, share in rows:
        print(f"{us:9.1f} us {share * 100:5.1f}%  {n}")


if __name__ == "__main__":
    _main()
