"""The exported C interface as a production engineer meets it: inference on a trained
state (NAME_run_state, the state macros), train-step argument checks, what allocates in
serial and OpenMP builds, the workspace idiom when the arena is empty, the exported
symbols, and the Makefile (cross-compiling a host export, no environment paths, the
file list the CLI prints)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import export_support as es
from aot.export.trace import load_context
from aot.tools.verify import ExportedLibrary, reference_outputs
from mlframework import graph as G
from test_export import cnn  # noqa: F401  (the shared exports)
from test_export_targets import _export as _target_export
from test_export_train import BATCH, _batches, trained  # noqa: F401  (the shared export)

ZIG = [sys.executable, "-m", "ziglang", "cc"]
_W = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) * 0.05
_S = np.random.default_rng(1).standard_normal((32, 32)).astype(np.float32)


def wide_and_small(x, s):
    """A product large enough to split over threads and one too small to (each in a
    parallel region with its fused tanh)."""
    return {"big": G.reduce_sum(G.tanh(x @ G.const(_W)), axes=[1]),
            "small": G.tanh(s @ G.const(_S))}


def doubled(x):
    """One pointwise kernel writing the output: the memory plan's arena is empty."""
    return x * 2.0


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


@pytest.fixture(scope="module")
def omp(root):
    return es.export(root, "omp-wide", f"{__file__}:wide_and_small",
                     ["x:float32[256,256]", "s:float32[8,32]"], name="ompw", openmp=True)


@pytest.fixture(scope="module")
def serial(root):
    return es.export(root, "serial-wide", f"{__file__}:wide_and_small",
                     ["x:float32[256,256]", "s:float32[8,32]"], name="serw")


@pytest.fixture(scope="module")
def rnn(root):
    """The scan RNN of test_export.py (the same export folder)."""
    return es.export(root, "scan-rnn", f"{Path(__file__).with_name('test_export.py')}:scan_rnn",
                     ["h0:float32[3,16]", "xs:float32[12,3,8]"], name="rnn")


@pytest.fixture(scope="module")
def empty_arena(root):
    return es.export(root, "empty-arena", f"{__file__}:doubled", ["x:float32[3,5]"],
                     name="dbl")


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _defines(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+?)\s*(?:/\*.*)?$", header, re.M))


# ---- inference on the trained state ----

def test_run_state_runs_the_trained_weights(trained):  # noqa: F811
    folder, ckpt = trained
    m = _manifest(folder)
    lib = ExportedLibrary(folder)
    state = lib.train_state()
    x, _ = next(_batches(1))
    np.testing.assert_allclose(lib.run_state(state, x)[0], lib.run(x)[0], rtol=1e-5, atol=1e-5)
    for xb, yb in _batches(20):
        lib.train_step(state, xb, yb)
    trained_out = lib.run_state(state, x)[0]
    assert np.abs(trained_out - lib.run(x)[0]).max() > 1e-2  # training changed the weights
    # the reference: the xla backend on a context holding the state's variables
    ctx = load_context(ckpt)
    from mlframework.core.tensors import Tensor
    from mlframework.core.dtypes import as_dtype
    for s in m["train"]["state"]:
        var = ctx.get_variable(s["name"]) if s["name"] in m["variables"] else None
        if var is None:
            continue
        dtype, shape = s["type"].split("[")[0], json.loads("[" + s["type"].split("[", 1)[1])
        n = int(np.prod(shape)) * np.dtype(as_dtype(dtype).numpy).itemsize
        value = state[s["offset"]:s["offset"] + n].view(as_dtype(dtype).numpy).reshape(shape)
        var.value = Tensor(value.copy())
    want = reference_outputs({**m, "packed_weights": [], "rounded_weights": []}, [x], ctx=ctx)
    np.testing.assert_allclose(trained_out, want[0], rtol=1e-5, atol=1e-5)


