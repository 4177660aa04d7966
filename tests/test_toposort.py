"""toposort: iterative, linear, stable, subgraph-aware; cycles reported with their nodes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.verbs.toposort import sorted_nodes
from tests.conftest import run_ort


def is_sorted(graph: onnx.GraphProto, outer: set[str] = frozenset()) -> bool:
    known = set(outer) | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH and not is_sorted(attr.g, known):
                return False
        if any(name and name not in known for name in node.input):
            return False
        known.update(node.output)
    return True


def reversed_chain(n: int, with_if: bool = True) -> onnx.ModelProto:
    """x -> Neg -> Neg ... (n nodes) -> If(then: reads the chain's middle value) -> y, stored reversed."""
    nodes = [helper.make_node("Neg", [f"t{i}"], [f"t{i + 1}"], name=f"neg{i}") for i in range(n)]
    outputs = [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [2])]
    if with_if:
        mid = f"t{n // 2}"
        then = helper.make_graph(
            [helper.make_node("Add", [mid, f"t{n}"], ["a"])],
            "then",
            [],
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
        )
        other = helper.make_graph(
            [helper.make_node("Identity", [mid], ["b"])],
            "else",
            [],
            [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
        )
        nodes.append(helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other))
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]))
    inputs = [
        helper.make_tensor_value_info("t0", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("c", TensorProto.BOOL, []),
    ]
    graph = helper.make_graph(nodes[::-1], "chain", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_reversed_chain_with_outer_scope_reads_is_sorted_and_runs():
    model = gs.load(reversed_chain(1000).SerializeToString()).toposort()
    assert is_sorted(model.proto.graph)
    x = np.array([1.0, -2.0], dtype=np.float32)
    t_end, y = run_ort(model.proto, {"t0": x, "c": np.array(True)})
    np.testing.assert_array_equal(t_end, x)  # 1000 negations
    np.testing.assert_array_equal(y, x + x)


def test_no_recursion_limit_at_100k_nodes():
    """onnx-graphsurgeon hits RecursionError at ~1,800 reversed nodes; this must not (timing lives in bench/)."""
    model = gs.load(reversed_chain(100_000).SerializeToString()).toposort()
    assert is_sorted(model.proto.graph)
    assert model.proto.graph.node[-1].op_type == "If"


def test_valid_order_is_kept_exactly():
    model = reversed_chain(50)
    model.graph.node.sort(key=lambda n: int(n.name[3:]) if n.name.startswith("neg") else 10**9)
    data = model.SerializeToString()
    editor = gs.load(data).toposort()
    assert editor.proto.SerializeToString() == data
    assert any("nothing moved" in note for note in editor.notes)


def test_stable_for_independent_nodes():
    """Only what must move moves: independent nodes keep their relative order."""
    nodes = [
        helper.make_node("Relu", ["a"], ["b"], name="uses_a"),
        helper.make_node("Relu", ["x"], ["p"], name="free1"),
        helper.make_node("Relu", ["x"], ["a"], name="makes_a"),
        helper.make_node("Relu", ["x"], ["q"], name="free2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("b", "p", "q")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    sorted_model = gs.load(model).toposort().proto
    assert [n.name for n in sorted_model.graph.node] == ["makes_a", "uses_a", "free1", "free2"]


def test_cycle_is_reported_with_its_nodes():
    nodes = [
        helper.make_node("Relu", ["c"], ["a"], name="A"),
        helper.make_node("Relu", ["a"], ["b"], name="B"),
        helper.make_node("Add", ["b", "x"], ["c"], name="C"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(gs.GraphStructureError, match=r"cycle.*A \(Relu\) -> C \(Add\) -> B \(Relu\) -> A"):
        gs.load(model).toposort()


def test_function_bodies_are_sorted():
    body = [helper.make_node("Neg", ["t"], ["o"]), helper.make_node("Relu", ["i"], ["t"])]
    function = helper.make_function("local", "F", ["i"], ["o"], body, [helper.make_opsetid("", 17)])
    graph = helper.make_graph(
        [helper.make_node("F", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph,
        functions=[function],
        ir_version=8,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
    )
    editor = gs.load(model).toposort()
    assert [n.op_type for n in editor.proto.functions[0].node] == ["Relu", "Neg"]
    assert [n.op_type for n in sorted_nodes(editor.index.functions[("local", "F", "")])] == ["Relu", "Neg"]
    assert run_ort(editor.proto, {"x": np.array([-1.0], dtype=np.float32)})[0][0] == 0.0
