"""`Context`: scoped variables, hyperparameters and random-number state.

A model is a function `model(ctx, inputs) -> outputs` over graph nodes. It
asks the context for its variables by name; a variable is created, with its
initializer, the first time a graph asks for it:

    def model(ctx, x):
        x = layers.dense(ctx / "hidden", x, 64)          # hidden/dense/weights, .../biases
        return layers.dense(ctx / "logits", G.relu(x), 10)

`ctx / "name"` (or `ctx.in_scope("name")`) is a view of the same store one
scope down. Variable names are scope paths joined with "/".

Reuse rules: within one traced graph a variable may be read once through a
plain context; reading it again (sharing weights) needs `ctx.reuse()`, whose
reads must find an existing variable. Anything else is an error naming the
variable, so a typo in a scope name cannot silently create fresh weights.

Hyperparameters (`ctx.set_params(learning_rate=1e-3)`) are looked up from the
current scope up to the root (`ctx.get_param("learning_rate", 1e-2)`) and
saved with checkpoints. Randomness inside graphs comes from
`ctx.random_key()`, which advances an `rng_state` variable that starts from
the context's seed, so dropout is reproducible and resumes exactly.

After a strict `checkpoints.restore`, the context refuses to create from its
initializer a variable the checkpoint lacks (see `checkpoints`), so a model
cannot silently run on fresh weights in place of restored ones.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from mlframework import graph as G
from mlframework.core.dtypes import DTypeSpec, as_dtype
from mlframework.core.shapes import Shape
from mlframework.core.tensors import Tensor
from mlframework.graph.graph import Operand
from mlframework.ml import initializers as inits
from mlframework.ml import remat

RNG_STATE = "rng_state"
GLOBAL_STEP = "global_step"
OPTIMIZER_SCOPE = "optimizer"  # optimizer state: optimizer/<optimizer name>/<slot>/<variable>


class VariableError(ValueError):
    """A variable was created, reused or shaped against the context's rules."""


class Variable:
    """A named, persistent value: `value` is a Tensor (on the host or a backend)."""

    __slots__ = ("name", "value", "trainable")

    def __init__(self, name: str, value: Tensor, trainable: bool):
        self.name, self.value, self.trainable = name, value, trainable

    @property
    def spec(self) -> Shape:
        return self.value.spec

    def numpy(self) -> np.ndarray:
        return self.value.numpy()

    def __repr__(self) -> str:
        kind = "trainable" if self.trainable else "state"
        return f"<Variable {self.name} {self.spec} {kind}>"


class RestoreGuard(Protocol):
    """What a strict `checkpoints.restore` leaves on the context: which variables it may
    still create from their initializers, and the error naming those it may not."""

    def allows(self, name: str) -> bool: ...

    def error(self, names: list[str], reader: str) -> Exception: ...


