"""The pass cache (aot.build.pass_cache): a second compile of one program loads the
passes' results; another program, a corrupt entry or a pass dump runs the passes."""
from __future__ import annotations

import numpy as np

import mlframework as mlf
from aot.build import pass_cache
from aot.build.pipeline import compile_program
from aot.program.program import from_graph
from mlframework import graph as G
from mlframework.core import shapes


def _graph(cols: int = 12):
    graph = G.Graph("test")
    with G.tracing(graph):
        x = G.parameter(shapes.make("float32", 8, 16))
        w = G.parameter(shapes.make("float32", 16, cols))
        h = G.relu(x @ w + 0.5)
        graph.outputs = [G.softmax(h), G.reduce_sum(h, 0)]
    return graph


def _program(cols: int = 12):
    return from_graph(_graph(cols))


def _hit(compiled) -> bool:
    return "pass cache" in compiled.timings and "simplify" not in compiled.timings


def _entries(folder):
    return sorted((folder / "passes").glob("*.pkl"))


def test_second_compile_hits_with_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    first = compile_program(_program(), build_lib=False, timings={"trace": 0.5})
    second = compile_program(_program(), build_lib=False, timings={"trace": 0.25})
    assert not _hit(first) and _hit(second)
    assert second.source == first.source
    assert second.kernels == first.kernels and second.aliases == first.aliases
    assert str(second.plan) == str(first.plan) and str(second.program) == str(first.program)
    assert list(second.timings)[0] == "trace" and second.timings["trace"] == 0.25
    assert len(_entries(tmp_path)) == 1


def test_another_program_or_donation_misses(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    base = compile_program(_program(), build_lib=False)
    wider = compile_program(_program(20), build_lib=False)
    donated = compile_program(_program(), build_lib=False, donated=(0,))
    assert not _hit(wider) and not _hit(donated)
    assert wider.source != base.source
    assert len(_entries(tmp_path)) == 3


def test_a_program_with_large_constants_is_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    monkeypatch.setattr(pass_cache, "MAX_CONSTANT_BYTES", 8 * 16 * 4 - 1)
    graph = G.Graph("consts")
    with G.tracing(graph):
        x = G.parameter(shapes.make("float32", 8, 16))
        graph.outputs = [x * np.arange(8 * 16, dtype=np.float32).reshape(8, 16)]
    for _ in range(2):
        assert not _hit(compile_program(from_graph(graph), build_lib=False))
    assert _entries(tmp_path) == []
    assert compile_program(_program(), build_lib=False) is not None and _entries(tmp_path)


def test_a_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    first = compile_program(_program(), build_lib=False)
    [entry] = _entries(tmp_path)
    for garbage in (b"not a pickle", entry.read_bytes()[:100]):
        entry.write_bytes(garbage)
        again = compile_program(_program(), build_lib=False)
        assert not _hit(again) and again.source == first.source
    assert _hit(compile_program(_program(), build_lib=False))


def test_a_pass_dump_bypasses_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    compile_program(_program(), build_lib=False)
    monkeypatch.setenv("AOTC_DUMP", "fuse,timing")
    dumped = compile_program(_program(), build_lib=False)
    out = capsys.readouterr().out
    assert not _hit(dumped) and "==== after fuse ====" in out and "simplify" in out
    monkeypatch.setenv("AOTC_DUMP", "timing")
    assert _hit(compile_program(_program(), build_lib=False))
    assert "pass cache" in capsys.readouterr().out


def test_a_hit_loads_the_built_library(monkeypatch):
    """In the suite's own cache, where the runtime unit is built already."""
    monkeypatch.delenv("AOTC_DUMP", raising=False)
    x = np.linspace(-1, 1, 8 * 16, dtype=np.float32).reshape(8, 16)
    w = np.linspace(1, -1, 16 * 12, dtype=np.float32).reshape(16, 12)
    backend = mlf.backends.new("c")
    backend.compile(_graph())
    exe = backend.compile(_graph())
    assert _hit(exe.compiled) and "load" in exe.compiled.timings
    np.testing.assert_allclose(exe.run([x, w])[1], np.maximum(x @ w + 0.5, 0).sum(0),
                               rtol=1e-5, atol=1e-5)
