"""The editing API: every edit keeps the indexes equal to a fresh build, records a Change, and the result runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.core.index import ModelIndex
from tests.conftest import CORPUS, REPO, external_data_dir, run_ort


def assert_index_fresh(model: gs.Model) -> None:
    assert model.index.snapshot() == ModelIndex(model.proto).snapshot()


def small_model() -> onnx.ModelProto:
    """x -> Relu -> Identity -> Mul(2) -> y, plus an If whose branch reads `r` from the outer scope."""
    then = helper.make_graph(
        [helper.make_node("Neg", ["r"], ["t"], name="neg")], "then", [], [helper.make_tensor_value_info("t", 1, [2])]
    )
    other = helper.make_graph(
        [helper.make_node("Abs", ["r"], ["e"], name="abs")], "else", [], [helper.make_tensor_value_info("e", 1, [2])]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Identity", ["r"], ["i"], name="identity"),
            helper.make_node("Mul", ["i", "two"], ["y"], name="mul"),
            helper.make_node("If", ["c"], ["z"], name="if", then_branch=then, else_branch=other),
        ],
        "g",
        [helper.make_tensor_value_info("x", 1, [2]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", 1, [2]), helper.make_tensor_value_info("z", 1, [2])],
        [helper.make_tensor("two", 1, [], [2.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


FEEDS = {"x": np.array([-1.0, 3.0], dtype=np.float32), "c": np.array(True)}


def test_queries():
    model = gs.load(small_model())
    assert [n.name for n in model.find_nodes("Mul")] == ["mul"]
    assert [n.name for n in model.find_nodes("*e*")] == ["relu", "identity", "neg"]  # names or op types
    assert model.node("relu").op_type == "Relu"
    assert model.producer("i").name == "identity" and [n.name for n in model.consumers("r")] == ["identity", "if"]
    assert model.find_tensors("t*") == ["two"]
    assert model.graph_inputs == ["x", "c"] and model.graph_outputs == ["y", "z"]
    assert float(model.tensor_value("two")) == 2.0
    with pytest.raises(gs.RewriteError):
        model.tensor_value("nope")
    with pytest.raises(gs.SelectorError):
        model.node("Nope")


def test_edits_keep_the_index_record_changes_and_run():
    model = gs.load(small_model())
    model.bypass_node(model.node("identity"))
    assert_index_fresh(model)
    clip = model.add_node("Clip", ["y", "", ""], ["y_clipped"], name="clip", attributes=None)
    assert clip.name == "clip"
    model.add_initializer("hi", np.array(5.0, dtype=np.float32))
    model.set_node_input(clip, 2, "hi")
    model.add_graph_output("y_clipped", "float", [2])
    model.rename_tensor("r", "relu_out")  # also inside both If branches, which read it from outside
    model.rename_node(model.node("mul"), "double")
    model.set_tensor_value("two", np.array(3.0, dtype=np.float32))
    assert_index_fresh(model)
    got = dict(zip(["y", "z", "y_clipped"], run_ort(model.proto, FEEDS), strict=True))
    np.testing.assert_allclose(got["y"], [0.0, 9.0])
    np.testing.assert_allclose(got["y_clipped"], [0.0, 5.0])
    np.testing.assert_allclose(got["z"], [-0.0, -3.0])
    actions = [(c.action, c.kind) for c in model.changes]
    assert ("bypassed", "node") in actions and ("renamed", "tensor") in actions and ("added", "output") in actions
    assert all(c.verb == "edit" for c in model.changes)
    onnx.checker.check_model(model.proto, full_check=True)


def test_refusals_name_the_problem():
    model = gs.load(small_model())
    with pytest.raises(gs.RewriteError, match="still read by 'mul'"):
        model.delete_node(model.node("identity"))
    with pytest.raises(gs.RewriteError, match="already used"):
        model.rename_tensor("r", "i")
    with pytest.raises(gs.RewriteError, match="nothing defines"):
        model.add_node("Relu", ["ghost"], ["out"])
    with pytest.raises(gs.RewriteError, match="read by"):
        model.remove_graph_input("x")
    with pytest.raises(gs.RewriteError, match="no tensor"):
        model.add_graph_output("ghost")
    assert not list(model.changes)


def test_bypassing_the_producer_of_a_graph_output_keeps_the_output_name():
    model = gs.load(small_model())
    model.bypass_node(model.node("mul"))
    assert model.graph_outputs == ["y", "z"]
    assert_index_fresh(model)
    np.testing.assert_allclose(run_ort(model.proto, FEEDS)[0], [0.0, 3.0])


@pytest.mark.parametrize(
    "name", ["polygraphy/loop.onnx", "polygraphy/toy_subgraph.onnx", "onnx-graphsurgeon/nested_dup_names.onnx"]
)
@pytest.mark.parametrize("verb", ["cleanup", "toposort", "fold_constants", "simplify"])
def test_every_verb_leaves_a_valid_index(name: str, verb: str):
    path = CORPUS / name
    model = gs.load(path, external_data_dir=external_data_dir(path))
    assert model.index is not None  # built before the verb, so the verb's edits must keep it in step
    getattr(model, verb)()
    assert_index_fresh(model)


def test_repr_is_informative():
    text = repr(gs.load(small_model()))
    assert "6 nodes" in text and "opset 17" in text and "x: float[2]" in text and "y: float[2]" in text


def test_library_options_take_friendly_forms():
    path = CORPUS / "polygraphy" / "dynamic_identity.onnx"
    name = onnx.load(path).graph.input[0].name
    by_dict = gs.load(path).simplify(input_shape={name: [1, 2, 4, 4]})
    by_text = gs.load(path).simplify(input_shape=f"{name}:1,2,4,4")
    assert by_dict.proto.graph.input[0] == by_text.proto.graph.input[0]
    gs.load(CORPUS / "polygraphy" / "const_foldable.onnx").fold_constants(exclude="Add", size_limit="1MiB")
    with pytest.raises(gs.GraphSurgeonError, match="not a size"):
        gs.load(CORPUS / "polygraphy" / "const_foldable.onnx").fold_constants(size_limit="lots")
    with pytest.raises(TypeError if False else gs.GraphSurgeonError, match="no option 'nodes'"):
        gs.load(path).promote_input(nodes="x", attr="y")


def test_the_editing_example_runs(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "editing_api.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "outputs match" in done.stdout
