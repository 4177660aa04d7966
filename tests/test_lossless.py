"""Load then save with no edit gives back the same bytes, over every real model we have."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import graphsurgeon as gs
from graphsurgeon.core.external_data import external_ref, is_external
from graphsurgeon.core.walk import model_tensors
from tests.conftest import corpus_models, external_data_dir, model_id, outputs_match, run_ort

MODELS = corpus_models()


def test_corpus_is_there():
    assert len(MODELS) > 200, "the shared corpus or the onnx wheel's model files are missing"


@pytest.mark.parametrize("path", MODELS, ids=model_id)
def test_file_round_trip_is_byte_identical(path: Path, tmp_path: Path):
    model = gs.load(path, external_data_dir=external_data_dir(path))
    out = model.save(tmp_path / path.name)
    assert out.read_bytes() == path.read_bytes()
    for location in {external_ref(t).location for t in model_tensors(model.proto) if is_external(t)}:
        copied = tmp_path / location
        assert filecmp.cmp(copied, external_data_dir(path) / location, shallow=False)


def test_conformance_models_round_trip_byte_identical(conformance_cases, tmp_path: Path):
    out = tmp_path / "case.onnx"
    different = []
    for case in conformance_cases:
        data = case.model.SerializeToString()
        gs.load(data).save(out)
        if out.read_bytes() != data:
            different.append(case.name)
    assert not different
    assert len(conformance_cases) > 1000


def _rich_model() -> onnx.ModelProto:
    """A model using every field that tools tend to drop."""
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add", doc_string="adds w")
    dead = helper.make_node("Neg", ["x"], ["unused"], name="dead")
    plus_sparse = helper.make_node("Add", ["y", "sp"], ["y2"], name="plus_sparse")
    call = helper.make_node("Twice", ["y2"], ["z"], name="call", domain="local")
    graph = helper.make_graph(
        [node, dead, plus_sparse, call],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor("w", onnx.TensorProto.FLOAT, [2], [1.0, 2.0])],
        doc_string="graph doc",
        value_info=[helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sp", onnx.TensorProto.FLOAT, [1], [5.0]),
        helper.make_tensor("sp_idx", onnx.TensorProto.INT64, [1], [0]),
        [2],
    )
    graph.sparse_initializer.append(sparse)
    twice = helper.make_function(
        "local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=[twice],
        ir_version=10,
        producer_name="tests",
        producer_version="1",
        domain="org.example",
        model_version=7,
        doc_string="model doc",
    )
    helper.set_model_props(model, {"author": "tests", "license": "Apache-2.0"})
    training = model.training_info.add()
    training.algorithm.name = "algo"
    training.algorithm.node.append(helper.make_node("Identity", ["w"], ["w_new"]))
    training.algorithm.output.append(helper.make_tensor_value_info("w_new", onnx.TensorProto.FLOAT, [2]))
    binding = training.update_binding.add()
    binding.key, binding.value = "w", "w_new"
    return model


def test_edit_keeps_everything_else(tmp_path: Path):
    """toposort (a no-op here) and cleanup touch only what they must; every other field survives."""
    original = _rich_model()
    feeds = {"x": np.array([1.0, -1.0], dtype=np.float32)}
    model = gs.load(original.SerializeToString()).toposort()
    assert model.proto.SerializeToString() == original.SerializeToString()
    model.cleanup()
    saved = onnx.load(model.save(tmp_path / "m.onnx"))
    assert [n.name for n in saved.graph.node] == ["add", "plus_sparse", "call"]  # only the dead Neg went
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        assert getattr(saved, field) == getattr(original, field), field
    assert saved.metadata_props == original.metadata_props
    assert saved.functions == original.functions
    assert saved.training_info == original.training_info
    assert saved.graph.sparse_initializer == original.graph.sparse_initializer
    assert saved.graph.value_info == original.graph.value_info
    assert saved.graph.doc_string == "graph doc"
    assert saved.graph.node[0].doc_string == "adds w"
    assert [t.name for t in saved.graph.initializer] == ["w"]  # kept: the training graph updates it
    del original.training_info[:], saved.training_info[:]  # onnxruntime's inference build has no training
    assert outputs_match(run_ort(saved, feeds), run_ort(original, feeds))
