"""`check_grads`: gradients against finite differences and against JAX.

Other gradient tests import it (`from test_gradcheck import check_grads`); the
tests at the bottom check that the checker itself catches wrong gradients.

One call compiles one graph: it computes `loss = sum_k <f(xs)_k, c_k>` for
fixed pseudo-random cotangents `c_k` and its gradients with `G.grad`. That
graph is then evaluated at `xs +- eps * v` for random directions `v` (central
differences, as JAX's `check_grads`), and the gradients are compared with
`jax.vjp` of a reference function over the same cotangents.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlframework import graph as G
from mlframework.core import pytree
from mlframework.core.dtypes import as_dtype

jax.config.update("jax_enable_x64", True)  # float64 references, whichever backend runs


def cotangent(shape, dtype, k=0) -> np.ndarray:
    """A fixed, irregular array of values in [-1, 1] (the k-th output's cotangent)."""
    size = int(np.prod(shape, dtype=np.int64))
    return np.cos(np.arange(size) * 2.3998 + 0.7 + 1.1 * k).reshape(shape).astype(dtype)


def _is_float(x) -> bool:
    """Whether a node or array (bfloat16 included) has a float dtype."""
    return as_dtype(x.dtype).is_float


def _float_leaves(tree):
    return [x for x in pytree.flatten(tree)[0] if _is_float(x)]


def check_grads(backend, fn, args, ref=None, *, fd=True, eps=1e-6, fd_rtol=1e-6,
                rtol=1e-7, atol=1e-10, seed=0, names=None):
    """Checks G.grad of `fn` at `args` by finite differences and against `ref`.

    Args:
        backend: the backend to run on.
        fn: takes nodes, returns a node or a tuple/list of nodes (int outputs
            are ignored).
        args: NumPy arrays; the float ones are differentiated, others (indices)
            stay constant. Use float64 for the finite differences.
        ref: the same function written with jax.numpy/jax.lax, or None.
        fd: also check directional derivatives by central differences (turn
            off at kinks such as ties, where one-sided derivatives differ).
        names: names of the arguments, for messages (default x0, x1, ...).

    Returns:
        The gradients, one array per float argument.
    """
    args = [np.asarray(a) for a in args]
    diff = [i for i, a in enumerate(args) if _is_float(a)]
    names = names or [f"x{i}" for i in range(len(args))]

    def loss_and_grads(*xs):
        outs = _float_leaves(fn(*xs))
        terms = [G.reduce_sum(o * G.const(cotangent(o.shape, o.dtype.numpy, k)))
                 for k, o in enumerate(outs)]
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + G.convert(t, loss.dtype)
        return loss, G.grad(loss, [xs[i] for i in diff])

    exe = G.Exec(backend, loss_and_grads)
    loss, grads = exe(*args)
    loss, grads = float(loss.numpy()), [g.numpy() for g in grads]
    for i, g in zip(diff, grads):
        assert g.shape == args[i].shape and g.dtype == args[i].dtype, \
            f"grad of {names[i]}: {g.dtype}{g.shape}, expected {args[i].dtype}{args[i].shape}"

    if fd:
        rng = np.random.default_rng(seed)
        # One direction per differentiated input, then all of them together.
        moves = [{i: rng.standard_normal(args[i].shape)} for i in diff]
        if len(diff) > 1:
            moves.append({i: rng.standard_normal(args[i].shape) for i in diff})
        for move in moves:
            def at(sign, move=move):
                xs = [a + sign * eps * move[i] if i in move else a for i, a in enumerate(args)]
                return float(exe(*[np.asarray(x, a.dtype) for x, a in zip(xs, args)])[0].numpy())
            numeric = (at(1) - at(-1)) / (2 * eps)
            analytic = sum(float(np.sum(grads[diff.index(i)] * v)) for i, v in move.items())
            scale = abs(analytic) + abs(numeric) + abs(loss) * 1e-3 + 1e-3
            moved = ", ".join(names[i] for i in move)
            assert abs(numeric - analytic) <= fd_rtol * scale, (
                f"directional derivative along {moved}: finite differences {numeric!r}, "
                f"G.grad {analytic!r}")

    if ref is not None:
        def ref_loss(*d):
            xs = list(args)
            for i, x in zip(diff, d):
                xs[i] = x
            outs = _float_leaves(ref(*xs))
            return sum(jnp.sum(o * cotangent(o.shape, o.dtype, k)) for k, o in enumerate(outs))
        ref_value, ref_grads = jax.jit(jax.value_and_grad(ref_loss, range(len(diff))))(
            *[jnp.asarray(args[i]) for i in diff])
        np.testing.assert_allclose(loss, ref_value, rtol=rtol, atol=atol,
                                   err_msg="forward value differs from the reference")
        for i, g, r in zip(diff, grads, ref_grads):
            np.testing.assert_allclose(g, np.asarray(r), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of {names[i]} differs from jax")
    return grads


# ---- the checker catches wrong gradients ----

def test_checker_accepts_a_correct_gradient(backend):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    check_grads(backend, lambda x: G.sin(x) * x, [x], lambda x: jnp.sin(x) * x)


def test_checker_catches_a_wrong_gradient(backend, monkeypatch):
    from mlframework.graph import vjp
    monkeypatch.setitem(vjp.RULES, G.Op.SIN, lambda n, g: (g * G.cos(n.inputs[0]) * 1.001,))
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(AssertionError, match="finite differences"):
        check_grads(backend, G.sin, [x])
    with pytest.raises(AssertionError, match="differs from jax"):
        check_grads(backend, G.sin, [x], jnp.sin, fd=False)


def test_checker_ignores_integer_inputs_and_outputs(backend):
    x = np.linspace(-1, 1, 5)
    idx = np.array([[3], [0]], np.int32)
    grads = check_grads(backend, lambda x, i: (G.argmax(x, 0), G.take(x, i[:, 0]) * 2), [x, idx],
                        lambda x, i: (jnp.argmax(x), x[i[:, 0]] * 2))
    assert len(grads) == 1


def test_cotangent_is_deterministic():
    np.testing.assert_array_equal(cotangent((2, 3), np.float64), cotangent((6,), np.float64)
                                  .reshape(2, 3))
