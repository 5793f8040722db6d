"""Losses against PyTorch's functional losses, with masks and weights."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlframework.ml import losses

TOL = dict(rtol=1e-5, atol=1e-6)


def t(a):
    return torch.from_numpy(np.asarray(a))


def weighted(per, w, m):
    """The documented reduction, in torch: sum(l * w * m) / sum(m), on leading axes."""
    while w.dim() < per.dim():
        w, m = w[..., None], m[..., None]
    w, m = w.expand_as(per), m.expand_as(per).to(per.dtype)
    return ((per * w * m).sum() / m.sum()).item()


@pytest.fixture
def data(rng):
    return dict(
        y=rng.normal(size=(6, 3)).astype(np.float32),
        p=rng.normal(size=(6, 3)).astype(np.float32) * 2,
        prob=rng.uniform(0.01, 0.99, size=(6, 3)).astype(np.float32),
        bits=(rng.uniform(size=(6, 3)) > 0.5).astype(np.float32),
        labels=rng.integers(0, 5, size=(6,)).astype(np.int32),
        logits=rng.normal(size=(6, 5)).astype(np.float32) * 3,
        w=rng.uniform(0.5, 2, size=(6,)).astype(np.float32),
        m=np.array([1, 1, 0, 1, 0, 1], bool),
    )


CASES = {
    "mse": (losses.mean_squared_error, "y", "p",
            lambda a, b: F.mse_loss(b, a, reduction="none")),
    "mae": (losses.mean_absolute_error, "y", "p",
            lambda a, b: F.l1_loss(b, a, reduction="none")),
    "huber": (lambda a, b, **kw: losses.huber(a, b, delta=0.7, **kw), "y", "p",
              lambda a, b: F.huber_loss(b, a, delta=0.7, reduction="none")),
    "bce": (losses.binary_cross_entropy, "bits", "prob",
            lambda a, b: F.binary_cross_entropy(b, a, reduction="none")),
    "bce_logits": (losses.binary_cross_entropy_logits, "bits", "p",
                   lambda a, b: F.binary_cross_entropy_with_logits(b, a, reduction="none")),
    "sparse_ce_logits": (losses.sparse_categorical_cross_entropy_logits, "labels", "logits",
                         lambda a, b: F.cross_entropy(b, a.long(), reduction="none")),
    "sparse_ce_probs": (losses.sparse_categorical_cross_entropy, "labels", "softmax",
                        lambda a, b: F.nll_loss(torch.log(b), a.long(), reduction="none")),
    "ce_logits": (losses.categorical_cross_entropy_logits, "soft", "logits",
                  lambda a, b: F.cross_entropy(b, a, reduction="none")),
    "ce_probs": (losses.categorical_cross_entropy, "soft", "softmax",
                 lambda a, b: -(a * torch.log(b)).sum(-1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_torch_plain_weighted_and_masked(run, data, name):
    fn, a_key, b_key, ref = CASES[name]
    data["softmax"] = torch.softmax(t(data["logits"]), -1).numpy()
    data["soft"] = torch.softmax(t(data["logits"][::-1].copy()) / 2, -1).numpy()
    a, b, w, m = data[a_key], data[b_key], data["w"], data["m"]
    plain, with_w, with_m, both = run(
        lambda a, b, w, m: (fn(a, b), fn(a, b, weights=w), fn(a, b, mask=m),
                            fn(a, b, weights=w, mask=m)), a, b, w, m)
    per = ref(t(a), t(b)).double()
    ones, all_true = torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.bool)
    np.testing.assert_allclose(plain, per.mean().item(), **TOL)
    np.testing.assert_allclose(with_w, weighted(per, t(w).double(), all_true), **TOL)
    np.testing.assert_allclose(with_m, weighted(per, ones, t(m)), **TOL)
    np.testing.assert_allclose(both, weighted(per, t(w).double(), t(m)), **TOL)


def test_all_masked_batch_gives_zero(run, data):
    out = run(lambda a, b, m: losses.mse(a, b, mask=m), data["y"], data["p"], np.zeros(6, bool))
    assert out == 0


def test_bce_clamps_log_like_torch(run):
    y, p = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    out = run(losses.binary_cross_entropy, y, p)
    np.testing.assert_allclose(out, F.binary_cross_entropy(t(p), t(y)).item(), **TOL)
