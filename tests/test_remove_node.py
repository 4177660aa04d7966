"""remove-node: bypass a node; its readers and graph outputs read its input. Checked with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import corpus_models, external_data_dir, model_id, outputs_match, run_ort
from tests.test_verify_json import runnable

X = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)


def chain_model() -> onnx.ModelProto:
    """x -> Relu -> Dropout -> Identity -> Cast(int32) -> y (with doc strings and metadata to keep)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu", doc_string="keep me"),
        helper.make_node("Dropout", ["a"], ["b", "mask"], name="drop"),
        helper.make_node("Identity", ["b"], ["c"], name="ident"),
        helper.make_node("Cast", ["c"], ["y"], name="cast", to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.metadata_props.add(key="author", value="me")
    model.doc_string = "a model"
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def diff_lines(original: Path, result: Path) -> list[tuple[str, str, str]]:
    """(section, action, name) of every difference between two saved models."""
    loaded = gs.load(original, external_data_dir=external_data_dir(original))
    return [(d.section, d.action, d.name) for d in loaded.diff(result).differences]


def run_cli_expecting_refusal(args: list[str], out: Path, capsys) -> str:
    """One line on stderr, exit 1, nothing written."""
    before = Path(args[1]).read_bytes()
    assert main([*args, "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()
    assert Path(args[1]).read_bytes() == before
    return err


def verified(verb: str, path: Path, options: list[str], tmp_path: Path, capsys) -> dict:
    """Run VERB on a corpus model through the CLI with --verify --json; the JSON document."""
    out = tmp_path / "out.onnx"
    args = [verb, str(path), *options, "-o", str(out), "--verify", "--json", "--atol", "1e-4"]
    args += ["--external-data-dir", str(external_data_dir(path))]
    code = main(args)
    printed = capsys.readouterr()
    document = json.loads(printed.out)
    assert document["verify"]["status"] == "equal", (document["verify"], printed.err)
    assert code == 0
    return document


def test_bypass_identity_and_dropout_keeps_the_rest(tmp_path: Path):
    path = save(chain_model(), tmp_path / "m.onnx")
    model = gs.load(path).remove_node(node="ident").remove_node(node="drop")
    proto = model.proto
    assert [n.name for n in proto.graph.node] == ["relu", "cast"]
    assert proto.graph.node[1].input[0] == "a" and proto.graph.node[0].doc_string == "keep me"
    assert outputs_match(run_ort(proto, {"x": X}), run_ort(chain_model(), {"x": X}))
    out = model.save(tmp_path / "out.onnx")
    assert sorted(diff_lines(path, out)) == [
        ("node", "changed", "cast"),  # its input: now "a"
        ("node", "removed", "drop"),
        ("node", "removed", "ident"),
    ]
    assert {c.action for c in model.changes} == {"bypassed"}


def test_graph_output_keeps_its_name(tmp_path: Path):
    model = chain_model()
    model.graph.node[3].CopyFrom(helper.make_node("Identity", ["c"], ["y"], name="cast"))
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    edited = gs.load(model.SerializeToString()).remove_node(node="cast").proto
    assert [o.name for o in edited.graph.output] == ["y"] and edited.graph.node[-1].output[0] == "y"
    assert outputs_match(run_ort(edited, {"x": X}), run_ort(model, {"x": X}))


def test_input_by_position_name_and_operand():
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "z"], ["y"], name="add")],
            "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("x", "z")],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    for spelling in ("1", "z", "B"):
        edited = gs.load(model.SerializeToString()).remove_node(node="add", input=spelling).proto
        assert not edited.graph.node or edited.graph.node[0].input[0] == "z"
        assert outputs_match(run_ort(edited, {"x": X, "z": X * 2}), [X * 2])


def test_refused_when_types_do_not_match():
    with pytest.raises(GraphSurgeonError, match=r"element type float vs int32"):
        gs.load(chain_model().SerializeToString()).remove_node(node="cast")


def test_refused_when_the_mask_is_read():
    model = chain_model()
    model.graph.output.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]))
    with pytest.raises(GraphSurgeonError, match="other output"):
        gs.load(model.SerializeToString()).remove_node(node="drop")


