"""The C backend's build: warnings, sanitizers, compiler errors, the cache, threads, hooks."""
from __future__ import annotations

import re
import subprocess
import time

import jax
import numpy as np
import pytest

import mlframework as mlf
from aot.build import compiler as aot_build
from aot.build.pipeline import compile_program
from aot.program.program import from_graph
from mlframework import graph as G
from mlframework.core import shapes
from mlframework.ml import layers


def graph_of(fn, *arrays):
    graph = G.Graph("test")
    with G.tracing(graph):
        params = [G.parameter(shapes.make(a.dtype, *a.shape)) for a in arrays]
        out = fn(*params)
        graph.outputs = list(out) if isinstance(out, (list, tuple)) else [out]
    return graph


RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 16)).astype(np.float32)
W = RNG.standard_normal((16, 12)).astype(np.float32)
IMG = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
K3 = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
IDX = np.array([[1], [5], [0]], np.int32)


def _mlp(x, w):
    h = G.relu(x @ w + 0.5)
    return G.softmax(h), G.reduce_sum(h, 0), G.argmax(h, 1)


def _cnn(img, k):
    y = G.conv_general(img, k, padding=((1, 1), (1, 1)))
    # few-channel conv, vectors along kw (narrow output, wide kernel: mlf_conv_small.h)
    z = G.conv_general(img, G.concatenate([k, k, k], 3), padding=((1, 1), (2, 2)))
    return G.reduce_window_max(G.tanh(y), (1, 1, 2, 2), (1, 1, 2, 2)), G.cumsum(y, 3), z


def _indexing(x, idx):
    rows = G.gather(x, idx, offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,),
                    slice_sizes=(1, 16))
    return G.sort(rows, -1), G.argsort(x, 0), G.scatter_add(x, idx, rows, (1,), (0,), (0,))


SHIFTS = RNG.integers(-40, 40, (8, 16)).astype(np.int32)  # amounts past the width, negative


def _bits(x, s):
    i = G.bitcast_convert_type(x, "int32")
    shifted = G.shift_left(i, s) + G.shift_right_arithmetic(i, s) + G.shift_right_logical(i, s)
    counts = G.population_count(i) + G.count_leading_zeros(G.bitwise_and(i, s))
    special = G.lgamma(x) + G.digamma(x) + G.nextafter(x, G.tan(x)) + G.atanh(x) + G.acosh(x)
    return (shifted, counts, special, G.bitcast_convert_type(x, "uint8"), G.cumprod(x, 1),
            G.cummax(x, 0, reverse=True), G.cumlogsumexp(x, 1))


QKV = RNG.standard_normal((1, 2, 37, 19)).astype(np.float32)  # past one 32-row block


def _attention(q, pad):
    """Fused attention (runtime_c/mlf_attention.h): causal, with a padding mask read per
    block, 5 keys per sequence left out."""
    keep = G.iota(np.int32, (1, 1, 1, 37), 3) < G.convert(pad, np.int32) + 32
    return layers.scaled_dot_product_attention(q, q * 0.5, q, keep, causal=True)


REPRESENTATIVE = [(_mlp, (X, W)), (_cnn, (IMG, K3)), (_indexing, (X, IDX)), (_bits, (X, SHIFTS)),
                  (_attention, (QKV, np.zeros((1, 1, 1, 1), np.float32)))]
IDS = ["mlp", "cnn", "indexing", "bits", "attention"]


