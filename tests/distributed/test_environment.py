"""The job's environment (MLF_* and SLURM conventions), the launcher's pieces, the sharding
rules and the distributed Checkpointer of a process alone: plain functions, in process."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import mlframework as mlf
from mlframework import distributed
from mlframework.distributed import environment, launch, sharding
from mlframework.ml import Context, checkpoints, datasets, layers, losses, optimizers, train


def test_plain_variables_name_the_job():
    job = environment.process_environment({"MLF_COORDINATOR_ADDRESS": "10.0.0.1:1234",
                                           "MLF_NUM_PROCESSES": "8", "MLF_PROCESS_ID": "5"})
    assert job == environment.Job("10.0.0.1:1234", 8, 5, "MLF")
    assert environment.process_environment({}) is None


def test_slurm_names_the_job_with_the_first_host_as_coordinator():
    env = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_NNODES": "2", "SLURM_NODEID": "1",
           "SLURM_JOB_NODELIST": "gpu[07-08]", "MLF_COORDINATOR_PORT": "4000"}
    assert environment.process_environment(env) == environment.Job("gpu07:4000", 4, 3, "SLURM")
    assert environment.node_environment(env) == environment.Job("gpu07:4000", 2, 1, "SLURM")
    assert environment.process_environment(dict(env, SLURM_STEP_NODELIST="a1,b2")).coordinator \
        == "a1:4000"


@pytest.mark.parametrize("nodelist, first", [("node01", "node01"), ("n[3-5,9],x", "n3"),
                                             ("rack1-n[012,014]", "rack1-n012"), ("a,b", "a")])
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert environment.first_host(nodelist) == first


@pytest.mark.parametrize("env, message", [
    ({"MLF_NUM_PROCESSES": "2"}, "but not MLF_COORDINATOR_ADDRESS, MLF_PROCESS_ID"),
    ({"MLF_COORDINATOR_ADDRESS": "h:1", "MLF_NUM_PROCESSES": "2", "MLF_PROCESS_ID": "2"},
     r"MLF_PROCESS_ID=2 must be in \[0, MLF_NUM_PROCESSES=2\)"),
    ({"MLF_COORDINATOR_ADDRESS": "h", "MLF_NUM_PROCESSES": "2", "MLF_PROCESS_ID": "0"},
     "host:port"),
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}, "no SLURM_STEP_NODELIST"),
])
def test_an_inconsistent_environment_is_named(env, message):
    with pytest.raises(ValueError, match=message):
        environment.process_environment(env)


def test_launcher_numbers_processes_across_machines():
    env = {"MLF_COORDINATOR_ADDRESS": "head:9", "MLF_NUM_NODES": "3", "MLF_NODE_RANK": "2",
           "XLA_FLAGS": "--xla_dump_to=/tmp/x", "SLURM_LOCALID": "0"}
    children = launch.child_environments(4, devices_per_process=2, env=env)
    assert [c["MLF_PROCESS_ID"] for c in children] == ["8", "9", "10", "11"]
    assert {c["MLF_NUM_PROCESSES"] for c in children} == {"12"}
    assert {c["MLF_COORDINATOR_ADDRESS"] for c in children} == {"head:9"}
    assert [c["MLF_LOCAL_RANK"] for c in children] == ["0", "1", "2", "3"]
    assert children[0]["XLA_FLAGS"] == ("--xla_dump_to=/tmp/x "
                                        "--xla_force_host_platform_device_count=2")
    assert [c["MLF_LOCAL_DEVICE_IDS"] for c in children] == ["0,1", "2,3", "4,5", "6,7"]
    assert "MLF_NODE_RANK" not in children[0] and "SLURM_LOCALID" not in children[0]
    alone = launch.child_environments(2, env={})
    host, port = alone[0]["MLF_COORDINATOR_ADDRESS"].split(":")
    assert host == "127.0.0.1" and int(port) > 0 and alone[1]["MLF_PROCESS_ID"] == "1"


def test_launcher_reports_the_failed_process_and_stops_the_others(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import os, sys, time\n"
                      "if os.environ['MLF_PROCESS_ID'] == '1':\n    sys.exit(3)\n"
                      "time.sleep(600)\n")
    done = subprocess.run([sys.executable, "-m", "mlframework.distributed.launch", "--nproc",
                           "3", "--grace", "2", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3, done.stderr
    assert "process 1 (pid" in done.stderr and "exited with status 3; stopping the other 2 " \
        "processes" in done.stderr
    assert launch.describe(-9) == "was killed by SIGKILL"


def test_fsdp_rule_splits_the_largest_divisible_dimension():
    rule = distributed.fsdp(min_size=100)
    assert rule("w", (64, 128), 4) == (None, "data")
    assert rule("w", (128, 64), 4) == ("data", None)
    assert rule("w", (6, 10), 4) == ()           # 60 elements < min_size
    assert rule("w", (10, 30), 4) == ()          # no dimension 4 divides
    assert rule("w", (100, 200), 1) == ()        # one device: nothing to split
    assert rule("step", (), 4) == ()
    assert distributed.fsdp()("big", (1024, 512), 8) == ("data", None)   # 2**19 >= 2**18
    assert distributed.fsdp()("small", (256, 512), 8) == ()
    assert distributed.replicated("w", (64, 128), 4) == ()
    with pytest.raises(ValueError, match="more entries than dimensions"):
        sharding.check_spec("v", (4,), ("data", None), 2)
    with pytest.raises(ValueError, match="None or 'data'"):
        sharding.check_spec("v", (4, 4), ("model", None), 2)


def _trainer(mesh):
    return train.Trainer(mlf.backends.new("xla"), Context(seed=3),
                         lambda c, v: layers.dense(c, v, 2), losses.mse, optimizers.Adam(0.01),
                         mesh=mesh)


def test_global_batches_and_checkpointer_of_a_process_alone(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 2)).astype(
        np.float32)
    mesh = distributed.Mesh(variables=distributed.fsdp(min_size=0))
    ds = datasets.InMemory((x, y), 8, shuffle=True, seed=2, drop_remainder=True, repeat=True)
    batches = distributed.GlobalBatches(ds, mesh)
    first = next(iter(batches))
    np.testing.assert_array_equal(first[0].numpy(), datasets.InMemory(
        (x, y), 8, shuffle=True, seed=2).batch(0)[0])
    assert batches.state() == {"position": 1, "seed": 2, "process": 0, "processes": 1}
    trainer = _trainer(mesh)
    ckpt = distributed.Checkpointer(tmp_path, keep=2)
    loop = train.Loop(trainer, callbacks=[train.SaveCheckpoints(ckpt, every=3)])
    loop.run_steps(batches, 6)
    meta = checkpoints.read(tmp_path / "ckpt-00000006.json")[0]
    assert meta["extra"] == {"processes": [{"dataset": {"position": 7, "seed": 2, "process": 0,
                                                          "processes": 1}}]}
    again = _trainer(mesh)
    info = distributed.Checkpointer(tmp_path).restore(again.ctx)
    assert info.step == 6 and info.extra == {"dataset": batches.state()}
    with pytest.raises(ValueError, match="state of process 1 of 2"):
        batches.restore(dict(batches.state(), process=1, processes=2))
    with pytest.raises(ValueError, match="drop_remainder=True unless it divides the 40"):
        distributed.GlobalBatches(datasets.InMemory((x, y), 6), mesh)  # a last batch of 4


def test_a_checkpoint_of_another_job_size_is_refused(tmp_path):
    trainer = _trainer(None)
    trainer.train_step(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32))
    checkpoints.Checkpointer(tmp_path).save(trainer.ctx, extra={"processes": [{}, {}]})
    with pytest.raises(checkpoints.CheckpointError, match="saved by 2 processes, this job has 1"):
        distributed.Checkpointer(tmp_path).restore(Context(seed=0))


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_process_reads_only_its_rows_of_a_batch(shuffle):
    x = np.arange(50, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    ds = datasets.InMemory(x, 8, shuffle=shuffle, seed=4, drop_remainder=True)
    for position in (0, 5, 7):  # 6 batches an epoch: 7 is in the second
        whole = ds.batch(position)
        np.testing.assert_array_equal(ds.batch(position, slice(2, 6)), whole[2:6])
        np.testing.assert_array_equal(ds.batch(position, slice(6, 8)), whole[6:8])


def test_global_batches_read_ahead_in_the_same_order():
    x = np.arange(48, dtype=np.float32).reshape(24, 2)
    mesh = distributed.Mesh()
    plain = distributed.GlobalBatches(datasets.InMemory(x, 4, shuffle=True, seed=9), mesh)
    ahead = distributed.GlobalBatches(datasets.InMemory(x, 4, shuffle=True, seed=9),
                                      mesh).prefetch(2)
    expected = [b.numpy() for b in plain]
    got = [b.numpy() for b in ahead]
    assert len(got) == 6 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert ahead.state() == dict(plain.state()) and ahead.epoch == 1
