"""The graph API: op functions over nodes, tracing with `Exec`, and autodiff (reverse and
forward mode, custom gradients).

    from mlframework import graph as G
    exe = G.Exec(backend, lambda x: G.softmax(x, axis=-1))
"""
from mlframework.graph import composites as _composites
from mlframework.graph import gen_ops as _gen_ops
from mlframework.graph import operators as _operators  # noqa: F401  attaches Node operators
from mlframework.graph.autodiff import grad, jacobian
from mlframework.graph.broadcasting import broadcast_to, dim_value
from mlframework.graph.control_flow import cond, fori_loop, scan, switch, while_loop
from mlframework.graph.composites import *  # noqa: F403
from mlframework.graph.custom_gradients import CustomVJP, custom_vjp
from mlframework.graph.errors import DTypeError, ShapeError
from mlframework.graph.exec import Exec
from mlframework.graph.forward_mode import jacfwd, jvp
from mlframework.graph.gen_ops import *  # noqa: F403
from mlframework.graph.gen_optypes import Op, OpGroup
from mlframework.graph.graph import Graph, Node, const, current_graph, parameter, tracing
from mlframework.graph.layout import (expand_dims, flatten, split, squeeze, stack, take,
                                      take_along_axis, top_k)
from mlframework.graph.linalg import einsum, matmul, solve
from mlframework.graph.random import normal, random_bits, random_key, split_key, uniform

__all__ = sorted({*_composites.__all__, *_gen_ops.__all__, "CustomVJP", "DTypeError", "Exec",
                  "Graph", "Node", "Op", "OpGroup", "ShapeError", "broadcast_to", "cond", "const",
                  "current_graph", "custom_vjp", "dim_value", "einsum", "expand_dims", "flatten",
                  "fori_loop", "grad", "jacfwd", "jacobian", "jvp", "matmul", "normal", "parameter",
                  "random_bits", "random_key", "scan", "solve", "split", "split_key", "squeeze",
                  "stack", "switch", "take", "take_along_axis", "top_k", "tracing", "uniform",
                  "while_loop"})
