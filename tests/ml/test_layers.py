"""Layers against PyTorch CPU (an independent reference), on every backend."""
import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml_helpers import run_ctx, var
from mlframework import graph as G
from mlframework.core import shapes
from mlframework.ml import layers

TOL = dict(rtol=1e-5, atol=1e-5)


def t(a):
    return torch.from_numpy(np.asarray(a))


def test_dense_matches_torch_linear(backend, rng):
    x = rng.normal(size=(4, 3, 5)).astype(np.float32)
    y, ctx = run_ctx(backend, lambda ctx, x: layers.dense(ctx / "fc", x, 7, activation="tanh"), x)
    w, b = var(ctx, "fc/dense/weights"), var(ctx, "fc/dense/biases")
    assert w.shape == (5, 7) and b.shape == (7,)
    np.testing.assert_allclose(y, torch.tanh(F.linear(t(x), t(w.T), t(b))).numpy(), **TOL)


@pytest.mark.parametrize("case", [
    dict(k=3, strides=1, padding="same", dilation=1, groups=1),
    dict(k=3, strides=2, padding="valid", dilation=1, groups=1),
    dict(k=3, strides=1, padding="same", dilation=2, groups=2),
    dict(k=4, strides=2, padding="same", dilation=1, groups=1),
], ids=["same", "valid-stride2", "dilated-grouped", "same-stride2-even"])
def test_conv2d_matches_torch(backend, rng, case):
    x = rng.normal(size=(2, 4, 9, 8)).astype(np.float32)
    fn = lambda ctx, x: layers.conv2d(ctx, x, 6, case["k"], strides=case["strides"],  # noqa: E731
                                      padding=case["padding"], dilation=case["dilation"],
                                      groups=case["groups"])
    y, ctx = run_ctx(backend, fn, x)
    w, b = var(ctx, "conv/weights"), var(ctx, "conv/biases")
    assert w.shape == (6, 4 // case["groups"], case["k"], case["k"])
    xt = t(x)
    if case["padding"] == "same":  # TensorFlow "SAME": ceil(n / s) outputs, extra pad at the end
        span = (case["k"] - 1) * case["dilation"] + 1
        pads = jax.lax.padtype_to_pads(x.shape[2:], (span, span), (case["strides"],) * 2, "SAME")
        xt = F.pad(xt, (*pads[1], *pads[0]))
    ref = F.conv2d(xt, t(w), t(b), stride=case["strides"], dilation=case["dilation"],
                   groups=case["groups"])
    np.testing.assert_allclose(y, ref.numpy(), **TOL)


def test_conv1d_channels_last_matches_torch(backend, rng):
    x = rng.normal(size=(2, 10, 3)).astype(np.float32)  # [batch, length, channels]
    y, ctx = run_ctx(backend, lambda ctx, x: layers.conv1d(ctx, x, 5, 3, channels_last=True,
                                                            padding="valid"), x)
    w, b = var(ctx, "conv/weights"), var(ctx, "conv/biases")
    ref = F.conv1d(t(x).permute(0, 2, 1), t(w), t(b)).permute(0, 2, 1)
    np.testing.assert_allclose(y, ref.numpy(), **TOL)


def test_conv_kernel_init_uses_keras_fans():
    from mlframework.ml import Context
    ctx = Context(seed=3)
    with G.tracing(G.Graph()):
        layers.conv2d(ctx, G.parameter(shapes.make(np.float32, 1, 64, 8, 8)), 64, 3)
    w = var(ctx, "conv/weights")  # Glorot: limit sqrt(6 / (9*64 + 9*64))
    limit = np.sqrt(6 / (9 * 64 * 2))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
    np.testing.assert_allclose(w.std(), limit / np.sqrt(3), rtol=0.05)


def test_pooling_matches_torch(backend, rng):
    x = rng.normal(size=(2, 3, 7, 6)).astype(np.float32)

    def fn(ctx, x):
        return (layers.max_pool(x, 2), layers.max_pool(x, 3, strides=2, padding="same"),
                layers.avg_pool(x, 2), layers.avg_pool(x, 3, strides=1, padding="same"),
                layers.global_avg_pool(x), layers.global_max_pool(x))

    (mp, mps, ap, aps, gap, gmp), _ = run_ctx(backend, fn, x)
    xt = t(x)
    np.testing.assert_allclose(mp, F.max_pool2d(xt, 2).numpy(), **TOL)
    # "same" with window 3, stride 2 on 7x6: pads (1,1) and (0,1) as TensorFlow.
    padded = F.pad(xt, (0, 1, 1, 1), value=-np.inf)
    np.testing.assert_allclose(mps, F.max_pool2d(padded, 3, 2).numpy(), **TOL)
    np.testing.assert_allclose(ap, F.avg_pool2d(xt, 2).numpy(), **TOL)
    np.testing.assert_allclose(aps, F.avg_pool2d(xt, 3, 1, 1, count_include_pad=False).numpy(),
                               **TOL)
    np.testing.assert_allclose(gap, x.mean(axis=(2, 3)), **TOL)
    np.testing.assert_allclose(gmp, x.max(axis=(2, 3)), **TOL)


def test_batch_norm_train_and_inference_match_torch(backend, rng):
    x = rng.normal(2.0, 3.0, size=(8, 4, 5, 5)).astype(np.float32)
    fn = lambda ctx, x: layers.batch_norm(ctx, x, momentum=0.9, epsilon=1e-5)  # noqa: E731
    y, ctx = run_ctx(backend, fn, x, training=True)
    bn = torch.nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
    np.testing.assert_allclose(y, bn(t(x)).detach().numpy(), **TOL)
    # Moving averages: biased batch variance (torch keeps the unbiased one).
    np.testing.assert_allclose(var(ctx, "batch_norm/moving_mean"), 0.1 * x.mean(axis=(0, 2, 3)),
                               **TOL)
    np.testing.assert_allclose(var(ctx, "batch_norm/moving_variance"),
                               0.9 + 0.1 * x.var(axis=(0, 2, 3)), **TOL)
    y2, _ = run_ctx(backend, fn, x, ctx=ctx, training=False)
    mean, v = var(ctx, "batch_norm/moving_mean"), var(ctx, "batch_norm/moving_variance")
    ref = (x - mean[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5)
    np.testing.assert_allclose(y2, ref, **TOL)


def test_layer_and_rms_norm_match_torch(backend, rng):
    x = rng.normal(size=(3, 4, 6)).astype(np.float32)

    def fn(ctx, x):
        return layers.layer_norm(ctx / "ln", x), layers.rms_norm(ctx / "rms", x, epsilon=1e-6)

    (ln, rms), _ = run_ctx(backend, fn, x)
    np.testing.assert_allclose(ln, F.layer_norm(t(x), (6,), eps=1e-5).numpy(), **TOL)
    np.testing.assert_allclose(rms, F.rms_norm(t(x), (6,), eps=1e-6).numpy(), **TOL)


def test_dropout_scales_kept_values_and_is_off_in_inference(backend):
    x = np.ones((64, 128), np.float32)
    fn = lambda ctx, x: layers.dropout(ctx, x, 0.25)  # noqa: E731
    y, ctx = run_ctx(backend, fn, x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.02
    y_again, _ = run_ctx(backend, fn, x, ctx=ctx, training=True)  # RNG state advanced
    assert (y_again != y).any()
    y_same, _ = run_ctx(backend, fn, x, training=True)  # fresh context, same seed
    np.testing.assert_array_equal(y_same, y)
    y_eval, _ = run_ctx(backend, fn, x, training=False)
    np.testing.assert_array_equal(y_eval, x)


def test_embedding_matches_torch(backend):
    ids = np.array([[0, 3, 9], [9, 1, 1]], np.int32)
    y, ctx = run_ctx(backend, lambda ctx, i: layers.embedding(ctx, i, 10, 4), ids)
    table = var(ctx, "embedding/table")
    np.testing.assert_allclose(y, F.embedding(t(ids).long(), t(table)).numpy(), **TOL)


def test_activations_match_torch(backend, rng):
    x = rng.normal(size=(5, 7)).astype(np.float32) * 3
    names = ["relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "softplus", "softmax"]
    out, _ = run_ctx(backend, lambda ctx, x: [layers.activation(n, x) for n in names], x)
    xt = t(x)
    refs = [F.relu(xt), F.leaky_relu(xt, 0.01), F.gelu(xt), F.silu(xt), torch.sigmoid(xt),
            torch.tanh(xt), F.softplus(xt), F.softmax(xt, -1)]
    for name, y, ref in zip(names, out, refs):
        np.testing.assert_allclose(y, ref.numpy(), err_msg=name, **TOL)
    with pytest.raises(ValueError, match="activation requires one of"):
        layers.activation("relu6", x)
