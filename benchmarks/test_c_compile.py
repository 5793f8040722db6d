"""Compile time of the MLP Adam train step (784 -> 256 x depth -> 10, batch 128): the c
backend cold and warm, beside jax.jit's first call of the same step written in plain JAX
(issue 17).

    .venv/bin/python -m pytest benchmarks/test_c_compile.py -s

Each measurement runs in a fresh Python process, so imports and module caches do not
help; the time covers the first step (trace, passes, gcc, first run) until its loss is
on the host, minus the process's import time:

- c cold: MLF_CACHE_DIR empty, the runtime's GEMM and conv built with the install
  (`python -m aot.build.prebuild`, which `make` runs; jax too brings its kernels
  compiled): gcc compiles every kernel unit;
- c, nothing prebuilt: also the runtime unit, as on a machine's first model when the
  install skipped the prebuild;
- c warm: everything cached (trace, passes, load of the library);
- jax.jit: the hand-written step's first call.

Repetitions alternate the contenders; read the medians' ratios.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aot.build import compiler

ROOT = Path(__file__).resolve().parent.parent
OURS = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import mlframework as mlf
from mlframework.ml import Context, layers, losses, optimizers, train
t1 = time.perf_counter()
depth = int(sys.argv[1])
if sys.argv[2:] == ["nothing-prebuilt"]:
    from aot.build import compiler
    compiler.PREBUILT = compiler.cache_dir() / "no prebuilt runtime"

def mlp(ctx, x):
    for i in range(depth):
        x = layers.dense(ctx / f"hidden{i}", x, 256, activation="relu")
    return layers.dense(ctx / "logits", x, 10)

rng = np.random.default_rng(0)
x = rng.normal(size=(128, 784)).astype(np.float32)
y = rng.integers(0, 10, 128).astype(np.int32)
trainer = train.Trainer(mlf.backends.new("c"), Context(seed=0), mlp,
                        losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
float(trainer.train_step(x, y)["loss"].numpy())
print(json.dumps({"first_step_s": time.perf_counter() - t1}))
"""
JAX = r"""
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
t1 = time.perf_counter()
depth = int(sys.argv[1])
rng = np.random.default_rng(0)
widths = [784] + [256] * depth + [10]
params = [(jnp.asarray(rng.normal(size=(a, b)).astype(np.float32) * 0.05), jnp.zeros(b))
          for a, b in zip(widths, widths[1:])]

def loss_fn(p, x, y):
    for w, b in p[:-1]:
        x = jax.nn.relu(x @ w + b)
    logits = x @ p[-1][0] + p[-1][1]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

@jax.jit
def step(p, m, v, t, x, y):
    loss, g = jax.value_and_grad(loss_fn)(p, x, y)
    t = t + 1
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
    p = jax.tree.map(lambda p, m, v: p - 1e-3 / (1 - 0.9 ** t) * m
                     / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8), p, m, v)
    return p, m, v, t, loss

x = rng.normal(size=(128, 784)).astype(np.float32)
y = rng.integers(0, 10, 128).astype(np.int32)
zeros = jax.tree.map(jnp.zeros_like, params)
float(step(params, zeros, zeros, jnp.zeros(()), x, y)[-1])
print(json.dumps({"first_step_s": time.perf_counter() - t1}))
"""


def _run(script: str, depth: int, cache: Path | None = None, *args: str) -> float:
    env = dict(os.environ)
    if cache is not None:
        env["MLF_CACHE_DIR"] = str(cache)
    out = subprocess.run([sys.executable, "-c", script, str(depth), *args], env=env,
                         capture_output=True, text=True, cwd=ROOT, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])["first_step_s"]


@pytest.mark.parametrize("depth", [2, 8, 32])
def test_cold_compile_against_jax_jit(depth, tmp_path):
    compiler.prebuild()
    rows = {"c cold": [], "c, nothing prebuilt": [], "c warm": [], "jax.jit": []}
    for r in range(3):
        rows["c, nothing prebuilt"].append(_run(OURS, depth, tmp_path / f"bare{r}",
                                                "nothing-prebuilt"))
        rows["c cold"].append(_run(OURS, depth, tmp_path / f"cold{r}"))
        rows["c warm"].append(_run(OURS, depth, tmp_path / f"cold{r}"))
        rows["jax.jit"].append(_run(JAX, depth))
    med = {k: float(np.median(v)) for k, v in rows.items()}
    print(f"\nMLP Adam step, {depth} hidden layers of 256: " + ", ".join(
        f"{k} {m:.2f} s ({m / med['jax.jit']:.2f}x jax.jit)" for k, m in med.items()))
    assert med["c warm"] < med["c cold"] < med["c, nothing prebuilt"]  # warm: no gcc
