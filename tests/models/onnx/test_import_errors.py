"""Malformed and unsupported ONNX input: each error names the node, its op type and its
inputs' shapes (or the file), and says what to do."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from aot.tools.cli import main
from mlframework.models import onnx as mlf_onnx


def _model(nodes, inputs, outputs, initializers=(), opset=17, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _matmul_model(weight_shape=(4, 3)):
    w = numpy_helper.from_array(np.ones(weight_shape, np.float32), "w")
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")
    return _model([node], [_vi("x", [2, 4])], [_vi("y", None)], [w])


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "cut.onnx"
    data = _matmul_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(mlf_onnx.OnnxImportError, match=r"cut.onnx is not a valid ONNX model "
                                                       r"\(truncated or corrupt"):
        mlf_onnx.load_model(path)


def test_initializer_shape_mismatch_names_node_and_shapes():
    with pytest.raises(mlf_onnx.OnnxImportError) as info:
        mlf_onnx.load_model(_matmul_model(weight_shape=(5, 3)))
    message = str(info.value)
    assert "ONNX node 'proj' (MatMul)" in message
    assert "x:float32[2,4]" in message.replace(" ", "")
    assert "w:float32[5,3]" in message.replace(" ", "")


def test_wrong_attribute_type_names_node_and_attribute():
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=2)  # INT, not FLOAT
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    model = _model([node], [_vi("x", [2, 4])], [_vi("y", None)], [w])
    with pytest.raises(mlf_onnx.OnnxImportError,
                       match=r"ONNX node 'fc' \(Gemm\).*attribute 'alpha' must be of type "
                             r"FLOAT, got INT"):
        mlf_onnx.load_model(model)


def test_unknown_domain_names_node_and_domain():
    node = helper.make_node("FusedThing", ["x"], ["y"], name="fused", domain="com.example")
    model = _model([node], [_vi("x", [2, 4])], [_vi("y", None)], domains=["com.example"])
    with pytest.raises(mlf_onnx.UnsupportedOperatorError,
                       match=r"ONNX node 'fused' \(com.example.FusedThing\): domain "
                             r"'com.example' is not supported.*aotc onnx-report"):
        mlf_onnx.load_model(model)


def test_unsupported_operator_names_op_and_node_and_suggests_the_report():
    node = helper.make_node("NonMaxSuppression", ["x", "s"], ["y"], name="nms")
    model = _model([node], [_vi("x", [1, 4, 4]), _vi("s", [1, 1, 4])],
                   [_vi("y", None, TensorProto.INT64)])
    with pytest.raises(mlf_onnx.UnsupportedOperatorError,
                       match=r"ONNX node 'nms' \(NonMaxSuppression\): operator "
                             r"'NonMaxSuppression' is not supported; run `aotc onnx-report"):
        mlf_onnx.load_model(model)


def test_dynamic_dimension_without_a_shape_says_how_to_give_it():
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    model = _model([node], [_vi("x", ["batch", 4])], [_vi("y", None)])
    with pytest.raises(mlf_onnx.OnnxImportError, match=r"input_shapes=\{'x': \(...\)\}"):
        mlf_onnx.load_model(model)
    assert mlf_onnx.load_model(model, {"x": (3, 4)}).output_specs[0].dims == (3, 4)


def test_opset_outside_the_range_is_refused():
    node = helper.make_node("Relu", ["x"], ["y"])
    model = _model([node], [_vi("x", [2])], [_vi("y", None)], opset=onnx.defs.onnx_opset_version()
                   + 1)
    with pytest.raises(mlf_onnx.UnsupportedOperatorError, match=r"reads opsets 13 to"):
        mlf_onnx.load_model(model)


def test_onnx_report_lists_operators_and_flags_the_unsupported(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"),
             helper.make_node("Relu", ["a"], ["b"], name="r2"),
             helper.make_node("Det", ["b"], ["y"], name="det")]
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, [_vi("x", [3, 3])], [_vi("y", None)]), path)
    assert main(["onnx-report", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    relu = next(line for line in out if line.startswith("Relu"))
    assert relu.split() == ["Relu", "2", "yes", "yes", "yes", "yes"]
    det = next(line for line in out if line.startswith("Det"))
    assert det.split()[:6] == ["Det", "1", "no", "no", "no", "no"] and "'det'" in det
    assert any("1 not supported: Det" in line for line in out)


def test_aotc_export_of_an_unsupported_model_fails_naming_the_node(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    node = helper.make_node("Det", ["x"], ["y"], name="det")
    onnx.save(_model([node], [_vi("x", [3, 3])], [_vi("y", None)]), path)
    assert main(["export", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "ONNX node 'det' (Det): operator 'Det' is not supported" in err
    assert "aotc onnx-report" in err
