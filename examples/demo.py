"""A first look at mlframework: trace a function, run it, take a gradient.

    make demo        # or: .venv/bin/python examples/demo.py
"""
import numpy as np

import mlframework as mlf
from mlframework import graph as G


def model(x, w):
    """A one-layer network: tanh(x @ w), summed per example."""
    return G.reduce_sum(G.tanh(x @ w), axes=[1])


def loss_and_grad(x, w, target):
    loss = G.mean(G.square(model(x, w) - target))
    return loss, G.grad(loss, [w])[0]


def main() -> None:
    backend = mlf.backends.new()
    print(f"backend: {backend.name}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    target = np.tanh(x @ np.array([0.5, -1.0, 2.0], np.float32))

    exe = G.Exec(backend, loss_and_grad)
    print("traced graph:\n" + str(exe.graph(x, np.zeros((3, 1), np.float32), target)))

    w = np.zeros((3, 1), np.float32)
    for step in range(201):
        loss, grad = exe(x, w, target)
        w = w - 0.5 * grad.numpy()
        if step % 50 == 0:
            print(f"step {step:3d}  loss {loss.item():.5f}")
    print("learned w:", w.ravel(), "(true: [0.5, -1.0, 2.0])")


if __name__ == "__main__":
    main()