def test_run_state_of_a_cnn_with_batch_norm(root):
    """Batch norm's moving statistics come from the state too: on the initial state
    NAME_run_state gives NAME_run's outputs (the export of test_export_train)."""
    from aot.export import TrainSpec
    folder = es.export(root, "cnn-train", str(es.EXAMPLES / "digits_cnn.py") + ":model",
                       ["x:float32[16,1,8,8]"], checkpoint=es.checkpoint(root, "digits_cnn"),
                       name="cnnt", train=TrainSpec(["y:int32[16]"], optimizer="adamw:0.002"))
    lib = ExportedLibrary(folder)
    x = lib.inputs_like(3)[0]
    np.testing.assert_allclose(lib.run_state(lib.train_state(), x)[0], lib.run(x)[0],
                               rtol=1e-5, atol=1e-5)


def test_state_layout_is_in_the_header(trained):  # noqa: F811
    folder, _ = trained
    m = _manifest(folder)
    defines = _defines((folder / "mlpt.h").read_text())
    assert int(defines["MLPT_STATE_NUM_VARIABLES"]) == len(m["train"]["state"])
    assert int(defines["MLPT_STATE_BYTES"]) == m["train"]["state_bytes"]
    assert int(defines["MLPT_RUN_STATE_ARENA_BYTES"]) == m["train"]["run_state_arena_bytes"]
    for s in m["train"]["state"]:
        macro = "MLPT_STATE_" + re.sub(r"[^A-Za-z0-9]", "_", s["name"]).upper()
        assert int(defines[macro + "_OFFSET"]) == s["offset"], s
        shape = json.loads("[" + s["type"].split("[", 1)[1])
        assert int(defines[macro + "_SIZE"]) == int(np.prod(shape))
        assert int(defines[macro + "_BYTES"]) == int(np.prod(shape)) * 4  # float32, int32
        assert defines[macro + "_DTYPE"] == f'"{s["type"].split("[")[0]}"'
    assert int(defines["MLPT_TRAIN_Y_CLASSES"]) == 10


def test_state_macro_names_stay_distinct():
    from aot.export.artifact import c_macro_names
    assert c_macro_names(["a/b", "a_b", "a.b", "logits/dense/weights", "ü"]) == [
        "A_B", "A_B_2", "A_B_3", "LOGITS_DENSE_WEIGHTS", "_"]


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_training_sources_compile_without_warnings(trained, openmp, tmp_path):  # noqa: F811
    folder, _ = trained
    for source in ("mlpt_train.c", "mlpt_run_state.c"):
        proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "x.o"), "-std=gnu99", "-O2",
                               "-Wall", "-Wextra", "-Werror", *openmp,
                               f"-I{folder / 'runtime'}",
                               str(folder / source)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# ---- argument checks ----

def test_train_step_checks_its_arrays_and_labels(trained):  # noqa: F811
    folder, _ = trained
    lib = ExportedLibrary(folder)
    ffi, step = lib.ffi, lib.lib.mlpt_train_step
    run_state = lib.lib.mlpt_run_state
    state = lib.train_state()
    before = state.copy()
    x, y = next(_batches(1))
    loss = _aligned(64).view(np.float32)
    raw = _aligned(x.nbytes + 64)
    ws = _aligned(_manifest(folder)["train"]["arena_bytes"])
    p = lib._ptr

    def call(xp, yp, lp, sp=None):
        return step(sp if sp is not None else p(state), xp, yp, lp, p(ws))
    good = [p(x), p(y), p(loss)]
    for k in range(3):  # x, y, loss each one byte off its element alignment
        args = list(good)
        args[k] = ffi.cast("void*", raw.ctypes.data + 1)
        assert call(*args) == 2, k
        args[k] = ffi.NULL
        assert call(*args) == 1, k
    assert call(*good, sp=ffi.cast("void*", state.ctypes.data + 4)) == 2
    for bad in (-1, 10, 2**31 - 1):
        yb = y.copy()
        yb[7] = bad
        assert call(p(x), p(yb), p(loss)) == 4, bad
    assert "label" in ffi.string(lib.lib.mlpt_strerror(4)).decode()
    np.testing.assert_array_equal(state, before)  # no failed call wrote the state
    assert call(*good) == 0 and not np.array_equal(state, before)
    out = np.zeros((BATCH, 10), np.float32)
    rs_ws = _aligned(_manifest(folder)["train"]["run_state_arena_bytes"])
    assert run_state(ffi.NULL, p(x), p(out), p(rs_ws)) == 1
    assert run_state(ffi.cast("void*", state.ctypes.data + 8), p(x), p(out), p(rs_ws)) == 2
    assert run_state(p(state), ffi.cast("void*", raw.ctypes.data + 2), p(out), p(rs_ws)) == 2
    assert run_state(p(state), p(x), p(out), ffi.cast("void*", rs_ws.ctypes.data + 16)) == 2
    assert run_state(p(state), p(x), p(out), ffi.NULL) == 0  # the static workspace


