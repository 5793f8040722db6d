"""The `aotc` command line: help, one-line usage errors with exit status 2, inspect."""
from __future__ import annotations

import re
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
                          "--hf", "--decode", "--max-seq", "--prefill-len",
                          "embed", "blob", "file", "examples:"],
               "verify": ["--tolerance", "--trials", "--seed", "examples:"],
               "inspect": ["--input", "--checkpoint", "--html", "--peak-gflops", "--peak-gbs",
                           "--hf", "--decode", "--max-seq", "--step", "examples:"]}
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
    assert err.count("test_export.py:") == 1, err  # the user's line, named once


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
    assert re.search(r"static void \w+_[0-9a-f]{8}\(", out)  # the kernels' C
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


# ---- every user mistake: one line saying what to fix, exit status 2, nothing written ----

USER_MODULE = '''
from mlframework import graph as G


def double(x):
    return G.tanh(x) * 2.0


def raises_runtime(x):
    raise RuntimeError("the config file is missing")


def fails_assert(x):
    assert x.shape == (3,), "expected three values"
    return x


def divides_by_zero(x):
    return x * (1 / 0)


class ModelBug(Exception):
    pass


def raises_custom(x):
    raise ModelBug("layer 3 is not built")


def named_output(x):
    return {"x": G.tanh(x)}
'''


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "user_model.py"
    path.write_text(USER_MODULE)
    return path


def _one_line_error(capsys, *message_parts) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("aotc ") and "Traceback" not in err, err
    for part in message_parts:
        assert part in err, (part, err)
    return err


def _fails(args, tmp_path, capsys, *message_parts) -> str:
    out = tmp_path / "never"
    assert main([*args, "-o", str(out)] if args[0] == "export" else args) == 2
    assert not out.exists()  # nothing written
    return _one_line_error(capsys, *message_parts)


