"""Context: scopes, variable creation and reuse rules, hyperparameters, RNG, initializers."""
import numpy as np
import pytest

from mlframework import graph as G
from mlframework.core import shapes
from mlframework.ml import Context, ContextExec, VariableError, initializers, layers


def test_scoped_names_and_lookup(backend):
    ctx = Context(seed=1)

    def model(ctx, x):
        x = layers.dense(ctx / "hidden", x, 4)
        return layers.dense(ctx.in_scope("out"), x, 2)

    ContextExec(backend, ctx, model)(np.ones((1, 3), np.float32))
    names = [v.name for v in ctx.variables()]
    assert names == ["hidden/dense/biases", "hidden/dense/weights", "out/dense/biases",
                     "out/dense/weights"]
    assert [v.name for v in (ctx / "out").variables()] == names[2:]
    assert (ctx / "hidden" / "dense").get_variable("weights").spec == shapes.make(np.float32, 3, 4)
    with pytest.raises(KeyError, match="no variable 'hidden/weights'"):
        (ctx / "hidden").get_variable("weights")
    with pytest.raises(ValueError, match="without '/'"):
        ctx.in_scope("a/b")


def test_second_use_requires_reuse_and_reuse_requires_existence(backend):
    x = np.ones((1, 3), np.float32)
    twice = lambda ctx, x: layers.dense(ctx, layers.dense(ctx, x, 3), 3)  # noqa: E731
    with pytest.raises(VariableError, match="'dense/weights' is already used in this graph"):
        ContextExec(backend, Context(), twice)(x)

    shared = lambda ctx, x: layers.dense(ctx.reuse(), layers.dense(ctx, x, 3), 3)  # noqa: E731
    y = ContextExec(backend, Context(), shared)(x)
    assert y.shape == (1, 3)

    with pytest.raises(VariableError, match="does not exist, and ctx.reuse"):
        ContextExec(backend, Context(), lambda ctx, x: layers.dense(ctx.reuse(), x, 3))(x)


def test_shape_mismatch_names_the_variable(backend):
    ctx = Context()
    ContextExec(backend, ctx, lambda c, x: layers.dense(c, x, 3))(np.ones((1, 3), np.float32))
    with pytest.raises(VariableError, match=r"'dense/weights' exists as float32\[3, 3\]"):
        ContextExec(backend, ctx, lambda c, x: layers.dense(c, x, 3))(np.ones((1, 5), np.float32))


def test_hyperparameters_are_found_through_enclosing_scopes():
    ctx = Context(learning_rate=0.1, dropout=0.5)
    (ctx / "block").set_params(dropout=0.2)
    inner = ctx / "block" / "layer"
    assert inner.get_param("dropout") == 0.2
    assert inner.get_param("learning_rate") == 0.1
    assert ctx.get_param("dropout") == 0.5
    assert inner.get_param("missing", 7) == 7


def test_initial_values_depend_on_seed_and_name_only():
    def create(seed, order):
        ctx = Context(seed=seed)
        for name in order:
            ctx.variable(name, (50, 40), initializer=initializers.glorot_uniform())
        return {n: ctx.get_variable(n).numpy() for n in order}

    a, b = create(0, ["x", "y"]), create(0, ["y", "x"])
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], a["y"])
    assert not np.array_equal(a["x"], create(1, ["x"])["x"])


@pytest.mark.parametrize("name,std", [
    ("glorot_uniform", np.sqrt(2 / 700)), ("glorot_normal", np.sqrt(2 / 700)),
    ("he_uniform", np.sqrt(2 / 300)), ("he_normal", np.sqrt(2 / 300)),
    ("lecun_normal", np.sqrt(1 / 300))])
def test_variance_scaling_initializers(name, std):
    value = getattr(initializers, name)()(np.random.default_rng(0), (300, 400), np.float32)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value.std(), std, rtol=0.02)
    assert abs(value.mean()) < 0.01 * std * 10


