"""Core value types: dtypes, shapes, tensors and pytrees."""
from mlframework.core import dtypes, pytree, shapes
from mlframework.core.dtypes import DType, as_dtype
from mlframework.core.shapes import Shape
from mlframework.core.tensors import Tensor

__all__ = ["DType", "Shape", "Tensor", "as_dtype", "dtypes", "pytree", "shapes"]