class _Store:
    """What all views of one context share."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.variables: dict[str, Variable] = {}
        self.params: dict[str, dict] = {}
        self.binding: Binding | None = None
        self.strict_restore: RestoreGuard | None = None  # set by a strict checkpoints.restore


class Binding:
    """The variables of the graph being traced: name -> current node.

    `inputs` holds the graph parameters the variables came in as; `values`
    their current nodes (changed by `Context.assign`); `created` the names of
    variables first created during this trace (each becomes a new parameter of
    `graph`, see `created_input`); `unrestored` those of them that a strict
    checkpoint restore forbids (the trace then fails naming them all).
    """

    def __init__(self, inputs: dict, training: bool, graph: G.Graph):
        self.inputs = dict(inputs)
        self.values = dict(inputs)
        self.training, self.graph = training, graph
        self.read: set[str] = set()
        self.created: list[str] = []
        self.unrestored: list[str] = []

    def created_input(self, name: str, spec: Shape) -> G.Node:
        """The parameter of `graph` that variable `name`, created in this trace, comes in
        as from the next call on (added on first use; the variable's value is its input)."""
        node = self.inputs.get(name)
        if node is None:
            node = self.inputs[name] = G.parameter(spec, graph=self.graph)
        return node

    def snapshot(self):
        return self, dict(self.values), set(self.read)

    def restore(self, snapshot) -> None:
        self.values, self.read = dict(snapshot[1]), set(snapshot[2])

    def assigned(self) -> dict:
        """Variables whose node changed during the trace: name -> new node."""
        return {k: v for k, v in self.values.items() if self.inputs.get(k) is not v}


ACTIVE_BINDINGS: list[Binding] = []  # innermost last; pushed by ContextExec


def _save_binding():
    return ACTIVE_BINDINGS[-1].snapshot() if ACTIVE_BINDINGS else None


def _restore_binding(snapshot) -> None:
    if snapshot is not None:
        snapshot[0].restore(snapshot)


remat.register_trace_state(_save_binding, _restore_binding)


def _graph_traced() -> bool:
    try:
        G.current_graph()
    except RuntimeError:
        return False
    return True


class Context:
    """Variables, hyperparameters and RNG state, seen through a scope.

    Args:
        seed: seeds every initializer and the in-graph random state.
        **params: root hyperparameters, as `set_params`.

    Raises:
        TypeError: for a seed that is not a non-negative int.
    """

    def __init__(self, seed: int = 0, **params: Any):
        if isinstance(seed, bool) or not hasattr(seed, "__index__") or int(seed) < 0:
            raise TypeError(f"Context(seed) requires a non-negative int seed, got {seed!r}")
        self._store = _Store(seed)
        self._scope: tuple[str, ...] = ()
        self._reuse = False
        if params:
            self.set_params(**params)

    def _view(self, scope: tuple[str, ...], reuse: bool) -> "Context":
        view = Context.__new__(Context)
        view._store, view._scope, view._reuse = self._store, scope, reuse
        return view

    # ---- scopes ----

    @property
    def scope(self) -> str:
        """The current scope path, "" at the root."""
        return "/".join(self._scope)

    @property
    def seed(self) -> int:
        return self._store.seed

    def in_scope(self, name: str) -> "Context":
        """A view one scope down: variables get names `scope/name/...`."""
        if not name or "/" in name:
            raise ValueError(f"in_scope requires a non-empty name without '/', got {name!r}")
        return self._view(self._scope + (name,), self._reuse)

    __truediv__ = in_scope

    def at_root(self) -> "Context":
        """A view of the root scope."""
        return self._view((), self._reuse)

    def reuse(self) -> "Context":
        """A view whose variable reads must find an existing variable (shared weights)."""
        return self._view(self._scope, True)

    def _full(self, name: str) -> str:
        return "/".join(self._scope + (name,))

    def forget_variables(self, names: Iterable[str]) -> None:
        """Removes the named variables from the context."""
        for name in names:
            self._store.variables.pop(name, None)

    # ---- hyperparameters ----

    def set_params(self, **params: Any) -> "Context":
        """Sets hyperparameters at this scope; returns the context."""
        self._store.params.setdefault(self.scope, {}).update(params)
        return self

    def get_param(self, key: str, default: Any | None = None) -> Any:
        """The hyperparameter `key` from this scope or the nearest enclosing one."""
        for depth in range(len(self._scope), -1, -1):
            scoped = self._store.params.get("/".join(self._scope[:depth]), {})
            if key in scoped:
                return scoped[key]
        return default

    @property
    def params(self) -> dict[str, dict]:
        """All hyperparameters: scope path -> {key: value}."""
        return self._store.params

    # ---- variables ----

    def variable(self, name: str, shape: Sequence[int], dtype: DTypeSpec = np.float32,
                 initializer: inits.Initializer | None = None, trainable: bool = True
                 ) -> G.Node | Variable:
        """The variable `scope/name`: its current node while a graph is traced.

        Creates it on first use with `initializer` (default: zeros). Outside
        tracing, returns the `Variable`; in a graph traced without the context
        (a plain `G.Exec`), a constant holding its value.

        Raises:
            VariableError: on a shape or dtype mismatch with the existing
                variable, on a second read in one graph without `reuse()`, or on
                creation through a `reuse()` view.
            checkpoints.VariablesNotInCheckpointError: outside a `ContextExec`
                trace, on creating a variable that the checkpoint restored
                strictly lacks (inside one, the trace raises it at its end,
                naming every such variable).
        """
        full, shape, dtype = self._full(name), tuple(int(d) for d in shape), as_dtype(dtype)
        var = self._store.variables.get(full)
        binding = self._store.binding
        if var is None:
            if self._reuse:
                raise VariableError(f"variable {full!r} does not exist, and ctx.reuse() "
                                    "does not create variables; drop .reuse() to create it")
            restored = self._store.strict_restore
            if restored is not None and not restored.allows(full):
                if binding is None:
                    raise restored.error([full], f"ctx.variable({name!r})")
                binding.unrestored.append(full)
            var = self.create_variable(name, self._initial_value(full, shape, dtype, initializer),
                                       trainable)
        elif var.spec.dims != shape or var.spec.dtype != dtype:
            raise VariableError(f"variable {full!r} exists as {var.spec}, requested "
                                f"{dtype}{list(shape)}")
        if binding is None:  # a plain G.Exec trace sees the value as a constant
            return G.const(var.numpy()) if _graph_traced() else var
        if full in binding.read and not self._reuse:
            raise VariableError(f"variable {full!r} is already used in this graph; use "
                                "ctx.reuse() to share it, or another scope for new weights")
        binding.read.add(full)
        return self._bound(binding, full)

    def node(self, name: str, shape: Sequence[int], dtype: DTypeSpec = np.float32,
             initializer: inits.Initializer | None = None, trainable: bool = True) -> G.Node:
        """`variable(...)` in the graph being traced: the variable's node (what layers use).

        Raises:
            RuntimeError: outside tracing, where `variable` gives the `Variable` itself.
            VariableError, checkpoints.VariablesNotInCheckpointError: as `variable`.
        """
        out = self.variable(name, shape, dtype, initializer, trainable)
        if not isinstance(out, G.Node):
            raise RuntimeError(f"ctx.node({name!r}) requires a graph being traced (a model run "
                               "by a Trainer, ContextExec or G.Exec); outside tracing, "
                               "ctx.variable gives the Variable")
        return out

    def _initial_value(self, full, shape, dtype, initializer) -> np.ndarray:
        rng = np.random.default_rng([self._store.seed, zlib.crc32(full.encode())])
        value = (initializer or inits.zeros())(rng, shape, dtype.numpy)
        value = np.asarray(value, dtype.numpy)
        if value.shape != shape:
            raise VariableError(f"initializer of {full!r} returned shape {value.shape}, "
                                f"requested {shape}")
        return value

    def create_variable(self, name: str, value: ArrayLike | Tensor,
                        trainable: bool = True) -> Variable:
        """Adds `scope/name` with the given initial value (array or Tensor)."""
        full = self._full(name)
        if full in self._store.variables:
            raise VariableError(f"variable {full!r} already exists")
        var = Variable(full, value if isinstance(value, Tensor) else Tensor(np.asarray(value)),
                       trainable)
        self._store.variables[full] = var
        if self._store.binding is not None:
            self._store.binding.created.append(full)
        return var

    def _bound(self, binding: Binding, full: str) -> G.Node:
        node = binding.values.get(full)
        if node is None:  # created in this trace: a new input of the graph
            node = binding.values[full] = binding.created_input(
                full, self._store.variables[full].spec)
        return node

    def assign(self, name: str, value: Operand) -> None:
        """Sets variable `scope/name` to the node `value` from here on in the graph.

        The value is written back to the variable when the graph has run.
        """
        full = self._full(name)
        binding = self._tracing("assign")
        var = self._store.variables.get(full)
        if var is None:
            raise VariableError(f"assign requires an existing variable, got {full!r}")
        value = G.convert(value, var.spec.dtype) if isinstance(value, G.Node) else \
            G.const(np.asarray(value, var.spec.dtype.numpy))
        if value.shape != var.spec.dims:
            raise VariableError(f"assign to {full!r} requires shape {var.spec.dims}, "
                                f"got {value.shape}")
        self._bound(binding, full)
        binding.values[full] = value

    def assigned_variables(self) -> dict:
        """{full variable name: new node} of the variables assigned so far in the graph
        being traced (inside a ContextExec)."""
        return self._tracing("assigned_variables").assigned()

    def value(self, name: str) -> G.Node:
        """The current node of existing variable `scope/name` (no reuse check)."""
        full = self._full(name)
        binding = self._tracing("value")
        if full not in self._store.variables:
            raise VariableError(f"variable {full!r} does not exist")
        return self._bound(binding, full)

    def get_variable(self, name: str) -> Variable:
        """The `Variable` called `scope/name`. Raises KeyError naming it if absent."""
        full = self._full(name)
        if full not in self._store.variables:
            raise KeyError(f"no variable {full!r}; variables: "
                           f"{', '.join(sorted(self._store.variables)) or 'none'}")
        return self._store.variables[full]

    def variables(self) -> list[Variable]:
        """All variables under this scope, sorted by name."""
        prefix = self.scope + "/" if self._scope else ""
        return [v for k, v in sorted(self._store.variables.items()) if k.startswith(prefix)]

    def trainable_variables(self) -> list[Variable]:
        return [v for v in self.variables() if v.trainable]

    def _tracing(self, what: str) -> Binding:
        if self._store.binding is None:
            raise RuntimeError(f"ctx.{what} needs a graph being traced with the context "
                               "(inside a ContextExec or Trainer step)")
        return self._store.binding

    # ---- training mode and randomness ----

    @property
    def training(self) -> bool:
        """True while a training graph is traced (dropout on, batch norm uses batch stats)."""
        binding = self._store.binding
        return bool(binding and binding.training)

    def random_key(self) -> G.Node:
        """A fresh uint32[2] key node; advances the context's `rng_state` variable."""
        self._tracing("random_key")
        root = self.at_root()
        if RNG_STATE not in self._store.variables:
            root.create_variable(RNG_STATE, G.random_key(self._store.seed), trainable=False)
        keys = G.split_key(root.value(RNG_STATE), 2)
        root.assign(RNG_STATE, keys[0])
        return keys[1]

    def global_step(self) -> G.Node:
        """The int32 step counter's node (created at 0); the Trainer advances it."""
        root = self.at_root()
        if GLOBAL_STEP not in self._store.variables:
            root.create_variable(GLOBAL_STEP, np.zeros((), np.int32), trainable=False)
        return root.value(GLOBAL_STEP)

    def __repr__(self) -> str:
        return (f"<Context scope={self.scope!r} variables={len(self._store.variables)} "
                f"seed={self._store.seed}>")


__all__ = ["Binding", "Context", "GLOBAL_STEP", "OPTIMIZER_SCOPE", "RNG_STATE", "Variable",
           "VariableError"]
