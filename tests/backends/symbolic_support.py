"""The check every symbolic-dimension test of the c backend makes: one trace and one
compiled module serve every size, with the xla backend's results."""
from __future__ import annotations

import numpy as np

import mlframework as mlf
from mlframework import graph as G

MAX = 16
SIZES = (1, 7, MAX)


def compare_with_xla(fn, spec, make, tol: float = 1e-6, maxima=None, sizes=SIZES) -> None:
    """fn on the c backend with the symbolic axes `spec` (Exec's `symbolic=`; symbols up
    to `maxima`, default N up to MAX), traced and compiled once, against the xla backend
    at each of `sizes` (default SIZES); `make(size)` gives the arguments there. Fails on
    any output further than `tol` (absolute and relative) from xla's, or on a second
    compile."""
    maxima = {"N": MAX} if maxima is None else dict(maxima)
    backend = mlf.backends.new("c")
    graphs = []
    compile_ = backend.compile
    backend.compile = lambda graph, donate=(): graphs.append(graph) or compile_(graph, donate)
    on_c = G.Exec(backend, fn, symbolic=spec, maxima=maxima)
    on_xla = G.Exec(mlf.backends.new("xla"), fn)
    for n in sizes:
        args = make(n)
        got, want = on_c(*args), on_xla(*args)
        got, want = (got, want) if isinstance(got, tuple | list) else ((got,), (want,))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g.numpy()), np.asarray(w.numpy()),
                                       rtol=tol, atol=tol)
    assert len(graphs) == 1 and graphs[0].symbols == maxima
