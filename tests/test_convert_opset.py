"""convert-opset: onnx's node conformance cases still pass after conversion to the latest opset; a model whose
ops changed goes through onnx's converter on a weight-free copy; metadata, names, doc strings and weights stay."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import run_ort
from tests.fold_conformance import passing_cases, run_case

LATEST = onnx.defs.onnx_opset_version()
KNOWN_ONNXRUNTIME_GAPS = ("dynamicquantizelinear", "if_opt", "loop16_seq_none", "scan_sum", "swish")


def test_conformance_cases_still_pass_at_the_latest_opset(conformance_cases):
    failures = []
    passing = passing_cases(conformance_cases)
    for name, data, inputs, expected in passing[::4]:
        try:
            converted = gs.load(data).convert_opset(opset=LATEST).proto
        except RewriteError as e:
            failures.append(f"{name}: refused: {e}")
            continue
        problem = run_case(converted, inputs, expected)
        if problem and not any(gap in name for gap in KNOWN_ONNXRUNTIME_GAPS):
            failures.append(f"{name}: {problem}")
    assert not failures, failures[:10]


def old_model(path, opset: int = 11) -> onnx.ModelProto:
    """ReduceSum with `axes` as an attribute (an input from opset 13) and Squeeze likewise: needs real adapters."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul", doc_string="the product"),
        helper.make_node("ReduceSum", ["m"], ["r"], name="reduce", axes=[1], keepdims=1),
        helper.make_node("Squeeze", ["r"], ["y"], name="squeeze", axes=[1]),
    ]
    graph = helper.make_graph(
        nodes,
        "old",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], doc_string="old model")
    model.ir_version = 6
    helper.set_model_props(model, {"k": "v"})
    onnx.save(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.data", size_threshold=0
    )
    return model


def test_changed_ops_go_through_the_converter_and_weights_stay_on_disk(tmp_path):
    old_model(tmp_path / "old.onnx")
    before = (tmp_path / "w.data").read_bytes()
    out = tmp_path / "new" / "new.onnx"
    assert main(["convert-opset", str(tmp_path / "old.onnx"), "--opset", "18", "-o", str(out), "--verify"]) == 0
    new = onnx.load(str(out), load_external_data=False)
    assert new.opset_import[0].version == 18 and new.ir_version >= 8
    assert new.doc_string == "old model" and new.metadata_props[0].key == "k"
    reduce = next(n for n in new.graph.node if n.op_type == "ReduceSum")
    assert reduce.name == "reduce" and len(reduce.input) == 2  # axes became an input
    assert next(n for n in new.graph.node if n.op_type == "MatMul").doc_string == "the product"
    assert new.graph.initializer[0].data_location == TensorProto.EXTERNAL
    assert (tmp_path / "w.data").read_bytes() == before
    x = {"x": np.ones((3, 4), np.float32)}
    np.testing.assert_allclose(run_ort(out, x)[0], run_ort(tmp_path / "old.onnx", x)[0], rtol=1e-6)


def test_same_schemas_only_change_the_import():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", 1, [2])],
        [helper.make_tensor_value_info("y", 1, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    converted = gs.load(model.SerializeToString()).convert_opset(opset=LATEST)
    assert converted.notes == ["no op changed meaning between the two opsets: only the opset import changed"]
    assert list(converted.proto.graph.node) == list(model.graph.node)
    converted = gs.load(model.SerializeToString()).convert_opset(opset=17, ir_version=9)
    assert converted.proto.ir_version == 9


def test_refusals(tmp_path, capsys):
    old_model(tmp_path / "old.onnx")
    with pytest.raises(RewriteError, match="not an ai.onnx opset"):
        gs.load(tmp_path / "old.onnx").convert_opset(opset=LATEST + 1)
    with pytest.raises(RewriteError, match="needs IR version"):
        gs.load(tmp_path / "old.onnx").convert_opset(opset=18, ir_version=3)
    layer_norm = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln")],
        "g",
        [helper.make_tensor_value_info("x", 1, [2, 3]), helper.make_tensor_value_info("s", 1, [3])],
        [helper.make_tensor_value_info("y", 1, [2, 3])],
    )
    model = helper.make_model(layer_norm, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "ln.onnx"))
    out = tmp_path / "o.onnx"
    assert main(["convert-opset", str(tmp_path / "ln.onnx"), "--opset", "11", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LayerNormalization" in err[0] and not out.exists()
