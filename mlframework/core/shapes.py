"""`Shape`: an immutable, hashable pair of dtype and dimensions.

A dimension is a non-negative int, or a `symbolic.Dim` (a size named at trace time,
such as a batch): `Shape(float32, (dim("N"), 64))` prints as `float32[N, 64]`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlframework.core import symbolic
from mlframework.core.dtypes import DType, DTypeSpec, as_dtype
from mlframework.core.symbolic import Dim, DimLike


@dataclass(frozen=True, slots=True)
class Shape:
    """The type of a tensor or graph node: a dtype and a tuple of dimensions."""

    dtype: DType
    dims: tuple[DimLike, ...]

    def __post_init__(self):
        dims = self.dims
        if type(self.dtype) is DType and type(dims) is tuple and \
                all(type(d) is int and d >= 0 for d in dims):
            return  # the common case, checked fast
        if not isinstance(self.dtype, DType | str) and isinstance(dims, DType | str):
            raise TypeError(f"Shape(dtype, dims) takes the dtype first, got Shape({self.dtype!r}"
                            f", {dims!r}); write Shape({dims!r}, {self.dtype!r}) or "
                            "shapes.make(dtype, *dims)")
        try:
            dtype = as_dtype(self.dtype)
        except TypeError:
            raise TypeError(f"Shape(dtype, dims) requires a dtype such as mlf.float32 first, got "
                            f"{self.dtype!r}") from None
        if not isinstance(dims, tuple | list) or not all(_is_dim(d) for d in dims):
            raise ValueError(f"Shape(dtype, dims) requires dims as a tuple of non-negative "
                             f"ints, got {dims!r} (a dim may also be a symbolic Dim)")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "dims", tuple(d if isinstance(d, Dim) else int(d)
                                               for d in dims))

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> DimLike:
        """Number of elements (1 for a scalar); a `Dim` when a dimension is symbolic."""
        return math.prod(self.dims)

    @property
    def nbytes(self) -> DimLike:
        return self.size * self.dtype.itemsize

    @property
    def symbols(self) -> frozenset[str]:
        """The names of the symbolic dimensions (empty for a static shape)."""
        return symbolic.symbols_of(self.dims)

    def bind(self, sizes: dict[str, int]) -> Shape:
        """This shape with each symbol replaced by its size in `sizes`.

        Raises:
            SymbolicError: a symbol of the shape has no size in `sizes`.
        """
        if not self.symbols:
            return self
        return Shape(self.dtype, tuple(symbolic.evaluate(d, sizes) for d in self.dims))

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(map(str, self.dims))}]"

    __repr__ = __str__


class Typed:
    """Mixin for values with a `spec: Shape` (nodes, tensors): NumPy-style
    `shape` (a tuple of dims), `dtype`, `ndim` and `size`."""

    __slots__ = ()
    spec: Shape

    @property
    def shape(self) -> tuple[DimLike, ...]:
        return self.spec.dims

    @property
    def dtype(self) -> DType:
        return self.spec.dtype

    @property
    def ndim(self) -> int:
        return self.spec.rank

    @property
    def size(self) -> DimLike:
        return self.spec.size


def make(dtype: DTypeSpec, *dims: DimLike) -> Shape:
    """Builds a Shape: `make(float32, 4, 3)` is a 4x3 float32 matrix; `make(float32)` a scalar.

    Raises:
        ValueError: on a negative or non-integer dimension.
    """
    if not all(_is_dim(d) for d in dims):
        raise ValueError(f"shapes.make requires non-negative integer dims, got {dims}")
    return Shape(as_dtype(dtype), tuple(d if isinstance(d, Dim) else int(d) for d in dims))


def _is_dim(d) -> bool:
    if isinstance(d, Dim):
        return True
    return not isinstance(d, bool) and hasattr(d, "__index__") and int(d) >= 0
