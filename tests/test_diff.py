"""diff: a structural diff of two models, weights compared in windows straight from their data files."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.errors import ModelLoadError
from graphsurgeon.verbs.diff import Difference, diff
from tests.test_promote_input import resize_model


def _save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save_model(model, str(path))
    return str(path)


def _triples(report) -> list[tuple[str, str, str]]:
    return [(d.section, d.action, d.name) for d in report.differences]


def _external(model: onnx.ModelProto, folder: Path) -> Path:
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="w.data", size_threshold=0
    )
    return path


def _matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_same_file_twice_and_a_saved_copy_are_the_same(tmp_path: Path):
    a = _save(resize_model(), tmp_path / "a.onnx")
    gs.load(a).save(tmp_path / "copy.onnx")
    for b in (a, str(tmp_path / "copy.onnx")):
        report = gs.load(a).diff(b)
        assert report.same and report.exit_code == 0 and report.differences == []
        assert "no structural differences" in str(report)
        assert report.to_dict()["same"] is True


@pytest.mark.parametrize("source", ["initializer", "constant"])
def test_promote_input_result(tmp_path: Path, source: str):
    a = _save(resize_model(source), tmp_path / "a.onnx")
    b = str(tmp_path / "b.onnx")
    gs.load(a).promote_input(node="Resize", attr="scales").save(b)
    report = gs.load(a).diff(b)
    removed = ("initializer", "removed", "baked") if source == "initializer" else ("node", "removed", "const")
    expected = [
        ("input", "added", "scales"),
        ("output", "changed", "y"),  # downstream static dims became symbolic
        ("node", "changed", "resize"),
        removed,
    ]
    assert sorted(_triples(report)) == sorted(expected)
    assert not report.same and report.exit_code == 1
    text = str(report)
    assert "+ input 'scales' float[4]" in text
    assert "~ node 'resize': input 2 'baked' -> 'scales'" in text
    assert ("- initializer 'baked' float[4]" if source == "initializer" else "- node 'const' (Constant)") in text
    assert [d["section"] for d in report.to_dict()["differences"]] == [d.section for d in report.differences]
    json.dumps(report.to_dict())


def test_initializer_content_change(tmp_path: Path):
    a = _save(resize_model(factor=3.0), tmp_path / "a.onnx")
    b = _save(resize_model(factor=2.0), tmp_path / "b.onnx")
    report = gs.load(a).diff(b)
    changes = [d for d in report.differences if d.section == "initializer"]
    assert changes == [Difference("initializer", "changed", "baked", "content differs (float[4])")]


def test_initializer_dtype_and_shape_change(tmp_path: Path):
    w = np.ones((4, 3), np.float32)
    a = _save(_matmul_model(w), tmp_path / "a.onnx")
    b = _save(_matmul_model(w[:, :2]), tmp_path / "b.onnx")
    details = [d.detail for d in gs.load(a).diff(b).differences if d.section == "initializer"]
    assert details == ["shape [4, 3] -> [4, 2]"]


def test_external_data_one_byte_changed(tmp_path: Path):
    w = np.arange(4096 * 16, dtype=np.float32).reshape(4096, 16)
    a = _external(_matmul_model(w), tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert gs.load(a).diff(str(tmp_path / "b" / "model.onnx")).same
    data = tmp_path / "b" / "w.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    report = gs.load(a).diff(str(tmp_path / "b" / "model.onnx"))
    assert _triples(report) == [("initializer", "changed", "w")]
    assert "content differs" in report.differences[0].detail


def test_inline_against_external_compares_content(tmp_path: Path):
    w = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    inline = _save(_matmul_model(w), tmp_path / "inline.onnx")
    external = _external(_matmul_model(w), tmp_path / "ext")
    assert gs.load(inline).diff(str(external)).same
    w[3, 3] += 1
    changed = _external(_matmul_model(w), tmp_path / "ext2")
    assert _triples(gs.load(inline).diff(str(changed))) == [("initializer", "changed", "w")]


def test_big_tensor_is_compared_in_windows(tmp_path: Path):
    w = np.zeros((10_000_000 // 16, 16), np.float32)  # 40 MB
    a = _external(_matmul_model(w), tmp_path / "a")
    w[-1, -1] = 1.0
    b = _external(_matmul_model(w), tmp_path / "b")
    del w
    model = gs.load(a)
    tracemalloc.start()
    try:
        report = model.diff(str(b))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _triples(report) == [("initializer", "changed", "w")]
    assert peak < 30 << 20, f"peak {peak} bytes"
    assert model.diff(str(a)).same


def test_attribute_and_opset_changes(tmp_path: Path):
    a = _save(resize_model(opset=13), tmp_path / "a.onnx")
    other = resize_model(opset=18)
    other.graph.node[0].attribute[0].s = b"nearest"
    b = _save(other, tmp_path / "b.onnx")
    report = gs.load(a).diff(b)
    assert _triples(report) == [("opset", "changed", "ai.onnx"), ("node", "changed", "resize")]
    assert "~ opset 'ai.onnx': version 13 -> 18" in str(report)
    assert "~ node 'resize': attribute 'mode' 'linear' -> 'nearest'" in str(report)


def test_subgraph_attribute_is_summarised(tmp_path: Path):
    def model(value: float) -> onnx.ModelProto:
        def branch(name: str, v: float) -> onnx.GraphProto:
            const = helper.make_node("Constant", [], [name], value=helper.make_tensor("t", TensorProto.FLOAT, [], [v]))
            return helper.make_graph([const], name, [], [helper.make_tensor_value_info(name, TensorProto.FLOAT, [])])

        node = helper.make_node(
            "If", ["c"], ["y"], name="if", then_branch=branch("a", value), else_branch=branch("b", 0.0)
        )
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    a, b = _save(model(1.0), tmp_path / "a.onnx"), _save(model(2.0), tmp_path / "b.onnx")
    assert [str(d) for d in gs.load(a).diff(b).differences] == [
        "~ node 'if': attribute 'then_branch': subgraph changed"
    ]


def test_unnamed_nodes_match_by_op_and_outputs(tmp_path: Path):
    def model(op: str) -> onnx.ModelProto:
        nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node(op, ["h"], ["y"])]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    a, b = _save(model("Neg"), tmp_path / "a.onnx"), _save(model("Abs"), tmp_path / "b.onnx")
    assert [str(d) for d in gs.load(a).diff(b).differences] == ["- node 'Neg -> y' (Neg)", "+ node 'Abs -> y' (Abs)"]


def test_functions_and_metadata(tmp_path: Path):
    a_model = resize_model()
    b_model = resize_model()
    b_model.doc_string = "patched"
    helper.set_model_props(b_model, {"author": "me"})
    b_model.functions.append(
        helper.make_function("local", "F", ["i"], ["o"], [helper.make_node("Relu", ["i"], ["o"])], [])
    )
    a, b = _save(a_model, tmp_path / "a.onnx"), _save(b_model, tmp_path / "b.onnx")
    report = gs.load(a).diff(b)
    assert _triples(report) == [
        ("function", "added", "local::F"),
        ("metadata", "changed", "doc_string"),
        ("metadata", "added", "author"),
    ]


def test_other_may_be_a_loaded_model(tmp_path: Path):
    w = np.ones((4, 3), np.float32)
    a = _save(_matmul_model(w), tmp_path / "a.onnx")
    b = _save(_matmul_model(w * 2), tmp_path / "b.onnx")
    report = diff(gs.load(a), other=gs.load(b))
    assert _triples(report) == [("initializer", "changed", "w")]


def test_method_accepts_a_loaded_model_or_a_path_object(tmp_path: Path):
    a = _save(resize_model(), tmp_path / "a.onnx")
    assert gs.load(a).diff(gs.load(a)).same
    assert gs.load(a).diff(Path(a)).same


def test_unreadable_other_is_a_user_error(tmp_path: Path):
    a = _save(resize_model(), tmp_path / "a.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        gs.load(a).diff(str(tmp_path / "bad.onnx"))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from graphsurgeon.cli import main

    w = np.ones((4, 3), np.float32)
    a = _save(_matmul_model(w), tmp_path / "a.onnx")
    b = _save(_matmul_model(w * 2), tmp_path / "b.onnx")
    assert main(["diff", a, a]) == 0
    capsys.readouterr()
    assert main(["diff", a, b]) == 1
    assert "~ initializer 'w': content differs" in capsys.readouterr().out
    assert main(["diff", a, b, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["result"]["same"] is False
    assert document["result"]["differences"][0]["name"] == "w"
