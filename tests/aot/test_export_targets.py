"""aotc export --target: aarch64-linux-gnu run under qemu-user and wasm32-wasi run under
wasmtime give the host build's outputs. Cross compilers come from `zig cc` (PyPI
ziglang); qemu-user from Debian (`make test` installs it when missing)."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

import export_support as es
from aot.tools.verify import ExportedLibrary, random_inputs

INPUT = ["x:float32[3,1,8,8]"]
ZIG = [sys.executable, "-m", "ziglang", "cc"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


def _export(root, target: str):
    ckpt = es.checkpoint(root, "digits_cnn")
    key = "cnn-" + target.split("-")[0] if target != "host" else "cnn-host"
    return es.export(root, key, str(es.EXAMPLES / "digits_cnn.py") + ":model", INPUT,
                     checkpoint=ckpt, name="cnnx", target=target)


def _host_outputs(root, inputs):
    return ExportedLibrary(_export(root, "host")).run(*inputs)


def test_aarch64_under_qemu_matches_host(root, tmp_path):
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if qemu is None:
        pytest.fail("qemu-user is not installed: `apt-get install qemu-user` (make test "
                    "installs it when run as root); the aarch64 build cannot be run")
    folder = _export(root, "aarch64-linux-gnu")
    m = json.loads((folder / "manifest.json").read_text())
    assert m["target"] == "aarch64-linux-gnu"
    assert (folder / "libcnnx.so").read_bytes()[18] == 183  # e_machine EM_AARCH64
    # the library is built for glibc; the test program links it statically with musl
    exe = es.build_driver(folder, ZIG + ["-target", "aarch64-linux-musl", "-static"],
                          tmp_path / "driver-arm")
    inputs = random_inputs(m["inputs"], 0)
    got, _ = es.run_driver(exe, folder, inputs, m, prefix=[qemu])
    np.testing.assert_allclose(got[0], _host_outputs(root, inputs)[0], rtol=1e-5, atol=1e-5)


def test_wasm32_under_wasmtime_matches_host(root, tmp_path):
    folder = _export(root, "wasm32-wasi")
    m = json.loads((folder / "manifest.json").read_text())
    assert (folder / "libcnnx.a").exists() and not (folder / "libcnnx.so").exists()
    exe = es.build_driver(folder, ZIG + ["-target", "wasm32-wasi"], tmp_path / "driver.wasm",
                          flags=["-DNO_THREADS"])
    inputs = random_inputs(m["inputs"], 1)
    got = es.run_wasm(exe, folder, inputs, m)
    np.testing.assert_allclose(got[0], _host_outputs(root, inputs)[0], rtol=1e-5, atol=1e-5)


def test_blob_weights_refused_for_wasm(root):
    from aot.export import export_model
    from aot.export.signature import UsageError
    with pytest.raises(UsageError, match="wasm32"):
        export_model(str(es.EXAMPLES / "digits_cnn.py") + ":model", INPUT, root / "never",
                     checkpoint=es.checkpoint(root, "digits_cnn"), target="wasm32-wasi",
                     weights="blob", build=False)


def test_full_int8_on_aarch64_matches_the_host_vnni_build(root, tmp_path):
    """`--quantize int8` cross-compiled: aarch64 has no VNNI, so its int8 products run the
    portable loop, whose int32 sums equal the host's AVX-512 VNNI ones (where the host
    has it); the outputs agree as the float32 builds do."""
    from aot.export import export_model
    from mlframework.ml import datasets
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if qemu is None:
        pytest.fail("qemu-user is not installed: `apt-get install qemu-user` (make test "
                    "installs it when run as root); the aarch64 build cannot be run")
    np.savez(tmp_path / "calibration.npz", x=datasets.load_digits(seed=0)[0][0][:128])
    folders = {}
    for target in ("host", "aarch64-linux-gnu"):
        folders[target] = export_model(
            str(es.EXAMPLES / "digits_mlp.py") + ":model", ["x:float32[3,64]"],
            tmp_path / target, checkpoint=es.checkpoint(root, "digits_mlp"), name="q8",
            target=target, quantize="int8", calibration=tmp_path / "calibration.npz").out_dir
    arm = folders["aarch64-linux-gnu"]
    assert "mlf_gemm_s8(" in (arm / "q8.c").read_text()
    m = json.loads((arm / "manifest.json").read_text())
    exe = es.build_driver(arm, ZIG + ["-target", "aarch64-linux-musl", "-static"],
                          tmp_path / "driver-arm")
    inputs = [np.abs(x) for x in random_inputs(m["inputs"], 2)]  # pixels are >= 0
    got, _ = es.run_driver(exe, arm, inputs, m, prefix=[qemu])
    want = ExportedLibrary(folders["host"]).run(*inputs)[0]
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
