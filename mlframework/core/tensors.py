"""`Tensor`: a concrete value, on the host (a NumPy array) and/or on a backend.

Data moves lazily: a tensor made from NumPy is copied to a backend only when a
backend needs it, and a result stays on its backend until `.numpy()` is called.
"""
from __future__ import annotations

import numpy as np

from mlframework.core import shapes
from mlframework.core.dtypes import as_dtype
from mlframework.core.shapes import Shape, Typed


class Tensor(Typed):
    """A concrete array value with a fixed `Shape`.

    Create one from a NumPy array, a Python scalar or a (nested) list:
    `Tensor([1.0, 2.0])`, `Tensor(np.zeros((2, 3)), dtype="float32")`.
    """

    __slots__ = ("_host", "_buffer", "_backend", "spec")

    def __init__(self, value, dtype=None):
        if isinstance(value, Tensor):
            value = value.numpy()
        array = np.asarray(value, dtype=None if dtype is None else as_dtype(dtype).numpy)
        weak = dtype is None and not isinstance(value, np.ndarray | np.generic)
        if array.dtype == np.float64 and weak:
            array = array.astype(np.float32)  # Python floats default to float32, as in JAX
        elif array.dtype == np.int64 and weak:
            array = array.astype(np.int32)
        self._host = array
        self._buffer = None
        self._backend = None
        self.spec = shapes.make(as_dtype(array.dtype), *array.shape)

    @staticmethod
    def on_backend(backend, buffer, spec: Shape) -> "Tensor":
        """Wraps a backend buffer whose shape is `spec`; nothing is copied."""
        t = _new_tensor(Tensor)
        t._host, t._buffer, t._backend, t.spec = None, buffer, backend, spec
        return t

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (copied from the backend once, then cached)."""
        if self._host is None:
            self._host = self._backend.to_host(self._buffer, self.spec)
        return self._host

    def buffer(self, backend):
        """The value as a buffer of `backend`, transferring it on first use."""
        if self._buffer is None or self._backend is not backend:
            self._buffer = backend.to_device(self.numpy(), self.spec)
            self._backend = backend
        return self._buffer

    def item(self):
        return self.numpy().item()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"Tensor({self.spec}, {np.array2string(self.numpy(), threshold=20)})"


_new_tensor = object.__new__
