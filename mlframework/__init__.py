"""mlframework: define-then-run machine learning with an ahead-of-time C compiler.

    import mlframework as mlf
    from mlframework import graph as G
    backend = mlf.backends.new()
"""
from mlframework import backends, core, graph
from mlframework.core.dtypes import (DType, bfloat16, bool_, float16, float32, float64, int8,
                                     int16, int32, int64, uint8, uint16, uint32, uint64)
from mlframework.core.shapes import Shape
from mlframework.core.tensors import Tensor

__version__ = "0.1.0"

__all__ = ["DType", "Shape", "Tensor", "backends", "bfloat16", "bool_", "core", "float16",
           "float32", "float64", "graph", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64"]
