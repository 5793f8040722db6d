"""The launcher: N processes of a script on this machine, as one job.

    python -m mlframework.distributed.launch --nproc 2 train.py --epochs 3

Each process gets `MLF_COORDINATOR_ADDRESS`, `MLF_NUM_PROCESSES`,
`MLF_PROCESS_ID` and `MLF_LOCAL_RANK`, which `distributed.initialize()` reads
(and no SLURM_* variables: they describe the launcher's task, not its
children). With `--devices-per-process K`, each also gets K host devices on
CPU (`XLA_FLAGS`) and `MLF_LOCAL_DEVICE_IDS`, its K GPUs of the machine.
Alone, the launcher puts the coordinator on 127.0.0.1 at a free port. On a
cluster, start one launcher per machine; each reads its machine's rank and the
coordinator from the environment (`MLF_COORDINATOR_ADDRESS`, `MLF_NUM_NODES`,
`MLF_NODE_RANK`, or SLURM's `SLURM_NNODES`, `SLURM_NODEID` and node list) and
numbers its processes `node_rank * nproc + local_rank`.

When a process fails (a non-zero status or a signal), the launcher says which
one and how, stops the others (SIGTERM, then SIGKILL after `--grace` seconds)
and exits with that process's status (128 + the signal number for a signal).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from mlframework.distributed.environment import node_environment

POLL_S = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` now (the OS's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def child_environments(nproc: int, devices_per_process: int | None = None,
                       env=None) -> list[dict]:
    """The environment of each of this machine's `nproc` processes.

    Raises:
        ValueError: nproc < 1, or the machine's place in the cluster is misread
            (see `environment.node_environment`).
    """
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    env = dict(os.environ if env is None else env)
    node = node_environment(env)
    coordinator = node.coordinator if node else f"127.0.0.1:{free_port()}"
    nodes, rank = (node.count, node.rank) if node else (1, 0)
    for key in [k for k in env if k.startswith("SLURM_")] + ["MLF_NUM_NODES", "MLF_NODE_RANK"]:
        env.pop(key, None)  # the children are the launcher's job (JAX would read SLURM's as theirs)
    out = []
    for local in range(nproc):
        child = dict(env, MLF_COORDINATOR_ADDRESS=coordinator,
                     MLF_NUM_PROCESSES=str(nodes * nproc),
                     MLF_PROCESS_ID=str(rank * nproc + local), MLF_LOCAL_RANK=str(local))
        if devices_per_process:
            k = devices_per_process
            flag = f"--xla_force_host_platform_device_count={k}"
            child["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
            child["MLF_LOCAL_DEVICE_IDS"] = ",".join(map(str, range(local * k, (local + 1) * k)))
        out.append(child)
    return out


def describe(code: int) -> str:
    """A Popen return code in words: "exited with status 3", "was killed by SIGKILL"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def supervise(children: list[subprocess.Popen], ranks: list[int], grace_s: float,
              out=sys.stderr) -> int:
    """Waits for every child; on the first failure stops the rest. Returns the job's status."""
    live = dict(zip(ranks, children))
    while live:
        for rank, child in list(live.items()):
            code = child.poll()
            if code is None:
                continue
            del live[rank]
            if code != 0:
                print(f"mlframework.distributed.launch: process {rank} (pid {child.pid}) "
                      f"{describe(code)}; stopping the other {len(live)} "
                      f"process{'es' if len(live) != 1 else ''} of the job", file=out,
                      flush=True)
                stop(list(live.values()), grace_s)
                return 128 - code if code < 0 else code
        time.sleep(POLL_S)
    return 0


def stop(children: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM to each child, SIGKILL to those still running after `grace_s` seconds."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlframework.distributed.launch",
        description="Runs NPROC processes of a script on this machine as one job.")
    parser.add_argument("--nproc", type=int, required=True, help="processes on this machine")
    parser.add_argument("--devices-per-process", type=int, default=None,
                        help="devices per process: K host devices each on CPU; on GPUs, "
                             "process i owns the machine's GPUs i*K .. i*K+K-1 (default: "
                             "every process sees every device)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds the others get to exit after one failed (default 10)")
    parser.add_argument("script", help="the Python script each process runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    args = parser.parse_args(argv)
    try:
        envs = child_environments(args.nproc, args.devices_per_process)
    except ValueError as e:
        parser.error(str(e))
    children = [subprocess.Popen([sys.executable, args.script, *args.args], env=env)
                for env in envs]
    ranks = [int(env["MLF_PROCESS_ID"]) for env in envs]

    def forward(signum, frame):
        stop(children, args.grace)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return supervise(children, ranks, args.grace)


if __name__ == "__main__":
    sys.exit(main())
