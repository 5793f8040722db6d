"""ONNX element types and mlframework dtypes, both ways.

Raises UnsupportedOperatorError (via `from_onnx`) for the ONNX types without a
mlframework dtype: string, complex, float8 and 4-bit types.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from mlframework.core.dtypes import DType, as_dtype
from mlframework.models.onnx.errors import UnsupportedOperatorError

_FROM_ONNX: dict[int, DType] = {
    TensorProto.FLOAT: DType.FLOAT32, TensorProto.DOUBLE: DType.FLOAT64,
    TensorProto.FLOAT16: DType.FLOAT16, TensorProto.BFLOAT16: DType.BFLOAT16,
    TensorProto.INT8: DType.INT8, TensorProto.INT16: DType.INT16,
    TensorProto.INT32: DType.INT32, TensorProto.INT64: DType.INT64,
    TensorProto.UINT8: DType.UINT8, TensorProto.UINT16: DType.UINT16,
    TensorProto.UINT32: DType.UINT32, TensorProto.UINT64: DType.UINT64,
    TensorProto.BOOL: DType.BOOL,
}
_TO_ONNX = {v: k for k, v in _FROM_ONNX.items()}


def from_onnx(elem_type: int, what: str = "a tensor") -> DType:
    """The mlframework dtype of an ONNX TensorProto.DataType code."""
    if elem_type not in _FROM_ONNX:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() \
            else str(elem_type)
        raise UnsupportedOperatorError(f"{what} has ONNX type {name}, which mlframework does not "
                                       f"support (supported: {', '.join(sorted(supported()))})")
    return _FROM_ONNX[elem_type]


def to_onnx(dtype) -> int:
    """The TensorProto.DataType code of a mlframework (or NumPy) dtype."""
    return _TO_ONNX[as_dtype(dtype)]


def supported() -> list[str]:
    return [TensorProto.DataType.Name(k) for k in _FROM_ONNX]


def numpy_of(elem_type: int) -> np.dtype:
    return from_onnx(elem_type).numpy
