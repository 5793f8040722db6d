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
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aot.export.signature import (C_KEYWORDS, CPP_KEYWORDS, InputSpec, UsageError,
                                  check_c_name, describe_error)
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
    updated: list[str] = field(default_factory=list)  # variables whose new values are outputs


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
    out = out if out and not out[0].isdigit() else f"_{out}"
    return f"{out}_" if out in C_KEYWORDS or out in CPP_KEYWORDS else out


RESERVED = ("workspace", "state", "loss")  # the other parameters of NAME_run, NAME_train_step


def check_names(names: list[str], option: str, outputs=(), taken=()) -> None:
    """Raises UsageError unless `names` (of `option`) can be parameters of the exported
    functions: C identifiers that are no keyword, differ from each other, from `taken`
    (names of other options), from the fixed parameters and from the outputs' names."""
    for n in names:
        check_c_name(n, option)
        if n in RESERVED:
            raise UsageError(f"{option} {n!r}: the exported functions have a parameter "
                             f"called {n!r} already; rename it, e.g. {n}_in")
    if len(set(names)) != len(names):
        raise UsageError(f"{option} names must differ, got {names}")
    for n in names:
        if n in taken:
            raise UsageError(f"{option} {n!r}: an --input is called {n!r} too; names must "
                             "differ")
        if n in outputs:
            raise UsageError(f"{option} {n!r}: the model's output is called {n!r} too, and "
                             "both become parameters of the exported function; rename the "
                             f"input, e.g. {n}_in")


def trace_model(fn, inputs: list[InputSpec], *, name: str = "model", checkpoint=None,
                ctx=None, maxima: dict[str, int] | None = None) -> Traced:
    """Traces `fn` for `inputs`; a context model's variables become constants. `maxima`:
    the largest value of each symbol of the inputs' dims (`Program.symbols`).

    Raises:
        UsageError: a context model without checkpoint or context, a checkpoint
            whose variables do not match the ones the model reads, input names
            that cannot be C parameters (see `check_names`), or `fn` raising
            any exception while traced (named, with the user's line).
    """
    specs = [i.spec for i in inputs]
    names = [i.name for i in inputs]
    check_names(names, "--input")
    if not is_context_model(fn):
        if checkpoint is not None or ctx is not None:
            raise UsageError(f"{fn.__name__} is not a model(ctx, inputs) function, so it "
                             "takes no --checkpoint")
        box: list[Any] = []
        graph = guarded(lambda: G.Exec(None, _recording(fn, box), name=name).graph(*specs),
                        fn, inputs)
        program = from_graph(graph, maxima)
        _name_inputs(program, names)
        return Traced(program, names, _checked_outputs(names, box[-1]))
    if ctx is None:
        if checkpoint is None:
            raise UsageError(f"{fn.__name__}(ctx, ...) reads variables: give --checkpoint DIR "
                             "(a directory written by checkpoints.Checkpointer)")
        ctx = load_context(checkpoint)
    box = []

    def call(c, *args):
        return _recording(fn, box)(c, args[0] if len(args) == 1 else tuple(args))
    call.__name__ = getattr(fn, "__name__", "model")
    graph, variable_names = guarded(
        lambda: _trace_with_context(ctx, call, specs, name, training=False), fn, inputs)
    program = from_graph(graph, maxima)
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
    return Traced(program, names, _checked_outputs(names, box[-1]), values)


def trace_train_step(model, inputs: list[InputSpec], labels: list[InputSpec], *, ctx, loss,
                     optimizer, name: str = "train_step",
                     maxima: dict[str, int] | None = None) -> Traced:
    """The Trainer's train step for `model`: params = state variables, then inputs, then
    labels; outputs = loss, then every state variable's new value (same order).

    Raises:
        UsageError: labels whose names cannot be C parameters or whose batch differs
            from the inputs' (see `check_labels`), a checkpoint that does not match, or
            the model, loss or optimizer raising while traced.
    """
    from mlframework.ml import train
    check_labels(inputs, labels)
    trainer = train.Trainer(None, ctx, model, loss, optimizer)

    def step(c, *args):
        x = args[:len(inputs)]
        y = args[len(inputs):]
        results = trainer.build_train_step(c, x[0] if len(x) == 1 else x,
                                           y[0] if len(y) == 1 else y)
        return results["loss"]
    specs = [i.spec for i in inputs + labels]
    graph, variable_names = guarded(
        lambda: _trace_with_context(ctx, step, specs, name, training=True, donate=True),
        model, inputs + labels)
    program = from_graph(graph, maxima)
    store = {v.name: v for v in ctx.at_root().variables()}
    return Traced(program, [i.name for i in inputs + labels], ["loss"] + variable_names,
                  {k: np.ascontiguousarray(store[k].numpy()) for k in variable_names},
                  state=list(variable_names),
                  trainable={k: store[k].trainable for k in variable_names})


