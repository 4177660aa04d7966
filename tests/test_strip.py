"""strip: doc strings, metadata, value_info, Dropout, training parts; meaning kept, verified over the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from tests.conftest import corpus_models, model_id, outputs_match, run_ort
from tests.test_remove_node import X, diff_lines, save, verified
from tests.test_verify_json import runnable

ALL = ["--doc-strings", "--metadata", "--node-metadata", "--value-info", "--dropout", "--training-ops"]


def annotated_model() -> onnx.ModelProto:
    """Doc strings and metadata at every level, a Dropout with a ratio constant, value_info, a Loop body."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Dropout", ["acc", "ratio_in"], ["acc_out"], name="inner_drop"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2, 3]),
        ],
        [helper.make_tensor("ratio_in", TensorProto.FLOAT, [], [0.5])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu", doc_string="relu doc"),
        helper.make_node("Dropout", ["a", "ratio"], ["b"], name="drop"),
        helper.make_node("Loop", ["n", "", "b"], ["y"], name="loop", body=body),
    ]
    for node in nodes:
        node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value="File model.py, line 1\n" * 20)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("n", 7, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("ratio", TensorProto.FLOAT, [], [0.3])],
        value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
        doc_string="graph doc",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10, doc_string="model doc")
    model.metadata_props.add(key="license", value="MIT")
    return model


FEEDS = {"x": X, "n": np.array(2)}


def test_default_strips_doc_strings_and_node_metadata_only(tmp_path: Path):
    path = save(annotated_model(), tmp_path / "m.onnx")
    model = gs.load(path).strip()
    proto = model.proto
    assert not proto.doc_string and not proto.graph.doc_string and not proto.graph.node[0].doc_string
    assert all(not n.metadata_props for n in proto.graph.node)
    assert proto.metadata_props[0].key == "license" and len(proto.graph.value_info) == 1
    assert [n.op_type for n in proto.graph.node] == ["Relu", "Dropout", "Loop"]
    out = model.save(tmp_path / "out.onnx")
    assert out.stat().st_size < path.stat().st_size / 2
    sections = {s for s, _, _ in diff_lines(path, out)}
    assert sections <= {"metadata", "node"}, sections


def test_everything_keeps_the_meaning():
    model = annotated_model()
    proto = (
        gs.load(model.SerializeToString())
        .strip(doc_strings=True, metadata=True, node_metadata=True, value_info=True, dropout=True, training_ops=True)
        .proto
    )
    assert [n.op_type for n in proto.graph.node] == ["Relu", "Loop"]
    assert not proto.graph.initializer and not proto.metadata_props and not proto.graph.value_info
    body = proto.graph.node[1].attribute[0].g
    assert [n.op_type for n in body.node] == ["Identity", "Identity"] or [n.op_type for n in body.node] == ["Identity"]
    assert not body.initializer
    assert outputs_match(run_ort(proto, FEEDS), run_ort(model, FEEDS))
    onnx.checker.check_model(proto, full_check=True)


def test_training_dropout_and_read_mask_stay():
    model = annotated_model()
    model.graph.node[1].input.append("train")
    model.graph.input.append(helper.make_tensor_value_info("train", TensorProto.BOOL, []))
    edited = gs.load(model.SerializeToString()).strip(dropout=True)
    assert "Dropout" in [n.op_type for n in edited.proto.graph.node]
    assert any("training mode" in n for n in edited.notes)


def test_training_info_removed():
    model = annotated_model()
    info = model.training_info.add()
    info.algorithm.CopyFrom(helper.make_graph([], "algo", [], []))
    proto = gs.load(model.SerializeToString()).strip(training_ops=True).proto
    assert not proto.training_info


def test_nothing_to_strip_says_so():
    model = helper.make_model(
        helper.make_graph(
            [], "g", [helper.make_tensor_value_info("x", 1, [1])], [helper.make_tensor_value_info("x", 1, [1])]
        )
    )
    edited = gs.load(model.SerializeToString()).strip()
    assert any("nothing to strip" in n for n in edited.notes)


def test_dynamo_export_stack_traces(tmp_path: Path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.b = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    path = tmp_path / "dyn.onnx"
    try:
        torch.onnx.export(Net().eval(), (torch.rand(2, 8),), str(path), dynamo=True)
    except Exception as e:  # exporter unavailable in this environment
        pytest.skip(f"dynamo export failed: {e}")
    traced = sum(len(n.metadata_props) for n in onnx.load(path).graph.node)
    if not traced:
        pytest.skip("this torch stores no node metadata")
    out = tmp_path / "out.onnx"
    assert main(["strip", str(path), "-o", str(out), "--verify"]) == 0
    assert sum(len(n.metadata_props) for n in onnx.load(out).graph.node) == 0
    assert out.stat().st_size < path.stat().st_size


@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_corpus_strip_everything_keeps_the_meaning(path: Path, tmp_path: Path, capsys):
    if not runnable(path):
        pytest.skip("onnxruntime cannot run the original as it is")
    verified("strip", path, ALL, tmp_path, capsys)
    sections = {(s, a) for s, a, _ in diff_lines(path, tmp_path / "out.onnx")}
    allowed = {("metadata", "changed"), ("metadata", "removed"), ("node", "changed"), ("node", "removed")}
    allowed |= {("initializer", "removed"), ("output", "changed"), ("input", "changed"), ("function", "changed")}
    assert sections <= allowed, sections
