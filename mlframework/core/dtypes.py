"""Element types of tensors and graph nodes, with NumPy interop.

`DType` is an enum; `as_dtype` accepts a `DType`, a NumPy dtype or type, or a
name such as ``"float32"``. bfloat16 comes from `ml_dtypes`, imported the first
time its NumPy dtype is asked for (the import takes about a second), so that
`import mlframework` stays fast.
"""
from __future__ import annotations

import enum
import sys

from typing import TypeAlias

import numpy as np


class DType(enum.Enum):
    """An element type. `.numpy` is the matching NumPy dtype."""

    BOOL = "bool"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def numpy(self) -> np.dtype:
        return _TO_NUMPY[self] if self in _TO_NUMPY else _bfloat16()

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype, under the name NumPy looks for: `np.zeros(3, mlf.float32)` works."""
        return self.numpy

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in FLOATS

    @property
    def is_int(self) -> bool:
        return self in INTS

    @property
    def is_unsigned(self) -> bool:
        return self in UNSIGNED

    def __repr__(self) -> str:
        return f"mlf.{self.value}"

    def __str__(self) -> str:
        return self.value


# bfloat16 joins both tables when _bfloat16() first imports ml_dtypes
_TO_NUMPY: dict[DType, np.dtype] = {d: np.dtype(d.value) for d in DType
                                     if d is not DType.BFLOAT16}
_FROM_NUMPY: dict[np.dtype, DType] = {v: k for k, v in _TO_NUMPY.items()}


def _bfloat16() -> np.dtype:
    """ml_dtypes' bfloat16, imported on first use and entered into both tables."""
    import ml_dtypes
    np_dtype = np.dtype(ml_dtypes.bfloat16)
    _TO_NUMPY[DType.BFLOAT16] = np_dtype
    _FROM_NUMPY[np_dtype] = DType.BFLOAT16
    return np_dtype

SIGNED = frozenset({DType.INT8, DType.INT16, DType.INT32, DType.INT64})
UNSIGNED = frozenset({DType.UINT8, DType.UINT16, DType.UINT32, DType.UINT64})
INTS = SIGNED | UNSIGNED
FLOATS = frozenset({DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64})
NUMERIC = INTS | FLOATS
BOOLS = frozenset({DType.BOOL})
INTEGRAL = INTS | BOOLS
ALL = frozenset(DType)

BOOL = bool_ = DType.BOOL
int8, int16, int32, int64 = DType.INT8, DType.INT16, DType.INT32, DType.INT64
uint8, uint16, uint32, uint64 = DType.UINT8, DType.UINT16, DType.UINT32, DType.UINT64
float16, bfloat16, float32, float64 = DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64


DTypeSpec: TypeAlias = "DType | np.dtype | type | str"
"""What `as_dtype` accepts: a DType, a NumPy dtype or scalar type, or a name."""


def as_dtype(value: DTypeSpec) -> DType:
    """Converts a DType, NumPy dtype or type, or dtype name into a `DType`.

    Raises:
        TypeError: if the value names no supported dtype.
    """
    if isinstance(value, DType):
        return value
    if isinstance(value, str) and value == "bfloat16":
        return DType.BFLOAT16
    if "ml_dtypes" in sys.modules and DType.BFLOAT16 not in _TO_NUMPY:
        _bfloat16()  # a caller holding ml_dtypes values may pass its bfloat16
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"as_dtype requires a dtype, got {value!r}") from None
    if np_dtype not in _FROM_NUMPY:
        supported = ", ".join(d.value for d in DType)
        raise TypeError(f"as_dtype requires one of {supported}, got {np_dtype}")
    return _FROM_NUMPY[np_dtype]


def finfo_min(dtype: DType) -> np.generic:
    """The lowest value of a dtype (-inf for floats), as a NumPy scalar."""
    if dtype.is_float:
        return dtype.numpy.type(-np.inf)
    if dtype is DType.BOOL:
        return np.bool_(False)
    return dtype.numpy.type(np.iinfo(dtype.numpy).min)


def finfo_max(dtype: DType) -> np.generic:
    """The highest value of a dtype (+inf for floats), as a NumPy scalar."""
    if dtype.is_float:
        return dtype.numpy.type(np.inf)
    if dtype is DType.BOOL:
        return np.bool_(True)
    return dtype.numpy.type(np.iinfo(dtype.numpy).max)
