"""Layers: functions `layer(ctx, x, ...)` that create their variables under ctx's scope.

    from mlframework.ml import layers
    h = layers.dense(ctx / "hidden", x, 128, activation="relu")
"""
from mlframework.ml.layers.activations import (ACTIVATIONS, activation, gelu, leaky_relu, relu,
                                               sigmoid, silu, softmax, softplus, tanh)
from mlframework.ml.layers.attention import (causal_mask, multi_head_attention, reset_cache,
                                             rope, scaled_dot_product_attention)
from mlframework.ml.layers.conv import conv, conv1d, conv2d
from mlframework.ml.layers.dense import dense
from mlframework.ml.layers.dropout import dropout
from mlframework.ml.layers.embedding import embedding
from mlframework.ml.layers.normalization import batch_norm, layer_norm, rms_norm
from mlframework.ml.layers.pooling import avg_pool, global_avg_pool, global_max_pool, max_pool

__all__ = ["ACTIVATIONS", "activation", "avg_pool", "batch_norm", "causal_mask", "conv",
           "conv1d", "conv2d", "dense", "dropout", "embedding", "gelu", "global_avg_pool",
           "global_max_pool", "layer_norm", "leaky_relu", "max_pool", "multi_head_attention",
           "relu", "reset_cache", "rms_norm", "rope", "scaled_dot_product_attention", "sigmoid",
           "silu", "softmax", "softplus", "tanh"]
