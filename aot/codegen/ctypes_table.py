"""C spellings of element types: storage type, compute type and tag, loads and
stores, literals. Half types are stored as uint16_t and computed in float."""
from __future__ import annotations

import math

import numpy as np

from mlframework.core.dtypes import DType

STORAGE = {
    DType.BOOL: "uint8_t", DType.INT8: "int8_t", DType.INT16: "int16_t", DType.INT32: "int32_t",
    DType.INT64: "int64_t", DType.UINT8: "uint8_t", DType.UINT16: "uint16_t",
    DType.UINT32: "uint32_t", DType.UINT64: "uint64_t", DType.FLOAT16: "uint16_t",
    DType.BFLOAT16: "uint16_t", DType.FLOAT32: "float", DType.FLOAT64: "double",
}
TAG = {
    DType.BOOL: "b8", DType.INT8: "i8", DType.INT16: "i16", DType.INT32: "i32",
    DType.INT64: "i64", DType.UINT8: "u8", DType.UINT16: "u16", DType.UINT32: "u32",
    DType.UINT64: "u64", DType.FLOAT16: "f32", DType.BFLOAT16: "f32", DType.FLOAT32: "f32",
    DType.FLOAT64: "f64",
}
HALF = {DType.FLOAT16: "f16", DType.BFLOAT16: "bf16"}
NARROW = {DType.BOOL, DType.INT8, DType.INT16, DType.UINT8, DType.UINT16}  # promoted by C


def compute(dtype: DType) -> str:
    """The C type arithmetic on `dtype` happens in."""
    return "float" if dtype in HALF else STORAGE[dtype]


def load(dtype: DType, ptr: str, index: str) -> str:
    if dtype in HALF:
        return f"mlf_load_{HALF[dtype]}({ptr}[{index}])"
    return f"{ptr}[{index}]"


def store(dtype: DType, value: str) -> str:
    if dtype in HALF:
        return f"mlf_store_{HALF[dtype]}({value})"
    if dtype in NARROW:
        return f"({STORAGE[dtype]})({value})"
    return value


def narrow(dtype: DType, expr: str) -> str:
    """`expr` cast back to `dtype` where C integer promotion would widen it."""
    return f"({STORAGE[dtype]})({expr})" if dtype in NARROW else expr


def literal(value, dtype: DType) -> str:
    """A C literal of `value` in `dtype`'s compute type."""
    if dtype.is_float:
        v = float(value)
        suffix = "f" if compute(dtype) == "float" else ""
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        text = repr(float(np.float32(v))) if suffix else repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return text + suffix
    if dtype is DType.BOOL:
        return "1" if value else "0"
    v = int(value)
    if dtype is DType.INT64:
        return "INT64_MIN" if v == -2**63 else f"INT64_C({v})"
    if dtype is DType.UINT64:
        return f"UINT64_C({v})"
    if dtype is DType.INT32 and v == -2**31:
        return "INT32_MIN"
    if dtype is DType.UINT32:
        return f"{v}u"
    return str(v) if v >= 0 else f"({v})"


def lowest(dtype: DType) -> str:
    if dtype.is_float:
        return "-INFINITY"
    if dtype is DType.BOOL:
        return "0"
    return literal(np.iinfo(dtype.numpy).min, dtype)


def highest(dtype: DType) -> str:
    if dtype.is_float:
        return "INFINITY"
    if dtype is DType.BOOL:
        return "1"
    return literal(np.iinfo(dtype.numpy).max, dtype)
