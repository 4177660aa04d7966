"""check has severities (onnxruntime decides validity; the checker warns); compare reports per-output errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from tests.conftest import CORPUS


def _model(op: str = "Relu", domain: str = "", scale: float = 1.0) -> onnx.ModelProto:
    nodes = [helper.make_node(op, ["x"], ["r"], domain=domain, name="op"), helper.make_node("Mul", ["r", "s"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, ["n", 4])],
        [helper.make_tensor_value_info("y", 1, ["n", 4])],
        [helper.make_tensor("s", 1, [], [scale])],
    )
    imports = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports, ir_version=9)


def test_a_valid_model_is_valid(capsys):
    report = gs.load(_model()).check()
    assert report.ok and report.verdict == "valid" and not report.findings


def test_onnxruntime_refusing_is_invalid_and_exit_1(capsys):
    path = CORPUS / "polygraphy" / "bad_graph_with_dup_value_info.onnx"
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "error: onnxruntime" in out and "verdict: INVALID" in out


def test_a_checker_complaint_alone_is_a_warning_unless_strict(capsys):
    path = CORPUS / "polygraphy" / "bad_graph_conditionally_invalid.onnx"
    assert main(["check", str(path)]) == 0
    assert "warning: onnx checker" in capsys.readouterr().out
    assert main(["check", str(path), "--strict"]) == 1
    assert "error: onnx checker" in capsys.readouterr().out


def test_a_custom_op_without_kernel_is_a_note_not_invalid(tmp_path: Path, capsys):
    path = tmp_path / "custom.onnx"
    onnx.save(_model("Foo", "my.ops"), path)
    assert main(["check", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)["result"]
    assert document["verdict"] == "valid"
    assert [f["severity"] for f in document["findings"]] == ["note"]
    assert "my.ops::Foo" in document["findings"][0]["message"]


def test_compare_equal_and_different(tmp_path: Path, capsys):
    a, b, c = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    onnx.save(_model(), a)
    onnx.save(_model(), b)
    onnx.save(_model(scale=1.01), c)
    assert main(["compare", str(a), str(b), "--runs", "3"]) == 0
    assert "equal over 3 run(s)" in capsys.readouterr().out
    assert main(["compare", str(a), str(c), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["status"] == "different"
    assert 0.0099 < result["outputs"][0]["max_rel"] < 0.0101
    assert main(["compare", str(a), str(c), "--rtol", "0.02"]) == 0


def test_compare_uses_given_feeds_and_says_when_the_original_cannot_run(tmp_path: Path, capsys):
    a = tmp_path / "a.onnx"
    onnx.save(_model(), a)
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.full((3, 4), -1.0, dtype=np.float32))
    report = gs.load(a).compare(str(a), feeds=str(feeds))
    assert report.ok and report.outputs[0].max_abs == 0.0
    custom = tmp_path / "custom.onnx"
    onnx.save(_model("Foo", "my.ops"), custom)
    assert main(["compare", str(custom), str(a)]) == 1
    assert "A cannot be loaded by onnxruntime" in capsys.readouterr().out


def test_compare_integer_inputs_stay_in_range_for_gather(tmp_path: Path):
    table = helper.make_tensor("table", 1, [5, 2], np.arange(10, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["y"])],
        "g",
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", 1, ["n", 2])],
        [table],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    report = gs.load(path).compare(str(path), runs=20)
    assert report.ok, report
