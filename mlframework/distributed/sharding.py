"""Which variables are split across the mesh: rules from a variable's name and shape.

    rule = distributed.fsdp(min_size=2**18)      # the default: large variables sharded
    rule("hidden1/weights", (64, 128), 4)        # -> ("data", None) or ()

A rule is `rule(name, shape, axis_size) -> spec`: `spec` has one entry per
dimension of the variable, `"data"` for the one dimension split across the
mesh's data axis and None for the others, or is `()` for a variable every
device holds whole (replicated). The same rule places the optimizer state
(Adam's moments have their variable's shape, so they are sharded alike).

Sharded ("FSDP-style") variables are gathered by XLA's SPMD partitioner where
the step uses them; their gradients are reduce-scattered. Either way the
result is the single-device computation: sharding changes where values live,
not what is computed.
"""
from __future__ import annotations

import math
from collections.abc import Callable

DATA = "data"  # the mesh axis the batch (and sharded variables) are split on

Rule = Callable[[str, tuple[int, ...], int], tuple]
"""A sharding rule: `rule(name, shape, axis_size) -> spec` (a PartitionSpec's entries)."""

DEFAULT_MIN_SIZE = 2 ** 18  # elements: 1 MiB of float32; smaller variables stay replicated


def replicated(name: str, shape: tuple[int, ...], axis_size: int) -> tuple:
    """Every variable whole on every device (plain data parallelism)."""
    return ()


def fsdp(min_size: int = DEFAULT_MIN_SIZE) -> Rule:
    """A rule sharding each variable of at least `min_size` elements on its largest
    dimension divisible by the data axis size (the first such, on ties); smaller
    variables, scalars and those with no divisible dimension are replicated.

    `fsdp(min_size=0)` shards every variable that can be sharded.
    """
    if min_size < 0:
        raise ValueError(f"fsdp requires min_size >= 0 elements, got {min_size}")

    def rule(name: str, shape: tuple[int, ...], axis_size: int) -> tuple:
        if axis_size == 1 or not shape or math.prod(shape) < min_size:
            return ()
        candidates = [d for d, n in enumerate(shape) if n % axis_size == 0 and n >= axis_size]
        if not candidates:
            return ()
        dim = max(candidates, key=lambda d: (shape[d], -d))
        return tuple(DATA if d == dim else None for d in range(len(shape)))

    rule.__name__ = rule.__qualname__ = f"fsdp(min_size={min_size})"
    return rule


def check_spec(name: str, shape: tuple[int, ...], spec, axis_size: int) -> tuple:
    """`spec` (from a rule) as a tuple, checked against the variable's shape.

    Raises:
        ValueError: naming the variable, when the spec has more entries than the
            variable has dimensions, names an axis other than "data", splits more
            than one dimension, or splits one the axis size does not divide.
    """
    spec = tuple(spec)
    if len(spec) > len(shape):
        raise ValueError(f"sharding rule gave {spec} for variable {name!r} of shape "
                         f"{list(shape)}: more entries than dimensions")
    bad = [a for a in spec if a not in (None, DATA)]
    if bad or spec.count(DATA) > 1:
        raise ValueError(f"sharding rule gave {spec} for variable {name!r}: entries must be "
                         f"None or {DATA!r}, with {DATA!r} at most once")
    for d, axis in enumerate(spec):
        if axis == DATA and shape[d] % axis_size:
            raise ValueError(f"sharding rule splits dimension {d} (of size {shape[d]}) of "
                             f"variable {name!r} {list(shape)} across {axis_size} devices, "
                             "which do not divide it; shard another dimension or replicate it")
    return spec


__all__ = ["DATA", "DEFAULT_MIN_SIZE", "check_spec", "fsdp", "replicated"]
