"""Elementwise arithmetic, math, comparison and logic operators (NumPy broadcasting).

Each converter takes the node and its input values and returns the output;
shapes follow ONNX's multidirectional (NumPy) broadcasting.
"""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _unary(fn):
    return lambda node, x: fn(as_node(x))


def _binary(fn):
    return lambda node, x, y: fn(as_node(x), as_node(y))


def _variadic(fn):
    def convert(node, *xs):
        nodes = [as_node(x) for x in xs if x is not None]
        if not nodes:
            raise OnnxImportError("requires at least one input")
        out = nodes[0]
        for x in nodes[1:]:
            out = fn(out, x)
        return out
    return convert


def _mean(node, *xs):
    total = _variadic(G.add)(node, *xs)
    return G.div(total, len([x for x in xs if x is not None]))


def _pow(node, x, y):
    x, y = as_node(x), as_node(y)
    if not x.dtype.is_float:  # integer powers, exact in float64 up to 2**53
        return G.convert(G.pow(G.convert(x, "float64"), G.convert(y, "float64")), x.dtype)
    return G.pow(x, G.convert(y, x.dtype))


def _mod(node, x, y):
    x, y = as_node(x), as_node(y)
    fmod = node.int("fmod", 0)
    r = G.rem(x, y)
    if fmod or x.dtype.is_unsigned:
        return r
    wrong_sign = G.logical_and(G.ne(r, 0), G.ne(G.lt(r, 0), G.lt(y, 0)))
    return G.where(wrong_sign, r + y, r)


def _is_inf(node, x):
    x = as_node(x)
    pos, neg = node.int("detect_positive", 1), node.int("detect_negative", 1)
    out = G.logical_and(G.eq(x, x), G.logical_not(G.is_finite(x)))
    if not pos:
        out = G.logical_and(out, G.lt(x, 0))
    if not neg:
        out = G.logical_and(out, G.gt(x, 0))
    return out


def _clip(node, x, lo=None, hi=None):
    x = as_node(x)
    for bound, fn in ((lo, G.max), (hi, G.min)):
        if bound is not None:
            x = fn(x, G.convert(as_node(bound), x.dtype))
    return x


def _asin(x):
    return G.atan2(x, G.sqrt(1 - x * x))


def _acos(x):
    return G.atan2(G.sqrt(1 - x * x), x)


def _sinh(x):
    return (G.expm1(x) - G.expm1(-x)) * 0.5


def _cosh(x):
    return (G.exp(x) + G.exp(-x)) * 0.5


def _asinh(x):
    ax = G.abs(x)
    return G.sign(x) * G.log(ax + G.sqrt(ax * ax + 1))


def _acosh(x):
    return G.log(x + G.sqrt(x * x - 1))


def _atanh(x):
    return G.log1p(2 * x / (1 - x)) * 0.5


def _round(x):
    return G.round(x)


def _reciprocal(x):
    return G.div(1, x)


def _not(x):
    return G.logical_not(x)


def _is_nan(x):
    return G.ne(x, x)


def _tan(x):
    return G.sin(x) / G.cos(x)


def _atan(x):
    return G.atan2(x, G.ones_like(x))


def _where(node, cond, x, y):
    return G.where(as_node(cond), as_node(x), as_node(y))


OPS = {
    "Add": _binary(G.add), "Sub": _binary(G.sub), "Mul": _binary(G.mul),
    "Div": _binary(G.div), "Pow": _pow, "Mod": _mod,
    "Neg": _unary(G.neg), "Abs": _unary(G.abs), "Sign": _unary(G.sign),
    "Sqrt": _unary(G.sqrt), "Reciprocal": _unary(_reciprocal), "Exp": _unary(G.exp),
    "Log": _unary(G.log), "Floor": _unary(G.floor), "Ceil": _unary(G.ceil),
    "Round": _unary(_round), "Erf": _unary(G.erf),
    "Sin": _unary(G.sin), "Cos": _unary(G.cos), "Tan": _unary(_tan), "Asin": _unary(_asin),
    "Acos": _unary(_acos), "Atan": _unary(_atan), "Sinh": _unary(_sinh),
    "Cosh": _unary(_cosh), "Asinh": _unary(_asinh), "Acosh": _unary(_acosh),
    "Atanh": _unary(_atanh),
    "Equal": _binary(G.eq), "Less": _binary(G.lt), "LessOrEqual": _binary(G.le),
    "Greater": _binary(G.gt), "GreaterOrEqual": _binary(G.ge),
    "And": _binary(G.logical_and), "Or": _binary(G.logical_or),
    "Xor": _binary(G.logical_xor), "Not": _unary(_not),
    "IsNaN": _unary(_is_nan), "IsInf": _is_inf, "Where": _where, "Clip": _clip,
    "Max": _variadic(G.max), "Min": _variadic(G.min), "Sum": _variadic(G.add), "Mean": _mean,
}
