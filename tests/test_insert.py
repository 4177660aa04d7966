"""insert: a new node takes over tensors from their readers; typed attributes; cycles refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import corpus_models, external_data_dir, model_id, outputs_match, run_ort
from tests.test_remove_node import X, chain_model, diff_lines, run_cli_expecting_refusal, save
from tests.test_verify_json import runnable


def test_clip_between_a_tensor_and_its_readers(tmp_path: Path):
    path = save(chain_model(), tmp_path / "m.onnx")
    model = gs.load(path).insert(op="LeakyRelu", inputs=["a"], outputs=["a"], attr=["alpha=2"], name="leaky")
    proto = model.proto
    leaky = next(n for n in proto.graph.node if n.name == "leaky")
    assert list(leaky.input) == ["a_pre_LeakyRelu"] and list(leaky.output) == ["a"]
    assert leaky.attribute[0].type == onnx.AttributeProto.FLOAT and leaky.attribute[0].f == 2.0  # typed by schema
    onnx.checker.check_model(proto, full_check=True)
    want = run_ort(chain_model(), {"x": X})  # Relu output >= 0: LeakyRelu is a no-op there
    assert outputs_match(run_ort(proto, {"x": X}), want)
    out = model.save(tmp_path / "out.onnx")
    assert sorted(diff_lines(path, out)) == [("node", "added", "leaky"), ("node", "changed", "relu")]


def test_graph_output_is_taken_over_and_keeps_its_name():
    model = chain_model()
    edited = gs.load(model.SerializeToString()).insert(op="Neg", inputs=["y"], outputs=["y"], attr=[]).proto
    assert [o.name for o in edited.graph.output] == ["y"] and edited.graph.node[-1].op_type == "Neg"
    assert outputs_match(run_ort(edited, {"x": X}), [-run_ort(model, {"x": X})[0]])


def test_after_a_graph_input_the_interface_stays():
    model = chain_model()
    edited = gs.load(model.SerializeToString()).insert(op="Abs", inputs=["x"], outputs=["x"]).proto
    assert [i.name for i in edited.graph.input] == ["x"]
    assert edited.graph.node[0].op_type == "Abs" and edited.graph.node[1].input[0] == edited.graph.node[0].output[0]
    assert outputs_match(run_ort(edited, {"x": -X}), run_ort(model, {"x": X}))


def test_two_inputs_and_a_custom_domain():
    model = chain_model()
    edited = gs.load(model.SerializeToString()).insert(
        op="MyPlugin", domain="trt", inputs=["a", "x"], outputs=["b"], attr=["k=3", "scales=1.5,2", "mode=fast"]
    )
    node = next(n for n in edited.proto.graph.node if n.op_type == "MyPlugin")
    types = {a.name: a.type for a in node.attribute}
    assert types == {
        "k": onnx.AttributeProto.INT,
        "scales": onnx.AttributeProto.FLOATS,
        "mode": onnx.AttributeProto.STRING,
    }
    assert edited.opset_version("trt") == 1 and node.domain == "trt"


def test_tensor_attribute_from_npy(tmp_path: Path):
    np.save(tmp_path / "v.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    model = chain_model()
    edited = gs.load(model.SerializeToString()).insert(
        op="Constant", inputs=[], outputs=["b"], attr=[f"value={tmp_path / 'v.npy'}"]
    )
    proto = edited.proto
    assert outputs_match(run_ort(proto, {"x": X}), [np.arange(6).reshape(2, 3).astype(np.int32)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"op": "Relu", "inputs": ["y"], "outputs": ["a"]}, "cycle"),
        ({"op": "Relu", "inputs": ["nope"], "outputs": ["a"]}, "not a tensor of the main graph"),
        ({"op": "NoSuchOp", "inputs": ["a"], "outputs": ["a"]}, "no ONNX op 'NoSuchOp'"),
        ({"op": "Relu", "inputs": ["a", "x"], "outputs": ["a"]}, "takes 1 to 1 inputs"),
        ({"op": "LeakyRelu", "inputs": ["a"], "outputs": ["a"], "attr": ["beta=1"]}, "its attributes: alpha"),
        ({"op": "LeakyRelu", "inputs": ["a"], "outputs": ["a"], "attr": ["alpha=x"]}, "takes a number"),
        ({"op": "Cast", "inputs": ["a"], "outputs": ["a"]}, "needs the attribute"),
        ({"op": "Relu", "inputs": ["a"], "outputs": ["a"], "name": "relu"}, "already exists"),
        # fuzz findings: types the op or the readers do not accept made models onnxruntime refuses
        ({"op": "Not", "inputs": ["a"], "outputs": ["a"]}, r"Not \(opset 17\) cannot read 'a' \(tensor\(float\)\)"),
        ({"op": "Identity", "inputs": ["x"], "outputs": ["y"]}, r"output 0 would be tensor\(float\), but the readers"),
    ],
)
def test_refusals(options: dict, message: str):
    with pytest.raises(GraphSurgeonError, match=message):
        gs.load(chain_model().SerializeToString()).insert(**options)


def test_subgraph_tensor_refused():
    then_graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=then_graph)],
            "g",
            [
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(GraphSurgeonError, match="is defined in subgraph"):
        gs.load(model.SerializeToString()).insert(op="Relu", inputs=["t"], outputs=["t"])


def test_input_produced_after_the_first_reader_is_sorted():
    """The new node reads a tensor produced late: the graph is re-sorted, not left unrunnable."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r"),
        helper.make_node("Neg", ["a"], ["b"], name="n"),
        helper.make_node("Abs", ["x"], ["late"], name="late"),
        helper.make_node("Add", ["b", "late"], ["y"], name="add"),
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    edited = gs.load(model.SerializeToString()).insert(op="Mul", inputs=["a", "late"], outputs=["a"]).proto
    got = run_ort(edited, {"x": X})
    relu = np.maximum(X, 0)
    assert outputs_match(got, [-(relu * np.abs(X)) + np.abs(X)])


