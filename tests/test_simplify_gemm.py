"""simplify's Gemm fusions: MatMul + Add -> Gemm, and a Transpose feeding Gemm becomes its trans flag (the stored
weight stays as it is: no transposed copy is computed or written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from tests.test_simplify import make_model, ops, same_outputs, simplified, vi

F = TensorProto.FLOAT


def _linear(x_dims, *, transpose_perm=(1, 0), extra_reader=False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"], name="t", perm=list(transpose_perm)),
        helper.make_node("MatMul", ["x", "Wt"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "b"], ["y"], name="add"),
    ]
    outputs = [vi("y", [x_dims[0], 6] if len(x_dims) == 2 else [*x_dims[:-1], 6])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["Wt"], ["Wt_relu"], name="other"))
        outputs.append(vi("Wt_relu", [4, 6]))
    return make_model(nodes, [vi("x", x_dims)], outputs, inits)


def _feeds(dims) -> dict:
    return {"x": np.random.default_rng(1).standard_normal([2 if isinstance(d, str) else d for d in dims]).astype("f")}


def test_a_linear_becomes_one_gemm_reading_the_stored_weight():
    model = _linear(["n", 4])
    result = simplified(model)
    assert ops(result) == ["Gemm"]
    gemm = result.proto.graph.node[0]
    assert list(gemm.input) == ["x", "W", "b"]
    assert helper.get_attribute_value(next(a for a in gemm.attribute if a.name == "transB")) == 1
    stored = {t.name: t for t in result.proto.graph.initializer}
    assert stored["W"] == model.graph.initializer[0]  # the weight as stored, not a transposed copy
    same_outputs(model, result.proto, _feeds(["n", 4]))


def test_a_transpose_read_elsewhere_stays_and_folds():
    model = _linear([3, 4], extra_reader=True)
    result = simplified(model)
    gemm = next(n for n in result.proto.graph.node if n.op_type == "Gemm")
    assert not any(a.name == "transB" and a.i for a in gemm.attribute)
    same_outputs(model, result.proto, _feeds([3, 4]))


def test_a_rank_3_matmul_is_not_a_gemm():
    model = _linear([2, 3, 4])
    result = simplified(model)
    assert "Gemm" not in ops(result)
    same_outputs(model, result.proto, _feeds([2, 3, 4]))


def test_a_transposed_input_flips_an_existing_flag():
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], name="tx", perm=[1, 0]),
        helper.make_node("Gemm", ["xt", "W"], ["y"], name="g", transA=1, transB=0),
    ]
    model = make_model(
        nodes,
        [vi("x", [3, 5])],
        [vi("y", [3, 2])],
        [numpy_helper.from_array(rng.standard_normal((5, 2)).astype("f"), "W")],
    )
    result = simplified(model)
    assert ops(result) == ["Gemm"]
    gemm = result.proto.graph.node[0]
    assert list(gemm.input) == ["x", "W"]
    assert {a.name: a.i for a in gemm.attribute}.get("transA", 0) == 0
    same_outputs(model, result.proto, {"x": rng.standard_normal((3, 5)).astype("f")})


def test_an_external_weight_is_copied_not_rewritten(tmp_path: Path):
    model = _linear(["n", 4])
    source = tmp_path / "in" / "model.onnx"
    source.parent.mkdir()
    onnx.save(
        onnx.ModelProto.FromString(model.SerializeToString()),
        source,
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    out = tmp_path / "out" / "model.onnx"
    gs.load(source).simplify().save(out)
    saved = onnx.load(out, load_external_data=False)
    assert [n.op_type for n in saved.graph.node] == ["Gemm"]
    onnx.load_external_data_for_model(saved, str(out.parent))
    np.testing.assert_array_equal(
        numpy_helper.to_array(next(t for t in saved.graph.initializer if t.name == "W")),
        numpy_helper.to_array(model.graph.initializer[0]),
    )
    same_outputs(model, saved, _feeds(["n", 4]))