def _harness(compiled, arrays) -> str:
    """A C main that runs the generated code on the given inputs."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>",
             "int mlf_run(void* const*, void* const*, char*, const char*);", "int main(void) {"]
    for n, a in enumerate(arrays):
        data = ", ".join(repr(float(v)) if a.dtype.kind == "f" else str(int(v)) for v in a.ravel())
        ctype = {"f": "float", "i": "int32_t"}[a.dtype.kind]
        lines.append(f"  static {ctype} in{n}[] = {{{data}}};")
    outs = [compiled.program.values[o] for o in compiled.program.outputs]
    for n, o in enumerate(outs):
        lines.append(f"  void* out{n} = malloc({max(o.nbytes, 1)});")
    lines.append(f"  void* ins[] = {{{', '.join(f'in{n}' for n in range(len(arrays)))}}};")
    lines.append(f"  void* outs[] = {{{', '.join(f'out{n}' for n in range(len(outs)))}}};")
    lines.append(f"  char* arena = aligned_alloc(64, {max(compiled.plan.arena_bytes, 64)});")
    lines.append(f"  static char consts[{max(compiled.plan.const_bytes, 1)}];")
    lines += ["  int status = mlf_run(ins, outs, arena, consts);"]
    lines += [f"  free(out{n});" for n in range(len(outs))]
    lines += ["  free(arena);", "  return status;", "}"]
    return compiled.source + "\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
@pytest.mark.parametrize("fn,arrays", REPRESENTATIVE, ids=IDS)
def test_generated_c_has_no_warnings(fn, arrays, openmp, tmp_path):
    compiled = compile_program(from_graph(graph_of(fn, *arrays)), build_lib=False)
    path = tmp_path / "k.c"
    path.write_text(compiled.source)
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "k.o"), "-Wall", "-Wextra", "-Werror",
                           *aot_build.FLAGS, *openmp, f"-I{aot_build.RUNTIME}", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("fn,arrays", REPRESENTATIVE, ids=IDS)
def test_sanitizers_run_clean(fn, arrays, tmp_path):
    compiled = compile_program(from_graph(graph_of(fn, *arrays)), build_lib=False)
    exe = tmp_path / "k"
    proc = aot_build.compile_standalone(_harness(compiled, arrays), exe,
                                        ["-g", "-fsanitize=address,undefined",
                                         "-fno-sanitize-recover=all"])
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                         env={"ASAN_OPTIONS": "detect_leaks=1", "OMP_NUM_THREADS": "2"})
    assert run.returncode == 0 and "runtime error" not in run.stderr, run.stderr


def test_compiler_failure_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    with pytest.raises(aot_build.CompileError, match=r"\.c.*\n.*error") as info:
        aot_build.build("int mlf_run(void) { return undeclared_name; }\n")
    assert str(tmp_path) in str(info.value)


def test_cache_hit_skips_the_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("MLF_CACHE_DIR", str(tmp_path))
    source = compile_program(from_graph(graph_of(_mlp, X, W)), build_lib=False).source
    aot_build.build(source)
    assert len(list(tmp_path.glob("*.so"))) == 1
    aot_build._LOADED.clear()
    start = time.perf_counter()
    aot_build.build(source)
    assert time.perf_counter() - start < 0.2
    assert len(list(tmp_path.glob("*.so"))) == 1


def test_results_do_not_depend_on_thread_count():
    a = RNG.standard_normal((300, 200)).astype(np.float32)
    b = RNG.standard_normal((200, 260)).astype(np.float32)
    exe = mlf.backends.new("c").compile(
        graph_of(lambda a, b: [G.softmax(a @ b), G.reduce_sum(a, 0)], a, b))
    lib = exe.compiled.lib
    runs = []
    for n in (1, 2):
        lib.mlf_run_set_threads(n)
        runs.append(exe.run([a, b]))
    lib.mlf_run_set_threads(2)
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(runs[0][1], a.sum(0), rtol=1e-5, atol=1e-5)


def test_education_hooks():
    exe = mlf.backends.new("c").compile(graph_of(lambda x, w: G.relu(x @ w + 0.5), X, W))
    assert "mlf_sgemm" in exe.source and re.search(r"static void \w+_[0-9a-f]{8}\(", exe.source)
    assert len(exe.fusion_groups) == 1 and exe.fusion_groups[0]["kind"] == "dot"
    assert exe.memory_plan.arena_bytes >= 0 and "arena" in str(exe.memory_plan)


def test_rng_bits_match_jax():
    key = np.array([0, 42], np.uint32)
    exe = mlf.backends.new("c").compile(graph_of(lambda k: G.rng_bits(k, (3, 70)), key))
    want = jax.random.bits(jax.random.wrap_key_data(key, impl="threefry2x32"), (3, 70), np.uint32)
    np.testing.assert_array_equal(exe.run([key])[0], np.asarray(want))


def test_run_reuses_pointers_and_outputs_only_when_safe():
    """Inputs keep their pointer between calls with the same array (mutations are seen);
    an output array is reused only once the caller dropped it."""
    exe = G.Exec(mlf.backends.new("c"), lambda x: x * 2.0)
    x = np.ones(3, np.float32)
    kept = exe(x).numpy()
    x[:] = 5.0
    view = exe(x).numpy()[1:]
    np.testing.assert_array_equal(kept, [2, 2, 2])
    np.testing.assert_array_equal(view, [10, 10])
    np.testing.assert_array_equal(exe(np.full(3, 7.0, np.float32)).numpy(), [14, 14, 14])
    first = exe(x)
    address = first.numpy().ctypes.data
    del first
    assert exe(x).numpy().ctypes.data == address  # dropped: recycled
    np.testing.assert_array_equal(kept, [2, 2, 2])
    np.testing.assert_array_equal(view, [10, 10])


def test_donated_arrays_become_outputs_only_when_nobody_holds_them():
    """A donated input's array is taken by the next call's output of its dtype and shape,
    unless something still holds it or it does not own its memory. (The output reads
    the input transposed, so it cannot be written in place.)"""
    exe = mlf.backends.new("c").compile(graph_of(lambda v, g: G.transpose(v, (1, 0)) - 0.5 * g,
                                                 np.ones((2, 2), np.float32),
                                                 np.ones((2, 2), np.float32)),
                                        donate=(0,))
    assert exe.compiled.aliases == {}
    g = np.ones((2, 2), np.float32)
    v = np.full((2, 2), 3.0, np.float32)
    address = v.ctypes.data
    out = exe.run([v, g])[0]
    del v
    out = exe.run([out, g])[0]
    assert out.ctypes.data == address and out.tolist() == [[2.0] * 2] * 2
    kept = out
    out = exe.run([kept, g])[0]
    out = exe.run([out, g])[0]
    np.testing.assert_array_equal(kept, 2.0)  # still held by the caller: never overwritten
    assert out.ctypes.data != kept.ctypes.data and out.tolist() == [[1.0] * 2] * 2
    base = np.full((4, 2), 4.0, np.float32)
    out = exe.run([base[:2], g])[0]
    out = exe.run([out, g])[0]
    np.testing.assert_array_equal(base, 4.0)  # a view's memory is the caller's


def test_donated_results_are_updated_in_place_unless_someone_holds_them():
    """An output that replaces a donated input (same dtype and shape, read only at the
    element written) is written over it when that input is this output's array from the
    last call and only the caller holds it; otherwise it goes to another array."""
    exe = mlf.backends.new("c").compile(graph_of(lambda v, g: (v - 0.5 * g, G.reduce_sum(g, 0)),
                                                 np.ones(4, np.float32), np.ones(4, np.float32)),
                                        donate=(0,))
    assert exe.compiled.aliases == {0: 0}
    g = np.ones(4, np.float32)
    first = np.full(4, 3.0, np.float32)
    out = exe.run([first, g])[0]  # the caller's own array: never written over
    np.testing.assert_array_equal(first, 3.0)
    address = out.ctypes.data
    for want in (2.0, 1.5, 1.0):
        out = exe.run([out, g])[0]
        assert out.ctypes.data == address and out.tolist() == [want] * 4  # in place
    kept = out
    out = exe.run([kept, g])[0]
    np.testing.assert_array_equal(kept, 1.0)  # held under a second name: not overwritten
    assert out.ctypes.data != address and out.tolist() == [0.5] * 4
    step = G.Exec(mlf.backends.new("c"), lambda v, g: v - 0.5 * g, donate=(0,))
    v = step(np.zeros(4, np.float32), g)
    for _ in range(3):
        v = step(v, g)
    np.testing.assert_array_equal(v.numpy(), -2.0)
    seen = v.numpy()  # the caller holds the array itself now: the next result is elsewhere
    v = step(v, g)
    np.testing.assert_array_equal(seen, -2.0)
    np.testing.assert_array_equal(v.numpy(), -2.5)
