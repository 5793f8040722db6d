"""A symbolic-batch export against static ones (issue 13).

    .venv/bin/python -m pytest benchmarks/test_aotc_symbolic.py --benchmark-only -s

The MLP 784-512-512-10 and LeNet-5 exported once with `--input x:float32[N,...] --max
N=64` and twice with a static batch (1 and 64), in float32 and in full int8
(`--quantize int8`, every library calibrated on the same 256 random inputs),
single-threaded, called through cffi (preallocated arrays, one foreign call) at batch 1
and 64. Each symbolic row is first checked against the static export of its batch and
precision. `test_ratio` times both libraries
interleaved in one loop (medians of alternating blocks), the figure recorded in
benchmarks/README.md ("Symbolic dimensions"); target: within 1.1x at both sizes.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

import mlframework as mlf
from aot.export import export_model
from aot.tools.verify import ExportedLibrary
from bench_models import lenet, mlp
from mlframework.ml import Context, ContextExec

MODELS = {"mlp": (mlp, (784,)), "lenet": (lenet, (1, 28, 28))}
MAX = 64
PRECISIONS = {"float32": {}, "int8": {"quantize": "int8"}}  # int8: calibration= set below


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    root = tmp_path_factory.mktemp("aotc-symbolic-bench")
    out = {}
    for name, (fn, dims) in MODELS.items():
        ctx = Context(seed=0)
        ContextExec(mlf.backends.new("xla"), ctx, fn)(np.zeros((1, *dims), np.float32))
        shape = ",".join(map(str, dims))
        calibration = root / f"{name}_calibration.npz"
        np.savez(calibration, x=np.random.default_rng(1).standard_normal(
            (256, *dims)).astype(np.float32))
        for (precision, options), batch in itertools.product(PRECISIONS.items(), ("N", 1, MAX)):
            folder = root / f"{name}_{precision}_{batch}"
            export_model(fn, [f"x:float32[{batch},{shape}]"], folder, ctx=ctx,
                         name=f"{name}_{precision}_{batch}", weights="blob",
                         maxima={"N": MAX} if batch == "N" else None, **options,
                         **({"calibration": calibration} if options else {}))
            out[name, batch, precision] = ExportedLibrary(folder)
    return out


def _call(lib: ExportedLibrary, batch: int, dims):
    """A zero-argument call of lib's NAME_run on fixed arrays, and its output array."""
    x = np.random.default_rng(0).standard_normal((batch, *dims)).astype(np.float32)
    y = np.empty((batch, 10), np.float32)
    args = [lib._ptr(x), lib._ptr(y), lib._ptr(lib.workspace)]
    if lib.symbols:
        args.insert(0, batch)
    run = lib._run
    assert run(*args) == 0
    return (lambda keep=(x, y): run(*args)), y  # keep: the arrays behind the pointers


CASES = [(model, batch, kind, precision) for precision in PRECISIONS for model in MODELS
         for batch in (1, MAX) for kind in ("static", "symbolic")]


def _id(case) -> str:
    return "-".join(map(str, case if case[-1] != "float32" else case[:-1]))


@pytest.mark.parametrize("model,batch,kind,precision", CASES, ids=list(map(_id, CASES)))
def test_latency(benchmark, libraries, model, batch, kind, precision):
    dims = MODELS[model][1]
    benchmark.group = f"symbolic batch: {model} {precision} batch {batch}"
    call, y = _call(libraries[model, "N" if kind == "symbolic" else batch, precision], batch,
                    dims)
    if kind == "symbolic":  # the same numbers as the static library of this batch
        static, y_static = _call(libraries[model, batch, precision], batch, dims)
        np.testing.assert_allclose(y, y_static, rtol=1e-5, atol=1e-5)
    benchmark(call)


def _median_seconds(call, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


RATIOS = [(m, b, p) for p in PRECISIONS for m in MODELS for b in (1, MAX)]


@pytest.mark.parametrize("model,batch,precision", RATIOS, ids=list(map(_id, RATIOS)))
def test_ratio(benchmark, libraries, model, batch, precision):
    """symbolic / static, from alternating blocks of calls (both see the same load)."""
    dims = MODELS[model][1]
    symbolic, _ = _call(libraries[model, "N", precision], batch, dims)
    static, _ = _call(libraries[model, batch, precision], batch, dims)
    calls = max(1, int(0.02 / max(_median_seconds(static, 5), 1e-6)))
    ratios = []
    for _ in range(15):
        s = _median_seconds(static, calls)
        ratios.append(_median_seconds(symbolic, calls) / s)
    ratio = float(np.median(ratios))
    benchmark.group = "symbolic / static ratio"
    benchmark.extra_info["ratio"] = round(ratio, 3)
    print(f"\n{model} {precision} batch {batch}: symbolic / static = {ratio:.3f}")
    benchmark.pedantic(lambda: None, rounds=1)