def test_several_matches_need_all():
    model = chain_model()
    model.graph.node.insert(3, helper.make_node("Identity", ["c"], ["c2"], name="ident2"))
    model.graph.node[4].input[0] = "c2"
    with pytest.raises(GraphSurgeonError, match="matches 2 nodes"):
        gs.load(model.SerializeToString()).remove_node(node="Identity")
    edited = gs.load(model.SerializeToString()).remove_node(node="Identity", all=True).proto
    assert [n.op_type for n in edited.graph.node] == ["Relu", "Dropout", "Cast"]
    assert outputs_match(run_ort(edited, {"x": X}), run_ort(model, {"x": X}))


def test_inside_an_if_branch():
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t1"], name="inner_id"), helper.make_node("Neg", ["t1"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_graph, else_branch=else_graph)],
            "g",
            [
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    edited = gs.load(model.SerializeToString()).remove_node(node="inner_id").proto
    then_nodes = next(a.g.node for a in edited.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then_nodes] == ["Neg"] and then_nodes[0].input[0] == "x"
    for cond in (True, False):
        feeds = {"c": np.array(cond), "x": X}
        assert outputs_match(run_ort(edited, feeds), run_ort(model, feeds))
    with pytest.raises(GraphSurgeonError, match="holds subgraphs"):
        gs.load(model.SerializeToString()).remove_node(node="if")


def test_cli_bad_input_one_line(tmp_path: Path, capsys):
    path = save(chain_model(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    assert "matches no node" in run_cli_expecting_refusal(["remove-node", str(path), "--node", "nope"], out, capsys)
    err = run_cli_expecting_refusal(["remove-node", str(path), "--node", "cast"], out, capsys)
    assert "int32" in err
    err = run_cli_expecting_refusal(["remove-node", str(path), "--node", "ident", "--input", "4"], out, capsys)
    assert "no input 4" in err
    assert main(["remove-node", str(path), "--node", "ident", "-o", str(out), "--verify"]) == 0


def _no_op_selector(path: Path) -> str | None:
    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    return next((op for op in ("Identity", "Dropout") if op in ops), None)


NO_OP_MODELS = [p for p in corpus_models() if _no_op_selector(p)]


@pytest.mark.parametrize("path", NO_OP_MODELS, ids=model_id)
def test_corpus_removing_no_ops_keeps_the_meaning(path: Path, tmp_path: Path, capsys):
    if not runnable(path):
        pytest.skip("onnxruntime cannot run the original as it is")
    op = _no_op_selector(path)
    out = tmp_path / "out.onnx"
    try:
        gs.load(path, external_data_dir=external_data_dir(path)).remove_node(node=op, all=True)
    except GraphSurgeonError as e:  # refused (a read mask, a type the Identity changes): clearly
        assert "\n" not in str(e)
        pytest.skip(f"refused: {e}")
    document = verified("remove-node", path, ["--node", op, "--all"], tmp_path, capsys)
    removed = [c["name"] for c in document["changes"] if c["action"] in ("bypassed", "replaced")]
    assert removed
    changed = {(s, a) for s, a, _ in diff_lines(path, out)}
    assert changed <= {("node", "removed"), ("node", "changed"), ("output", "changed"), ("initializer", "removed")}


def no_output_model() -> onnx.ModelProto:
    """x -> Acos -> y with y not a graph output (onnxruntime loads it; with Acos gone it cannot)."""
    return helper.make_model(
        helper.make_graph(
            [helper.make_node("Acos", ["x"], ["y"], name="acos")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )


def test_fuzz_findings_no_outputs_and_sequence_vs_tensor_are_refused():
    with pytest.raises(GraphSurgeonError, match="has no graph outputs"):
        gs.load(no_output_model().SerializeToString()).remove_node(node="Acos", all=True)
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("SequenceConstruct", ["x"], ["s"], name="construct"),
                helper.make_node("SequenceAt", ["s", "i"], ["t"], name="at"),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
            [helper.make_tensor("i", TensorProto.INT64, [], [0])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(GraphSurgeonError, match=r"input 0 's' is seq.*\(sequence vs tensor\)"):
        gs.load(model.SerializeToString()).remove_node(node="at")


def test_output_node_of_a_model_without_the_default_opset_is_refused():
    """Fuzz finding: removing the only node of an ai.onnx.ml model left an Identity no opset imports."""
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Binarizer", ["x"], ["y"], name="bin", domain="ai.onnx.ml")],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("ai.onnx.ml", 1)],
    )
    with pytest.raises(GraphSurgeonError, match="imports no ai.onnx opset"):
        gs.load(model.SerializeToString()).remove_node(node="bin")
