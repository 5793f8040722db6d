"""hf.load's errors: unknown model types, missing, mis-shaped and wrongly typed tensors,
unsupported options, and broken folders, each naming what is wrong."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import safetensors.numpy

import hf_checkpoints as hc
from mlframework.models import hf

NAME = "transformer.h.0.attn.c_proj.weight"


@pytest.fixture
def gpt2_copy(hf_root, tmp_path):
    """A writable copy of the tiny GPT-2 checkpoint and its tensors."""
    src = hc.checkpoint(hf_root, "gpt2")
    for f in ("config.json", "model.safetensors"):
        shutil.copyfile(src / f, tmp_path / f)
    return tmp_path, safetensors.numpy.load_file(str(src / "model.safetensors"))


def _write(folder, tensors):
    safetensors.numpy.save_file(tensors, str(folder / "model.safetensors"))


def test_unknown_model_type_is_named_with_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(hf.UnsupportedModelError) as e:
        hf.load(tmp_path, backend="xla")
    message = str(e.value)
    assert "'t5'" in message
    for kind in ("bert", "gpt2", "llama", "mistral", "qwen2"):
        assert kind in message


def test_missing_tensor_names_it_and_its_shape(gpt2_copy):
    folder, tensors = gpt2_copy
    del tensors[NAME]
    _write(folder, tensors)
    with pytest.raises(hf.WeightsError, match=rf"lacks tensor '{NAME}' \(expected shape "
                                              r"\[32, 32\]\)"):
        hf.load(folder, backend="xla")


def test_misshaped_tensor_names_both_shapes(gpt2_copy):
    folder, tensors = gpt2_copy
    tensors[NAME] = np.zeros((32, 31), np.float32)
    _write(folder, tensors)
    with pytest.raises(hf.WeightsError, match=rf"'{NAME}' has shape \[32, 31\], expected "
                                              r"\[32, 32\]"):
        hf.load(folder, backend="xla")


@pytest.mark.parametrize("dtype,stored", [(np.float64, "F64"), (np.int32, "I32")])
def test_unsupported_dtype_is_refused_not_misread(gpt2_copy, dtype, stored):
    folder, tensors = gpt2_copy
    tensors[NAME] = tensors[NAME].astype(dtype)
    _write(folder, tensors)
    with pytest.raises(hf.WeightsError, match=rf"'{NAME}'.*stored as {stored}; supported: "
                                              "float32"):
        hf.load(folder, backend="xla")


def test_folder_without_weights_or_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.load(tmp_path, backend="xla")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(hf.WeightsError, match="neither model.safetensors nor "
                                              "model.safetensors.index.json"):
        hf.load(tmp_path, backend="xla")


def test_index_naming_a_missing_shard(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"wte.weight": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(hf.WeightsError, match="shard 'model-00001-of-00002.safetensors'"):
        hf.load(tmp_path, backend="xla")


@pytest.mark.parametrize("change,match", [
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}},
     "rope type 'llama3' is not supported; supported: default, linear"),
    ({"hidden_act": "quick_gelu"}, "hidden_act='quick_gelu' is not supported"),
    ({"pretraining_tp": 2}, "pretraining_tp=2"),
])
def test_unsupported_options_are_named(hf_root, tmp_path, change, match):
    src = hc.checkpoint(hf_root, "llama-gqa")
    shutil.copyfile(src / "model.safetensors", tmp_path / "model.safetensors")
    raw = json.loads((src / "config.json").read_text())
    raw.pop("rope_parameters", None)
    (tmp_path / "config.json").write_text(json.dumps({**raw, **change}))
    with pytest.raises(hf.UnsupportedModelError, match=match):
        hf.load(tmp_path, backend="xla")


@pytest.mark.parametrize("model_class,config_class,kw,prefix", [
    ("BertForMaskedLM", "BertConfig", hc.BERT, "bert."),
    ("GPT2Model", "GPT2Config", hc.GPT2, ""),
    ("LlamaModel", "LlamaConfig", {**hc.LLAMA, "tie_word_embeddings": True}, ""),
])
def test_base_models_are_found_under_any_prefix(tmp_path, model_class, config_class, kw,
                                                prefix):
    import torch
    import transformers
    torch.manual_seed(0)
    ref = getattr(transformers, model_class)(getattr(transformers, config_class)(**kw))
    ref.save_pretrained(tmp_path)
    model = hf.load(tmp_path, backend="c")  # loading compiles nothing
    assert model.config.prefix == prefix
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    for param in model.params:  # every variable holds its tensor, laid out as the layer wants
        value = state[param.tensor]
        value = value.T if param.transpose else value
        i, n = param.part
        value = value[..., i * value.shape[-1] // n:(i + 1) * value.shape[-1] // n]
        np.testing.assert_array_equal(
            model.ctx.at_root().get_variable(param.variable).numpy(), value)
