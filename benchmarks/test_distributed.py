"""Per-step overhead of the sharded train step against the single-device one, at equal work.

    .venv/bin/python -m pytest benchmarks/test_distributed.py --benchmark-only \
        --benchmark-columns=median,iqr,ops

The issues' MLP 784-512-512-10 trained with Adam at one global batch of 128
rows: on one device with a plain Trainer, and with `Trainer(mesh=...)` on 1,
2 and 4 host (CPU) devices, each mesh with every variable replicated (data
parallel) and every variable sharded (`fsdp(min_size=0)`). One timed call is
a full step plus copying the loss to the host; a NumPy batch goes in each
step, as in a training loop. Read ratios of each mesh's median to the
single-device median; `benchmarks/README.md` records them.

The host devices come from `--xla_force_host_platform_device_count=4`, which
this module adds to XLA_FLAGS when it is imported, before JAX starts; they
share this machine's cores, so a bigger mesh brings no more arithmetic, only
the partitioning and its collectives. That is the overhead measured.
"""
import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=4").strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlframework as mlf  # noqa: E402
from bench_models import mlp  # noqa: E402
from mlframework import distributed  # noqa: E402
from mlframework.ml import Context, losses, optimizers, train  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(128, 784)).astype(np.float32)
Y = RNG.integers(0, 10, 128).astype(np.int32)
RULES = {"replicated": distributed.replicated, "fsdp": distributed.fsdp(min_size=0)}


def step_of(mesh):
    trainer = train.Trainer(mlf.backends.new("xla"), Context(seed=0), mlp,
                            losses.sparse_categorical_cross_entropy_logits, optimizers.Adam(1e-3),
                            mesh=mesh)
    step = lambda: float(trainer.train_step(X, Y)["loss"].numpy())  # noqa: E731
    for _ in range(3):
        step()  # compile and warm up
    return step


@pytest.mark.benchmark(group="mlp-784-512-512-10-b128-adam-mesh")
def test_single_device(benchmark):
    benchmark(step_of(None))


@pytest.mark.benchmark(group="mlp-784-512-512-10-b128-adam-mesh")
@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("devices", [1, 2, 4])
def test_mesh(benchmark, devices, rule):
    available = jax.devices()
    if len(available) < devices:
        pytest.fail(f"JAX started with {len(available)} devices before this module could ask "
                    f"for 4 host devices; run it alone (pytest benchmarks/test_distributed.py) "
                    f"or set XLA_FLAGS=--xla_force_host_platform_device_count=4")
    benchmark(step_of(distributed.Mesh(available[:devices], variables=RULES[rule])))
