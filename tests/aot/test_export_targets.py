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
