"""The correspondence between a checkpoint's tensors and a context's variables.

A `Param` says which HuggingFace tensor a context variable comes from and how:
`transpose` turns a torch `nn.Linear` weight [out, in] into a dense layer's
[in, out]; `part` = (i, n) takes the i-th of n equal slices of the last axis
(GPT-2's fused query/key/value projection). `load_params` builds the variables,
`hf_tensors` runs the correspondence backwards for saving.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlframework.core import shapes
from mlframework.core.tensors import Tensor
from mlframework.models.hf.weights import Weights


@dataclass(frozen=True)
class Param:
    """Context variable `variable` from checkpoint tensor `tensor` of shape `shape`."""

    variable: str
    tensor: str
    shape: tuple[int, ...]
    transpose: bool = False
    part: tuple[int, int] = (0, 1)


def _variable_value(view: np.ndarray, param: Param) -> np.ndarray:
    """The variable's float32 array: the mapping itself when its layout and dtype fit,
    else one copy (the only one on the host)."""
    a = view.T if param.transpose else view
    index, count = param.part
    if count > 1:
        width = a.shape[-1] // count
        a = a[..., index * width:(index + 1) * width]
    if a.dtype == np.float32 and a.flags.c_contiguous:
        return a
    return np.array(a, dtype=np.float32, order="C")


def load_params(weights: Weights, params: list[Param], ctx, backend) -> None:
    """Creates each param's variable (trainable, float32) at ctx's root, on `backend`.

    A backend that runs on host arrays (the c backend) gets the mapping itself where a
    tensor is float32 in the variable's layout, else the one converted copy; a backend
    with buffers of its own gets each array once, and the tensor's mapped pages are
    released as soon as it has copied them.

    Raises:
        WeightsError: naming the tensor when it is missing, mis-shaped or of another dtype
            than float32, float16 or bfloat16.
    """
    root = ctx.at_root()
    for param in params:
        value = _variable_value(weights.get(param.tensor, param.shape), param)
        spec = shapes.make(np.float32, *value.shape)
        buffer = backend.to_device(value, spec)
        root.create_variable(param.variable, Tensor.on_backend(backend, buffer, spec))
        if not isinstance(buffer, np.ndarray):  # the backend holds its own copy
            weights.release(param.tensor)


def hf_tensors(params: list[Param], ctx) -> dict[str, np.ndarray]:
    """Checkpoint tensor name -> float32 array in HuggingFace layout, from ctx's variables."""
    parts: dict[str, list[tuple[int, np.ndarray, Param]]] = {}
    root = ctx.at_root()
    for param in params:
        value = root.get_variable(param.variable).numpy()
        parts.setdefault(param.tensor, []).append((param.part[0], value, param))
    out = {}
    for name, pieces in parts.items():
        pieces.sort(key=lambda p: p[0])
        joined = np.concatenate([p[1] for p in pieces], axis=-1)
        out[name] = np.ascontiguousarray(joined.T if pieces[0][2].transpose else joined,
                                         dtype=np.float32)
    return out


__all__ = ["Param", "hf_tensors", "load_params"]
