"""Joining the processes of a job: `initialize()` wraps `jax.distributed.initialize`.

    from mlframework import distributed
    distributed.initialize()          # first, before anything runs on a device
    mesh = distributed.Mesh()         # every device of every process

Call it before any JAX computation. It reads the job from the environment
(`distributed.environment`: the launcher's variables or SLURM's); a process
that finds none runs alone and `initialize` does nothing. On CPU the
collectives go through gloo.

A process that dies stops the others within a bounded time: a collective with
it fails at once (gloo sees the closed connection) and the coordination
service marks it dead after `heartbeat_timeout_s` without a heartbeat, which
terminates every other process with JAX's error naming the dead task.
"""
from __future__ import annotations

import os

import jax

from mlframework.distributed.environment import Job, process_environment

HEARTBEAT_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 30
INIT_TIMEOUT_S = 300


def initialize(*, heartbeat_timeout_s: int | None = None, shutdown_timeout_s: int | None = None,
               init_timeout_s: int | None = None) -> Job | None:
    """Connects this process to its job (as the environment names it); returns the job,
    or None for a process running alone.

    The timeouts default to `$MLF_HEARTBEAT_TIMEOUT`, `$MLF_SHUTDOWN_TIMEOUT` and
    `$MLF_INIT_TIMEOUT`, else 30, 30 and 300 seconds: how long a dead process goes
    unnoticed, how long a finished one waits for the others at exit, how long the
    processes wait for each other at start. `$MLF_LOCAL_DEVICE_IDS` ("0,1", set by
    the launcher's --devices-per-process) names the GPUs of the machine this
    process owns; without it JAX's defaults hold (under srun, the GPU of the
    task's SLURM_LOCALID; otherwise every device).

    Raises:
        ValueError: the environment names a job inconsistently (see `environment`).
        RuntimeError: from JAX, when a computation already ran in this process, or
            the coordinator cannot be reached within the initialization timeout.
    """
    job = process_environment()
    if job is None or job.count == 1:
        return None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        job.coordinator, job.count, job.rank, local_device_ids=_local_device_ids(),
        initialization_timeout=_seconds(init_timeout_s, "MLF_INIT_TIMEOUT", INIT_TIMEOUT_S),
        heartbeat_timeout_seconds=_seconds(heartbeat_timeout_s, "MLF_HEARTBEAT_TIMEOUT",
                                           HEARTBEAT_TIMEOUT_S),
        shutdown_timeout_seconds=_seconds(shutdown_timeout_s, "MLF_SHUTDOWN_TIMEOUT",
                                          SHUTDOWN_TIMEOUT_S))
    return job


def _local_device_ids() -> list[int] | None:
    """`$MLF_LOCAL_DEVICE_IDS` ("0,1"): the GPUs of this machine the process owns."""
    text = os.environ.get("MLF_LOCAL_DEVICE_IDS")
    if not text:
        return None
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise ValueError(f"MLF_LOCAL_DEVICE_IDS must be comma-separated device numbers, got "
                         f"{text!r}") from None


def _seconds(value, key: str, default: int) -> int:
    if value is None:
        value = os.environ.get(key, default)
    try:
        seconds = int(value)
    except ValueError:
        raise ValueError(f"{key} must be a whole number of seconds, got {value!r}") from None
    if seconds < 1:
        raise ValueError(f"{key} must be at least 1 second, got {seconds}")
    return seconds


def process_index() -> int:
    """This process's rank in the job (0 when alone)."""
    return jax.process_index()


def process_count() -> int:
    """The number of processes in the job (1 when alone)."""
    return jax.process_count()


def barrier(name: str) -> None:
    """Waits until every process of the job reaches the barrier called `name`."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


__all__ = ["barrier", "initialize", "process_count", "process_index"]
