"""Symbolic dimensions through tracing, shape inference, gradients, `Exec` and the xla
backend: every op family traced once over a symbolic batch (and sequence) and checked,
at several sizes, against the same function traced with concrete shapes (and, where
short, against NumPy)."""
from __future__ import annotations

import numpy as np
import pytest

import mlframework as mlf
from mlframework import graph as G
from mlframework.core import pytree, shapes
from mlframework.core.symbolic import SymbolicError, dim
from mlframework.ml import layers, losses
from mlframework.ml.context import Context
from mlframework.ml.context_exec import ContextExec

XLA = mlf.backends.new("xla")
N, S = dim("N"), dim("S")
F32 = mlf.float32


def _rng(n: int) -> np.random.Generator:
    return np.random.default_rng(n)


def _counted(fn):
    def traced(*args):
        traced.count += 1
        return fn(*args)
    traced.count = 0
    traced.__signature__ = __import__("inspect").signature(fn)
    return traced


def _check(fn, make, symbolic, sizes=(1, 5), maxima=None, atol=1e-5):
    """fn traced once with `symbolic` axes, run at `sizes`, equals fn traced per size."""
    counted = _counted(fn)
    exe = G.Exec(XLA, counted, symbolic=symbolic, maxima=maxima)
    for n in sizes:
        args = make(n)
        got, _ = pytree.flatten(exe(*args))
        want, _ = pytree.flatten(G.Exec(XLA, fn)(*args))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=atol)
    assert counted.count == 1
    return exe


def _x(n, *rest, seed=0):
    return _rng(n + seed).standard_normal((n, *rest)).astype(np.float32)


# ---- op families over a symbolic batch ---------------------------------------------------

def test_elementwise_broadcast_compare_select_convert():
    def fn(x, b):
        y = G.exp(x * 0.5) - b + 1.0
        return G.where(y > 1.0, y, G.convert(x < 0, np.float32)), G.logical_not(x > b)
    _check(fn, lambda n: (_x(n, 4), _x(1, 4, seed=9)[0]), {"x": "N, 4"})


def test_dot_general_matmul_einsum():
    def fn(x, w, z):
        return x @ w, G.matmul(z, w), G.einsum("nij,jk->nik", z, w), \
            G.dot_general(x, x, (1,), (1,))
    _check(fn, lambda n: (_x(n, 6), _x(6, 3, seed=1), _x(n, 2, 6, seed=2)),
           {"x": "N, 6", "z": "N, 2, 6"})


def test_reductions_mean_over_the_symbolic_axis_against_numpy():
    def fn(x):
        return (G.reduce_sum(x, 0), G.reduce_max(x, 1), G.mean(x), G.mean(x, 0),
                G.variance(x, 0), G.argmax(x, 0), G.logsumexp(x, 0), G.cumsum(x, 0))
    exe = _check(fn, lambda n: (_x(n, 3),), ("N, 3",), sizes=(1, 4, 9))
    x = _x(6, 3)
    np.testing.assert_allclose(exe(x)[2].numpy(), x.mean(), rtol=1e-5)
    np.testing.assert_allclose(exe(x)[4].numpy(), x.var(0), rtol=1e-4)


def test_reshape_transpose_flatten_expand_squeeze():
    def fn(x):
        r = G.reshape(x, (-1, 4, 2))
        return (G.transpose(r, (2, 0, 1)), G.flatten(r), G.squeeze(G.expand_dims(x, 1), 1),
                G.reshape(r, (x.shape[0] * 2, 4)), r.T)
    exe = _check(fn, lambda n: (_x(n, 8),), {"x": "N, 8"})
    assert exe.graph(shapes.make(F32, 3, 8)).outputs[3].spec == shapes.make(F32, 2 * N, 4)


def test_slices_indexing_concatenate_pad_reverse():
    def fn(x):
        return (x[1:], x[:-1, 2:], x[-1], x[0], x[::-1], x[:, ::2],
                G.concatenate([x, x[1:]], 0), G.pad(x, ((1, 2, 1), (0, 0, 0)), 0.0),
                G.reverse(x, (0,)), G.split(x, 2, axis=1)[1], G.stack([x, x], 1))
    exe = _check(fn, lambda n: (_x(n + 1, 4),), {"x": "N, 4"}, sizes=(1, 4))
    out = exe.graph(shapes.make(F32, 3, 4)).outputs
    assert out[0].shape == (N - 1, 4) and out[6].shape == (2 * N - 1, 4)
    assert out[7].shape == (2 * N + 2, 4)


