"""`Tensor`: a concrete value, on the host (a NumPy array) and/or on a backend.

Data moves lazily: a tensor made from NumPy is copied to a backend only when a
backend needs it, and a result stays on its backend until `.numpy()` is called.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from mlframework.core import shapes
from mlframework.core.dtypes import DType, DTypeSpec, as_dtype
from mlframework.core.shapes import Shape, Typed


def host_array(value: ArrayLike) -> np.ndarray:
    """`value` as a NumPy array; Python scalars and lists get JAX's default types.

    Python floats become float32 and Python ints int32, or int64 when a value needs it
    (never a silent wrap). Arrays (NumPy, jax...) and NumPy scalars keep their dtype.

    Raises:
        OverflowError: for Python ints outside the int64 range.
    """
    if isinstance(value, np.generic) or not isinstance(value, bool | int | float | list | tuple):
        return np.asarray(value)  # NumPy, jax and other arrays keep their dtype
    try:
        array: np.ndarray | None = np.asarray(value)
    except OverflowError:
        array = None
    if array is None or array.dtype == object or array.dtype == np.uint64:
        raise OverflowError(f"Python ints must fit int64 (as jax.numpy arrays do with x64), "
                            f"got {value!r}; pass a NumPy array of the dtype you want")
    if array.dtype == np.float64:
        return array.astype(np.float32)  # Python floats default to float32, as in JAX
    if array.dtype == np.int64:
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(np.int32)
    return array


class Storage(Protocol):
    """What a Tensor needs of a backend (`mlframework.backends.Backend` is one): moving
    arrays of a `Shape` to its buffers and back."""

    name: str

    def to_device(self, array: np.ndarray, spec: Shape) -> Any: ...

    def to_host(self, buffer: Any, spec: Shape) -> np.ndarray: ...


class Tensor(Typed):
    """A concrete array value with a fixed `Shape`.

    Create one from a NumPy array, a Python scalar or a (nested) list:
    `Tensor([1.0, 2.0])`, `Tensor(np.zeros((2, 3)), dtype="float32")`. Python values get
    the types of `host_array` (an int beyond int32 becomes int64).
    """

    __slots__ = ("_host", "_buffer", "_backend", "spec")

    _host: np.ndarray | None
    _buffer: Any
    _backend: Storage | None

    def __init__(self, value: ArrayLike | Tensor, dtype: DTypeSpec | None = None):
        if isinstance(value, Tensor):
            value = value.numpy()
        array = _checked_array(value, dtype)
        self._host = array
        self._buffer = None
        self._backend = None
        self.spec = shapes.make(as_dtype(array.dtype), *array.shape)

    @staticmethod
    def on_backend(backend: Storage, buffer: Any, spec: Shape) -> Tensor:
        """Wraps a backend buffer whose shape is `spec`; nothing is copied."""
        t = _new_tensor(Tensor)
        t._host, t._buffer, t._backend, t.spec = None, buffer, backend, spec
        return t

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (copied from the backend once, then cached)."""
        if self._host is None:
            assert self._backend is not None  # a tensor without a host value is on a backend
            self._host = self._backend.to_host(self._buffer, self.spec)
        return self._host

    def buffer(self, backend: Storage) -> Any:
        """The value as a buffer of `backend`, transferring it on first use."""
        if self._buffer is None or self._backend is not backend:
            self._buffer = backend.to_device(self.numpy(), self.spec)
            self._backend = backend
        return self._buffer

    # ---- Python and NumPy conventions: these read the host value ----

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar.

        Raises:
            ValueError: when the tensor has more or fewer than one element.
        """
        if self.size != 1:
            raise ValueError(f"Tensor.item() requires exactly one element, got a tensor of "
                             f"shape {self.shape}; index it first, or use .tolist()")
        return self._python().item()

    def tolist(self) -> Any:
        """The value as (nested) Python lists of Python scalars; a scalar for rank 0."""
        return self._python().tolist()

    def _python(self) -> np.ndarray:
        # bfloat16 scalars are not Python floats: widen them exactly to float32 first
        a = self.numpy()
        return a.astype(np.float32) if self.spec.dtype is DType.BFLOAT16 else a

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor (shape ()); use .item() for its value")
        return int(self.shape[0])  # a tensor's shape is concrete

    def __iter__(self) -> Iterator[Tensor]:
        """The rows along axis 0, as Tensors."""
        if not self.shape:
            raise TypeError("iteration over a 0-d Tensor (shape ()); use .item() for its value")
        return (self[i] for i in range(self.shape[0]))

    def __getitem__(self, index: Any) -> Tensor:
        """NumPy indexing of the host value (ints, slices, None, ..., integer and boolean
        arrays or Tensors); the result is a new Tensor. In a graph, index nodes instead."""
        if isinstance(index, tuple):
            index = tuple(i.numpy() if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, Tensor):
            index = index.numpy()
        return Tensor(np.asarray(self.numpy()[index]))

    def __bool__(self) -> bool:
        return bool(self._one("bool"))

    def __float__(self) -> float:
        return float(self._one("float"))

    def __int__(self) -> int:
        return int(self._one("int"))

    def _one(self, what: str) -> Any:
        if self.size != 1:
            raise ValueError(f"{what}() of a Tensor requires exactly one element, got shape "
                             f"{self.shape}")
        return self._python().reshape(()).item()

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None
                  ) -> np.ndarray:
        a = self.numpy()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError(f"np.asarray(Tensor, dtype={dtype}, copy=False): converting "
                                 f"{self.spec.dtype} to {dtype} needs a copy")
            return a.astype(dtype)
        return a.copy() if copy else a

    # ---- interchange: DLPack (torch.from_dlpack, jax.dlpack, np.from_dlpack) and JAX ----

    def _exchanged(self) -> Any:
        """What DLPack exports: the backend buffer when it speaks DLPack (an XLA array
        stays on its device), else the host array."""
        buffer = self._buffer
        if buffer is not None and hasattr(buffer, "__dlpack__"):
            return buffer
        return self.numpy()

    def __dlpack__(self, *, stream: Any = None, max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
        """A DLPack capsule of the value, shared without a copy where the producer allows.

        Raises:
            BufferError: when the value cannot be exported as asked (NumPy exports no
                bfloat16; an older consumer cannot take a read-only array).
        """
        source = self._exchanged()
        kwargs = {"stream": stream} if stream is not None else {}
        for key, value in (("max_version", max_version), ("dl_device", dl_device),
                           ("copy", copy)):
            if value is not None:
                kwargs[key] = value
        try:
            return source.__dlpack__(**kwargs)
        except BufferError as e:
            raise BufferError(f"Tensor({self.spec}) cannot be exported through DLPack: {e}; "
                              "np.asarray(tensor) gives its value as a NumPy array") from None

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._exchanged().__dlpack_device__()

    def __jax_array__(self) -> Any:
        """The value as a jax.Array (`jnp.asarray(t)`): an XLA-backend buffer as it is."""
        if self._buffer is not None and self._backend is not None and \
                self._backend.name == "xla":
            return self._buffer
        import jax.numpy as jnp
        return jnp.asarray(self.numpy())

    def __repr__(self) -> str:
        return f"Tensor({self.spec}, {np.array2string(self.numpy(), threshold=20)})"


_new_tensor = object.__new__


def _checked_array(value: Any, dtype: Any) -> np.ndarray:
    """The host array of `Tensor(value, dtype)`.

    Raises:
        TypeError: for a value that is not numbers, or an unknown dtype.
        ValueError: for ragged nested lists.
    """
    if dtype is not None:
        try:
            dtype = as_dtype(dtype)
        except TypeError as e:
            raise TypeError(f"Tensor(value, dtype): {e}") from None
    if not isinstance(value, _ARRAY_LIKE) and not hasattr(value, "__array__"):
        raise TypeError(_not_numbers(value))
    try:
        array = host_array(value) if dtype is None else np.asarray(value, dtype=dtype.numpy)
    except ValueError as e:
        raise ValueError(f"Tensor requires a rectangular array (nested lists of equal "
                         f"lengths), got {_short(value)}: {e}") from None
    if array.dtype == object or array.dtype.kind in "USMm":
        raise TypeError(_not_numbers(value))
    try:
        as_dtype(array.dtype)
    except TypeError as e:
        raise TypeError(f"Tensor: {e}") from None
    return array


_ARRAY_LIKE = (np.ndarray, np.generic, bool, int, float, list, tuple)


def _not_numbers(value: object) -> str:
    """The error for a value that is not numbers (built only on error: the repr of a large
    array costs about a millisecond)."""
    return (f"Tensor requires numbers (a NumPy array, a Python scalar or nested lists of "
            f"them), got {type(value).__name__} {_short(value)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
