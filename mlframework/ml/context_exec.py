"""`ContextExec`: `G.Exec` for functions of a `Context`.

    exe = ContextExec(backend, ctx, lambda ctx, x: model(ctx, x))
    logits = exe(x)

The context's variables go into the graph as inputs; variables assigned in
the graph (`ctx.assign`, the RNG state, optimizer updates) come out as
outputs and are stored back into the context, staying on the backend. A
trace that creates variables (initial values on the host) makes each one a
new input of its graph (`G.Exec`'s `NewArguments`): that graph is compiled
once and runs with the created values from the first call on.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mlframework import graph as G
from mlframework.graph.exec import ArgumentsChanged, Compiler, NewArguments
from mlframework.ml.context import ACTIVE_BINDINGS, Binding, Context, VariableError


class MissingVariablesError(VariableError):
    """A function reads variables that a context lacks; `.names` lists them."""

    def __init__(self, fn_name: str, names: list[str]):
        self.names = names
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        super().__init__(f"{fn_name} reads variables the context lacks: {shown}")


class ContextExec:
    """Compiles `fn(ctx, *args)` per input signature with ctx's variables bound.

    Args:
        backend: from `mlf.backends.new()`.
        ctx: the context whose variables the graph reads and updates.
        fn: `fn(ctx, *args) -> pytree of nodes`.
        training: the value of `ctx.training` while tracing.
        donate_variables: every variable is an output (unchanged ones pass
            through) and the input buffers are donated to the backend, so
            updates happen in place; Tensors previously read from the
            variables must not be used afterwards.
        name: the graph's name.
        symbolic, maxima: symbolic axes of fn's arguments (after ctx) and their maxima, as
            `G.Exec` takes them: `symbolic={"x": "N, 64"}` traces once for every batch.
    """

    def __init__(self, backend: Compiler | None, ctx: Context, fn: Callable[..., Any], *,
                 training: bool = False, donate_variables: bool = False, name: str | None = None,
                 symbolic: Any = None, maxima: dict[str, int] | None = None):
        self.backend, self.ctx, self.fn = backend, ctx, fn
        self.training, self.donate_variables = training, donate_variables
        self.name = name or str(getattr(fn, "__name__", "graph"))
        traced: Callable[..., Any] = self._traced
        if symbolic is not None:  # Exec names arguments (in its errors) by fn's parameters
            traced = _renamed(self._traced, fn)
            if not isinstance(symbolic, dict):
                symbolic = (None, *symbolic)
        self._exec = G.Exec(backend, traced, donate=(0,) if donate_variables else (),
                            name=self.name, symbolic=symbolic, maxima=maxima)

    def _traced(self, variables, *args):
        store = self.ctx._store
        previous = store.binding
        binding = store.binding = Binding(variables, self.training, G.current_graph())
        ACTIVE_BINDINGS.append(binding)
        try:
            outputs = self.fn(self.ctx, *args)
        finally:
            store.binding = previous
            ACTIVE_BINDINGS.pop()
        if binding.unrestored:  # a strict checkpoint restore lacks them: leave ctx as it was
            self.ctx.forget_variables(binding.created)
            assert store.strict_restore is not None  # only a strict restore marks them
            raise store.strict_restore.error(binding.unrestored, self.name)
        for name in binding.created:  # one created but not read is still an input
            binding.values.setdefault(name, binding.created_input(
                name, store.variables[name].spec))
        updates = dict(binding.values) if self.donate_variables else binding.assigned()
        if binding.created:  # the calls from now on pass every variable of the context
            inputs = {name: binding.created_input(name, var.spec)
                      for name, var in store.variables.items()}
            return NewArguments((outputs, updates), (inputs, *args))
        return outputs, updates

    def __call__(self, *args: Any) -> Any:
        """Runs fn on `args`; returns its outputs (Tensors) and stores the variable updates.

        Raises:
            checkpoints.VariablesNotInCheckpointError: fn reads variables that the
                checkpoint last restored strictly into ctx lacks (none are created).
        """
        store = self.ctx._store
        for _ in range(3):
            variables = {name: var.value for name, var in store.variables.items()}
            try:
                outputs, updates = self._exec(variables, *args)
            except ArgumentsChanged:  # compiled with the created variables as inputs
                continue
            for name, value in updates.items():
                store.variables[name].value = value
            return outputs
        raise RuntimeError(f"{self.name} keeps creating new variables on every trace; a "
                           "variable's name must not change from one trace to the next")

    def graph(self, *args: Any) -> G.Graph:
        """The graph traced for these example arguments (arrays, Tensors or Shapes).

        Raises:
            MissingVariablesError: if fn would create variables the context lacks
                (they are not created: the context is left as it was); its subclass
                `checkpoints.VariablesNotInCheckpointError` when a strict checkpoint
                restore lacks them.
        """
        store = self.ctx._store
        before = set(store.variables)
        variables = {name: var.value for name, var in store.variables.items()}
        graph = self._exec.graph(variables, *args)
        missing = sorted(set(store.variables) - before)
        if missing:
            self.ctx.forget_variables(missing)
            raise MissingVariablesError(self.name, missing)
        return graph


class _Renamed:
    """`traced(variables, *args)` with the signature `(variables, <fn's after ctx>)`."""

    def __init__(self, traced: Callable[..., Any], signature: inspect.Signature):
        self._traced, self.__signature__ = traced, signature

    def __call__(self, *args: Any) -> Any:
        return self._traced(*args)


def _renamed(traced: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return traced
    first = inspect.Parameter("variables", inspect.Parameter.POSITIONAL_ONLY)
    return _Renamed(traced, inspect.Signature([first, *params]))


__all__ = ["ContextExec", "MissingVariablesError"]