def test_syntax_error_in_the_users_module(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("def model(x):\n    return x +\n")
    _fails(["export", f"{bad}:model", "--input", "x:float32[2]"], tmp_path, capsys,
           "syntax error", f"{bad}:2")


def test_indentation_error_in_the_users_module(tmp_path, capsys):
    bad = tmp_path / "indented.py"
    bad.write_text("def model(x):\nreturn x\n")
    _fails(["inspect", f"{bad}:model", "--input", "x:float32[2]"], tmp_path, capsys,
           "syntax error", f"{bad}:2")


def test_module_raising_at_import(tmp_path, capsys):
    bad = tmp_path / "raises.py"
    bad.write_text("import json\nCONFIG = json.loads('{not json')\n\ndef model(x):\n"
                   "    return x\n")
    _fails(["export", f"{bad}:model", "--input", "x:float32[2]"], tmp_path, capsys,
           "importing module", "raised JSONDecodeError", f"{bad}:2")


def test_module_calling_sys_exit_at_import(tmp_path, capsys):
    bad = tmp_path / "script.py"
    bad.write_text("import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n"
                   "def model(x):\n    return x\n")
    capsys.readouterr()
    assert main(["export", f"{bad}:model", "--input", "x:float32[2]", "-o",
                 str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("aotc export: error: importing module") and "sys.exit(2) (at " in \
        err[-1] and "__main__" in err[-1]  # argparse's own usage lines come before ours


@pytest.mark.parametrize("function, kind, line", [
    ("raises_runtime", "RuntimeError: the config file is missing", 10),
    ("fails_assert", "AssertionError: expected three values", 14),
    ("divides_by_zero", "ZeroDivisionError: division by zero", 19),
    ("raises_custom", "ModelBug: layer 3 is not built", 27),
])
def test_model_function_raising_any_exception(user_module, tmp_path, capsys, function, kind,
                                              line):
    for command in ("export", "inspect"):
        _fails([command, f"{user_module}:{function}", "--input", "x:float32[2]"], tmp_path,
               capsys, f"tracing {function}", kind, f"{user_module}:{line}")


def test_model_raising_when_verify_runs_it(user_module, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", f"{user_module}:double", "--input", "x:float32[3]", "--name",
                 "dbl", "-o", str(out)]) == 0
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    user_module.write_text(USER_MODULE.replace("return G.tanh(x) * 2.0",
                                               "raise RuntimeError('edited since the export')"))
    assert main(["verify", str(out)]) == 2
    _one_line_error(capsys, "aotc verify: error: tracing double", "RuntimeError: edited since "
                    f"the export (at {user_module}:6)")


def test_label_batch_differs_from_the_inputs(mlp_ckpt, tmp_path, capsys):
    _fails(["export", MLP, "--input", "x:float32[16,64]", "--checkpoint", str(mlp_ckpt),
            "--train", "--label", "y:int32[8]", "--no-build"], tmp_path, capsys,
           "--label y:int32[8]: its batch (first dimension) 8 differs from --input x's 16",
           "e.g. y:int32[16]")


@pytest.mark.parametrize("option, spec, message", [
    ("--input", "int:float32[2]", "'int' is a keyword of C"),
    ("--input", "static:float32[2]", "'static' is a keyword of C"),
    ("--input", "class:float32[2]", "'class' is a keyword of C++"),
    ("--input", "workspace:float32[2]", "a parameter called 'workspace' already"),
    ("--label", "double:int32[2]", "'double' is a keyword of C"),
])
def test_input_named_after_a_c_keyword(user_module, mlp_ckpt, tmp_path, capsys, option, spec,
                                       message):
    if option == "--input":
        args = ["export", f"{user_module}:double", "--input", spec]
    else:
        args = ["export", MLP, "--input", "x:float32[2,64]", "--checkpoint", str(mlp_ckpt),
                "--train", "--label", spec]
    _fails([*args, "--no-build"], tmp_path, capsys, f"{option} '{spec.split(':')[0]}'",
           message, "rename it")


@pytest.mark.parametrize("name", ["omp", "math", "string"])
def test_name_of_a_system_header(user_module, tmp_path, capsys, name):
    _fails(["export", f"{user_module}:double", "--input", "x:float32[2]", "--name", name,
            "--no-build"], tmp_path, capsys, f"--name {name}: {name}.h would hide the system "
           f"header <{name}.h>", f"--name {name}_model")


def test_every_header_the_export_includes_is_a_refused_name():
    from aot.export.model import SYSTEM_HEADERS
    from aot.resources import runtime_dir, templates_dir
    files = [*runtime_dir().glob("*.h"), *templates_dir().rglob("*.j2")]
    included = {m for f in files for m in re.findall(r"#include <(\w+)\.h>", f.read_text())}
    assert included and included <= SYSTEM_HEADERS, included - SYSTEM_HEADERS


def test_input_named_like_an_output(user_module, tmp_path, capsys):
    _fails(["export", f"{user_module}:named_output", "--input", "x:float32[2]", "--no-build"],
           tmp_path, capsys, "--input 'x': the model's output is called 'x' too")


@pytest.mark.parametrize("target", ["sparc-unknown-nope", "aarch64-linux-gnux", "nonsense"])
def test_unknown_target(user_module, tmp_path, capsys, target):
    import ziglang  # noqa: F401  (the test extra holds zig; without it the message differs)
    _fails(["export", f"{user_module}:double", "--input", "x:float32[2]", "--target", target],
           tmp_path, capsys, f"--target {target}: unknown target", "aarch64-linux-gnu")


def test_unknown_target_needs_no_build_to_be_found(user_module, tmp_path, capsys):
    import ziglang  # noqa: F401
    _fails(["export", f"{user_module}:double", "--input", "x:float32[2]", "--target",
            "sparc-unknown-nope", "--no-build"], tmp_path, capsys, "unknown target")


@pytest.mark.parametrize("dtype, widths", [
    ("float", "float16, bfloat16, float32 or float64"),
    ("int", "int8, int16, int32 or int64"),
    ("uint", "uint8, uint16, uint32 or uint64"),
])
def test_bare_float_and_int_dtypes_are_rejected(user_module, tmp_path, capsys, dtype, widths):
    _fails(["export", f"{user_module}:double", "--input", f"x:{dtype}[2,3]"], tmp_path,
           capsys, f"the bare dtype '{dtype}' does not say its width; write {widths}")


@pytest.mark.parametrize("alias, explicit", [("double", "float64"), ("f4", "float32"),
                                             ("long", "int64"), ("half", "float16")])
def test_numpy_dtype_aliases_name_the_explicit_dtype(user_module, tmp_path, capsys, alias,
                                                     explicit):
    _fails(["inspect", f"{user_module}:double", "--input", f"x:{alias}[2]"], tmp_path, capsys,
           f"write {explicit}, the explicit name of '{alias}'")


def test_mistakes_exit_2_from_the_installed_command(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def model(x):\n    return x +\n")
    done = _aotc("export", f"{bad}:model", "--input", "x:float32[2]", "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_compiler_errors_outside_the_model_keep_their_traceback(user_module):
    from aot.export.signature import load_function
    from aot.export.trace import guarded
    fn = load_function(f"{user_module}:double")

    def compiler_bug():
        raise RuntimeError("an internal error, not the model's")
    with pytest.raises(RuntimeError, match="internal error"):  # not hidden as a usage error
        guarded(compiler_bug, fn, [])