def test_composites_softmax_layer_norm_activations():
    def fn(x):
        return (G.softmax(x, -1), G.log_softmax(x, 0), G.gelu(x), G.relu(x), G.silu(x),
                (x - G.mean(x, -1, keepdims=True)) * G.rsqrt(G.variance(x, -1, keepdims=True)
                                                             + 1e-5))
    _check(fn, lambda n: (_x(n, 5),), ("N, 5",))


def test_gather_take_iota_one_hot_sort_top_k():
    table = _x(10, 3, seed=4)

    def fn(ids, x):
        order = G.iota(np.int32, (x.shape[0], 3), 0)
        return (G.take(table, ids), G.take(x, ids - 5, 0), order,
                G.one_hot(ids, 10), G.sort(x, 0), G.argsort(x, 0),
                G.take_along_axis(x, G.argsort(x, 1), 1), G.top_k(x, 2)[0])
    _check(fn, lambda n: (_rng(n).integers(0, 10, n).astype(np.int32), _x(n + 2, 3)[:n]),
           {"ids": "N", "x": "N, 3"}, sizes=(2, 6))


def test_conv_pooling_and_dynamic_slice_over_a_symbolic_batch():
    w = _x(4, 2, 3, 3, seed=5)

    def fn(x):
        y = G.conv_general(x, w, padding=((1, 1), (1, 1)))
        pooled = G.reduce_window_max(y, (1, 1, 2, 2), (1, 1, 2, 2))
        return y, pooled, G.dynamic_slice(x, [0, 1, 2, 0], (x.shape[0], 1, 3, 4))
    _check(fn, lambda n: (_x(n, 2, 6, 6),), ("N, 2, 6, 6",), atol=1e-4)


def test_random_uniform_of_a_symbolic_shape_is_the_concrete_one():
    key = np.array([1, 2], np.uint32)
    _check(lambda k, x: G.uniform(k, x.shape) + x, lambda n: (key, _x(n, 3)),
           (None, "N, 3"))


def test_control_flow_scan_cond_while_over_a_symbolic_carry():
    def fn(x, xs):
        total, ys = G.scan(lambda c, e: (c + e, c * 2.0), x, xs)
        pick = G.cond(G.reduce_sum(x) > 0, lambda v: v * 2.0, lambda v: v - 1.0, x)
        _, last = G.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 1.5),
                               (np.int32(0), x))
        return total, ys, pick, last
    _check(fn, lambda n: (_x(n, 2), _x(4, n, 2, seed=3)), {"x": "N, 2", "xs": "_, N, 2"})


def test_scan_over_a_symbolic_sequence_and_its_gradient():
    def fn(h0, xs):
        def cell(h, x):
            h = G.tanh(h * 0.5 + x)
            return h, h * 2.0
        last, ys = G.scan(cell, h0, xs)
        return last, ys, G.grad(G.reduce_sum(ys) + G.reduce_sum(last), [xs])[0]
    exe = _check(fn, lambda s: (_x(2, 3), _x(s, 2, 3, seed=1)), {"h0": "N, 3", "xs": "S, N, 3"},
                 sizes=(1, 4), atol=1e-6)
    graph = exe.graph(shapes.make(F32, 2, 3), shapes.make(F32, 4, 2, 3))
    assert graph.symbols == {"N": None, "S": None}
    assert [o.shape for o in graph.outputs[:2]] == [(N, 3), (S, N, 3)]


def test_dense_layer_norm_and_loss_with_a_symbolic_batch():
    def model(ctx, x, labels):
        h = layers.dense(ctx / "a", x, 8, activation="relu")
        h = layers.layer_norm(ctx, h)
        logits = layers.dense(ctx / "b", h, 3)
        return logits, losses.sparse_categorical_cross_entropy_logits(labels, logits)
    ctx = Context(seed=0)
    sym = ContextExec(XLA, ctx, model, symbolic={"x": "N, 5", "labels": "N"})
    plain = ContextExec(XLA, ctx, model)
    for n in (1, 7, 16):
        args = (_x(n, 5), _rng(n).integers(0, 3, n).astype(np.int32))
        for g, w in zip(sym(*args), plain(*args)):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    assert len(sym._exec._cache) == 1


