"""`check_jvp`: forward-mode derivatives against jax.jvp and finite differences.

Other forward-mode tests import it (`from test_jvpcheck import check_jvp`); the
tests at the bottom check that the checker itself catches wrong rules.

One call compiles one graph: it takes the arguments and one tangent per float
argument (fixed pseudo-random directions) and returns fn's float outputs and
their tangents from `G.jvp`. The tangents are compared with `jax.jvp` of a
reference function at the same point and directions, and, with `fd=True`,
with central differences of the same graph's outputs along the directions.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from test_gradcheck import cotangent

from mlframework import graph as G
from mlframework.core import pytree
from mlframework.core.dtypes import as_dtype

jax.config.update("jax_enable_x64", True)  # float64 references, whichever backend runs


def direction(shape, dtype, k=0) -> np.ndarray:
    """The fixed tangent of the k-th argument (values in [-1, 1])."""
    return cotangent(shape, dtype, k + 17)


def _float_leaves(tree):
    return [x for x in pytree.flatten(tree)[0] if as_dtype(x.dtype).is_float]


def check_jvp(backend, fn, args, ref=None, *, fd=False, eps=1e-6, fd_rtol=1e-6, rtol=1e-7,
              atol=1e-10, names=None):
    """Checks G.jvp of `fn` at `args` against jax.jvp of `ref` and finite differences.

    Args:
        backend: the backend to run on.
        fn: takes nodes, returns a node or a pytree of nodes (int outputs are ignored).
        args: NumPy arrays; the float ones get a tangent, the others (indices) none.
            Use float64 for the finite differences.
        ref: the same function written with jax.numpy/jax.lax, or None.
        fd: also compare with central differences (turn off at kinks and ties).
        names: names of fn's float outputs, for messages (default out0, out1, ...).

    Returns:
        The output tangents, one array per float output.
    """
    args = [np.asarray(a) for a in args]
    diff = [i for i, a in enumerate(args) if as_dtype(a.dtype).is_float]
    tangents = [direction(args[i].shape, args[i].dtype, k) for k, i in enumerate(diff)]

    def outputs_and_tangents(xs, ts):
        ts = iter(ts)
        seeds = [next(ts) if i in diff else x for i, x in enumerate(xs)]  # int ones: ignored
        outs, touts = G.jvp(fn, tuple(xs), tuple(seeds))
        keep = [k for k, o in enumerate(pytree.flatten(outs)[0]) if o.dtype.is_float]
        return ([pytree.flatten(outs)[0][k] for k in keep],
                [pytree.flatten(touts)[0][k] for k in keep])

    exe = G.Exec(backend, outputs_and_tangents)
    outs, touts = exe(args, tangents)
    outs, touts = [o.numpy() for o in outs], [t.numpy() for t in touts]
    names = names or [f"out{k}" for k in range(len(outs))]
    for name, o, t in zip(names, outs, touts):
        assert t.shape == o.shape and t.dtype == o.dtype, \
            f"tangent of {name}: {t.dtype}{t.shape}, expected {o.dtype}{o.shape}"

    if fd:
        def at(sign):
            moved = list(args)
            for i, t in zip(diff, tangents):
                moved[i] = (args[i] + sign * eps * t).astype(args[i].dtype)
            return [o.numpy() for o in exe(moved, tangents)[0]]
        for name, t, hi, lo in zip(names, touts, at(1), at(-1)):
            numeric = (hi - lo) / (2 * eps)
            scale = np.max(np.abs(numeric), initial=1.0)
            np.testing.assert_allclose(t, numeric, rtol=fd_rtol, atol=fd_rtol * scale,
                                       err_msg=f"tangent of {name} differs from finite "
                                               f"differences")

    if ref is not None:
        def ref_jvp(primals, dirs):
            def on_floats(*d):
                xs = list(args)
                for i, x in zip(diff, d):
                    xs[i] = x
                return _float_leaves(ref(*xs))
            return jax.jvp(on_floats, primals, dirs)
        ref_outs, ref_touts = jax.jit(ref_jvp)([args[i] for i in diff], tangents)
        assert len(ref_outs) == len(outs), f"{len(outs)} float outputs, jax has {len(ref_outs)}"
        for name, o, t, ro, rt in zip(names, outs, touts, ref_outs, ref_touts):
            np.testing.assert_allclose(o, np.asarray(ro), rtol=rtol, atol=atol,
                                       err_msg=f"{name} differs from the reference")
            np.testing.assert_allclose(t, np.asarray(rt), rtol=rtol, atol=atol,
                                       err_msg=f"tangent of {name} differs from jax")
    return touts


# ---- the checker catches wrong rules ----

def test_checker_accepts_a_correct_rule(backend):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    check_jvp(backend, lambda x: G.sin(x) * x, [x], lambda x: jax.numpy.sin(x) * x, fd=True)


def test_checker_catches_a_wrong_rule(backend, monkeypatch):
    from mlframework.graph import jvp_rules
    monkeypatch.setitem(jvp_rules.RULES, G.Op.SIN,
                        lambda n, t: t[0] * G.cos(n.inputs[0]) * 1.001)
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(AssertionError, match="finite differences"):
        check_jvp(backend, G.sin, [x], fd=True)
    with pytest.raises(AssertionError, match="differs from jax"):
        check_jvp(backend, G.sin, [x], jax.numpy.sin)


def test_checker_ignores_integer_inputs_and_outputs(backend):
    x = np.linspace(-1, 1, 5)
    idx = np.array([3, 0], np.int32)
    touts = check_jvp(backend, lambda x, i: (G.argmax(x, 0), G.take(x, i) * 2), [x, idx],
                      lambda x, i: (jax.numpy.argmax(x), x[i] * 2), fd=True)
    assert len(touts) == 1
    np.testing.assert_allclose(touts[0], direction((5,), np.float64)[[3, 0]] * 2)
