"""promote-input: a node's constant operand becomes a graph input, checked numerically with onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from tests.conftest import outputs_match, run_ort

X = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)


def resize_model(source: str = "initializer", factor: float = 3.0, opset: int = 13) -> onnx.ModelProto:
    """x -> Resize(scales) -> Relu -> y, with the factor baked in the way exporters bake it."""
    scales = [1.0, 1.0, factor, factor]
    nodes, initializers = [], []
    if source == "initializer":
        initializers.append(helper.make_tensor("baked", TensorProto.FLOAT, [4], scales))
    elif source == "constant":
        nodes.append(
            helper.make_node(
                "Constant", [], ["baked"], name="const", value=helper.make_tensor("v", TensorProto.FLOAT, [4], scales)
            )
        )
    elif source == "constant_floats":
        nodes.append(helper.make_node("Constant", [], ["baked"], name="const", value_floats=scales))
    nodes += [
        helper.make_node("Resize", ["x", "", "baked"], ["up"], name="resize", mode="linear"),
        helper.make_node("Relu", ["up"], ["y"], name="relu"),
    ]
    out_hw = [int(4 * factor), int(5 * factor)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, *out_hw])],
        initializers,
        value_info=[helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 2, *out_hw])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def feeds(factor: float) -> dict[str, np.ndarray]:
    return {"x": X, "scales": np.array([1, 1, factor, factor], dtype=np.float32)}


@pytest.mark.parametrize("source", ["initializer", "constant", "constant_floats"])
def test_promoted_model_runs_at_any_factor(source: str):
    model = gs.load(resize_model(source).SerializeToString()).promote_input(node="Resize", attr="scales")
    proto = model.proto
    assert [i.name for i in proto.graph.input] == ["x", "scales"]
    assert proto.graph.node[-2].input[2] == "scales"
    assert not proto.graph.initializer and all(n.op_type != "Constant" for n in proto.graph.node)
    onnx.checker.check_model(proto, full_check=True)
    for factor in (2.0, 3.0, 4.0, 2.5):
        want = run_ort(resize_model("initializer", factor), {"x": X})
        got = run_ort(proto, feeds(factor))
        assert got[0].shape == (1, 2, int(4 * factor), int(5 * factor))
        assert outputs_match(got, want, rtol=0, atol=1e-6)


def test_downstream_static_shapes_become_symbolic():
    proto = gs.load(resize_model().SerializeToString()).promote_input(node="Resize", attr="scales").proto
    for vi in (proto.graph.output[0], proto.graph.value_info[0]):
        dims = vi.type.tensor_type.shape.dim
        assert len(dims) == 4
        assert all(d.dim_param and not d.HasField("dim_value") for d in dims[2:]), vi


def test_keep_default_runs_without_feeding_the_input():
    proto = (
        gs.load(resize_model().SerializeToString()).promote_input(node="resize", attr="scales", keep_default=True).proto
    )
    assert [t.name for t in proto.graph.initializer] == ["scales"]
    assert outputs_match(run_ort(proto, {"x": X}), run_ort(resize_model(), {"x": X}))
    assert run_ort(proto, feeds(2.0))[0].shape == (1, 2, 8, 10)


def test_name_option_and_collisions():
    model = resize_model()
    model.graph.node.append(helper.make_node("Identity", ["x"], ["scales"], name="taken"))
    model.graph.output.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, None))
    proto = gs.load(model.SerializeToString()).promote_input(node="Resize", attr="scales").proto
    assert proto.graph.input[-1].name == "scales_1"
    proto = gs.load(resize_model().SerializeToString()).promote_input(node="Resize", attr="scales", name="factor").proto
    assert proto.graph.input[-1].name == "factor"
    with pytest.raises(gs.RewriteError, match="'up' is already used"):
        gs.load(resize_model()).promote_input(node="Resize", attr="scales", name="up")


def test_a_constant_that_dies_frees_its_name():
    """The exporter's constant is already called `scales`: the input takes that name, not `scales_1`."""
    model = resize_model()
    model.graph.initializer[0].name = "scales"
    model.graph.node[0].input[2] = "scales"
    proto = gs.load(model).promote_input(node="Resize", attr="scales").proto
    assert [i.name for i in proto.graph.input] == ["x", "scales"] and not proto.graph.initializer
    assert run_ort(proto, feeds(2.0))[0].shape == (1, 2, 8, 10)


