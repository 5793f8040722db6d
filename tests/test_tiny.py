"""The smallest end-to-end check: trace, run and differentiate on every backend."""
import numpy as np

from mlframework import graph as G


def test_trace_run_and_grad(run):
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    w = np.ones((3, 2), np.float32)

    def f(x, w):
        loss = G.reduce_sum(G.square(x @ w))
        return G.reduce_sum(G.tanh(x @ w), axes=[1]), loss, G.grad(loss, [w])[0]

    y, loss, dw = run(f, x, w)
    np.testing.assert_allclose(y, np.tanh(x @ w).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(loss, ((x @ w) ** 2).sum(), rtol=1e-6)
    np.testing.assert_allclose(dw, 2 * x.T @ (x @ w), rtol=1e-6)
