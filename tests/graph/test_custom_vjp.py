"""`G.custom_vjp`: a stable log1pexp, gradients against jax.custom_vjp of the
same rules, pytrees, training with a custom gradient, and the errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core import shapes
from mlframework.ml import Context, datasets, layers, losses, optimizers, train

jax.config.update("jax_enable_x64", True)


def _naive_log1pexp(x):
    return G.where(x > 30, x, G.log1p(G.exp(x)))  # a stable value, a NaN gradient for big x


log1pexp = G.custom_vjp(_naive_log1pexp)
log1pexp.defvjp(lambda x: (log1pexp(x), x), lambda x, g: (g * G.logistic(x),))


def test_log1pexp_has_a_finite_gradient_where_the_naive_one_is_nan(run):
    x = np.array([-20.0, -1.0, 0.0, 2.5, 50.0, 100.0, 1000.0], np.float32)

    def f(x):
        return (log1pexp(x), G.grad(G.reduce_sum(log1pexp(x)), x)[0],
                G.grad(G.reduce_sum(_naive_log1pexp(x)), x)[0])

    value, grad, naive = run(f, x)
    np.testing.assert_allclose(value, np.logaddexp(0, x.astype(np.float64)), rtol=1e-6)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad, jax.nn.sigmoid(x), rtol=1e-6)
    assert np.isnan(naive[5:]).all() and np.isfinite(naive[:5]).all()  # the premise


def _jax_clip_gradient():
    @jax.custom_vjp
    def clip(lo, hi, x):
        return x
    clip.defvjp(lambda lo, hi, x: (x, (lo, hi)),
                lambda res, g: (None, None, jnp.clip(g, res[0], res[1])))
    return clip


def _clip_gradient():
    """Identity whose cotangent is clipped to [lo, hi] (lo, hi get none)."""
    @G.custom_vjp
    def clip(lo, hi, x):
        return x
    clip.defvjp(lambda lo, hi, x: (x, (lo, hi)), lambda res, g: (None, None, G.clip(g, *res)))
    return clip


def test_gradients_match_jax_custom_vjp(run, rng):
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)) * 3
    lo, hi = np.float64(-0.5), np.float64(0.75)

    def ours(x, w, lo, hi):
        clip = _clip_gradient()
        h = clip(lo, hi, G.tanh(x @ w)) * 4
        loss = G.reduce_sum(h * h) + G.reduce_sum(clip(lo, hi, w))  # called twice
        return loss, G.grad(loss, [x, w])

    def ref(x, w):
        clip = _jax_clip_gradient()
        h = clip(lo, hi, jnp.tanh(x @ w)) * 4
        return jnp.sum(h * h) + jnp.sum(clip(lo, hi, w))

    loss, (dx, dw) = run(ours, x, w, lo, hi)
    ref_loss, (rx, rw) = jax.value_and_grad(ref, (0, 1))(x, w)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(dx, rx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dw, rw, rtol=1e-12, atol=1e-14)
    plain = jax.grad(lambda x: jnp.sum((4 * jnp.tanh(x @ w)) ** 2))(x)
    assert not np.allclose(dx, plain)  # the clipping changed the gradient


def test_pytrees_several_outputs_and_residuals(run, rng):
    x, y = rng.standard_normal(3), rng.standard_normal(3)

    @G.custom_vjp
    def f(p):
        return {"prod": p["x"] * p["y"], "sin": G.sin(p["x"]), "index": G.argmax(p["y"], 0)}

    def f_fwd(p):
        return f(p), (p["x"], p["y"], G.cos(p["x"]))

    def f_bwd(res, g):
        x, y, cos = res
        assert str(g["index"].spec) == "int32[]"  # integer outputs get a zero cotangent
        return ({"x": g["prod"] * y + g["sin"] * cos, "y": g["prod"] * x},)
    f.defvjp(f_fwd, f_bwd)

    def ours(x, y):
        out = f({"x": x, "y": y})
        only_sin = f({"x": x, "y": y})["sin"]  # the other outputs' cotangents are zeros
        loss = G.reduce_sum(out["prod"] * out["sin"]) + G.reduce_sum(only_sin * 3)
        return out["index"], G.grad(loss, [x, y])

    index, (dx, dy) = run(ours, x, y)
    ref = lambda x, y: jnp.sum(x * y * jnp.sin(x)) + jnp.sum(jnp.sin(x) * 3)  # noqa: E731
    rx, ry = jax.grad(ref, (0, 1))(x, y)
    assert index == np.argmax(y)
    np.testing.assert_allclose(dx, rx, rtol=1e-12)
    np.testing.assert_allclose(dy, ry, rtol=1e-12)


def _softplus_model(activation):
    def model(ctx, x):
        return layers.dense(ctx / "out", activation(layers.dense(ctx / "hidden", x, 8)), 1)
    return model


def _train(backend, activation, steps=5):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32) * 20  # large pre-activations
    y = rng.normal(size=(32, 1)).astype(np.float32)
    ds = datasets.InMemory((x, y), 16, shuffle=False, drop_remainder=True)
    trainer = train.Trainer(backend, Context(seed=0), _softplus_model(activation), losses.mse,
                            optimizers.SGD(1e-3), metrics={})
    history = train.Loop(trainer).run_steps(ds, steps)
    return history.losses, {v.name: v.numpy() for v in trainer.ctx.variables()}


def test_training_through_a_custom_vjp(backend):
    # log1pexp trains as a stable softplus (the same gradient, the sigmoid); a zero bwd
    # freezes what lies before it.
    losses_custom, custom = _train(backend, log1pexp)
    losses_ref, ref = _train(backend, lambda h: G.max(h, 0) + G.log1p(G.exp(-G.abs(h))))
    np.testing.assert_allclose(losses_custom, losses_ref, rtol=1e-5)
    for name in ref:
        np.testing.assert_allclose(custom[name], ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
    frozen = G.custom_vjp(lambda h: h)
    frozen.defvjp(lambda h: (h, None), lambda _, g: (G.zeros_like(g),))
    _, after = _train(backend, frozen)
    _, before = _train(backend, frozen, steps=1)  # the hidden layer never moves
    np.testing.assert_array_equal(after["hidden/dense/weights"], before["hidden/dense/weights"])
    assert not np.array_equal(after["out/dense/weights"], before["out/dense/weights"])


def _trace(fn, *specs):
    with G.tracing(G.Graph()):
        return fn(*[G.parameter(shapes.make(*s)) for s in specs])


def test_errors():
    spec = ("float32", 3)
    bare = G.custom_vjp(G.sin)
    with pytest.raises(TypeError, match=r"custom_vjp function sin has no gradient: call "
                                        r"sin.defvjp\(fwd, bwd\) before calling it"):
        _trace(bare, spec)
    with pytest.raises(TypeError, match="custom_vjp requires a function, got int"):
        G.custom_vjp(3)

    def with_bwd(bwd, fwd=lambda x: (G.sin(x), x)):
        f = G.custom_vjp(G.sin)
        f.defvjp(fwd, bwd)
        return lambda x: G.grad(G.reduce_sum(f(x)), x)

    with pytest.raises(TypeError, match=r"fwd of custom_vjp function sin must return a pair "
                                        r"\(output, residuals\), got Node"):
        _trace(with_bwd(lambda r, g: (g,), fwd=G.sin), spec)
    with pytest.raises(TypeError, match=r"bwd of custom_vjp function sin must return a tuple "
                                        r"with one cotangent per argument \(1\), got Node"):
        _trace(with_bwd(lambda r, g: g), spec)
    with pytest.raises(G.ShapeError, match=r"bwd of sin returned a cotangent float32\[\], "
                                           r"expected the argument's float32\[3\]"):
        _trace(with_bwd(lambda r, g: (G.reduce_sum(g),)), spec)
    with pytest.raises(G.DTypeError, match=r"bwd of sin returned a cotangent float64\[3\], "
                                           r"expected the argument's float32\[3\]"):
        _trace(with_bwd(lambda r, g: (G.convert(g, "float64"),)), spec)


def test_closed_over_values_and_forward_mode_raise():
    spec = ("float32", 3)

    def closure(x):
        scale = G.exp(x)
        f = G.custom_vjp(lambda v: v * scale)
        f.defvjp(lambda v: (v * scale, None), lambda _, g: (g,))
        y = G.reduce_sum(f(x))
        G.grad(y, G.parameter(shapes.make(*spec)))  # not through `scale`: fine
        return G.grad(y, x)

    with pytest.raises(ValueError, match=r"custom_vjp function <lambda> uses <Node #\d+ exp "
                                         r"float32\[3\]> .* without taking it as an argument"):
        _trace(closure, spec)
    with pytest.raises(TypeError, match="jvp cannot differentiate through the custom_vjp "
                                        "function _naive_log1pexp"):
        _trace(lambda x: G.jvp(log1pexp, (x,), (x,)), spec)


@pytest.mark.parametrize("name", mlf.backends.names())
def test_value_without_gradient_runs_fn(name):
    x = np.array([-3.0, 0.5, 40.0])
    out = G.Exec(mlf.backends.new(name), log1pexp)(x).numpy()
    np.testing.assert_allclose(out, np.logaddexp(0, x), rtol=1e-12)


def test_inside_scan_and_cond(backend):
    # The scan and cond gradients re-trace their bodies: the copies keep the custom rule.
    def ours(c0, xs):
        square = G.custom_vjp(lambda x: x * x)
        square.defvjp(lambda x: (x * x, x), lambda x, g: (g * 2 * x * 0.5,))  # half the slope
        c, ys = G.scan(lambda c, x: (square(c) * 0.5 + x, c), c0, xs)
        out = G.cond(G.reduce_sum(c) > -100, lambda v: square(v), lambda v: v, c)
        return G.reduce_sum(out) + G.reduce_sum(ys * ys)

    def ref(c0, xs):
        @jax.custom_vjp
        def square(x):
            return x * x
        square.defvjp(lambda x: (x * x, x), lambda x, g: (g * x,))
        c, ys = jax.lax.scan(lambda c, x: (square(c) * 0.5 + x, c), c0, xs)
        return jnp.sum(jax.lax.cond(jnp.sum(c) > -100, square, lambda v: v, c)) + jnp.sum(ys * ys)

    c0, xs = np.array([0.3, -0.2]), np.array([[0.1, 0.2], [0.3, -0.1], [0.0, 0.5]])
    grads = G.Exec(backend, lambda c0, xs: G.grad(ours(c0, xs), [c0, xs]))(c0, xs)
    for got, want in zip(grads, jax.grad(ref, (0, 1))(c0, xs)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(TypeError, match="jvp cannot differentiate through the custom_vjp"):
        G.Exec(None, lambda c0, xs: G.jvp(ours, (c0, xs), (c0, xs))).graph(c0, xs)
