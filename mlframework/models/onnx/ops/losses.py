"""Loss operators: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with
class weights, `ignore_index` and the reductions none, sum and mean (the mean
divides by the summed weights of the targets that count)."""
from __future__ import annotations

from mlframework import graph as G
from mlframework.graph.broadcasting import as_node
from mlframework.models.onnx.errors import OnnxImportError


def _nll(node, log_prob, target, weight):
    """Per-element losses [N, d...] and their weights, from log_prob [N, C, d...]."""
    target = as_node(target)
    ignore = node.int("ignore_index", None)
    keep = None
    if ignore is not None:
        keep = G.ne(target, ignore)
        target = G.where(keep, target, G.zeros_like(target))
    picked = G.squeeze(G.take_along_axis(log_prob, G.expand_dims(target, 1), 1), 1)
    w = G.take(as_node(weight), target) if weight is not None else G.ones_like(picked)
    if keep is not None:
        w = G.where(keep, w, G.zeros_like(w))
    return -picked * w, w


def _reduce(node, loss, w):
    mode = node.str("reduction", "mean")
    if mode == "none":
        return loss
    if mode == "sum":
        return G.reduce_sum(loss)
    if mode == "mean":
        return G.reduce_sum(loss) / G.reduce_sum(w)
    raise OnnxImportError(f"reduction must be none, sum or mean, got {mode!r}")


def _negative_log_likelihood(node, x, target, weight=None):
    loss, w = _nll(node, as_node(x), target, weight)
    return _reduce(node, loss, w)


def _softmax_cross_entropy(node, scores, labels, weights=None):
    log_prob = G.log_softmax(as_node(scores), 1)
    loss, w = _nll(node, log_prob, labels, weights)
    out = _reduce(node, loss, w)
    return (out, log_prob) if node.output_used(1) else out


OPS = {
    "NegativeLogLikelihoodLoss": _negative_log_likelihood,
    "SoftmaxCrossEntropyLoss": _softmax_cross_entropy,
}