def trace_state_inference(fn, inputs: list[InputSpec], *, ctx, name: str = "run_state",
                          maxima: dict[str, int] | None = None) -> Traced:
    """The inference program of the context model `fn` with its variables kept as
    parameters: params = every variable of `ctx` (in `Traced.state` order, as in
    `trace_train_step`), then the inputs; outputs = the model's. NAME_run_state
    points the variables' parameters into a training state buffer.

    Raises:
        UsageError: as `trace_model` does.
    """
    traced = trace_stateful(fn, inputs, ctx=ctx, name=name, maxima=maxima)
    outputs = len(traced.output_names) - len(traced.updated)
    traced.program.outputs = traced.program.outputs[:outputs]
    traced.output_names = traced.output_names[:outputs]
    traced.updated = []
    return traced


def trace_stateful(fn, inputs: list[InputSpec], *, ctx, name: str = "step",
                   maxima: dict[str, int] | None = None) -> Traced:
    """The context model `fn(ctx, *inputs)` with every variable of `ctx` a parameter (in
    `Traced.state` order, then the inputs) and the new value of every variable it
    assigns an output after its own (`Traced.updated` names them, sorted): the form of
    a step that updates caller-owned state, such as a key/value cache.

    Raises:
        UsageError: as `trace_model` does.
    """
    specs = [i.spec for i in inputs]
    names = [i.name for i in inputs]
    box: list[Any] = []
    assigned: list[list[str]] = []

    def call(c, *args):
        out = _recording(fn, box)(c, args[0] if len(args) == 1 else tuple(args))
        assigned.append(sorted(c.assigned_variables()))
        return out
    call.__name__ = getattr(fn, "__name__", "model")
    graph, variable_names = guarded(
        lambda: _trace_with_context(ctx, call, specs, name, training=False), fn, inputs)
    program = from_graph(graph, maxima)
    for vid, n in zip(program.params[len(variable_names):], names):
        v = program.values[vid]
        program.values[vid] = Value(vid, v.op, v.inputs, v.attrs, v.dtype, v.shape,
                                    f"--input {n}", n)
    outputs = _checked_outputs(names, box[-1])
    return Traced(program, names, outputs + assigned[-1], state=list(variable_names),
                  updated=assigned[-1])


def check_labels(inputs: list[InputSpec], labels: list[InputSpec]) -> None:
    """Raises UsageError unless the train step's `labels` can be C parameters next to the
    `inputs` and each has the batch (first dimension) of the first input."""
    check_names([i.name for i in labels], "--label", taken={i.name for i in inputs})
    if not inputs or not inputs[0].spec.dims:
        return
    first = inputs[0]
    batch = first.spec.dims[0]
    for label in labels:
        dims = label.spec.dims
        if dims and dims[0] != batch:
            fixed = ",".join(str(d) for d in (batch, *dims[1:]))
            raise UsageError(f"--label {label.name}:{label.spec.dtype}{list(dims)}: its batch "
                             f"(first dimension) {dims[0]} differs from --input {first.name}'s "
                             f"{batch}; a train step takes one label per example, e.g. "
                             f"{label.name}:{label.spec.dtype}[{fixed}]")


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


def _checked_outputs(input_names: list[str], tree) -> list[str]:
    outputs = _output_names(tree)
    check_names(input_names, "--input", outputs=outputs)
    return outputs


def guarded(trace, fn, inputs):
    """Runs `trace`, which calls the user's `fn` on `inputs` (InputSpecs). An exception
    the model raises (any type, raised in or through the file of `fn`) and the type,
    value, key and index errors of a model that does not fit its inputs become a
    one-line UsageError naming the exception and the user's line; anything else (a
    bug of the compiler) propagates with its traceback."""
    try:
        return trace()
    except UsageError:
        raise
    except Exception as e:
        source = _source_file(fn)
        fits = isinstance(e, (TypeError, ValueError, KeyError, IndexError))
        if not fits and not _passes_through(e, source):
            raise
        specs = ", ".join(f"{i.name}: {i.spec}" for i in inputs)
        hint = "check --input" if fits else "fix the model"
        raise UsageError(f"tracing {getattr(fn, '__name__', 'the model')} with inputs {specs} "
                         f"failed ({hint}): {describe_error(e, source)}") from None


def _passes_through(error: BaseException, source) -> bool:
    """Whether `error`'s traceback has a frame in the file `source`."""
    if source is None:
        return False
    wanted = Path(source).resolve()
    return any(Path(f.filename).resolve() == wanted
               for f in traceback.extract_tb(error.__traceback__))


def _source_file(fn):
    code = getattr(inspect.unwrap(fn), "__code__", None)
    return code.co_filename if code is not None else None


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
    # typeshed's function type lacks __signature__, which inspect.signature reads
    recorded.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return recorded
