"""Support of the differential tests: our graphs on every backend against jax.lax / jax.numpy.

A `Case` is one computation written twice: `ours` over graph nodes and `ref` over
jax arrays, with its inputs (NumPy arrays) and how results compare (`Check`). Cases
run in batches: one traced graph (and one jitted jax function) per batch, so the c
backend compiles few modules (it caches them by source hash) and the suite stays
fast on two cores.

Comparisons are real: `exact` is bitwise (NaNs must be NaN where XLA's are, zeros
keep their sign), `ulp` bounds the distance in units in the last place (and still
requires NaN, infinity and signed-zero agreement), `close` is a relative/absolute
tolerance for results whose summation order legitimately differs.

`DIFFERENCES` (in `generators/ops_table.py`, next to the ops it qualifies) is the one
table of deliberate differences from XLA: the comparisons below apply its entries by
name, and `docs/ops.md` states them (generated from the same table).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import ml_dtypes
import numpy as np

from generators.ops_table import DIFFERENCES
import mlframework as mlf
from mlframework import graph as G

jax.config.update("jax_enable_x64", True)

BF16 = np.dtype(ml_dtypes.bfloat16)
F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
FLOATS = [F16, BF16, F32, F64]
SIGNED = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)]
UNSIGNED = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)]
INTS = SIGNED + UNSIGNED
NUMERIC = INTS + FLOATS
BOOL = [np.dtype(np.bool_)]
ALL = BOOL + NUMERIC
DTYPE_SETS = {"any": ALL, "numeric": NUMERIC, "float": FLOATS, "int": INTS, "bool": BOOL,
              "integral": INTS + BOOL}


def subnormal_mask(a: np.ndarray) -> np.ndarray:
    """True where a float array holds a nonzero subnormal."""
    a = np.asarray(a)
    if a.dtype not in FLOATS:
        return np.zeros(a.shape, bool)
    tiny = float(ml_dtypes.finfo(a.dtype).smallest_normal)
    wide = np.abs(a.astype(np.float64))
    return (wide > 0) & (wide < tiny)


# ---- edge values --------------------------------------------------------------------

def edge_values(dtype, subnormals: bool = True) -> np.ndarray:
    """The values every op sees: NaN (both signs), +-inf, +-0.0, +-1, halves, the
    dtype's extremes and smallest normal, values near exp's and log's overflow and,
    unless `subnormals` is False, subnormals and the values whose exp underflows into
    them (composites and reductions, which have no IEEE reference, take these out:
    `DIFFERENCES["subnormals"]`); integer extremes and neighbours; both bools."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.array([False, True, True, False])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        vals = [0, 1, 2, 3, 7, info.max, info.max - 1, info.max // 2]
        if dtype.kind == "i":
            vals += [-1, -2, -7, info.min, info.min + 1, info.min // 2]
        return np.array(vals, dtype)
    fi = ml_dtypes.finfo(dtype)
    big, tiny = float(fi.max), float(fi.smallest_normal)
    log_max = float(np.log(big))
    vals = [np.nan, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 3.0, np.inf, -np.inf,
            big, -big, tiny, -tiny, float(fi.eps), log_max * 0.98, log_max * 1.02,
            1e4, -1e4, 0.1, -7.25]
    if subnormals:
        sub = float(fi.smallest_subnormal)
        vals += [-log_max * 0.98, -log_max * 1.05, sub, -sub, tiny / 2, -tiny / 4]
    out = np.array(vals, np.float64).astype(dtype)
    neg_nan = np.array([-np.nan], np.float64).astype(dtype)
    return np.concatenate([out, neg_nan])


def random_values(rng, shape, dtype, lo=-3.0, hi=3.0) -> np.ndarray:
    """Random values of `dtype` in [lo, hi); bools are coin flips."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(np.floor(lo)), info.min), min(int(np.ceil(hi)), info.max)
        return rng.integers(lo, hi, size=shape, endpoint=False).astype(dtype)
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of `values` as two flat arrays (for binary ops)."""
    x, y = np.meshgrid(values, values, indexing="ij")
    return x.reshape(-1), y.reshape(-1)


# ---- comparison ---------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """How a result compares with XLA's: `exact` (bitwise; any NaN matches any NaN),
    `ulp` (at most `ulps` apart, or within `atol`), or `close` (rtol/atol)."""

    kind: str = "exact"
    ulps: float = 0
    rtol: float = 0.0
    atol: float = 0.0


EXACT = Check()


def ulp(n: float, half: float | None = None) -> Check:
    """At most n units in the last place apart (`half` for float16/bfloat16 if given)."""
    return Check("ulp", n, atol=0.0 if half is None else half)


def _ordered(a: np.ndarray) -> np.ndarray:
    """Float bits as integers that order like the floats (+0 and -0 one apart)."""
    width = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    bits = a.view(width).astype(np.int64)
    low = np.int64(np.iinfo(width).min)
    return np.where(bits < 0, low - bits, bits)


def _fail(what, got, want, bad, note="") -> None:
    idx = np.argwhere(bad)[:6]
    shown = "; ".join(f"at {tuple(int(i) for i in k)}: got {got[tuple(k)]!r}, "
                      f"XLA {want[tuple(k)]!r}" for k in idx)
    raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ{note}: "
                         f"{shown}")


def compare(got, want, check: Check, what: str, ieee=None, backend: str = "",
            accurate=None) -> None:
    """Asserts `got` (ours) matches `want` (XLA's): dtype, shape and values per `check`.

    On the c backend (`DIFFERENCES["subnormals"]`) `ieee`, if given, is (NumPy's IEEE
    result, mask): where the mask is set the IEEE result is the reference; and a
    subnormal result of ours matches XLA's flushed zero of the same sign. `accurate`
    (NumPy's float64 result) also passes an `ulp` check within 2 ulps of it there
    (`DIFFERENCES["approximations"]`). `close` checks ignore the sign of zero.
    """
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, XLA gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, XLA gives {want.shape}"
    if got.size == 0:
        return
    keeps_subnormals = backend in DIFFERENCES["subnormals"].backends
    if keeps_subnormals and ieee is not None:
        values, where = ieee
        want = np.where(where, np.asarray(values).astype(want.dtype), want)
    if want.dtype not in FLOATS:
        bad = got != want
        if bad.any():
            _fail(what, got, want, bad)
        return
    flushed = np.zeros(got.shape, bool)
    if keeps_subnormals:
        flushed = subnormal_mask(got) & (want.astype(np.float64) == 0) & (
            np.signbit(got) == np.signbit(want))
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    g_nan, w_nan = np.isnan(g64), np.isnan(w64)
    bad = g_nan != w_nan
    both = ~(g_nan | w_nan)
    zeros = (w64 == 0) | (g64 == 0) if check.kind != "close" else np.zeros(got.shape, bool)
    special = both & (np.isinf(w64) | np.isinf(g64) | zeros)
    bad |= special & ((g64 != w64) | (np.signbit(g64) != np.signbit(w64)))
    normal = both & ~special
    if check.kind == "exact":
        bad |= normal & (g64 != w64)
    elif check.kind == "ulp":
        dist = np.abs(_ordered(got) - _ordered(want))
        far = normal & (dist > check.ulps) & (np.abs(g64 - w64) > check.atol)
        if accurate is not None and backend in DIFFERENCES["approximations"].backends:
            accurate = np.asarray(accurate).astype(want.dtype)
            near = np.abs(_ordered(got) - _ordered(accurate)) <= 2
            far &= ~near
            # a finite result of ours near the accurate one where XLA's approximation gave
            # a zero or an infinity (lgamma(1) = 4.8e-7, asin of the smallest normal = 0)
            bad &= ~(special & near & np.isfinite(g64))
        bad |= far
    else:
        bad |= normal & (np.abs(g64 - w64) > check.atol + check.rtol * np.abs(w64))
    bad &= ~flushed
    if bad.any():
        _fail(what, got, want, bad, f" ({check.kind} {check.ulps or ''})")


# ---- running cases in batches --------------------------------------------------------

# XLA rounds float16/bfloat16 after every op only without its excess precision, which would
# keep float32 inside a fusion (op-by-op jax rounds after every op either way).
ROUND_EVERY_OP = {"xla_allow_excess_precision": False}


@dataclass
class Case:
    """One computation: `ours(*args)` on graph nodes and `ref(*args)` on jax arrays.

    `ieee(*args)`, if given, is NumPy's IEEE result (used where subnormals are involved
    on backends that keep them). `ours` and `ref` may return a tuple of results.
    """

    name: str
    ours: Callable
    ref: Callable
    args: tuple
    check: Check = EXACT
    ieee: Callable | None = None
    extra: dict = field(default_factory=dict)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def run_cases(backend_name: str, cases: list[Case], name: str = "differential") -> None:
    """Runs `cases` as one graph on the backend and one jitted jax function; compares each."""
    backend = mlf.backends.new(backend_name)
    args = [c.args for c in cases]

    def ours(all_args):
        return [_as_tuple(c.ours(*a)) for c, a in zip(cases, all_args)]

    def ref(all_args):
        return [_as_tuple(c.ref(*a)) for c, a in zip(cases, all_args)]

    ours.__name__ = name
    got = G.Exec(backend, ours)(args)
    want = jax.jit(ref, compiler_options=ROUND_EVERY_OP)(args)
    failures = []
    for case, a, g, w in zip(cases, args, got, want):
        assert len(g) == len(w), f"{case.name}: {len(g)} results, XLA gives {len(w)}"
        ieee = _ieee(case, a, backend_name)
        for k, (gk, wk) in enumerate(zip(g, w)):
            what = f"{case.name}[{k}] on {backend_name}" if len(g) > 1 else \
                f"{case.name} on {backend_name}"
            try:
                compare(gk.numpy(), np.asarray(wk), case.check, what,
                        None if ieee is None else ieee[k], backend_name,
                        None if ieee is None else ieee[k][0])
            except AssertionError as e:
                failures.append(str(e))
    if failures:
        raise AssertionError(f"{len(failures)} of {len(cases)} cases differ from XLA:\n" +
                             "\n".join(failures))


def _ieee(case: Case, args, backend_name: str):
    """NumPy's IEEE results and where to use them (subnormal inputs or outputs), or None."""
    if backend_name not in DIFFERENCES["subnormals"].backends or case.ieee is None:
        return None
    involved = np.zeros((), bool)
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype in FLOATS:
            involved = involved | subnormal_mask(a)
    outs = _as_tuple(case.ieee(*args))
    return [(np.asarray(o), np.broadcast_to(involved | subnormal_mask(o), np.shape(o)))
            for o in outs]
