"""Two processes on 127.0.0.1, started by the launcher: the single-device loss curve; a
checkpoint, one process SIGKILLed (the launcher names it and stops the other), a restart
resuming to the uninterrupted run's weights. Without the launcher, a SIGKILLed process makes
the other exit with an error on its own. Subprocess timeouts bound every wait."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

import distributed_jobs as jobs
import numpy as np
import pytest

from mlframework.distributed.launch import free_port

STEPS = 100
sys.path.insert(0, str(jobs.WORKER.parent))
import digits_worker  # noqa: E402  (a process alone: its initialize() does nothing)


@pytest.fixture(scope="module")
def single_device():
    """The reference: one process, one device, a plain Trainer (no mesh)."""
    args = argparse.Namespace(steps=STEPS, checkpoint_dir=None, checkpoint_every=20,
                              kill_at=None, kill_rank=-1, pid_dir=None)
    result = digits_worker.run("single", args)
    return result["losses"], result["weights"]


def test_two_processes_match_one_device_and_resume_after_being_killed(single_device, tmp_path):
    """One test, so that pytest-xdist cannot run the uninterrupted job twice on two workers:
    100 steps on two processes of two host devices each, every variable FSDP-sharded;
    then the same job with process 1 SIGKILLed after step 50 (checkpoints at 20 and 40),
    which stops both, and restarted."""
    done, report = jobs.launch(tmp_path, "uninterrupted", 2, "--modes", "fsdp", "--steps",
                               STEPS, devices_per_process=2)
    assert done.returncode == 0 and report, jobs.tail(done)
    uninterrupted = report["fsdp"]
    rows = [json.loads((tmp_path / f"uninterrupted-fsdp-rows-{r}.json").read_text())
            for r in (0, 1)]
    _matches_one_device(uninterrupted, rows, *single_device)
    _resumes_to(uninterrupted, tmp_path)


def _matches_one_device(run: dict, rows: list, losses: list, weights: dict) -> None:
    assert run["devices"] == 4 and len(run["losses"]) == STEPS
    assert rows == [[0, 16], [16, 32]]  # each process reads its half of every batch
    np.testing.assert_allclose(run["losses"], losses, rtol=0, atol=1e-5)
    assert len(run["shardings"]) == 19
    for name, spec in run["shardings"].items():
        assert spec == jobs.fsdp_spec(name), name
    final = jobs.weights(run)  # gathered from both processes
    assert final.keys() == weights.keys()
    for name, value in weights.items():
        np.testing.assert_allclose(final[name], value, rtol=0, atol=1e-5, err_msg=name)


def _resumes_to(uninterrupted: dict, tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    common = ("--modes", "fsdp", "--steps", STEPS, "--checkpoint-dir", ckpt,
              "--checkpoint-every", 20)
    # Process 1 is SIGKILLed after step 50; the launcher names it and stops process 0.
    killed, report = jobs.launch(tmp_path, "killed", 2, *common, "--kill-at", 50,
                                 "--kill-rank", 1, devices_per_process=2)
    assert report is None and killed.returncode == 128 + signal.SIGKILL, jobs.tail(killed)
    assert re.search(r"process 1 \(pid \d+\) was killed by SIGKILL; stopping the other 1 "
                     r"process of the job", killed.stderr), jobs.tail(killed)
    assert sorted(p.name for p in ckpt.glob("*.json")) == ["ckpt-00000020.json",
                                                            "ckpt-00000040.json"]
    resumed, report = jobs.launch(tmp_path, "resumed", 2, *common, devices_per_process=2)
    assert resumed.returncode == 0 and report, jobs.tail(resumed)
    result = report["fsdp"]
    assert result["resumed_from"] == 40 and len(result["losses"]) == STEPS - 40
    np.testing.assert_allclose(result["losses"], uninterrupted["losses"][40:], rtol=0,
                               atol=1e-6)
    final, reference = jobs.weights(result), jobs.weights(uninterrupted)
    assert final.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_allclose(final[name], value, rtol=0, atol=1e-6, err_msg=name)


def test_a_killed_process_makes_the_other_exit_with_an_error(tmp_path):
    """Started without the launcher, so nothing but JAX's runtime stops the survivor."""
    port = free_port()
    logs, procs = [], []
    for rank in range(2):
        env = jobs.environment(MLF_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                               MLF_NUM_PROCESSES="2", MLF_PROCESS_ID=str(rank))
        log = open(tmp_path / f"log-{rank}.txt", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, str(jobs.WORKER), "--modes", "replicated", "--steps", "1000000",
             "--out", str(tmp_path / "never.json"), "--pid-dir", str(tmp_path)],
            cwd=jobs.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        pid_file = tmp_path / "pid-1"
        deadline = time.monotonic() + jobs.TIMEOUT_S
        while not pid_file.exists():
            assert all(p.poll() is None for p in procs), _logs(tmp_path)
            assert time.monotonic() < deadline, "the job never reached its third step"
            time.sleep(0.1)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        started = time.monotonic()
        code = procs[0].wait(timeout=120)
        waited = time.monotonic() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    assert procs[1].returncode == -signal.SIGKILL
    assert code != 0, _logs(tmp_path)
    text = (tmp_path / "log-0.txt").read_text()
    assert any(s in text for s in ("Connection closed by peer", "heartbeat timeout",
                                   "another task died")), text[-4000:]
    assert waited < 60, f"process 0 took {waited:.0f} s to stop"


def _logs(tmp_path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("log-*.txt")))
