"""From a Python model function to the `Program`s that `aotc export` compiles.

    traced = trace_model(fn, [InputSpec("x", spec)], checkpoint="runs/mlp")
    traced.program      # variables baked in as constants; params = the inputs

Two kinds of function are accepted:

* a plain graph function `fn(x, y, ...) -> node or pytree of nodes`, one
  argument per `--input`;
* a model `model(ctx, inputs)` (first parameter named `ctx` or `context`)
  whose variables come from a checkpoint (or a given `Context`) and become
  constants. `inputs` is the single input node, or a tuple of them.

`trace_train_step` traces the training stack's own train step (Trainer:
forward, loss, gradients, optimizer update); there every variable stays a
parameter, and its new value an output, so the C code can update a state
buffer the caller owns.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aot.export.signature import InputSpec, UsageError
from aot.program.program import Program, Value, from_graph
from mlframework import graph as G
from mlframework.core import pytree
from mlframework.graph.gen_optypes import Op


@dataclass
class Traced:
    """A program ready for the passes, with the names the C interface uses."""

    program: Program
    input_names: list[str]
    output_names: list[str]
    variables: dict[str, np.ndarray] = field(default_factory=dict)  # baked-in values
    state: list[str] = field(default_factory=list)  # train step: variables in state order
    trainable: dict[str, bool] = field(default_factory=dict)


def is_context_model(fn) -> bool:
    """Whether `fn` is a `model(ctx, inputs)` function."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("ctx", "context")


def load_context(checkpoint, seed: int = 0):
    """A Context restored from `checkpoint`: a checkpoint JSON file, or a directory
    (its latest checkpoint).

    Raises:
        UsageError: the path holds no readable checkpoint.
    """
    from mlframework.ml import Context, checkpoints
    path = Path(checkpoint)
    if path.is_dir():
        latest = checkpoints.Checkpointer(path).latest()
        if latest is None:
            raise UsageError(f"--checkpoint {checkpoint}: the directory holds no checkpoint "
                             "(ckpt-*.json)")
        path = latest
    ctx = Context(seed=seed)
    try:
        checkpoints.restore(ctx, path)
    except checkpoints.CheckpointError as e:
        raise UsageError(f"--checkpoint: {e}") from None
    return ctx


def _output_names(tree) -> list[str]:
    leaves, treedef = pytree.flatten(tree)
    if treedef.kind == "dict" and all(c is pytree.LEAF for c in treedef.children):
        return [_c_name(str(k)) for k in treedef.keys]
    if len(leaves) == 1:
        return ["output"]
    return [f"output{i}" for i in range(len(leaves))]


def _c_name(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text)
    return out if out and not out[0].isdigit() else f"_{out}"


def trace_model(fn, inputs: list[InputSpec], *, name: str = "model", checkpoint=None,
                ctx=None) -> Traced:
    """Traces `fn` for `inputs`; a context model's variables become constants.

    Raises:
        UsageError: a context model without checkpoint or context, or a
            checkpoint whose variables do not match the ones the model reads.
    """
    specs = [i.spec for i in inputs]
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise UsageError(f"--input names must differ, got {names}")
    if not is_context_model(fn):
        if checkpoint is not None or ctx is not None:
            raise UsageError(f"{fn.__name__} is not a model(ctx, inputs) function, so it "
                             "takes no --checkpoint")
        box = []
        graph = _guarded(lambda: G.Exec(None, _recording(fn, box), name=name).graph(*specs),
                         fn, inputs)
        program = from_graph(graph)
        _name_inputs(program, names)
        return Traced(program, names, _output_names(box[-1]))
    if ctx is None:
        if checkpoint is None:
            raise UsageError(f"{fn.__name__}(ctx, ...) reads variables: give --checkpoint DIR "
                             "(a directory written by checkpoints.Checkpointer)")
        ctx = load_context(checkpoint)
    box = []

    def call(c, *args):
        return _recording(fn, box)(c, args[0] if len(args) == 1 else tuple(args))
    call.__name__ = getattr(fn, "__name__", "model")
    graph, variable_names = _guarded(
        lambda: _trace_with_context(ctx, call, specs, name, training=False), fn, inputs)
    program = from_graph(graph)
    n_out = len(pytree.flatten(box[-1])[0])
    program.outputs = program.outputs[:n_out]  # drop variable updates (inference: none used)
    store = {v.name: v for v in ctx.at_root().variables()}
    values = {}
    for vid, var in zip(program.params[:len(variable_names)], variable_names):
        array = np.ascontiguousarray(store[var].numpy())
        values[var] = array
        v = program.values[vid]
        program.values[vid] = Value(vid, Op.CONSTANT, (), {"value": array}, v.dtype, v.shape,
                                    "checkpoint variable", var)
    program.params = program.params[len(variable_names):]
    _name_inputs(program, names)
    used = _used_values(program)
    values = {k: a for (k, a), vid in zip(values.items(), _param_ids(graph, variable_names))
              if vid in used}
    return Traced(program, names, _output_names(box[-1]), values)


