"""Where a process finds its job: coordinator address, process count and id, from the environment.

Two conventions, tried in this order:

* plain variables (set by `python -m mlframework.distributed.launch`, or by
  hand or by any scheduler): `MLF_COORDINATOR_ADDRESS` (host:port of process
  0), `MLF_NUM_PROCESSES`, `MLF_PROCESS_ID` (0-based);
* SLURM (`srun`, one task per process): `SLURM_NTASKS`, `SLURM_PROCID`, and the
  coordinator on the first host of `SLURM_STEP_NODELIST` (or
  `SLURM_JOB_NODELIST`) at port `MLF_COORDINATOR_PORT` (default 29431).

The launcher reads the same two conventions one level up, per machine
(`node_environment`): `MLF_COORDINATOR_ADDRESS`, `MLF_NUM_NODES`,
`MLF_NODE_RANK`, or SLURM's `SLURM_NNODES` and `SLURM_NODEID` (one launcher
task per node).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

DEFAULT_PORT = 29431


@dataclass(frozen=True)
class Job:
    """A group of `count` members (processes, or machines for the launcher); this is `rank`."""

    coordinator: str
    count: int
    rank: int
    source: str  # which convention said so: "MLF" or "SLURM"


def process_environment(env=None) -> Job | None:
    """This process's place in its job, or None when the environment names none.

    Raises:
        ValueError: a convention's variables are partly set, not integers, or out of range.
    """
    env = os.environ if env is None else env
    return _read(env, "MLF_NUM_PROCESSES", "MLF_PROCESS_ID", "SLURM_NTASKS", "SLURM_PROCID")


def node_environment(env=None) -> Job | None:
    """This machine's place among the machines of a job (for the launcher), or None."""
    env = os.environ if env is None else env
    return _read(env, "MLF_NUM_NODES", "MLF_NODE_RANK", "SLURM_NNODES", "SLURM_NODEID")


def _read(env, count_key: str, rank_key: str, slurm_count: str, slurm_rank: str) -> Job | None:
    plain = [k for k in ("MLF_COORDINATOR_ADDRESS", count_key, rank_key) if env.get(k)]
    if plain:
        if len(plain) < 3:
            missing = sorted({"MLF_COORDINATOR_ADDRESS", count_key, rank_key} - set(plain))
            raise ValueError(f"the environment sets {', '.join(plain)} but not "
                             f"{', '.join(missing)}; set all three (docs/distributed.md)")
        return _job(env["MLF_COORDINATOR_ADDRESS"], env[count_key], env[rank_key], count_key,
                    rank_key, "MLF")
    if env.get(slurm_count) and env.get(slurm_rank):
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
        if not nodes:
            raise ValueError(f"SLURM sets {slurm_count} and {slurm_rank} but no "
                             "SLURM_STEP_NODELIST or SLURM_JOB_NODELIST to find the coordinator")
        port = env.get("MLF_COORDINATOR_PORT", str(DEFAULT_PORT))
        return _job(f"{first_host(nodes)}:{port}", env[slurm_count], env[slurm_rank],
                    slurm_count, slurm_rank, "SLURM")
    return None


def _job(address: str, count: str, rank: str, count_key: str, rank_key: str,
         source: str) -> Job:
    try:
        n, r = int(count), int(rank)
    except ValueError:
        raise ValueError(f"{count_key}={count!r} and {rank_key}={rank!r} must be integers") \
            from None
    if n < 1 or not 0 <= r < n:
        raise ValueError(f"{rank_key}={r} must be in [0, {count_key}={n})")
    if ":" not in address:
        raise ValueError(f"the coordinator address must be host:port, got {address!r}")
    return Job(address, n, r, source)


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "node[03-05,9],gpu1" -> "node03"."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = m.groups()
    return prefix if ranges is None else prefix + re.split(r"[-,]", ranges)[0]


__all__ = ["DEFAULT_PORT", "Job", "first_host", "node_environment", "process_environment"]
