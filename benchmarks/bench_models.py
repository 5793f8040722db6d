"""The models the benchmark suites share: the issues' MLP 784-512-512-10 and LeNet-5."""
from mlframework import graph as G
from mlframework.ml import layers


def mlp(ctx, x):
    """[batch, 784] -> [batch, 10] logits."""
    x = layers.dense(ctx / "hidden1", x, 512, activation="relu")
    x = layers.dense(ctx / "hidden2", x, 512, activation="relu")
    return layers.dense(ctx / "logits", x, 10)


def lenet(ctx, x):
    """[batch, 1, 28, 28] images -> [batch, 10] logits."""
    x = layers.max_pool(layers.conv2d(ctx / "conv1", x, 6, 5, activation="relu"), 2)
    x = layers.max_pool(layers.conv2d(ctx / "conv2", x, 16, 5, padding="valid",
                                      activation="relu"), 2)
    x = G.flatten(x, 1)
    x = layers.dense(ctx / "fc1", x, 120, activation="relu")
    x = layers.dense(ctx / "fc2", x, 84, activation="relu")
    return layers.dense(ctx / "logits", x, 10)
