"""Running digits_worker.py in subprocesses for the distributed tests (127.0.0.1 only)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("digits_worker.py")
ROOT = WORKER.parents[2]
TIMEOUT_S = 420  # one job of a few processes on a loaded 2-core machine

# Failures are noticed within seconds: a dead peer's heartbeats stop for 5 s at most.
FAST_FAILURE = {"MLF_HEARTBEAT_TIMEOUT": "5", "MLF_SHUTDOWN_TIMEOUT": "5",
                "MLF_INIT_TIMEOUT": "120"}


def environment(**extra) -> dict:
    """This environment without any job of its own (MLF_*, SLURM_*), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLF_", "SLURM_")) and k != "XLA_FLAGS"}
    env.update(FAST_FAILURE, **extra)
    return env


def launch(tmp: Path, name: str, nproc: int, *worker_args, devices_per_process: int = 1):
    """Runs the launcher with `nproc` workers; returns (CompletedProcess, report or None)."""
    out = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "mlframework.distributed.launch", "--nproc", str(nproc),
           "--devices-per-process", str(devices_per_process), "--grace", "5", str(WORKER),
           "--out", str(out), *map(str, worker_args)]
    done = subprocess.run(cmd, cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    return done, (json.loads(out.read_text()) if out.exists() else None)


# hidden1 [64, 128], hidden2 [128, 64], logits [64, 10] on 4 devices: fsdp(min_size=0)
# splits the largest dimension that 4 divides; logits' 10 biases cannot be split.
FSDP_SPECS = {
    "hidden1/dense/weights": [None, "data"], "hidden1/dense/biases": ["data"],
    "hidden2/dense/weights": ["data", None], "hidden2/dense/biases": ["data"],
    "logits/dense/weights": ["data", None], "logits/dense/biases": [],
    "global_step": [],
}


def fsdp_spec(name: str) -> list:
    """The spec of a digits MLP variable under fsdp(min_size=0) on 4 devices; Adam's
    moments (optimizer/adam/{m,v}/<variable>) lie as their variable does."""
    return FSDP_SPECS[name.split("/", 3)[3] if name.startswith("optimizer/") else name]


def weights(result: dict) -> dict[str, np.ndarray]:
    with np.load(result["weights_file"]) as f:
        return {k: f[k] for k in f.files}


def tail(done) -> str:
    """The end of a finished job's output, for assertion messages."""
    return (done.stdout[-3000:] + "\n--- stderr ---\n" + done.stderr[-6000:])
