"""Export: a model as a standalone C library (`aotc export`).

    from aot.export import export_model
    art = export_model("examples/digits_mlp.py:model", ["x:float32[1,64]"], "build/mlp",
                       checkpoint="runs/mlp", name="mlp")

Modules: model (export_model), signature (--input specs, MODULE:FUNCTION), trace
(Python models and checkpoints to programs), artifact (the files), targets (cross
toolchains), cost (FLOPs and bytes per kernel), manifest (manifest.json).
"""
from aot.export.model import Artifact, BuildError, TrainSpec, export_model
from aot.export.signature import InputSpec, UsageError

__all__ = ["Artifact", "BuildError", "InputSpec", "TrainSpec", "UsageError", "export_model"]