def _aligned(nbytes: int) -> np.ndarray:
    """`nbytes` zero bytes starting at a 64-byte boundary."""
    raw = np.zeros(nbytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


# ---- allocation ----

def _counts(out: str, what: str) -> dict[str, int]:
    line = next(ln for ln in out.splitlines() if ln.startswith(what + ":"))
    counts = dict((k, int(v)) for v, k in [(m[1], m[0]) for m in
                                           re.findall(r"(\w+) (\d+)(?=[,)])", line)])
    counts["total"] = int(re.search(r": (\d+) allocator calls", line)[1])
    regions = re.search(r"(\d+) parallel regions, (\d+) of one thread", line)
    counts["regions"], counts["regions_one"] = int(regions[1]), int(regions[2])
    return counts


def _count_run(folder, tmp_path, threads: str | None, openmp: bool):
    m = _manifest(folder)
    flags = ["-DCOUNT_MALLOC"] + (["-DCOUNT_REGIONS", "-fopenmp"] if openmp else [])
    exe = es.build_driver(folder, ["gcc"], tmp_path / "driver", link="shared", flags=flags)
    env = {**os.environ, "OMP_NUM_THREADS": threads} if threads else None
    _, out = es.run_driver(exe, folder, ExportedLibrary(folder).inputs_like(0), m,
                           mode="malloc", env=env)
    probes = _counts(out, "probes")
    assert probes["malloc"] == 1 and probes["memalign"] == 1 and probes["free"] == 2, out
    return _counts(out, "first run"), _counts(out, "10 more runs"), out


def _prose(header: str) -> str:
    """The header's comments as one line of words."""
    return " ".join(header.replace("*", " ").split())


@pytest.mark.parametrize("which", ["serial", "cnn", "rnn"])
def test_serial_run_never_allocates(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    first, later, out = _count_run(folder, tmp_path, None, openmp=False)
    assert first["total"] == 0 and later["total"] == 0, out
    header = (folder / f"{_manifest(folder)['name']}.h").read_text()
    assert "no function of this library calls the allocator" in _prose(header)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_openmp_allocations_are_what_the_header_says(omp, threads, tmp_path):
    """After NAME_set_threads: one memalign and one free per parallel region on one
    thread, nothing else; at 2 threads the big product's regions allocate nothing."""
    first, later, out = _count_run(omp, tmp_path, threads, openmp=True)
    for counts, runs in ((first, 1), (later, 10)):
        assert counts["regions"] >= 2 * runs, out  # the product and the small one at least
        assert counts["memalign"] == counts["free"] == counts["regions_one"], out
        assert counts["total"] == 2 * counts["regions_one"], out  # no malloc, calloc...
    if threads == "1":
        assert later["regions_one"] == later["regions"], out
    else:
        assert 0 < later["regions_one"] < later["regions"], out  # the small one only
    header = _prose((omp / "ompw.h").read_text())
    assert "every parallel region that runs on one thread (OMP_NUM_THREADS=1, or a kernel " \
        "too small to split) allocates its team with memalign and frees it" in header
    assert "a call whose kernels are all large enough to split allocates nothing; any other " \
        "call makes one memalign and one free per parallel region on one thread" in header
    assert "no allocator calls" not in header


def test_train_step_and_run_state_never_allocate(trained, tmp_path):  # noqa: F811
    """A C program using the state macros: train_init, train_step and run_state with
    every allocator function counted."""
    folder, _ = trained
    src = tmp_path / "train_count.c"
    src.write_text(TRAIN_COUNT)
    exe = tmp_path / "train_count"
    cmd = ["gcc", "-O1", "-std=gnu99", "-Wall", "-Wextra", "-Werror", f"-I{folder}", str(src),
           f"-L{folder}", "-lmlpt", f"-Wl,-rpath,{folder}", "-lm", "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "probe 2" in result.stdout and "inside 0" in result.stdout, result.stdout
    m = _manifest(folder)
    entry = next(s for s in m["train"]["state"] if s["name"] == "logits/dense/biases")
    assert f"bias offset {entry['offset']}" in result.stdout


def test_training_runs_clean_under_sanitizers(trained, tmp_path):  # noqa: F811
    """The same program built from the sources with ASan and UBSan (no counting)."""
    folder, _ = trained
    src = tmp_path / "train_asan.c"
    src.write_text(TRAIN_COUNT)
    exe = tmp_path / "train_asan"
    es.run_sanitized(src, folder, ["mlpt.c", "mlpt_weights.c", "mlpt_train.c",
                                   "mlpt_run_state.c"], exe)


TRAIN_COUNT = r"""
#include <stdio.h>
#include <string.h>
#include "mlpt.h"
""" + es.COUNTING_ALLOCATOR + r"""

static unsigned char state[MLPT_STATE_BYTES] __attribute__((aligned(MLPT_WORKSPACE_ALIGN)));
static unsigned char ws[MLPT_TRAIN_ARENA_BYTES] __attribute__((aligned(MLPT_WORKSPACE_ALIGN)));
static unsigned char rs[MLPT_RUN_STATE_ARENA_BYTES] __attribute__((aligned(MLPT_WORKSPACE_ALIGN)));
static float x[MLPT_TRAIN_X_SIZE], out[MLPT_OUTPUT_SIZE];
static int32_t y[MLPT_TRAIN_Y_SIZE];

int main(void) {
  for (int i = 0; i < MLPT_TRAIN_X_SIZE; i++) x[i] = (float)(i % 17) / 17.0f;
  for (int i = 0; i < MLPT_TRAIN_Y_SIZE; i++) y[i] = i % MLPT_TRAIN_Y_CLASSES;
  if (mlpt_train_init(state)) return 1;
  float loss = 0;
  /* refused before any element is read: UBSan sees no misaligned load */
  if (mlpt_train_step(state, (const float*)(const void*)((const char*)x + 1), y, &loss, ws)
      != MLPT_ERR_ALIGNMENT) return 4;
  y[3] = MLPT_TRAIN_Y_CLASSES;
  if (mlpt_train_step(state, x, y, &loss, ws) != MLPT_ERR_LABEL) return 5;
  y[3] = 3 % MLPT_TRAIN_Y_CLASSES;
  counting = 1;
  void* volatile probe = malloc(8);
  free(probe);
  counting = 0;
  printf("probe %ld\n", calls);
  calls = 0;
  counting = 1;
  for (int s = 0; s < 3; s++) {
    if (mlpt_train_step(state, x, y, &loss, ws)) return 2;
    if (mlpt_run_state(state, x, out, rs)) return 3;
  }
  counting = 0;
  printf("inside %ld\n", calls);
  float bias[MLPT_STATE_LOGITS_DENSE_BIASES_SIZE];
  memcpy(bias, state + MLPT_STATE_LOGITS_DENSE_BIASES_OFFSET, MLPT_STATE_LOGITS_DENSE_BIASES_BYTES);
  printf("bias offset %d, loss %g, bias[0] %g\n", MLPT_STATE_LOGITS_DENSE_BIASES_OFFSET, loss,
         bias[0]);
  return 0;
}
"""


# ---- the workspace idiom, the symbols ----

def _header_example(header: str) -> list[str]:
    """The code lines of the header's "Calling it" example."""
    block = header.split("Calling it:")[1].split("Arrays are dense")[0]
    return [ln[len(" *     "):] for ln in block.splitlines() if ln.startswith(" *     ")]


@pytest.mark.parametrize("compiler", ["gcc-c99", "gcc-c11", "zig"])
def test_documented_idiom_compiles_pedantic_with_an_empty_arena(empty_arena, compiler, tmp_path):
    header = (empty_arena / "dbl.h").read_text()
    assert "arena 0 bytes" in (empty_arena / "dbl.c").read_text()  # the plan needs none
    assert "#define DBL_ARENA_BYTES 64" in header and _manifest(empty_arena)["arena_bytes"] == 64
    example = _header_example(header)
    assert any("ws[DBL_ARENA_BYTES]" in ln for ln in example)
    src = tmp_path / "idiom.c"
    src.write_text("#include <stdio.h>\n" + "\n".join(
        ln for ln in example if ln.startswith(("#include", "static"))) +
        "\nint main(void) {\n  for (int i = 0; i < DBL_X_SIZE; i++) x[i] = (float)i;\n" +
        "\n".join("  " + ln for ln in example if not ln.startswith(("#include", "static"))) +
        "\n  return status != DBL_OK || output[4] != 8.0f;\n}\n")
    cc = {"gcc-c99": ["gcc", "-std=c99"], "gcc-c11": ["gcc", "-std=c11"],
          "zig": ZIG + ["-std=c99"]}[compiler]
    exe = tmp_path / "idiom"
    proc = subprocess.run([*cc, "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{empty_arena}",
                           str(src), str(empty_arena / "libdbl.a"), "-lm", "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(exe)]).returncode == 0


def test_every_exported_symbol_is_documented(trained):  # noqa: F811
    folder, _ = trained
    header = (folder / "mlpt.h").read_text()
    declared = set(re.findall(r"^[A-Za-z][\w *]*?\b(\w+)\(", header, re.M))
    for lib, nm in ((folder / "libmlpt.so", ["nm", "-D", "--defined-only"]),
                    (folder / "libmlpt.a", ["nm", "--defined-only", "-g"])):
        text = subprocess.run([*nm, str(lib)], capture_output=True, text=True).stdout
        symbols = {ln.split()[-1] for ln in text.splitlines()
                   if len(ln.split()) == 3 and ln.split()[1] in "TDRB"}
        assert symbols, text
        assert symbols <= declared, symbols - declared
        assert {"mlpt_run", "mlpt_run_state", "mlpt_train_step", "mlpt_weights",
                "mlpt_set_threads"} <= symbols
    for doc in ("const char* mlpt_weights(void);", "int mlpt_set_threads(int n);"):
        assert doc in header
    assert "_forward" not in header


# ---- the Makefile ----

def test_documented_cross_compile_line_works_on_a_host_export(serial, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(serial, copy, ignore=shutil.ignore_patterns("*.o", "*.so", "*.a", ".done"))
    dry = subprocess.run(["make", "-n", "-C", str(copy)], capture_output=True, text=True).stdout
    assert "-march=native" in dry  # the exported compiler keeps its CPU flags
    cc = " ".join(ZIG + ["-target", "aarch64-linux-gnu"])  # `zig cc -target ...` from PyPI
    result = subprocess.run(["make", "-s", "-j2", "-C", str(copy), f"CC={cc}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "libserw.so").read_bytes()[18] == 183  # e_machine EM_AARCH64
    assert (copy / "libserw.a").exists()


def test_makefiles_name_no_path_of_the_exporting_environment(root, serial, tmp_path):
    cross = _target_export(root, "aarch64-linux-gnu")  # the zig cross build of test_export_targets
    for folder in (serial, cross):
        text = (folder / "Makefile").read_text()
        for path in {sys.prefix, sys.executable, os.path.realpath(sys.executable)}:
            assert path not in text, (folder, path)
    text = (cross / "Makefile").read_text()
    assert "ZIG = python3 -m ziglang" in text and "CC = $(ZIG) cc -target aarch64-linux-gnu" \
        in text
    # with the environment's python3 first on PATH (an activated virtualenv), plain `make`
    copy = tmp_path / "cross"
    shutil.copytree(cross, copy, ignore=shutil.ignore_patterns("*.o", "*.so", "*.a", ".done"))
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "python3")):
        pytest.fail(f"{os.path.dirname(sys.executable)} has no python3 for the Makefile's ZIG")
    result = subprocess.run(["make", "-s", "-j2", "-C", str(copy)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "libcnnx.so").read_bytes()[18] == 183


def test_cli_lists_the_built_libraries(tmp_path, capsys):
    from aot.tools.cli import main
    out = tmp_path / "out"
    assert main(["export", f"{__file__}:doubled", "--input", "x:float32[3,5]", "--name", "dbl",
                 "-o", str(out)]) == 0
    listed = {line.strip() for line in capsys.readouterr().out.splitlines()}
    for f in ("libdbl.so", "libdbl.a", "dbl.h", "dbl.c", "Makefile", "manifest.json"):
        assert str(out / f) in listed, f
        assert (out / f).exists()
