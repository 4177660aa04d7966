"""cleanup: what nothing uses goes — at every depth — and nothing that is used does."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper

import graphsurgeon as gs
from tests.conftest import run_ort

F = TensorProto.FLOAT


def vi(name: str, shape=(2,)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F, list(shape))


def model_with_dead_code() -> onnx.ModelProto:
    then = helper.make_graph(
        [
            helper.make_node("Add", ["x", "w_outer"], ["t"]),  # reads two outer-scope values
            helper.make_node("Neg", ["x"], ["dead_inner"]),
        ],  # dead inside a live subgraph
        "then",
        [],
        [vi("t")],
        [helper.make_tensor("dead_inner_init", F, [1], [0.0])],
    )
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e")])
    nodes = [
        helper.make_node("Relu", ["w_outer_src"], ["w_outer"], name="outer_producer"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other),
        helper.make_node("Mul", ["x", "unused_w"], ["dead1"], name="dead1"),
        helper.make_node("Twice", ["dead1"], ["dead2"], name="dead2", domain="local"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [vi("x"), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [vi("y")],
        [helper.make_tensor("w_outer_src", F, [2], [1.0, -1.0]), helper.make_tensor("unused_w", F, [2], [3.0, 3.0])],
        value_info=[vi("w_outer"), vi("dead1"), vi("dead2")],
    )
    twice = helper.make_function(
        "local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], [helper.make_opsetid("", 17)]
    )
    return helper.make_model(
        graph,
        functions=[twice],
        ir_version=8,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )


def test_removes_dead_code_at_every_depth_and_keeps_outer_scope_reads():
    original = model_with_dead_code()
    model = gs.load(original.SerializeToString()).cleanup()
    proto = model.proto
    assert [n.name for n in proto.graph.node] == ["outer_producer", "if"]
    assert [t.name for t in proto.graph.initializer] == ["w_outer_src"]
    assert [v.name for v in proto.graph.value_info] == ["w_outer"]
    assert not proto.functions
    assert [o.domain for o in proto.opset_import] == [""]
    then = next(a.g for a in proto.graph.node[1].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["Add"] and not then.initializer
    removed = Counter(c.kind for c in model.changes if c.action == "removed")
    assert removed == {"node": 3, "initializer": 2, "value_info": 2, "function": 1, "opset import": 1}
    assert all(c.verb == "cleanup" for c in model.changes)
    x = np.array([1.0, 2.0], dtype=np.float32)
    for c in (True, False):
        want = run_ort(original, {"x": x, "c": np.array(c)})
        np.testing.assert_array_equal(run_ort(proto, {"x": x, "c": np.array(c)})[0], want[0])


def test_clean_model_is_left_byte_identical():
    model = model_with_dead_code()
    first = gs.load(model).cleanup().proto.SerializeToString()
    again = gs.load(first).cleanup()
    assert again.proto.SerializeToString() == first
    assert not list(again.changes)
    assert any("nothing unused" in note for note in again.notes)


def test_graph_inputs_are_never_removed():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vi("x"), vi("unused_input")], [vi("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    proto = gs.load(model).cleanup().proto
    assert [i.name for i in proto.graph.input] == ["x", "unused_input"]


def test_functions_used_only_by_functions_stay():
    inner = helper.make_function(
        "local", "Inner", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])], [helper.make_opsetid("", 17)]
    )
    outer = helper.make_function(
        "local",
        "Outer",
        ["a"],
        ["b"],
        [helper.make_node("Inner", ["a"], ["b"], domain="local")],
        [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    graph = helper.make_graph([helper.make_node("Outer", ["x"], ["y"], domain="local")], "g", [vi("x")], [vi("y")])
    model = helper.make_model(
        graph,
        functions=[inner, outer],
        ir_version=8,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    proto = gs.load(model).cleanup().proto
    assert [f.name for f in proto.functions] == ["Inner", "Outer"]
    assert run_ort(proto, {"x": np.array([1.0, 2.0], dtype=np.float32)})[0].tolist() == [-1.0, -2.0]
