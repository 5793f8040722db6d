"""Contractions: MatMul, Gemm, Einsum, Conv, ConvTranspose and the integer forms
MatMulInteger and ConvInteger.

Conv and ConvTranspose take groups, dilations, strides, pads and auto_pad;
ConvTranspose also output_padding and output_shape. Integer convolutions run in
float64, which is exact for every int32 result.
"""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError
from mlframework.models.onnx.ops.windows import geometry


def _matmul(node, a, b):
    return G.matmul(as_node(a), as_node(b))


def _gemm(node, a, b, c=None):
    a, b = as_node(a), as_node(b)
    if node.int("transA", 0):
        a = G.transpose(a, (1, 0))
    if node.int("transB", 0):
        b = G.transpose(b, (1, 0))
    out = G.matmul(a, b)
    alpha, beta = node.float("alpha", 1.0), node.float("beta", 1.0)
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        c = as_node(c)
        out = out + (c * beta if beta != 1.0 else c)
    return out


def _einsum(node, *xs):
    return G.einsum(node.str("equation"), *[as_node(x) for x in xs])


def _bias(out, b):
    b = as_node(b)
    return out + G.reshape(b, (1, b.shape[0]) + (1,) * (out.ndim - 2))


def _conv(x, w, node):
    kernel = tuple(node.ints("kernel_shape", list(w.shape[2:])))
    if kernel != w.shape[2:]:
        raise OnnxImportError(f"kernel_shape {list(kernel)} differs from the weights' "
                              f"window {list(w.shape[2:])}")
    strides, dilations, pads = geometry(node, x.shape[2:], kernel)
    return G.conv_general(x, w, strides, pads, None, dilations, node.int("group", 1))


def _conv_node(node, x, w, b=None):
    out = _conv(as_node(x), as_node(w), node)
    return out if b is None else _bias(out, b)


def _conv_transpose(node, x, w, b=None):
    x, w = as_node(x), as_node(w)
    groups = node.int("group", 1)
    n = x.ndim - 2
    kernel = tuple(node.ints("kernel_shape", list(w.shape[2:])))
    strides = node.ints("strides", [1] * n)
    dilations = node.ints("dilations", [1] * n)
    out_pad = node.ints("output_padding", [0] * n)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    auto_pad = node.str("auto_pad", "NOTSET")
    spatial = x.shape[2:]
    if node.has("output_shape") or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = node.ints("output_shape", [s * st for s, st in zip(spatial, strides)])[-n:]
        pads = []
        for size, s, w_, op, t in zip(spatial, strides, span, out_pad, target):
            total = s * (size - 1) + op + w_ - t
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
    elif auto_pad == "VALID":
        pads = [(0, 0)] * n
    else:
        flat = node.ints("pads", [0] * (2 * n))
        pads = list(zip(flat[:n], flat[n:]))
    c_in, m_per_group = w.shape[0], w.shape[1]
    # weights [C, M/g, *k] -> [M, C/g, *k], spatially flipped: a convolution of the
    # stride-dilated input computes the transposed convolution
    wg = G.reshape(w, (groups, c_in // groups, m_per_group) + w.shape[2:])
    wg = G.transpose(wg, (0, 2, 1) + tuple(range(3, 3 + n)))
    wg = G.reshape(wg, (groups * m_per_group, c_in // groups) + w.shape[2:])
    wg = G.reverse(wg, list(range(2, 2 + n)))
    padding = [(w_ - 1 - lo, w_ - 1 - hi + op) for w_, (lo, hi), op in zip(span, pads, out_pad)]
    out = G.conv_general(x, wg, [1] * n, padding, strides, dilations, groups)
    return out if b is None else _bias(out, b)


def _zero_point(zp, rank: int, axis: int):
    """A zero point as a value broadcasting against an operand of `rank` (per-row or
    per-column vectors are laid out along `axis`)."""
    zp = as_node(zp)
    if zp.ndim == 0 or zp.size == 1:
        return G.reshape(zp, ())
    shape = [1] * rank
    shape[axis] = zp.size
    return G.reshape(zp, tuple(shape))


def _mat_mul_integer(node, a, b, a_zp=None, b_zp=None):
    a, b = G.convert(as_node(a), "int32"), G.convert(as_node(b), "int32")
    if a_zp is not None:
        a = a - G.convert(_zero_point(a_zp, a.ndim, a.ndim - 2), "int32")
    if b_zp is not None:
        b = b - G.convert(_zero_point(b_zp, b.ndim, b.ndim - 1), "int32")
    return G.matmul(a, b)


def _conv_integer(node, x, w, x_zp=None, w_zp=None):
    x, w = G.convert(as_node(x), "float64"), G.convert(as_node(w), "float64")
    if x_zp is not None:
        x = x - G.convert(G.reshape(as_node(x_zp), ()), "float64")
    if w_zp is not None:
        w = w - G.convert(_zero_point(w_zp, w.ndim, 0), "float64")
    return G.convert(_conv(x, w, node), "int32")


OPS = {
    "MatMul": _matmul, "Gemm": _gemm, "Einsum": _einsum, "Conv": _conv_node,
    "ConvTranspose": _conv_transpose, "MatMulInteger": _mat_mul_integer,
    "ConvInteger": _conv_integer,
}
