"""convert-constants: Constant nodes <-> initializers, per scope; verified over the corpus both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from tests.conftest import corpus_models, model_id, outputs_match, run_ort
from tests.test_remove_node import diff_lines, save, verified
from tests.test_verify_json import runnable


def model_with_constants() -> onnx.ModelProto:
    """A Constant and an initializer in the main graph, a Constant inside an If branch, one in a function."""
    branch = helper.make_graph(
        [
            helper.make_node("Constant", [], ["two"], name="inner", value=helper.make_tensor("v", 1, [1], [2.0])),
            helper.make_node("Mul", ["x", "two"], ["t"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    function = helper.make_function(
        "local",
        "AddOne",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["one"], value_float=1.0),
            helper.make_node("Add", ["a", "one"], ["b"]),
        ],
        [helper.make_opsetid("", 17)],
    )
    nodes = [
        helper.make_node("Constant", [], ["k"], name="k", value_ints=[1, 2]),
        helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
        helper.make_node("If", ["c"], ["u"], name="if", then_branch=branch, else_branch=branch),
        helper.make_node("AddOne", ["u"], ["v"], domain="local"),
        helper.make_node("Add", ["v", "kf"], ["w"]),
        helper.make_node("Mul", ["w", "init"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", 1, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [helper.make_tensor("init", TensorProto.FLOAT, [1], [3.0])],
    )
    return helper.make_model(
        graph,
        functions=[function],
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        ir_version=8,
    )


FEEDS = {"c": np.array(True), "x": np.array([1.0, 2.0], np.float32)}


def test_to_initializers_per_scope_and_back():
    model = model_with_constants()
    want = run_ort(model, FEEDS)
    edited = gs.load(model.SerializeToString()).convert_constants(to="initializers")
    proto = edited.proto
    assert {t.name for t in proto.graph.initializer} == {"init", "k"}
    branch = next(a.g for a in proto.graph.node[1].attribute if a.name == "then_branch")
    assert [t.name for t in branch.initializer] == ["two"] and [n.op_type for n in branch.node] == ["Mul"]
    assert [n.op_type for n in proto.functions[0].node] == ["Constant", "Add"]  # functions have no initializers
    assert any("function bodies" in n for n in edited.notes)
    assert outputs_match(run_ort(proto, FEEDS), want)
    back = gs.load(proto.SerializeToString()).convert_constants(to="nodes").proto
    assert not back.graph.initializer and sum(n.op_type == "Constant" for n in back.graph.node) == 2
    assert outputs_match(run_ort(back, FEEDS), want)
    onnx.checker.check_model(back, full_check=True)


def test_graph_input_defaults_stay():
    model = model_with_constants()
    model.graph.input.append(helper.make_tensor_value_info("init", TensorProto.FLOAT, [1]))
    edited = gs.load(model.SerializeToString()).convert_constants(to="nodes")
    assert [t.name for t in edited.proto.graph.initializer] == ["init"]


def test_lossless_elsewhere(tmp_path: Path):
    path = save(model_with_constants(), tmp_path / "m.onnx")
    out = gs.load(path).convert_constants(to="initializers").save(tmp_path / "out.onnx")
    changed = set(diff_lines(path, out))  # the If changes twice: both branches hold the Constant
    assert changed == {("initializer", "added", "k"), ("node", "changed", "if"), ("node", "removed", "k")}


def test_cli_bad_choice(tmp_path: Path, capsys):
    path = save(model_with_constants(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    assert main(["convert-constants", str(path), "--to", "weights", "-o", str(out)]) != 0
    assert "invalid choice" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("to", ["initializers", "nodes"])
@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_corpus_both_ways_keep_the_meaning(path: Path, to: str, tmp_path: Path, capsys):
    if not runnable(path):
        pytest.skip("onnxruntime cannot run the original as it is")
    verified("convert-constants", path, ["--to", to], tmp_path, capsys)
    sections = {(s, a) for s, a, _ in diff_lines(path, tmp_path / "out.onnx")}
    assert sections <= {
        ("node", "added"),
        ("node", "removed"),
        ("node", "changed"),
        ("initializer", "added"),
        ("initializer", "removed"),
    }
