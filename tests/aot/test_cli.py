"""The `aotc` command line: help, one-line usage errors with exit status 2, inspect."""
from __future__ import annotations

import subprocess
import sys

import pytest

import export_support as es
from aot.tools.cli import main

MLP = str(es.EXAMPLES / "digits_mlp.py") + ":model"
CNN = str(es.EXAMPLES / "digits_cnn.py") + ":model"


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory):
    return es.checkpoint(es.shared_root(tmp_path_factory), "digits_mlp")


def _aotc(*args):
    return subprocess.run([sys.executable, "-m", "aot.tools.cli", *args], capture_output=True,
                          text=True, cwd=es.ROOT)


def test_help_is_complete():
    top = _aotc("--help")
    assert top.returncode == 0
    for word in ("export", "verify", "inspect"):
        assert word in top.stdout
    options = {"export": ["--input", "--checkpoint", "--name", "--weights", "--target",
                          "--train", "--label", "--loss", "--optimizer", "--openmp", "-o",
                          "embed", "blob", "file", "examples:"],
               "verify": ["--tolerance", "--trials", "--seed", "examples:"],
               "inspect": ["--input", "--checkpoint", "--html", "examples:"]}
    for command, words in options.items():
        out = _aotc(command, "--help")
        assert out.returncode == 0, out.stderr
        for w in words:
            assert w in out.stdout, (command, w)


@pytest.mark.parametrize("args, message", [
    (["export", MLP, "--input", "x:float32[1,64", "-o", "/tmp/never"], "NAME:DTYPE[DIMS]"),
    (["export", MLP, "--input", "x:complex7[1]", "-o", "/tmp/never"], "unknown dtype"),
    (["export", "no_such_module_xyz:model", "--input", "x:float32[1]", "-o", "/tmp/never"],
     "cannot import module"),
    (["export", str(es.EXAMPLES / "nothere.py") + ":model", "--input", "x:float32[1]",
      "-o", "/tmp/never"], "does not exist"),
    (["export", str(es.EXAMPLES / "digits_mlp.py") + ":nope", "--input", "x:float32[1,64]",
      "-o", "/tmp/never"], "has no function 'nope'"),
    (["export", MLP, "--input", "x:float32[1,64]", "-o", "/tmp/never"], "--checkpoint"),
    (["inspect", MLP, "--input", "x:float32[1,64]", "--checkpoint", "/tmp/no/such/dir"],
     "checkpoint"),
    (["verify", "/tmp/no/such/export"], "not an aotc export folder"),
])
def test_usage_errors_are_one_line_with_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err and err.startswith("aotc ")


def test_mismatched_checkpoint(mlp_ckpt, capsys):
    assert main(["export", CNN, "--input", "x:float32[1,1,8,8]", "--checkpoint", str(mlp_ckpt),
                 "-o", "/tmp/never", "--no-build"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "does not match the model" in err and "block0/batch_norm/beta" in err


def test_wrong_input_shape_for_the_model(mlp_ckpt, capsys):
    assert main(["export", MLP, "--input", "x:float32[1,63]", "--checkpoint", str(mlp_ckpt),
                 "-o", "/tmp/never", "--no-build"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--input" in err and "[63, 128]" in err


def test_wrong_input_shape_for_a_graph_function(capsys):
    fn = str(es.ROOT / "tests" / "aot" / "test_export.py") + ":multi_io"
    assert main(["export", fn, "--input", "a:float32[5,7]", "--input", "b:float32[6,3]",
                 "--input", "scale:float32[]", "-o", "/tmp/never", "--no-build"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "check --input" in err


def test_inspect_text_and_html(mlp_ckpt, tmp_path, capsys):
    page = tmp_path / "mlp.html"
    assert main(["inspect", MLP, "--input", "x:float32[2,64]", "--checkpoint", str(mlp_ckpt),
                 "--html", str(page)]) == 0
    out = capsys.readouterr().out
    for section in ("traced graph", "after pass: simplify", "after pass: fuse",
                    "fusion groups", "memory plan", "kernels"):
        assert f"==== {section}" in out
    assert "digits_mlp.py:20" in out           # the user's line for fused nodes
    assert "FLOPs" in out and "arena" in out and "live" in out
    assert "static void k0_" in out            # the kernels' C
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "k0_" in html
    assert "src=" not in html and "href='http" not in html  # self-contained


def test_export_from_the_command_line(mlp_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", MLP, "--input", "x:float32[1,64]", "--checkpoint", str(mlp_ckpt),
                 "--name", "digits", "--weights", "file", "-o", str(out), "--no-build"]) == 0
    for f in ("digits.h", "digits.c", "digits_weights.c", "digits_weights.bin", "Makefile",
              "manifest.json", "runtime/mlf_runtime.h"):
        assert (out / f).exists(), f
    assert "kernels" in capsys.readouterr().out