def test_a_train_step_with_a_symbolic_batch_updates_as_the_concrete_one():
    from mlframework.ml import optimizers, train

    def model(ctx, x):
        return layers.dense(ctx / "out", layers.dense(ctx, x, 6, activation="tanh"), 3)

    def run(symbolic):
        ctx = Context(seed=3)
        trainer = train.Trainer(None, ctx, model, losses.sparse_categorical_cross_entropy_logits,
                                optimizers.Adam(0.01))
        step = ContextExec(XLA, ctx, lambda c, x, y: trainer.build_train_step(c, x, y)["loss"],
                           training=True, symbolic=symbolic)
        out = [float(step(_x(n, 4), _rng(n).integers(0, 3, n).astype(np.int32)).numpy())
               for n in (1, 5, 12)]
        return out, {v.name: v.numpy() for v in ctx.variables()}, step
    (got, got_vars, exe), (want, want_vars, _) = run({"x": "N, 4", "y": "N"}), run(None)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for name, value in want_vars.items():
        np.testing.assert_allclose(got_vars[name], value, rtol=1e-5, atol=1e-6)
    assert len(exe._exec._cache) == 1


# ---- two symbols through attention -----------------------------------------------------

def test_attention_with_batch_and_sequence_symbols():
    def fn(q, k, v, mask):
        return (layers.scaled_dot_product_attention(q, k, v, causal=True),
                layers.scaled_dot_product_attention(q, k, v, mask))
    exe = G.Exec(XLA, fn, symbolic={"q": "N, 2, S, 4", "k": "N, 2, S, 4", "v": "N, 2, S, 4",
                                    "mask": "N, 1, 1, S"})
    for n, s in ((1, 1), (2, 5), (3, 8)):
        rng = _rng(10 * n + s)
        q, k, v = (rng.standard_normal((n, 2, s, 4)).astype(np.float32) for _ in range(3))
        mask = rng.random((n, 1, 1, s)) < 0.7
        mask[..., 0] = True
        got = exe(q, k, v, mask)
        scores = np.einsum("nhqd,nhkd->nhqk", q, k) / 2.0
        causal = np.tril(np.ones((s, s), bool))
        for out, allowed in zip(got, (causal, mask)):
            z = np.where(allowed, scores, -np.inf)
            p = np.exp(z - z.max(-1, keepdims=True))
            want = (p / p.sum(-1, keepdims=True)) @ v
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-6)
    assert len(exe._cache) == 1


