"""Optimizers, gradient clipping and schedules against torch.optim and closed forms."""
import math

import numpy as np
import pytest
import torch

from mlframework import graph as G
from mlframework.ml import Context, ContextExec, optimizers, schedules

STEPS = 5


def quadratic_grads(p, target):
    """Gradient of sum((p - target)^3 / 3 + p^2): non-linear, so steps differ."""
    return (p - target) ** 2 + 2 * p


def run_ours(backend, opt, init, target):
    ctx = Context(seed=0)
    ctx.create_variable("p", init)

    def step(ctx, target):
        p = ctx.value("p")
        opt.apply(ctx, {"p": p}, {"p": quadratic_grads(p, target)})
        return ctx.value("p")

    exe = ContextExec(backend, ctx, step, donate_variables=True)
    return [exe(target).numpy().copy() for _ in range(STEPS)]


def run_torch(make, init, target):
    p = torch.tensor(init.astype(np.float64), requires_grad=True)
    opt = make([p])
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        p.grad = quadratic_grads(p.detach(), torch.tensor(target.astype(np.float64)))
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


CASES = {
    "sgd": (lambda: optimizers.SGD(0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd-momentum-wd": (lambda: optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01),
                        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
    "sgd-nesterov": (lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
                     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    "adam": (lambda: optimizers.Adam(0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam-wd": (lambda: optimizers.Adam(0.01, beta2=0.9, weight_decay=0.1),
                lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.9), weight_decay=0.1)),
    "adamw": (lambda: optimizers.AdamW(0.01, weight_decay=0.1),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
    "rmsprop": (lambda: optimizers.RMSProp(0.01),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    "rmsprop-centered-momentum": (
        lambda: optimizers.RMSProp(0.01, centered=True, momentum=0.5),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True, momentum=0.5)),
    "adagrad": (lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.1),
                lambda ps: torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_torch(backend, rng, name):
    ours, theirs = CASES[name]
    init = rng.normal(size=(3, 4)).astype(np.float32)
    target = rng.normal(size=(3, 4)).astype(np.float32)
    for k, (a, b) in enumerate(zip(run_ours(backend, ours(), init, target),
                                   run_torch(theirs, init, target))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {k + 1}")


def test_lion_matches_reference(backend, rng):
    init = rng.normal(size=(5,)).astype(np.float32)
    target = rng.normal(size=(5,)).astype(np.float32)
    got = run_ours(backend, optimizers.Lion(0.01, weight_decay=0.5), init, target)
    p, m = init.astype(np.float64), np.zeros(5)
    for k in range(STEPS):  # Algorithm 2 of Chen et al. (2023)
        g = quadratic_grads(p, target)
        update = np.sign(0.9 * m + 0.1 * g)
        p = p - 0.01 * (update + 0.5 * p)
        m = 0.99 * m + 0.01 * g
        np.testing.assert_allclose(got[k], p, rtol=1e-5, atol=1e-6)


def test_global_step_advances_and_state_lives_in_context(backend, rng):
    ctx = Context()
    ctx.create_variable("p", np.ones(3, np.float32))
    opt = optimizers.Adam(0.1)
    exe = ContextExec(backend, ctx, lambda c: opt.apply(c, {"p": c.value("p")},
                                                        {"p": c.value("p") * 2}))
    exe()
    exe()
    assert int(ctx.get_variable("global_step").numpy()) == 2
    names = {v.name for v in ctx.variables()}
    assert {"optimizer/adam/m/p", "optimizer/adam/v/p"} <= names
    assert not ctx.get_variable("optimizer/adam/m/p").trainable


def test_clip_by_global_norm_matches_torch(run, rng):
    a = rng.normal(size=(3, 4)).astype(np.float32) * 3
    b = rng.normal(size=(5,)).astype(np.float32) * 3
    ca, cb = run(lambda a, b: tuple(optimizers.clip_by_global_norm({"a": a, "b": b}, 1.5).values()),
                 a, b)
    ta, tb = torch.tensor(a), torch.tensor(b)
    ta.grad, tb.grad = ta.clone(), tb.clone()
    torch.nn.utils.clip_grad_norm_([ta, tb], 1.5)
    np.testing.assert_allclose(ca, ta.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(cb, tb.grad.numpy(), rtol=1e-5)


def test_schedules_match_closed_forms(run):
    steps = np.array([0, 1, 5, 10, 19, 20, 50], np.int32)
    got = run(lambda s: [schedules.constant(0.1)(s) + G.zeros_like(G.convert(s, np.float32)),
                         schedules.linear_warmup(0.1, 10)(s),
                         schedules.cosine_decay(0.1, 20, alpha=0.1)(s),
                         schedules.exponential_decay(0.1, 0.5, 10)(s),
                         schedules.exponential_decay(0.1, 0.5, 10, staircase=True)(s),
                         schedules.warmup_cosine(0.1, 5, 20)(s)], steps)
    s = steps.astype(np.float64)
    cos = lambda s, T, a: 0.1 * ((1 - a) * 0.5 * (1 + np.cos(math.pi * np.minimum(s, T) / T)) + a)  # noqa: E731
    refs = [np.full(7, 0.1), 0.1 * np.minimum(s / 10, 1), cos(s, 20, 0.1), 0.1 * 0.5 ** (s / 10),
            0.1 * 0.5 ** np.floor(s / 10),
            np.where(s < 5, 0.1 * s / 5, cos(s - 5, 20, 0.0))]
    for k, (g, r) in enumerate(zip(got, refs)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-7, err_msg=f"schedule {k}")


def test_learning_rate_from_context_hyperparameter(backend):
    ctx = Context(learning_rate=0.5)
    ctx.create_variable("p", np.ones(2, np.float32))
    opt = optimizers.SGD()
    ContextExec(backend, ctx, lambda c: opt.apply(c, {"p": c.value("p")},
                                                  {"p": G.ones_like(c.value("p"))}))()
    np.testing.assert_allclose(ctx.get_variable("p").numpy(), [0.5, 0.5])