def trace_train_step(model, inputs: list[InputSpec], labels: list[InputSpec], *, ctx, loss,
                     optimizer, name: str = "train_step") -> Traced:
    """The Trainer's train step for `model`: params = state variables, then inputs, then
    labels; outputs = loss, then every state variable's new value (same order)."""
    from mlframework.ml import train
    trainer = train.Trainer(None, ctx, model, loss, optimizer)

    def step(c, *args):
        x = args[:len(inputs)]
        y = args[len(inputs):]
        results = trainer.build_train_step(c, x[0] if len(x) == 1 else x,
                                           y[0] if len(y) == 1 else y)
        return results["loss"]
    specs = [i.spec for i in inputs + labels]
    graph, variable_names = _trace_with_context(ctx, step, specs, name, training=True,
                                                donate=True)
    program = from_graph(graph)
    store = {v.name: v for v in ctx.at_root().variables()}
    return Traced(program, [i.name for i in inputs + labels], ["loss"] + variable_names,
                  {k: np.ascontiguousarray(store[k].numpy()) for k in variable_names},
                  state=list(variable_names),
                  trainable={k: store[k].trainable for k in variable_names})


def _trace_with_context(ctx, fn, specs, name, *, training: bool, donate: bool = False):
    """(graph, variable names in parameter order). The graph's outputs are fn's outputs,
    then the variables' new values (all of them when `donate`)."""
    from mlframework.ml import ContextExec, VariableError
    from mlframework.ml.context_exec import MissingVariablesError
    exe = ContextExec(None, ctx, fn, training=training, donate_variables=donate, name=name)
    try:
        graph = exe.graph(*specs)
    except MissingVariablesError as e:
        shown = ", ".join(e.names[:4]) + (f" and {len(e.names) - 4} more"
                                          if len(e.names) > 4 else "")
        raise UsageError(f"the checkpoint does not match the model: it lacks the variables "
                         f"{shown} that {getattr(fn, '__name__', 'the model')} reads (wrong "
                         "model or checkpoint?)") from None
    except VariableError as e:
        raise UsageError(f"the checkpoint does not match the model, or an --input has the "
                         f"wrong shape: {e}") from None
    return graph, [v.name for v in ctx.at_root().variables()]  # sorted, as Exec flattens them


def _name_inputs(program: Program, names: list[str]) -> None:
    """Parameters get the --input name as scope (their traced source line is ours)."""
    for vid, n in zip(program.params, names):
        v = program.values[vid]
        program.values[vid] = Value(vid, v.op, v.inputs, v.attrs, v.dtype, v.shape,
                                    f"--input {n}", n)


def _guarded(trace, fn, inputs):
    """Runs `trace`; an error raised by the model for these inputs becomes a UsageError."""
    try:
        return trace()
    except UsageError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as e:
        specs = ", ".join(f"{i.name}: {i.spec}" for i in inputs)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"tracing {getattr(fn, '__name__', 'the model')} with inputs {specs} "
                         f"failed (check --input): {first}") from None


def _param_ids(graph, variable_names) -> list[int]:
    params = sorted(graph.parameters, key=lambda p: p.attrs["index"])
    return [p.id for p in params[:len(variable_names)]]


def _used_values(program: Program) -> set[int]:
    live = set(program.outputs)
    for v in reversed(list(program.values.values())):
        if v.id in live:
            live.update(v.inputs)
    return live


def _recording(fn, box):
    def recorded(*args):
        result = fn(*args)
        box.append(result)
        return result
    recorded.__name__ = getattr(fn, "__name__", "model")
    recorded.__signature__ = inspect.signature(fn)
    return recorded
