"""Window geometry shared by convolution and pooling: kernel, strides, dilations
and the explicit padding that `pads`, `auto_pad` and `ceil_mode` mean."""
from __future__ import annotations

import math

from mlframework.models.onnx.errors import OnnxImportError


def geometry(node, spatial: tuple[int, ...], kernel: tuple[int, ...], ceil_mode: bool = False):
    """(strides, dilations, pads as [(begin, end)] per spatial axis).

    With ceil_mode, `end` includes the extra cells the last partial window reads
    (the second element of each pair then exceeds the declared pads).
    """
    n = len(spatial)
    strides = node.ints("strides", [1] * n)
    dilations = node.ints("dilations", [1] * n)
    auto_pad = node.str("auto_pad", "NOTSET")
    if len(strides) != n or len(dilations) != n:
        raise OnnxImportError(f"strides {strides} and dilations {dilations} need {n} values")
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, s, w in zip(spatial, strides, span):
            out = -(-size // s)
            total = max(0, (out - 1) * s + w - size)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return strides, dilations, pads
    if auto_pad == "VALID":
        pads = [(0, 0)] * n
    elif auto_pad == "NOTSET":
        flat = node.ints("pads", [0] * (2 * n))
        if len(flat) != 2 * n:
            raise OnnxImportError(f"pads {flat} need {2 * n} values")
        pads = list(zip(flat[:n], flat[n:]))
    else:
        raise OnnxImportError(f"auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, "
                              f"got {auto_pad!r}")
    if ceil_mode:
        pads = [(b, e + _ceil_extra(size, b, e, s, w))
                for size, (b, e), s, w in zip(spatial, pads, strides, span)]
    return strides, dilations, pads


def _ceil_extra(size, begin, end, stride, span) -> int:
    padded = size + begin + end
    out = math.ceil((padded - span) / stride) + 1
    if (out - 1) * stride >= size + begin:  # the last window must start inside the input
        out -= 1
    return max(0, (out - 1) * stride + span - padded)


def output_size(size: int, pads: tuple[int, int], stride: int, span: int) -> int:
    return (size + pads[0] + pads[1] - span) // stride + 1
