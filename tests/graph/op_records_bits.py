"""NumPy references and inputs of the bit-level ops (bitwise, shifts, bit counts, bit casts).

NumPy's own shifts by the bit width or more, and its bit count of negative numbers, are
not XLA's, so the references below spell XLA's rules out on the unsigned view of the bits:
a shift amount is read as unsigned; from the width on shift_left and shift_right_logical
give 0 and shift_right_arithmetic the sign fill.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

BITS = (-1000.0, 1000.0)  # the `domain` of the bit ops' records: many set bits, both signs


def _unsigned(dtype) -> np.dtype:
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def _signed(dtype) -> np.dtype:
    return np.dtype(f"i{np.dtype(dtype).itemsize}")


def _amounts(x, y):
    """(width, y read as unsigned, y clamped to width - 1 in x's unsigned type)."""
    width = 8 * x.dtype.itemsize
    u = y.astype(y.dtype).view(_unsigned(y.dtype))
    return width, u, np.minimum(u, width - 1).astype(_unsigned(x.dtype))


def shift_left(x, y):
    width, u, k = _amounts(x, y)
    out = np.left_shift(x.view(_unsigned(x.dtype)), k).view(x.dtype)
    return np.where(u >= width, np.zeros_like(x), out)


def shift_right_logical(x, y):
    width, u, k = _amounts(x, y)
    out = np.right_shift(x.view(_unsigned(x.dtype)), k).view(x.dtype)
    return np.where(u >= width, np.zeros_like(x), out)


def shift_right_arithmetic(x, y):
    _, _, k = _amounts(x, y)
    return np.right_shift(x.view(_signed(x.dtype)), k.astype(_signed(x.dtype))).view(x.dtype)


def popcount(x):
    return np.bitwise_count(x.view(_unsigned(x.dtype))).astype(x.dtype)


def clz(x):
    width = 8 * x.dtype.itemsize
    lengths = [int(v).bit_length() for v in x.view(_unsigned(x.dtype)).reshape(-1)]
    return (width - np.array(lengths, np.int64)).astype(x.dtype).reshape(x.shape)


def int_special(dtype) -> np.ndarray:
    """0, 1, -1 (all bits), the extremes and a single high bit, in `dtype`."""
    info = np.iinfo(dtype)
    top = 1 << (8 * np.dtype(dtype).itemsize - 1)
    values = [0, 1, info.max, info.min, top if info.min == 0 else info.min + 1, 6]
    return np.array(values, np.int64 if info.min < 0 else np.uint64).astype(dtype)


def shift_pairs(dtype) -> tuple[np.ndarray, np.ndarray]:
    """Values with the sign bit set or not, shifted by 0, 1, width - 1, width, width + 1 and
    (signed) -1: the amounts where C's shifts are undefined and XLA's are not."""
    width = 8 * np.dtype(dtype).itemsize
    amounts = [0, 1, width - 1, width, width + 1, 3 * width]
    if np.dtype(dtype).kind == "i":
        amounts.append(-1)
    info = np.iinfo(dtype)
    values = [1, info.max, info.min if info.min < 0 else info.max - 1]
    x = np.array([v for v in values for _ in amounts], dtype)
    y = np.array(amounts * len(values), np.int64).astype(dtype)
    return x, y


_BY_WIDTH = {1: ["int8", "uint8"], 2: ["int16", "uint16", "float16", "bfloat16"],
             4: ["int32", "uint32", "float32"], 8: ["int64", "uint64", "float64"]}


def _dtype(name) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def bitcast_targets(src) -> list[np.dtype]:
    """The dtypes lax.bitcast_convert_type takes `src` to: bool only to bool; every dtype
    of the same width, and one narrower and one wider where they exist."""
    src = np.dtype(src)
    if src == np.bool_:
        return [src]
    width = src.itemsize
    out = [_dtype(n) for n in _BY_WIDTH[width]]
    if width > 1:
        out.append(_dtype(_BY_WIDTH[width // 2][-1]))
    if width < 8:
        out.append(_dtype(_BY_WIDTH[width * 2][-1]))
    return out


def bitcast_values(src) -> np.ndarray:
    """A [3, 2] array of `src` (8 bytes per row, so every wider target fits a row): its
    extremes, signed zeros, NaN and infinities for floats."""
    src = np.dtype(src)
    if src == np.bool_:
        return np.array([[True, False], [False, True], [True, True]])
    if src.kind in "iu":
        info = np.iinfo(src)
        flat = np.array([info.min, info.max, 0, 1, info.max // 3, info.min + 5], object)
        return flat.astype(src).reshape(3, 2)
    values = np.array([np.nan, -np.inf, -0.0, 1.5, np.inf, -3.25], np.float64).astype(src)
    return values.reshape(3, 2)