def test_cli_bad_input_one_line(tmp_path: Path, capsys):
    path = save(chain_model(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    args = ["insert", str(path), "--op", "Relu", "--inputs", "y", "--outputs", "a"]
    assert "cycle" in run_cli_expecting_refusal(args, out, capsys)
    args = ["insert", str(path), "--op", "LeakyRelu", "--inputs", "a", "--outputs", "a", "--attr", "nope=1"]
    assert "has no attribute 'nope'" in run_cli_expecting_refusal(args, out, capsys)
    ok = ["insert", str(path), "--op", "Identity", "--inputs", "a", "--outputs", "a", "-o", str(out), "--verify"]
    assert main(ok) == 0


def _first_output(path: Path) -> str | None:
    model = onnx.load(str(path), load_external_data=False)
    return next((o for n in model.graph.node for o in n.output if o), None)


@pytest.mark.parametrize("path", corpus_models()[:90], ids=model_id)
def test_corpus_identity_insert_keeps_the_meaning_and_the_rest(path: Path, tmp_path: Path, capsys):
    """An Identity inserted after the first node's output: meaning and everything else unchanged."""
    tensor = _first_output(path)
    if tensor is None or not runnable(path):
        pytest.skip("no node output, or onnxruntime cannot run the original")
    from tests.test_remove_node import verified

    document = verified("insert", path, ["--op", "Identity", "--inputs", tensor, "--outputs", tensor], tmp_path, capsys)
    assert any(c["action"] == "added" for c in document["changes"])
    sections = {(s, a) for s, a, _ in diff_lines(path, tmp_path / "out.onnx")}
    assert sections <= {("node", "added"), ("node", "changed"), ("node", "removed")}, sections
    assert external_data_dir(path)


def test_sequence_input_refused_where_the_op_takes_tensors():
    """Fuzz finding: Identity-13 (tensors only) was inserted on a sequence; onnxruntime refused the model."""
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("SequenceConstruct", ["x"], ["s"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [seq],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    with pytest.raises(GraphSurgeonError, match=r"cannot read 's' \(seq\(tensor\(float\)\)\) as `input`"):
        gs.load(model.SerializeToString()).insert(op="Identity", inputs=["s"], outputs=["s"])


def test_an_undefined_element_type_is_not_judged():
    """Fuzz finding: an input typed with element type 99 (no onnx name) made the type check crash."""
    model = chain_model()
    model.graph.output[0].type.tensor_type.elem_type = 99
    edited = gs.load(model.SerializeToString()).insert(op="Neg", inputs=["c"], outputs=["y"])
    assert [n.op_type for n in edited.proto.graph.node][-1] in ("Neg", "Cast")


def test_the_taken_over_tensor_is_described_by_the_new_node(tmp_path):
    # its old value_info goes with the renamed original; the new value gets one from the op's own inference
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
        value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "m.onnx")
    result = gs.load(tmp_path / "m.onnx")
    result.insert(op="Transpose", inputs=["a"], outputs=["a"], attr=["perm=1,0"])
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in result.proto.graph.value_info}
    assert shapes["a"] == [3, 2] and shapes[next(n for n in shapes if n.startswith("a_pre"))] == [2, 3]
