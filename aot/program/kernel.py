"""`Kernel`: the target-neutral description of one generated function.

The fusion pass makes them (`aot.passes.fusion.fuse`), the memory plan gives
their buffers offsets, and a renderer (`aot.codegen`, C) turns each into code.
A kernel names values of its program by id; it holds no code of any target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mlframework.core.symbolic import DimLike


@dataclass
class Kernel:
    """One generated function.

    kind: "pointwise", "reduce", "rowwise", "dot", "conv", "attention" (scores,
    softmax and weighted sum: `aot.passes.attention`), "alias" (no code: a reshape view
    of another buffer), or the op name of a single-op kernel.
    outputs: values the kernel writes to buffers; nodes: every value computed
    inside (topological); inputs: materialized values it reads; reason: why
    these nodes are one kernel; stages: for rowwise kernels, the values
    finished one after another in each row (for attention: scores, logits,
    probabilities, result); epilogue: for dot/conv, the
    pointwise values applied before the store; contraction: the dot/conv value;
    rows, dims: a rowwise kernel's row rank and full dims; scratch_bytes: the
    workspace it needs while it runs (`aot.passes.layouts.scratch_bytes`; for control
    flow, `aot.passes.memory_plan.workspace`); bodies: for a control-flow kernel
    ("cond", "while_loop", "scan"), each sub-program as `plan_memory` lowered it:
    (program, kernels, memory plan), in the order of the value's `subprograms`;
    aliased: an output may be written over one of its inputs (`aot.passes.donation`),
    so its pointers are not `restrict`.
    """

    name: str
    kind: str
    outputs: list[int]
    nodes: list[int]
    inputs: list[int]
    reason: str
    stages: list[int] = field(default_factory=list)
    epilogue: list[int] = field(default_factory=list)
    contraction: int | None = None
    rows: int = 0
    dims: tuple = ()
    scratch_bytes: DimLike = 0
    bodies: list = field(default_factory=list)
    aliased: bool = False
