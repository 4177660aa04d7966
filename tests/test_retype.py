"""retype: graph inputs / outputs take another element type, the Casts inside, names kept."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import run_ort


def embedding(path) -> None:
    """ids:int64[1,4] -> Gather(table) -> float[1,4,3] -> ReduceSum -> logits float[1,4,1]."""
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["emb"], name="gather"),
            helper.make_node("ReduceSum", ["emb", "axes"], ["logits"], name="sum", keepdims=1),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 1])],
        [table, numpy_helper.from_array(np.array([2], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_int32_ids_and_float16_logits(tmp_path):
    embedding(tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    assert (
        main(
            [
                "retype",
                str(tmp_path / "m.onnx"),
                "--input",
                "ids:int32",
                "--graph-output",
                "logits:float16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    ids = np.array([[1, 2, 3, 9]])
    expected = run_ort(tmp_path / "m.onnx", {"ids": ids})[0]
    got = run_ort(out, {"ids": ids.astype(np.int32)})[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, expected, rtol=1e-3)


def test_refusals(tmp_path):
    embedding(tmp_path / "m.onnx")
    with pytest.raises(RewriteError, match="no graph input 'nope'"):
        gs.load(tmp_path / "m.onnx").retype(input="nope:int32")
    with pytest.raises(RewriteError, match="not an element type"):
        gs.load(tmp_path / "m.onnx").retype(input="ids:int33")
    with pytest.raises(RewriteError, match="give `input` or `graph_output`"):
        gs.load(tmp_path / "m.onnx").retype()
    assert gs.load(tmp_path / "m.onnx").retype(input={"ids": "int64"}).notes == ["graph input 'ids' is int64 already"]