def test_multi_head_attention_layer_with_two_symbols():
    def model(ctx, x):
        return layers.multi_head_attention(ctx, x, num_heads=2, causal=True)
    ctx = Context(seed=1)
    sym = ContextExec(XLA, ctx, model, symbolic={"x": "N, S, 8"})
    plain = ContextExec(XLA, ctx, model)
    for n, s in ((1, 3), (2, 6)):
        x = _rng(n * s).standard_normal((n, s, 8)).astype(np.float32)
        np.testing.assert_allclose(sym(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)
    assert len(sym._exec._cache) == 1


# ---- gradients --------------------------------------------------------------------------

def test_gradients_of_a_symbolic_batch_loss_match_the_concrete_trace():
    def step(x, labels, w, b):
        logits = G.tanh(x @ w + b)
        loss = losses.sparse_categorical_cross_entropy_logits(labels, logits)
        return (loss, *G.grad(loss, [w, b]))
    w, b = _x(6, 4, seed=7), _x(1, 4, seed=8)[0]
    _check(step, lambda n: (_x(n, 6), _rng(n).integers(0, 4, n).astype(np.int32), w, b),
           {"x": "N, 6", "labels": "N"}, sizes=(1, 7, 32), atol=1e-6)


def test_gradient_with_respect_to_a_symbolic_input():
    def fn(x):
        y = G.softmax(x[1:] * x[:-1], -1)
        return G.grad(G.reduce_sum(y * y), [x])[0]
    _check(fn, lambda n: (_x(n + 1, 3),), ("N, 3",), atol=1e-6)


# ---- Exec: trace count, bound outputs, errors --------------------------------------------

def test_exec_traces_once_for_three_sizes_and_binds_output_specs():
    counted = _counted(lambda x, y: (G.concatenate([x, y], 0), G.reduce_sum(x, 1)))
    exe = G.Exec(XLA, counted, symbolic=("N, 3", "M, 3"), maxima={"N": 64})
    for n in (1, 7, 64):
        joined, sums = exe(_x(n, 3), _x(2, 3))
        assert joined.shape == (n + 2, 3) and sums.shape == (n,)
        assert joined.spec == shapes.make(F32, n + 2, 3)
    assert counted.count == 1 and len(exe._cache) == 1
    graph = exe.graph(shapes.make(F32, 5, 3), shapes.make(F32, 2, 3))
    assert graph.symbols == {"N": 64, "M": None}
    assert str(graph.parameters[0].spec) == "float32[N, 3]"


def test_exec_rejects_mismatched_zero_and_oversized_arguments():
    exe = G.Exec(XLA, lambda x, y: x + y, symbolic={"x": "N, 3", "y": "N, 3"},
                 maxima={"N": 8})
    cases = [
        ((_x(7, 3), _x(8, 3)), "symbol N is 7 at x.shape\\[0\\] but 8 at y.shape\\[0\\]"),
        ((_x(0, 3), _x(0, 3)), "symbol N requires a size >= 1, got 0 at x.shape\\[0\\]"),
        ((_x(9, 3), _x(9, 3)), "symbol N is declared with maximum 8, got 9 at x.shape\\[0\\]"),
        ((_x(2, 4), _x(2, 4)), "argument x is declared symbolic=\\[N, 3\\], which requires "
                               "size 3 on axis 1; got float32\\[2, 4\\]"),
        ((_x(2, 3)[0], _x(2, 3)), "argument x .* requires rank 2"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            exe(*args)


def test_exec_symbolic_argument_errors():
    with pytest.raises(ValueError, match="maximum for 'M', which no axis"):
        G.Exec(XLA, lambda x: x, symbolic=("N",), maxima={"M": 4})
    with pytest.raises(ValueError, match="requires an int >= 1 for N"):
        G.Exec(XLA, lambda x: x, symbolic=("N",), maxima={"N": 0})
    with pytest.raises(TypeError, match="a dict by parameter name or a sequence"):
        G.Exec(XLA, lambda x: x, symbolic="N")
    with pytest.raises(ValueError, match="'2\\*N' in '2\\*N, 3' is none of"):
        G.Exec(XLA, lambda x: x, symbolic=("2*N, 3",))(_x(2, 3))
    with pytest.raises(TypeError, match="names 'z', which is not an argument"):
        G.Exec(XLA, lambda x: x, symbolic={"z": "N"})(_x(2))


def test_pytree_arguments_and_ellipsis_specs():
    def fn(batch):
        return G.reduce_sum(batch["image"], (1, 2)) + batch["bias"]
    exe = _check(fn, lambda n: ({"image": _x(n, 2, 3), "bias": _x(n)},),
                 {"batch": {"image": "N, ...", "bias": "N"}})
    assert exe.graph({"image": shapes.make(F32, 4, 2, 3),
                      "bias": shapes.make(F32, 4)}).symbols == {"N": None}


# ---- shape errors and refusals ------------------------------------------------------------

def _trace(fn, *specs):
    with G.tracing(G.Graph()):
        return fn(*[G.parameter(shapes.make(*s)) for s in specs])


def test_shape_errors_name_the_symbol_and_the_constraint():
    cases = [
        (lambda x, w: x @ w, [(F32, 4, N), (F32, 64, 2)],
         r"matmul requires x.shape\[-1\] == y.shape\[-2\], got float32\[4, N\] @ "
         r"float32\[64, 2\]: N and 64"),
        (lambda x, w: G.dot_general(x, w, (1,), (0,)), [(F32, 4, N), (F32, 64, 2)],
         r"lhs.shape\[1\] == rhs.shape\[0\] fails with N and 64"),
        (lambda x, y: x + y, [(F32, N, 3), (F32, S, 3)],
         r"add requires shapes that broadcast, got \(N, 3\), \(S, 3\): axis -2 has sizes "
         r"N and S"),
        (lambda x: G.reshape(x, (3, -1)), [(F32, N, 2)],
         r"reshape cannot infer -1 in \(3, -1\) for 2\*N elements"),
        (lambda x: G.slice(x, (0,), (N + 1,)), [(F32, N)], r"slice requires 0 <= start"),
        (lambda x: G.slice(x, (0,), (N,), (2,)), [(F32, N)],
         r"slice with stride 2 over the symbolic extent N .* not a polynomial in N"),
        (lambda x: x[2], [(F32, N)], r"indexing the symbolic axis 0 \(N\) with 2 is in "
                                     r"bounds only for some values of N"),
        (lambda x: G.split(x, 2), [(F32, N)], r"split along the symbolic axis 0"),
    ]
    for fn, specs, message in cases:
        with pytest.raises(G.ShapeError, match=message):
            _trace(fn, *specs)


def test_concrete_sizes_over_symbols_are_refused_naming_the_op():
    ctx = Context(seed=0)
    with pytest.raises(SymbolicError, match="dense's input features x.shape\\[-1\\] must be "
                                            "a static size, got the symbolic dimension N"):
        ContextExec(None, ctx, lambda c, x: layers.dense(c, x, 3),
                    symbolic={"x": "2, N"}).graph(shapes.make(F32, 2, 5))
    with pytest.raises(SymbolicError, match="jacobian's number of outputs"):
        _trace(lambda x: G.jacobian(x * 2.0, x), (F32, N))
    with pytest.raises(SymbolicError, match="solve's matrix size"):
        _trace(lambda a: G.solve(a, a), (F32, N, N))


def test_data_dependent_shapes_stay_refused():
    with pytest.raises(TypeError, match="use G.gather or G.take for array indices"):
        _trace(lambda x: x[x > 0], (F32, N))


# ---- graph.bind and the backends -------------------------------------------------------

def test_bind_substitutes_specs_attributes_and_sub_graphs():
    def fn(x):
        y = G.reshape(x, (x.shape[0] * 2, 2))
        total, _ = G.scan(lambda c, e: (c + e, e), G.zeros_like(y), G.stack([y, y]))
        return G.iota(np.int32, (x.shape[0],), 0), total[1:]
    graph = G.Exec(None, fn, symbolic=("N, 4",)).graph(shapes.make(F32, 3, 4))
    bound = graph.bind({"N": 3})
    assert bound.symbols == {} and graph.symbols == {"N": None}
    assert [str(o.spec) for o in bound.outputs] == ["int32[3]", "float32[5, 2]"]
    for node in bound.nodes:
        assert not node.spec.symbols and "Dim" not in repr(node.attrs)
    assert "Dim" not in str(bound) and "N" in str(graph)
    out = XLA.compile(bound).run([_x(3, 4)])
    np.testing.assert_array_equal(np.asarray(out[0]), np.arange(3))
    with pytest.raises(SymbolicError, match="needs a size for N"):
        graph.bind({})
    with pytest.raises(ValueError, match="sizes >= 1, got N=0"):
        graph.bind({"N": 0})


def test_xla_compiles_per_size_in_a_bounded_cache(monkeypatch):
    from mlframework.backends.xla import backend as xla_backend
    monkeypatch.setattr(xla_backend, "SYMBOLIC_CACHE_SIZE", 2)
    graph = G.Exec(None, lambda x: x * 2.0, symbolic=("N",)).graph(shapes.make(F32, 1))
    exe = XLA.compile(graph)
    for n in (1, 2, 3, 2):
        np.testing.assert_array_equal(np.asarray(exe.run([np.ones(n, np.float32)])[0]),
                                      np.full(n, 2.0, np.float32))
    assert list(exe._cache) == [(("N", 3),), (("N", 2),)]
    with pytest.raises(ValueError, match="symbol N requires a size >= 1"):
        exe.run([np.ones(0, np.float32)])


def test_c_backend_needs_each_symbols_maximum():
    """The c backend's one module sizes its workspace at the maxima (its symbolic runs are
    tested in tests/backends/test_c_symbolic.py)."""
    graph = G.Exec(None, lambda x: x * 2.0, symbolic=("N",)).graph(shapes.make(F32, 1))
    with pytest.raises(ValueError, match="N has none; declare one"):
        mlf.backends.new("c").compile(graph)
    graph.symbols["N"] = 8
    exe = mlf.backends.new("c").compile(graph)
    np.testing.assert_array_equal(exe.run([np.ones(3, np.float32)])[0], np.full(3, 2.0))
