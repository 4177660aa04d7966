"""add-preprocess + add-postprocess on a CNN: the deployed file takes a uint8 NHWC image and returns the label
that doing the same steps in numpy gives."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import run_ort

MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def cnn(path, opset: int = 17) -> onnx.ModelProto:
    """float[1,3,8,8] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> logits[1,5]."""
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal((5, 6)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], doc_string="a cnn")
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


def numpy_label(model_path, raw: np.ndarray) -> int:
    x = raw.astype(np.float32).transpose(0, 3, 1, 2) * np.float32(1 / 255)
    x = (x - MEAN.reshape(1, 3, 1, 1)) / STD.reshape(1, 3, 1, 1)
    logits = run_ort(model_path, {"image": x.astype(np.float32)})[0]
    return int(np.argmax(logits, axis=1)[0])


def images(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (n, 1, 1, 1, 3))  # a dominant colour each, plus noise
    return [np.clip(c + rng.integers(-40, 40, (1, 8, 8, 3)), 0, 255).astype(np.uint8) for c in colours]


def test_uint8_nhwc_in_label_out(tmp_path):
    cnn(tmp_path / "cnn.onnx")
    out = tmp_path / "deployed.onnx"
    args = ["--input", "image", "--layout", "NHWC", "--dtype", "uint8", "--scale", "1/255"]
    args += ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]
    assert main(["add-preprocess", str(tmp_path / "cnn.onnx"), *args, "-o", str(tmp_path / "pre.onnx")]) == 0
    assert (
        main(
            ["add-postprocess", str(tmp_path / "pre.onnx"), "--graph-output", "logits", "--argmax", "1", "-o", str(out)]
        )
        == 0
    )
    deployed = onnx.load(str(out))
    onnx.checker.check_model(deployed, full_check=True)
    (inp,), (outp,) = deployed.graph.input, deployed.graph.output
    assert (inp.name, inp.type.tensor_type.elem_type) == ("image", TensorProto.UINT8)
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 8, 8, 3]
    assert (outp.name, outp.type.tensor_type.elem_type) == ("logits", TensorProto.INT64)
    assert deployed.doc_string == "a cnn"
    labels = []
    for raw in images():
        label = run_ort(out, {"image": raw})[0]
        assert label.shape == (1,)
        assert int(label[0]) == numpy_label(tmp_path / "cnn.onnx", raw)
        labels.append(int(label[0]))
    assert len(set(labels)) > 1  # the images are told apart


def test_softmax_and_topk(tmp_path):
    cnn(tmp_path / "cnn.onnx")
    raw = images(1)[0]
    x = {"image": raw.astype(np.float32).transpose(0, 3, 1, 2)}
    logits = run_ort(tmp_path / "cnn.onnx", x)[0]
    soft = gs.load(tmp_path / "cnn.onnx").add_postprocess(graph_output="logits", softmax=-1)
    probs = run_ort(soft.proto, x)[0]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=-1, keepdims=True), rtol=1e-5)
    top = gs.load(tmp_path / "cnn.onnx").add_postprocess(graph_output="logits", topk=2)
    assert [o.name for o in top.proto.graph.output] == ["logits", "logits_indices"]
    values, indices = run_ort(top.proto, x)
    np.testing.assert_array_equal(indices[0], np.argsort(-logits[0])[:2])
    np.testing.assert_allclose(values[0], np.sort(logits[0])[::-1][:2], rtol=1e-6)


def test_resize_accepts_any_image_size(tmp_path):
    cnn(tmp_path / "cnn.onnx", opset=18)
    model = gs.load(tmp_path / "cnn.onnx").add_preprocess(input="image", layout="NHWC", dtype="uint8", resize="8,8")
    dims = [d.dim_param or d.dim_value for d in model.proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, "height", "width", 3]
    raw = np.random.default_rng(0).integers(0, 256, (1, 20, 30, 3), dtype=np.uint8)
    assert run_ort(model.proto, {"image": raw})[0].shape == (1, 5)
    same = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    expected = run_ort(tmp_path / "cnn.onnx", {"image": same.astype(np.float32).transpose(0, 3, 1, 2)})[0]
    np.testing.assert_allclose(run_ort(model.proto, {"image": same})[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input": "nope"}, "no graph input 'nope'"),
        ({"input": "image", "mean": "1,2"}, "2 values for 3 channels"),
        ({"input": "image", "std": "0,1,1"}, "must not be zero"),
        ({"input": "image", "scale": "x"}, "takes numbers"),
        ({"input": "image", "resize": "8"}, "height and a width"),
        ({"input": "image", "dtype": "pixel"}, "not an element type"),
    ],
)
def test_bad_preprocess_options(tmp_path, options, message):
    cnn(tmp_path / "cnn.onnx")
    with pytest.raises(RewriteError, match=message):
        gs.load(tmp_path / "cnn.onnx").add_preprocess(**options)


def test_bad_postprocess_options(tmp_path, capsys):
    cnn(tmp_path / "cnn.onnx")
    with pytest.raises(RewriteError, match="exactly one"):
        gs.load(tmp_path / "cnn.onnx").add_postprocess(graph_output="logits", softmax=1, argmax=1)
    with pytest.raises(RewriteError, match="out of range"):
        gs.load(tmp_path / "cnn.onnx").add_postprocess(graph_output="logits", argmax=3)
    out = tmp_path / "x.onnx"
    assert (
        main(["add-postprocess", str(tmp_path / "cnn.onnx"), "--graph-output", "nope", "--topk", "2", "-o", str(out)])
        == 1
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()
