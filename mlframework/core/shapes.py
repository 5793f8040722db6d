"""`Shape`: an immutable, hashable pair of dtype and dimensions."""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlframework.core.dtypes import DType, as_dtype


@dataclass(frozen=True, slots=True)
class Shape:
    """The type of a tensor or graph node: a dtype and a tuple of dimensions."""

    dtype: DType
    dims: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        """Number of elements (1 for a scalar)."""
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(map(str, self.dims))}]"

    __repr__ = __str__


class Typed:
    """Mixin for values with a `spec: Shape` (nodes, tensors): NumPy-style
    `shape` (a tuple of dims), `dtype`, `ndim` and `size`."""

    __slots__ = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.dims

    @property
    def dtype(self) -> DType:
        return self.spec.dtype

    @property
    def ndim(self) -> int:
        return self.spec.rank

    @property
    def size(self) -> int:
        return self.spec.size


def make(dtype, *dims: int) -> Shape:
    """Builds a Shape: `make(float32, 4, 3)` is a 4x3 float32 matrix; `make(float32)` a scalar.

    Raises:
        ValueError: on a negative or non-integer dimension.
    """
    out = []
    for d in dims:
        if isinstance(d, bool) or not hasattr(d, "__index__") or int(d) < 0:
            raise ValueError(f"shapes.make requires non-negative integer dims, got {dims}")
        out.append(int(d))
    return Shape(as_dtype(dtype), tuple(out))
