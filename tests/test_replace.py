"""replace: a subgraph becomes one node; with a custom_ops op its function comes along and --verify holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import REPO, corpus_models, model_id, outputs_match, run_ort
from tests.test_remove_node import X, diff_lines, run_cli_expecting_refusal, save, verified
from tests.test_verify_json import runnable


def resize_model() -> onnx.ModelProto:
    """x -> Resize(cubic, torch's maths, scales initializer) -> Relu -> y: what dynamic_resize's body computes."""
    nodes = [
        helper.make_node(
            "Resize",
            ["x", "", "scales"],
            ["up"],
            name="resize",
            mode="cubic",
            coordinate_transformation_mode="half_pixel",
            cubic_coeff_a=-0.75,
            nearest_mode="floor",
        ),
        helper.make_node("Relu", ["up"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 10])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    model.metadata_props.add(key="k", value="v")
    return model


def chain() -> onnx.ModelProto:
    """x -> Relu(a) -> Neg(b) -> Mul(b, w) -> y, with c = Abs(a) a second output."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Neg", ["a"], ["b"], name="neg"),
        helper.make_node("Mul", ["b", "w"], ["y"], name="mul"),
        helper.make_node("Abs", ["a"], ["c"], name="abs"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("y", "c")],
        [helper.make_tensor("w", TensorProto.FLOAT, [1], [3.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


CUSTOM = [
    "--custom-op",
    "graphsurgeon::dynamic_resize",
    "--attr",
    "mode=cubic",
    "coordinate_transformation_mode=half_pixel",
]


def test_custom_op_brings_its_function_and_verifies(tmp_path: Path, capsys):
    path = save(resize_model(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    args = ["replace", str(path), "--inputs", "x", "scales", "--outputs", "up", *CUSTOM, "-o", str(out), "--verify"]
    assert main(args) == 0, capsys.readouterr().err
    assert "equal" in capsys.readouterr().out.lower()
    proto = onnx.load(out)
    node = next(n for n in proto.graph.node if n.domain == "graphsurgeon")
    assert node.op_type == "dynamic_resize" and list(node.input) == ["x", "scales"]
    assert [f.name for f in proto.functions] == ["dynamic_resize"]
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", 18), ("graphsurgeon", 1)}
    assert all(a.type == AttributeProto.STRING for a in node.attribute)
    sections = sorted(diff_lines(path, out))
    assert sections == [
        ("function", "added", "graphsurgeon::dynamic_resize"),
        ("node", "added", node.name),
        ("node", "removed", "resize"),
        ("opset", "added", "graphsurgeon"),
    ] or {s for s, _, _ in sections} <= {"function", "node", "opset"}, sections
    assert proto.metadata_props[0].key == "k"


def test_custom_op_missing_attribute_refused():
    with pytest.raises(GraphSurgeonError, match="needs the attribute"):
        gs.load(resize_model().SerializeToString()).replace(
            inputs=["x", "scales"], outputs=["up"], custom_op="graphsurgeon::dynamic_resize"
        )
    with pytest.raises(GraphSurgeonError, match="unknown custom op"):
        gs.load(resize_model().SerializeToString()).replace(inputs=["x"], outputs=["up"], custom_op="nope::nope")


def test_plugin_op_replaces_a_chain(tmp_path: Path):
    path = save(chain(), tmp_path / "m.onnx")
    model = gs.load(path).replace(
        inputs=["a"], outputs=["y"], op="NegScale", domain="trt", attr=["scale=3"], name="fused"
    )
    proto = model.proto
    assert [n.name for n in proto.graph.node] == ["relu", "abs", "fused"] or [n.name for n in proto.graph.node] == [
        "relu",
        "fused",
        "abs",
    ]
    assert not proto.graph.initializer  # w was read only by the replaced subgraph
    fused = next(n for n in proto.graph.node if n.name == "fused")
    assert fused.domain == "trt" and fused.attribute[0].type == AttributeProto.INT
    assert ("trt", 1) in {(o.domain, o.version) for o in proto.opset_import}


def test_standard_op_computes_the_same():
    model = chain()
    proto = gs.load(model.SerializeToString()).replace(inputs=["b", "w"], outputs=["y"], op="Mul").proto
    assert outputs_match(run_ort(proto, {"x": X}), run_ort(model, {"x": X}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"inputs": ["x"], "outputs": ["b"], "op": "Plugin", "domain": "t"}, r"'relu' inside the subgraph also feeds"),
        ({"inputs": ["b", "x"], "outputs": ["y"], "op": "Add"}, "'x' is not read by the subgraph"),
        ({"inputs": ["a"], "outputs": ["a"], "op": "Relu"}, "both `inputs` and `outputs`"),
        ({"inputs": ["b"], "outputs": ["c"], "op": "Relu"}, "depend on graph input 'x'"),
        ({"inputs": ["t"], "outputs": ["y"], "op": "Relu"}, "not a tensor of the main graph"),
        ({"inputs": ["b"], "outputs": ["x"], "op": "Relu"}, "is a graph input"),
        ({"inputs": ["b", "w"], "outputs": ["y"]}, "give `op`"),
        ({"inputs": ["b", "w"], "outputs": ["y"], "op": "Mul", "attr": ["axis=1"]}, "has no attribute 'axis'"),
    ],
)
def test_refusals(options: dict, message: str):
    with pytest.raises(GraphSurgeonError, match=message):
        gs.load(chain().SerializeToString()).replace(**options)


def test_cli_bad_input_one_line(tmp_path: Path, capsys):
    path = save(chain(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    args = ["replace", str(path), "--inputs", "x", "--outputs", "b", "--op", "Foo", "--domain", "t"]
    assert "also feeds" in run_cli_expecting_refusal(args, out, capsys)


def test_custom_op_without_torch_is_one_clear_line(tmp_path: Path):
    save(resize_model(), tmp_path / "m.onnx")
    script = (
        "import sys; sys.modules['torch'] = None; from graphsurgeon.cli import main; "
        f"sys.exit(main(['replace', 'm.onnx', '--inputs', 'x', 'scales', '--outputs', 'up', *{CUSTOM!r}, "
        "'-o', 'o.onnx']))"
    )
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "custom_ops" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o.onnx").exists()


def _single_node_replacement(path: Path) -> list[str] | None:
    """replace options rebuilding one main-graph node as itself (same op, attributes spelled out), or None."""
    model = onnx.load(str(path), load_external_data=False)
    spell = {
        AttributeProto.INT: lambda a: str(a.i),
        AttributeProto.FLOAT: lambda a: repr(a.f),
        AttributeProto.STRING: lambda a: a.s.decode(),
        AttributeProto.INTS: lambda a: ",".join(map(str, a.ints)) if a.ints else None,
        AttributeProto.FLOATS: lambda a: ",".join(map(repr, a.floats)) if a.floats else None,
    }
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in ("Constant", "If", "Loop", "Scan"):
            continue
        if (
            not all(node.input)
            or not node.input
            or not all(node.output)
            or any(a.type not in spell for a in node.attribute)
        ):
            continue
        if len(set(node.input)) != len(node.input) or outputs & set(node.input):
            continue
        attrs = [f"{a.name}={spell[a.type](a)}" for a in node.attribute]
        if any(a.endswith("=None") for a in attrs):
            continue
        options = ["--inputs", *node.input, "--outputs", *node.output, "--op", node.op_type]
        return options + (["--attr", *attrs] if attrs else []) + ["--name", node.name or "rebuilt"]
    return None


@pytest.mark.parametrize("path", corpus_models()[:90], ids=model_id)
def test_corpus_rebuilding_a_node_keeps_the_meaning(path: Path, tmp_path: Path, capsys):
    options = _single_node_replacement(path)
    if options is None or not runnable(path):
        pytest.skip("no plain main-graph node, or onnxruntime cannot run the original")
    verified("replace", path, options, tmp_path, capsys)
    sections = {(s, a) for s, a, _ in diff_lines(path, tmp_path / "out.onnx")}
    assert sections <= {("node", "added"), ("node", "removed"), ("node", "changed"), ("initializer", "removed")}
