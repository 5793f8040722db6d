"""Parsing what `aotc` is told about a model: `--input NAME:DTYPE[DIMS]` specs
and `MODULE:FUNCTION` references."""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys
from dataclasses import dataclass

from mlframework.core import shapes
from mlframework.core.dtypes import as_dtype
from mlframework.core.shapes import Shape

_SPEC = re.compile(r"^(?P<name>[A-Za-z_]\w*):(?P<dtype>\w+)\[(?P<dims>[\d,\s]*)\]$")


class UsageError(ValueError):
    """A command-line argument that the user must fix; `aotc` exits with status 2."""


@dataclass(frozen=True)
class InputSpec:
    """One model input: a C identifier and its Shape."""

    name: str
    spec: Shape


def parse_input(text: str) -> InputSpec:
    """Parses `NAME:DTYPE[DIMS]`, e.g. `x:float32[1,784]` or `scale:float32[]`.

    Raises:
        UsageError: naming the part that is wrong and showing the expected form.
    """
    match = _SPEC.match(text.strip())
    if not match:
        raise UsageError(f"--input requires NAME:DTYPE[DIMS] such as x:float32[1,784], "
                         f"got {text!r}")
    try:
        dtype = as_dtype(match["dtype"])
    except TypeError:
        raise UsageError(f"--input {text!r}: unknown dtype {match['dtype']!r}; use e.g. "
                         "float32, int32, uint8") from None
    dims = [int(d) for d in match["dims"].replace(" ", "").split(",") if d]
    return InputSpec(match["name"], shapes.make(dtype, *dims))


def load_function(reference: str):
    """Imports `MODULE:FUNCTION`; MODULE is a dotted module name or a path to a .py file.

    Raises:
        UsageError: if the module or the function cannot be found.
    """
    module_name, sep, function_name = reference.rpartition(":")
    if not sep or not module_name or not function_name:
        raise UsageError(f"expected MODULE:FUNCTION such as examples/digits_mlp.py:model, "
                         f"got {reference!r}")
    path = pathlib.Path(module_name)
    try:
        if path.suffix == ".py":
            if not path.is_file():
                raise UsageError(f"module file {module_name!r} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.resolve().parent))
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise UsageError(f"cannot import module {module_name!r}: {e}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"module {module_name!r} has no function {function_name!r}")
    return function
