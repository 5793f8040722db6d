"""Activation operators: the Relu family, sigmoids, Gelu, Mish, and the softmaxes."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.attrs import normalize_axis
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _relu(node, x):
    return G.relu(as_node(x))


def _leaky_relu(node, x):
    return G.leaky_relu(as_node(x), node.float("alpha", 0.01))


def _prelu(node, x, slope):
    x = as_node(x)
    return G.where(G.lt(x, 0), G.mul(x, as_node(slope)), x)


def _elu(node, x):
    x = as_node(x)
    return G.where(G.lt(x, 0), G.expm1(x) * node.float("alpha", 1.0), x)


def _selu(node, x):
    x = as_node(x)
    alpha = node.float("alpha", 1.67326319217681884765625)
    gamma = node.float("gamma", 1.05070102214813232421875)
    return G.where(G.gt(x, 0), x * gamma, G.expm1(x) * (alpha * gamma))


def _celu(node, x):
    x = as_node(x)
    alpha = node.float("alpha", 1.0)
    return G.max(x, 0) + G.min(G.zeros_like(x), G.expm1(x / alpha) * alpha)


def _thresholded_relu(node, x):
    x = as_node(x)
    return G.where(G.gt(x, node.float("alpha", 1.0)), x, G.zeros_like(x))


def _hard_sigmoid(node, x):
    x = as_node(x)
    return G.clip(x * node.float("alpha", 0.2) + node.float("beta", 0.5), 0, 1)


def _hard_swish(node, x):
    x = as_node(x)
    return x * G.clip(x * (1 / 6) + 0.5, 0, 1)


def _softsign(node, x):
    x = as_node(x)
    return x / (G.abs(x) + 1)


def _mish(node, x):
    x = as_node(x)
    return x * G.tanh(G.softplus(x))


def _gelu(node, x):
    mode = node.str("approximate", "none")
    if mode not in ("none", "tanh"):
        raise OnnxImportError(f"attribute approximate must be 'none' or 'tanh', got {mode!r}")
    return G.gelu(as_node(x), approximate=mode == "tanh")


def _swish(node, x):
    x = as_node(x)
    return x * G.sigmoid(x * node.float("alpha", 1.0))


def _shrink(node, x):
    x = as_node(x)
    bias, lambd = node.float("bias", 0.0), node.float("lambd", 0.5)
    zero = G.zeros_like(x)
    return G.where(G.lt(x, -lambd), x + bias, G.where(G.gt(x, lambd), x - bias, zero))


def _softmax_like(fn):
    def convert(node, x):
        x = as_node(x)
        return fn(x, normalize_axis(node.op_type, node.int("axis", -1), x.ndim))
    return convert


def _hardmax(x, axis):
    index = G.argmax(x, axis)
    iota = G.iota(index.dtype, x.shape, axis)
    return G.convert(G.eq(iota, G.expand_dims(index, axis)), x.dtype)


OPS = {
    "Relu": _relu, "LeakyRelu": _leaky_relu, "PRelu": _prelu, "Elu": _elu, "Selu": _selu,
    "Celu": _celu, "ThresholdedRelu": _thresholded_relu,
    "Sigmoid": lambda node, x: G.sigmoid(as_node(x)),
    "HardSigmoid": _hard_sigmoid, "HardSwish": _hard_swish,
    "Softplus": lambda node, x: G.softplus(as_node(x)), "Softsign": _softsign,
    "Tanh": lambda node, x: G.tanh(as_node(x)), "Gelu": _gelu, "Mish": _mish,
    "Shrink": _shrink, "Swish": _swish,
    "Softmax": _softmax_like(G.softmax), "LogSoftmax": _softmax_like(G.log_softmax),
    "Hardmax": _softmax_like(_hardmax),
}