def two_resizes(shared: bool) -> onnx.ModelProto:
    model = resize_model()
    graph = model.graph
    if not shared:
        graph.initializer.append(helper.make_tensor("baked2", TensorProto.FLOAT, [4], [1, 1, 2, 2]))
    graph.node.append(
        helper.make_node("Resize", ["x", "", "baked" if shared else "baked2"], ["up2"], name="resize2", mode="nearest")
    )
    graph.output.append(helper.make_tensor_value_info("up2", TensorProto.FLOAT, None))
    return model


def test_several_matches_need_all():
    with pytest.raises(gs.SelectorError, match="matches 2 nodes.*resize.*resize2.*`all=True`"):
        gs.load(two_resizes(True).SerializeToString()).promote_input(node="Resize", attr="scales")


def test_all_with_a_shared_constant_makes_one_input():
    proto = gs.load(two_resizes(True).SerializeToString()).promote_input(node="Resize", attr="scales", all=True).proto
    assert [i.name for i in proto.graph.input] == ["x", "scales"]
    got = run_ort(proto, feeds(2.0))
    assert got[0].shape == got[1].shape == (1, 2, 8, 10)


def test_all_with_distinct_constants_makes_one_input_each():
    proto = gs.load(two_resizes(False).SerializeToString()).promote_input(node="Resiz*", attr="scales", all=True).proto
    assert [i.name for i in proto.graph.input] == ["x", "scales", "scales_1"]
    got = run_ort(proto, {"x": X, "scales": feeds(2.0)["scales"], "scales_1": feeds(4.0)["scales"]})
    assert got[0].shape == (1, 2, 8, 10) and got[1].shape == (1, 2, 16, 20)


def test_constant_shared_with_an_unmatched_node_stays_for_it():
    model = resize_model()
    model.graph.node.append(helper.make_node("Mul", ["baked", "baked"], ["sq"], name="square"))
    model.graph.output.append(helper.make_tensor_value_info("sq", TensorProto.FLOAT, [4]))
    proto = gs.load(model.SerializeToString()).promote_input(node="resize", attr="scales").proto
    assert [t.name for t in proto.graph.initializer] == ["baked"]
    got = run_ort(proto, feeds(2.0))
    np.testing.assert_array_equal(got[1], np.array([1, 1, 9, 9], dtype=np.float32))


def test_operand_read_inside_an_if_body():
    """The Resize sits in an If branch and reads the main graph's constant through the outer scope."""
    branch = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "baked"], ["b_out"], name="inner_resize", mode="nearest")],
        "then",
        [],
        [helper.make_tensor_value_info("b_out", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch, else_branch=other)],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("baked", TensorProto.FLOAT, [4], [1, 1, 3, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    proto = gs.load(model.SerializeToString()).promote_input(node="inner_resize", attr="scales").proto
    assert not proto.graph.initializer  # the outer constant died with its only (inner) reader
    got = run_ort(proto, {**feeds(2.0), "cond": np.array(True)})
    assert got[0].shape == (1, 2, 8, 10)


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "message"),
    [
        (resize_model(), {"node": "Conv", "attr": "scales"}, gs.SelectorError, "matches no node.*Relu, Resize"),
        (resize_model(), {"node": "Resize", "attr": "scale"}, gs.RewriteError, "no operand named 'scale'.*X, roi"),
        (resize_model(), {"node": "Resize", "attr": "sizes"}, gs.RewriteError, "does not set its operand 'sizes'"),
        (resize_model(), {"node": "Relu", "attr": "X"}, gs.RewriteError, "'up' is computed by Resize"),
        (resize_model(), {"node": "Resize", "attr": "X"}, gs.RewriteError, "'x' is already a graph input"),
    ],
)
def test_refusals(model, kwargs, error, message):
    data = model.SerializeToString()
    editor = gs.load(data)
    with pytest.raises(error, match=message):
        editor.promote_input(**kwargs)


def test_attribute_that_became_an_input_later_is_refused_with_the_opset():
    node = helper.make_node("Upsample", ["x"], ["y"], name="up", scales=[1.0, 1.0, 2.0, 2.0])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=3)
    with pytest.raises(gs.RewriteError, match="attribute at opset 7; it became an input in opset 9"):
        gs.load(model.SerializeToString()).promote_input(node="Upsample", attr="scales")


def test_cli_headline_command_writes_next_to_input_and_leaves_input_alone(tmp_path: Path):
    source = tmp_path / "srcnn.onnx"
    onnx.save(resize_model(), source)
    before = source.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "graphsurgeon", "promote-input", "srcnn.onnx", "--node", "Resize", "--attr", "scales"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("wrote srcnn.promote-input.onnx")
    assert source.read_bytes() == before
    patched = onnx.load(tmp_path / "srcnn.promote-input.onnx")
    assert patched.graph.input[-1].name == "scales"