def test_simple_initializers():
    rng = np.random.default_rng(0)
    assert (initializers.zeros()(rng, (2, 2), np.float32) == 0).all()
    assert (initializers.ones()(rng, (2,), np.int32) == 1).all()
    assert (initializers.constant(3.5)(rng, (3,), np.float32) == 3.5).all()
    tn = initializers.truncated_normal(stddev=2.0)(rng, (10000,), np.float32)
    assert np.abs(tn).max() <= 4.0 and 1.6 < tn.std() < 1.8
    u = initializers.random_uniform(-1, 2)(rng, (10000,), np.float32)
    assert u.min() >= -1 and u.max() < 2
    n = initializers.random_normal(0.5, mean=1)(rng, (10000,), np.float32)
    np.testing.assert_allclose([n.mean(), n.std()], [1, 0.5], atol=0.02)


def test_random_key_advances_state_reproducibly(backend):
    def draw(ctx):
        return G.uniform(ctx.random_key(), (4,))

    ctx = Context(seed=5)
    exe = ContextExec(backend, ctx, draw)
    first, second = exe().numpy(), exe().numpy()
    assert not np.array_equal(first, second)
    again = ContextExec(backend, Context(seed=5), draw)
    np.testing.assert_array_equal(again().numpy(), first)
    assert not np.array_equal(ContextExec(backend, Context(seed=6), draw)().numpy(), first)


def test_assign_updates_variable_after_run(backend):
    ctx = Context()
    ctx.create_variable("counter", np.zeros((), np.int32), trainable=False)
    exe = ContextExec(backend, ctx, lambda c: c.assign("counter", c.value("counter") + 1))
    for _ in range(3):
        exe()
    assert int(ctx.get_variable("counter").numpy()) == 3
    with pytest.raises(RuntimeError, match="needs a graph being traced"):
        ctx.assign("counter", 1)
    with pytest.raises(VariableError, match="requires shape"):
        ContextExec(backend, ctx, lambda c: c.assign("counter", G.zeros_like(
            G.const(np.zeros(2, np.int32)))))()


def test_a_function_that_creates_variables_is_traced_once(backend):
    traces = []

    def model(ctx, x):
        traces.append(x.shape)
        w = ctx.node("w", (3,), initializer=initializers.constant(2.0))
        ctx.assign("w", w + 1)
        if "unread" not in {v.name for v in ctx.variables()}:
            ctx.create_variable("unread", np.full(2, 7, np.int32), trainable=False)
        return x * w + G.convert(G.reduce_sum(ctx.random_key()) * 0, x.dtype)

    ctx = Context(seed=0)
    exe = ContextExec(backend, ctx, model, donate_variables=True)
    x = np.arange(3, dtype=np.float32)
    for k in range(3):  # w = 2, 3, 4: each step reads the value the step before assigned
        np.testing.assert_array_equal(exe(x).numpy(), (2 + k) * x)
    assert traces == [(3,)]
    assert sorted(v.name for v in ctx.variables()) == ["rng_state", "unread", "w"]
    np.testing.assert_array_equal(ctx.get_variable("unread").numpy(), [7, 7])


def test_variables_are_constants_in_plain_exec(run):
    ctx = Context()
    ctx.create_variable("w", np.full((2,), 3.0, np.float32))
    out = run(lambda x: x * ctx.variable("w", (2,)), np.ones(2, np.float32))
    np.testing.assert_array_equal(out, [3, 3])


def test_node_is_the_variables_node_while_tracing_and_refused_outside(backend):
    ctx = Context(seed=0)
    seen = []

    def model(ctx, x):
        w = ctx.node("w", (3,), initializer=initializers.ones())
        seen.append(w)
        return x * w

    out = ContextExec(backend, ctx, model)(np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(out.numpy(), np.full(3, 2.0, np.float32))
    assert all(isinstance(w, G.Node) for w in seen)
    assert ctx.variable("w", (3,)).name == "w"  # outside tracing: the Variable
    with pytest.raises(RuntimeError, match=r"ctx.node\('w'\) requires a graph being traced"):
        ctx.node("w", (3,))
