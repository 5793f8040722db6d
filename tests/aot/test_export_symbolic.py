"""aotc export with symbolic dimensions: `--input x:float32[N,64] --max N=256` gives ONE
library whose functions take N at run time. Checked against the xla backend (the digits
MLP and CNN, a plain attention graph over batch and sequence) at several sizes, its error
codes for 0 and above the maximum, -Wall -Wextra and ASan/UBSan, `aotc verify`,
`aotc inspect` and a symbolic-batch --train export against the xla Trainer."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import export_support as es
from attention_support import D, attention, attention_reference
from aot.export.signature import UsageError, parse_input, parse_max
from aot.tools.verify import ExportedLibrary, reference_outputs, verify

MAX = 256
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return es.shared_root(tmp_path_factory)


@pytest.fixture(scope="module")
def mlp(root):
    return es.export(root, "mlp-symbolic", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                     ["x:float32[N,64]"], checkpoint=es.checkpoint(root, "digits_mlp"),
                     name="mlps", maxima={"N": MAX})


@pytest.fixture(scope="module")
def cnn(root):
    return es.export(root, "cnn-symbolic", str(es.EXAMPLES / "digits_cnn.py") + ":model",
                     ["x:float32[N,1,8,8]"], checkpoint=es.checkpoint(root, "digits_cnn"),
                     name="cnns", maxima={"N": MAX})


@pytest.fixture(scope="module")
def attn(root):
    return es.export(root, "attention-symbolic", attention, ["x:float32[B,S,32]"],
                     name="attn", maxima={"B": 4, "S": 48})


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_one_library_matches_xla_at_every_batch(which, request):
    folder = request.getfixturevalue(which)
    lib = ExportedLibrary(folder)
    shape = lib.manifest["inputs"][0]["shape"][1:]
    for n in (1, 7, 64, MAX):
        x = RNG.normal(size=(n, *shape)).astype(np.float32)
        out, = lib.run(x)
        want, = reference_outputs(lib.manifest, [x])
        assert out.shape == (n, 10)
        np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)


def test_attention_over_batch_and_sequence(attn):
    lib = ExportedLibrary(attn)
    assert lib.manifest["symbols"] == {"B": 4, "S": 48}
    assert lib.manifest["inputs"][0]["shape"] == ["B", "S", 32]
    for b, s in ((1, 1), (1, 48), (2, 7), (4, 33), (4, 48)):
        x = RNG.normal(size=(b, s, D)).astype(np.float32)
        out, = lib.run(x)
        np.testing.assert_allclose(out, attention_reference(x), atol=1e-5)
        np.testing.assert_allclose(out, reference_outputs(lib.manifest, [x])[0], atol=1e-5)


def test_header_and_error_codes(mlp):
    lib = ExportedLibrary(mlp)
    header = (mlp / "mlps.h").read_text()
    assert "int mlps_run(int64_t N, const float* x, float* output, void* workspace);" in header
    assert f"#define MLPS_MAX_N {MAX}" in header and "MLPS_ERR_SIZE = 5" in header
    assert "#define MLPS_X_SIZE_FOR(N) (64*(int64_t)(N))" in header
    x, out = np.zeros((MAX, 64), np.float32), np.zeros((MAX, 10), np.float32)
    run = lib.lib.mlps_run
    for n in (0, -1, MAX + 1):
        status = run(n, lib._ptr(x), lib._ptr(out), lib._ptr(lib.workspace))
        assert status == 5, n
        assert "above its maximum" in lib.ffi.string(lib.lib.mlps_strerror(status)).decode()
    assert not out.any()  # refused before anything was written


def _arena_for(folder, name: str, sizes: list[int]) -> list[int]:
    """NAME_ARENA_BYTES_FOR at `sizes` and NAME_ARENA_BYTES, evaluated by a C compiler."""
    src = folder.parent / f"{name}_arena_probe.c"
    calls = " ".join(f'printf("%zu ", (size_t){name.upper()}_ARENA_BYTES_FOR({n}));'
                     for n in sizes)
    src.write_text(f'#include <stdio.h>\n#include "{name}.h"\nint main(void) {{ {calls} '
                   f'printf("%zu\\n", (size_t){name.upper()}_ARENA_BYTES); return 0; }}\n')
    exe = src.with_suffix("")
    subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", f"-I{folder}", str(src), "-o",
                    str(exe)], check=True, capture_output=True)
    return [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True,
                                           check=True).stdout.split()]


def test_the_workspace_macro_shrinks_with_the_batch(cnn):
    *small, top = _arena_for(cnn, "cnns", [1, 7, MAX])
    assert small[0] < small[1] < small[2] == top
    assert small[0] < top / 20  # a batch of 1 needs a small fraction of the maximum's
    lib = ExportedLibrary(cnn)
    ws = np.empty(small[0] + 64, np.uint8)  # a workspace of exactly that size
    lib.workspace = ws[(-ws.ctypes.data) % 64:][:small[0]]
    x = RNG.normal(size=(1, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(lib.run(x)[0], reference_outputs(lib.manifest, [x])[0],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("openmp", [["-fopenmp"], []], ids=["openmp", "serial"])
def test_compiles_without_warnings(cnn, attn, openmp, tmp_path):
    for folder, name in ((cnn, "cnns"), (attn, "attn")):  # -O3: the attention's blocked loops
        proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "x.o"), "-std=gnu99", "-O3",
                               "-Wall", "-Wextra", "-Werror", *openmp,
                               f"-I{folder / 'runtime'}",
                               str(folder / f"{name}.c")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_sanitizers_run_clean_at_every_size(cnn, tmp_path):
    src = tmp_path / "sanitized.c"
    src.write_text(es.symbolic_sanitized("cnns", ["N"], [[1], [7], [64], [MAX]]))
    out = es.run_sanitized(src, cnn, ["cnns.c", "cnns_weights.c"], tmp_path / "sanitized")
    lines = out.split()
    assert lines[0::2] == ["1", "7", "64", str(MAX)]
    lib = ExportedLibrary(cnn)
    for n, checksum in zip((1, 7, 64, MAX), lines[1::2]):  # the library agrees
        i = np.arange(n * 64)
        x = (((i * 7919) % 113) / np.float32(57.0) - 1).astype(np.float32).reshape(n, 1, 8, 8)
        assert abs(float(lib.run(x)[0].astype(np.float64).sum()) - float(checksum)) < 1e-3


def test_verify_checks_several_sizes(mlp, capsys):
    from aot.tools.cli import main
    lib = ExportedLibrary(mlp)
    assert lib.size_sets() == [{"N": 1}, {"N": 7}, {"N": MAX}]
    assert verify(mlp, trials=1).ok
    assert main(["verify", str(mlp)]) == 0


def test_manifest_and_inspect_show_the_symbols(mlp, capsys):
    from aot.tools.cli import main
    m = json.loads((mlp / "manifest.json").read_text())
    assert m["symbols"] == {"N": MAX}
    assert m["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 64]}]
    assert main(["inspect", str(es.EXAMPLES / "digits_mlp.py") + ":model", "--input",
                 "x:float32[N,64]", "--max", "N=256", "--checkpoint",
                 str(m["checkpoint"])]) == 0
    text = capsys.readouterr().out
    assert "symbols (sizes chosen at run time, each an int64_t argument of NAME_run): " \
           "N in [1, 256]" in text
    assert "const long sym_N" in text


def test_specs_and_maxima_are_checked(tmp_path):
    assert str(parse_input("x:float32[N,64]").spec) == "float32[N, 64]"
    assert parse_max("N=256") == ("N", 256)
    for bad in ("N", "N=0", "N=x", "=3"):
        with pytest.raises(UsageError, match="--max requires SYMBOL=MAXIMUM"):
            parse_max(bad)
    with pytest.raises(UsageError, match="is a keyword of C"):
        parse_input("x:float32[int,64]")
    from aot.export import export_model
    fn = str(es.EXAMPLES / "digits_mlp.py") + ":model"
    with pytest.raises(UsageError, match="needs a maximum: add --max N=256"):
        export_model(fn, ["x:float32[N,64]"], tmp_path, build=False)
    with pytest.raises(UsageError, match="no --input has a dimension M"):
        export_model(fn, ["x:float32[N,64]"], tmp_path, build=False, maxima={"N": 4, "M": 2})


def test_cli_export_with_max(root, tmp_path, capsys):
    from aot.tools.cli import main
    ckpt = es.checkpoint(root, "digits_mlp")
    assert main(["export", str(es.EXAMPLES / "digits_mlp.py") + ":model", "-o",
                 str(tmp_path / "out"), "--input", "x:float32[N,64]", "--max", "N=16",
                 "--checkpoint", str(ckpt), "--name", "m16", "--no-build"]) == 0
    assert "sizes chosen at run time" in capsys.readouterr().out
    assert "#define M16_MAX_N 16" in (tmp_path / "out" / "m16.h").read_text()


# ---- --train with a symbolic batch ----

@pytest.fixture(scope="module")
def trained(root):
    from aot.export import TrainSpec
    ckpt = es.checkpoint(root, "digits_mlp")
    folder = es.export(root, "mlp-train-symbolic", str(es.EXAMPLES / "digits_mlp.py") + ":model",
                       ["x:float32[N,64]"], checkpoint=ckpt, name="mlpts", maxima={"N": 64},
                       train=TrainSpec(["y:int32[N]"], optimizer="adam:0.001"))
    return folder, ckpt


def test_train_steps_of_several_batch_sizes_match_the_xla_trainer(trained):
    import mlframework as mlf
    from aot.export.trace import load_context
    from mlframework.ml import datasets, losses, optimizers, train
    folder, ckpt = trained
    header = (folder / "mlpts.h").read_text()
    assert "int mlpts_train_step(void* state, int64_t N, const float* x, const int32_t* y, " \
           "float* loss, void* workspace);" in header
    lib = ExportedLibrary(folder)
    state = lib.train_state()
    sys.path.insert(0, str(es.EXAMPLES))
    import digits_mlp
    trainer = train.Trainer(mlf.backends.new("xla"), load_context(ckpt), digits_mlp.model,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
    (x, y), _ = datasets.load_digits(seed=0)
    c_losses, xla_losses, at = [], [], 0
    for n in (64, 7, 1, 32, 64, 13) * 3:  # the loss is a mean over each batch's own size
        xb, yb = x[at:at + n].astype(np.float32), y[at:at + n].astype(np.int32)
        at += n
        c_losses.append(lib.train_step(state, xb, yb))
        xla_losses.append(float(trainer.train_step(xb, yb)["loss"].numpy()))
    np.testing.assert_allclose(c_losses, xla_losses, rtol=2e-4, atol=1e-5)
    from mlframework.ml import ContextExec
    x5 = x[:5].astype(np.float32)
    got, = lib.run_state(state, x5)  # inference on the trained state, at a 6th batch size
    want = ContextExec(mlf.backends.new("xla"), trainer.ctx, digits_mlp.model)(x5)
    np.testing.assert_allclose(got, np.asarray(want.numpy()), atol=1e-4)


EMBEDDING_MODEL = '''
import numpy as np
from mlframework import graph as G

RNG = np.random.default_rng(3)
TABLE = RNG.normal(size=(50, 16)).astype(np.float32)
W = (RNG.normal(size=(16, 4)) / 4).astype(np.float32)


def model(ids):
    """Embedding lookup of ids [N, 8] (out of range ids clamp, as XLA), mean over the 8,
    a dense layer: [N, 4]."""
    return G.mean(G.take(TABLE, ids, axis=0), axes=1) @ W
'''


def test_cli_embedding_export_serves_every_batch(tmp_path):
    """`aotc export ... --input ids:int32[N,8] --max N=64`: one library, its gather taking
    N at run time, equal to the xla backend at several N."""
    from aot.tools.cli import main
    src = tmp_path / "embedding.py"
    src.write_text(EMBEDDING_MODEL)
    out = tmp_path / "out"
    assert main(["export", f"{src}:model", "-o", str(out), "--input", "ids:int32[N,8]",
                 "--max", "N=64", "--name", "emb"]) == 0
    assert "#define EMB_MAX_N 64" in (out / "emb.h").read_text()
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "emb.o"), "-std=gnu99", "-O2",
                           "-Wall", "-Wextra", "-Werror", f"-I{out / 'runtime'}",
                           str(out / "emb.c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lib = ExportedLibrary(out)
    for n in (1, 7, 33, 64):
        ids = RNG.integers(-3, 53, size=(n, 8)).astype(np.int32)
        got, = lib.run(ids)
        want, = reference_outputs(lib.manifest, [ids])
        assert got.shape == (n, 4)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


RNN_MODEL = '''
import numpy as np
from mlframework import graph as G

RNG = np.random.default_rng(4)
W = (RNG.normal(size=(6, 6)) * 0.4).astype(np.float32)
U = (RNG.normal(size=(3, 6)) * 0.5).astype(np.float32)
V = (RNG.normal(size=(6, 2)) / 2).astype(np.float32)


def model(x):
    """An RNN over x [N, T, F] (scanned over the static T, carry h [N, 6]), then a dense
    layer on the last h: [N, 2]."""
    def step(h, xt):
        return G.tanh(h @ W + xt @ U), None
    xs = G.transpose(x, (1, 0, 2))
    h, _ = G.scan(step, G.zeros_like(xs[0] @ U), xs)
    return h @ V
'''


def test_cli_rnn_export_serves_every_batch(tmp_path):
    """`aotc export ... --input x:float32[N,5,3] --max N=64`: one library whose scan carries
    a symbolic batch, equal to the xla backend at several N, clean under ASan and UBSan
    with a workspace of exactly RNN_ARENA_BYTES_FOR(n) bytes, which grows with N."""
    from aot.tools.cli import main
    src = tmp_path / "rnn.py"
    src.write_text(RNN_MODEL)
    out = tmp_path / "out"
    assert main(["export", f"{src}:model", "-o", str(out), "--input", "x:float32[N,5,3]",
                 "--max", "N=64", "--name", "rnn"]) == 0
    proc = subprocess.run(["gcc", "-c", "-o", str(tmp_path / "rnn.o"), "-std=gnu99", "-O2",
                           "-Wall", "-Wextra", "-Werror", f"-I{out / 'runtime'}",
                           str(out / "rnn.c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lib = ExportedLibrary(out)
    for n in (1, 7, 64):
        x = RNG.normal(size=(n, 5, 3)).astype(np.float32)
        got, = lib.run(x)
        want, = reference_outputs(lib.manifest, [x])
        assert got.shape == (n, 2)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    program = tmp_path / "sanitized.c"
    program.write_text(es.symbolic_sanitized("rnn", ["N"], [[1], [7], [64], [64]]))
    sources = [f.name for f in sorted(out.glob("rnn*.c"))]
    lines = es.run_sanitized(program, out, sources, tmp_path / "sanitized").split()
    assert lines[0::2] == ["1", "7", "64", "64"]
    *small, top = _arena_for(out, "rnn", [1, 7, 64])
    assert small[0] < small[1] < small[2] == top  # the scan scratch too (tests/aot/test_passes.py)


def test_cli_rnn_over_a_symbolic_length_is_sanitizer_clean(tmp_path):
    """The RNN with its time axis symbolic too (`x:float32[N,S,3]`): the scan runs S steps,
    with its slices and scratch sized at run time; equal to the xla backend and clean
    under ASan and UBSan with a workspace of exactly RNN_ARENA_BYTES_FOR(n, s) bytes."""
    from aot.tools.cli import main
    src = tmp_path / "rnn.py"
    src.write_text(RNN_MODEL)
    out = tmp_path / "out"
    assert main(["export", f"{src}:model", "-o", str(out), "--input", "x:float32[N,S,3]",
                 "--max", "N=8", "--max", "S=6", "--name", "rnn"]) == 0
    lib = ExportedLibrary(out)
    for n, s in ((1, 1), (3, 6), (8, 2)):
        x = RNG.normal(size=(n, s, 3)).astype(np.float32)
        np.testing.assert_allclose(lib.run(x)[0], reference_outputs(lib.manifest, [x])[0],
                                   atol=1e-5, rtol=1e-5)
    program = tmp_path / "sanitized.c"
    program.write_text(es.symbolic_sanitized("rnn", ["N", "S"],
                                             [[1, 1], [1, 6], [3, 2], [8, 1], [8, 6]]))
    sources = [f.name for f in sorted(out.glob("rnn*.c"))]
    lines = es.run_sanitized(program, out, sources, tmp_path / "sanitized").splitlines()
    assert [line.split()[:2] for line in lines] == [["1", "1"], ["1", "6"], ["3", "2"],
                                                    ["8", "1"], ["8", "6"]]
