"""set-attr: attributes typed by the op's schema; unknown ones refused; every scope; `all`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import outputs_match, run_ort
from tests.test_remove_node import X, diff_lines, run_cli_expecting_refusal, save


def leaky_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["a"], name="l1", alpha=0.1),
        helper.make_node("LeakyRelu", ["a"], ["b"], name="l2"),
        helper.make_node("Transpose", ["b"], ["y"], name="t", perm=[0, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.metadata_props.add(key="k", value="v")
    return model


def test_typed_by_the_schema(tmp_path: Path):
    path = save(leaky_model(), tmp_path / "m.onnx")
    model = gs.load(path).set_attr(node="l1", attr=["alpha=2"]).set_attr(node="t", attr="perm=1,0")
    proto = model.proto
    alpha = proto.graph.node[0].attribute[0]
    assert alpha.type == AttributeProto.FLOAT and alpha.f == 2.0  # "2" would be an INT without the schema
    assert proto.graph.node[2].attribute[0].ints == [1, 0]
    got = run_ort(proto, {"x": X})
    assert outputs_match(got, [np.where(np.where(X > 0, X, 2 * X) > 0, np.where(X > 0, X, 2 * X), 0.01 * 2 * X).T])
    out = model.save(tmp_path / "out.onnx")
    assert sorted(diff_lines(path, out)) == [("node", "changed", "l1"), ("node", "changed", "t")]


def test_added_when_absent_and_all():
    proto = gs.load(leaky_model().SerializeToString()).set_attr(node="LeakyRelu", attr=["alpha=0.5"], all=True).proto
    assert [n.attribute[0].f for n in proto.graph.node[:2]] == [0.5, 0.5]
    with pytest.raises(GraphSurgeonError, match="matches 2 nodes"):
        gs.load(leaky_model().SerializeToString()).set_attr(node="LeakyRelu", attr=["alpha=0.5"])


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("beta=1", r"LeakyRelu \(opset 17\) has no attribute 'beta'; its attributes: alpha"),
        ("alpha=fast", "takes a number"),
        ("alpha", "is not NAME=VALUE"),
    ],
)
def test_refusals(attr: str, message: str):
    with pytest.raises(GraphSurgeonError, match=message):
        gs.load(leaky_model().SerializeToString()).set_attr(node="l1", attr=[attr])


def test_custom_op_keeps_the_existing_type():
    model = leaky_model()
    model.graph.node.append(helper.make_node("Plugin", ["y"], ["z"], name="p", domain="trt", scale=1.0))
    model.opset_import.append(helper.make_opsetid("trt", 1))
    proto = gs.load(model.SerializeToString()).set_attr(node="p", attr=["scale=3", "tag=abc", "dims=1,2"]).proto
    types = {a.name: a.type for a in proto.graph.node[-1].attribute}
    assert types == {"scale": AttributeProto.FLOAT, "tag": AttributeProto.STRING, "dims": AttributeProto.INTS}


def test_tensor_value_from_npy_in_a_loop_body(tmp_path: Path):
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Constant", [], ["k"], name="inner_k", value=helper.make_tensor("v", 1, [3], [1, 1, 1])),
            helper.make_node("Add", ["acc", "k"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc", TensorProto.FLOAT, [3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [3]),
        ],
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)],
            "g",
            [helper.make_tensor_value_info("n", TensorProto.INT64, []), helper.make_tensor_value_info("x", 1, [3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    np.save(tmp_path / "k.npy", np.array([1, 2, 3], np.float32))
    proto = gs.load(model.SerializeToString()).set_attr(node="inner_k", attr=[f"value={tmp_path / 'k.npy'}"]).proto
    got = run_ort(proto, {"n": np.array(2), "x": np.zeros(3, np.float32)})
    assert outputs_match(got, [np.array([2, 4, 6], np.float32)])


def test_cli(tmp_path: Path, capsys):
    path = save(leaky_model(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    err = run_cli_expecting_refusal(["set-attr", str(path), "--node", "l1", "--attr", "beta=1"], out, capsys)
    assert "its attributes: alpha" in err
    assert main(["set-attr", str(path), "--node", "LeakyRelu", "--all", "--attr", "alpha=0.3", "-o", str(out)]) == 0
    assert [n.attribute[0].f for n in onnx.load(out).graph.node[:2]] == pytest.approx([0.3, 0.3])


def test_a_value_the_checker_refuses_is_refused_before_the_edit():
    """Fuzz finding: Concat axis=0 over [2,3] and [2,4] is typed right but wrote a model onnxruntime cannot
    load (its shape inference fails); onnx's checker with strict inference says so first."""
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1)],
            "g",
            [
                helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
                helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 4]),
            ],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 7])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    edited = gs.load(model.SerializeToString())
    with pytest.raises(gs.RewriteError, match=r"setting axis on .*'cat'.* makes a model onnx's checker refuses"):
        edited.set_attr(node="cat", attr=["axis=0"])
    assert edited.proto.SerializeToString() == model.SerializeToString() and not list(edited.changes)
    assert edited.set_attr(node="cat", attr=["axis=-1"]).proto.graph.node[0].attribute[0].i == -1
