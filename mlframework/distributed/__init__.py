"""Training on several devices and processes, on JAX's own runtime (docs/distributed.md).

    from mlframework import distributed
    distributed.initialize()                     # joins the job the environment names, if any
    mesh = distributed.Mesh(variables=distributed.fsdp())
    trainer = train.Trainer(backends.new("xla"), ctx, model, loss, opt, mesh=mesh)
    batches = distributed.GlobalBatches(dataset, mesh)
    ckpt = distributed.Checkpointer("runs/job")

Processes are started by `python -m mlframework.distributed.launch --nproc N
script.py`, by SLURM's srun, or by hand with the MLF_* variables.
"""
from mlframework.distributed.checkpoints import Checkpointer
from mlframework.distributed.data import GlobalBatches
from mlframework.distributed.mesh import Mesh, MeshNotSupportedError
from mlframework.distributed.runtime import barrier, initialize, process_count, process_index
from mlframework.distributed.sharding import DATA, fsdp, replicated

__all__ = ["DATA", "Checkpointer", "GlobalBatches", "Mesh", "MeshNotSupportedError", "barrier",
           "fsdp", "initialize", "process_count", "process_index", "replicated"]
