"""Cold compile and warm start of the MLP train step on the C backend (issue 3).

    .venv/bin/python -m pytest benchmarks/test_c_compile.py -s

Each measurement runs in a fresh Python process, so imports and module caches
do not help: "cold" points MLF_CACHE_DIR at an empty folder (trace, passes,
gcc), "warm" reuses that folder (trace, passes, load of the cached library).
The time covers building the Trainer's first step until its loss is on the
host, minus the same process's import time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import mlframework as mlf
from mlframework.ml import Context, layers, losses, optimizers, train
t1 = time.perf_counter()

def mlp(ctx, x):
    x = layers.dense(ctx / "hidden1", x, 512, activation="relu")
    x = layers.dense(ctx / "hidden2", x, 512, activation="relu")
    return layers.dense(ctx / "logits", x, 10)

rng = np.random.default_rng(0)
x = rng.normal(size=(128, 784)).astype(np.float32)
y = rng.integers(0, 10, 128).astype(np.int32)
trainer = train.Trainer(mlf.backends.new("c"), Context(seed=0), mlp,
                        losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3))
float(trainer.train_step(x, y)["loss"].numpy())
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1}))
"""


def measure(cache: Path) -> dict:
    env = dict(os.environ, MLF_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_mlp_train_step_cold_and_warm(tmp_path):
    cold, warm = [], []
    for r in range(3):
        cache = tmp_path / f"cache{r}"
        cold.append(measure(cache)["first_step_s"])
        warm.append(measure(cache)["first_step_s"])
    print(f"\nMLP train step (Adam), c backend: cold compile {np.median(cold):.2f} s "
          f"(runs {', '.join(f'{c:.2f}' for c in cold)}), warm start {np.median(warm):.3f} s "
          f"(runs {', '.join(f'{w:.3f}' for w in warm)})")
    assert np.median(warm) < np.median(cold)
