"""inline: model-local functions inlined (all or selected), weights untouched, results unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import SelectorError
from tests.conftest import run_ort


def model_with_functions(path=None) -> onnx.ModelProto:
    """y = Relu(Scale(Shift(x))) with two local functions; Scale reads an attribute, Shift nests Scale."""
    scale = helper.make_function(
        "local",
        "Scale",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["k"], value_float=0.0, name="k"),
            helper.make_node("Mul", ["a", "a"], ["b"], name="square"),
        ],
        [helper.make_opsetid("", 17)],
    )
    shift = helper.make_function(
        "local",
        "Shift",
        ["a", "w"],
        ["b"],
        [helper.make_node("Add", ["a", "w"], ["s"]), helper.make_node("Scale", ["s"], ["b"], domain="local")],
        [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Shift", ["x", "w"], ["t"], domain="local", name="shift", doc_string="call"),
            helper.make_node("Relu", ["t"], ["y"], name="relu", doc_string="relu doc"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [w],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[scale, shift],
        doc_string="functions",
    )
    model.ir_version = 9
    helper.set_model_props(model, {"k": "v"})
    if path is not None:
        onnx.save(model, str(path))
    return model


X = {"x": np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)}


def test_inline_all(tmp_path):
    original = model_with_functions(tmp_path / "f.onnx")
    out = tmp_path / "out.onnx"
    assert main(["inline", str(tmp_path / "f.onnx"), "-o", str(out), "--verify"]) == 0
    inlined = onnx.load(str(out))
    onnx.checker.check_model(inlined, full_check=True)
    assert not inlined.functions
    assert {n.op_type for n in inlined.graph.node} == {"Add", "Constant", "Mul", "Relu"}
    assert inlined.doc_string == "functions" and inlined.metadata_props[0].key == "k"
    assert inlined.graph.initializer[0] == original.graph.initializer[0]
    relu = next(n for n in inlined.graph.node if n.op_type == "Relu")
    assert relu.name == "relu" and relu.doc_string == "relu doc"
    np.testing.assert_array_equal(run_ort(inlined, X)[0], run_ort(original, X)[0])


def test_inline_selected(tmp_path):
    original = model_with_functions()
    model = gs.load(original.SerializeToString()).inline(function="Shift")
    assert [f.name for f in model.proto.functions] == ["Scale"]
    assert "Scale" in {n.op_type for n in model.proto.graph.node}
    np.testing.assert_array_equal(run_ort(model.proto, X)[0], run_ort(original, X)[0])
    model = gs.load(original.SerializeToString()).inline(function=["local::*"])
    assert not model.proto.functions


def test_nothing_to_inline_and_bad_selectors(tmp_path, capsys):
    with pytest.raises(SelectorError, match="no model-local function matches 'Nope'"):
        gs.load(model_with_functions()).inline(function="Nope")
    plain = model_with_functions()
    del plain.functions[:]
    assert gs.load(plain).inline().notes == ["the model has no model-local functions"]
    model_with_functions(tmp_path / "f.onnx")
    assert main(["inline", str(tmp_path / "f.onnx"), "--function", "Nope", "-o", str(tmp_path / "o.onnx")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "o.onnx").exists()
