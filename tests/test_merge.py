"""merge: a preprocessing model and a classifier become one model; names, opsets and IR versions reconciled."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import run_ort
from tests.test_pre_post import cnn, images, numpy_label


def preprocessing(path, opset: int = 13, ir: int = 7, out: str = "normalized") -> None:
    """uint8 NHWC image -> float NCHW, scaled by 1/255, normalized by ImageNet mean and std."""
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    nodes = [
        helper.make_node("Cast", ["raw"], ["as_float"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["as_float"], ["nchw"], name="transpose", perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "scale"], ["scaled"], name="scale_mul"),
        helper.make_node("Sub", ["scaled", "mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "std"], [out], name="normalize"),
    ]
    graph = helper.make_graph(
        nodes,
        "pre",
        [helper.make_tensor_value_info("raw", TensorProto.UINT8, [1, 8, 8, 3])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
            numpy_helper.from_array(mean, "mean"),
            numpy_helper.from_array(std, "std"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], doc_string="preprocessing")
    model.ir_version = ir
    helper.set_model_props(model, {"stage": "pre"})
    onnx.save(model, str(path))


def test_preprocessing_then_classifier_gives_the_numpy_label(tmp_path):
    preprocessing(tmp_path / "pre.onnx")
    cnn(tmp_path / "cnn.onnx")  # opset 17, IR 8
    out = tmp_path / "merged.onnx"
    assert (
        main(
            [
                "merge",
                str(tmp_path / "pre.onnx"),
                str(tmp_path / "cnn.onnx"),
                "--connect",
                "normalized:image",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    merged = onnx.load(str(out))
    onnx.checker.check_model(merged, full_check=True)
    assert [i.name for i in merged.graph.input] == ["raw"] and [o.name for o in merged.graph.output] == ["logits"]
    assert merged.opset_import[0].version == 17 and merged.ir_version == 8  # the higher of each
    assert merged.doc_string == "preprocessing" and merged.metadata_props[0].value == "pre"  # A's kept
    for raw in images():
        logits = run_ort(out, {"raw": raw})[0]
        assert int(np.argmax(logits)) == numpy_label(tmp_path / "cnn.onnx", raw)


def test_name_collisions_are_refused_without_prefixes(tmp_path, capsys):
    preprocessing(tmp_path / "pre.onnx")
    cnn(tmp_path / "cnn.onnx")
    preprocessing(tmp_path / "pre2.onnx", out="image2")
    with pytest.raises(RewriteError, match="both use the tensor name.*prefix_a"):
        gs.load(tmp_path / "pre.onnx").merge(tmp_path / "pre2.onnx", connect=[])
    out = tmp_path / "x.onnx"
    assert (
        main(
            [
                "merge",
                str(tmp_path / "pre.onnx"),
                str(tmp_path / "pre2.onnx"),
                "--connect",
                "normalized:raw",
                "-o",
                str(out),
            ]
        )
        == 1
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()
    both = gs.load(tmp_path / "pre.onnx").merge(tmp_path / "pre2.onnx", connect=[], prefix_a="a_", prefix_b="b_")
    assert [i.name for i in both.proto.graph.input] == ["a_raw", "b_raw"]
    raw = images(1)[0]
    a, b = run_ort(both.proto, {"a_raw": raw, "b_raw": raw})
    np.testing.assert_array_equal(a, b)


def test_prefix_b_and_connect_names_without_prefixes(tmp_path):
    preprocessing(tmp_path / "pre.onnx", out="image")  # A's output shares B's input name
    cnn(tmp_path / "cnn.onnx")
    merged = gs.load(tmp_path / "pre.onnx").merge(tmp_path / "cnn.onnx", connect="image:image", prefix_b="clf/")
    assert [o.name for o in merged.proto.graph.output] == ["clf/logits"]
    assert run_ort(merged.proto, {"raw": images(1)[0]})[0].shape == (1, 5)


@pytest.mark.parametrize(
    ("connect", "message"),
    [
        (["nope:image"], "A has no graph output 'nope'"),
        (["normalized:nope"], "B has no graph input 'nope'"),
        (["normalized"], "A_OUT:B_IN"),
    ],
)
def test_bad_connections(tmp_path, connect, message):
    preprocessing(tmp_path / "pre.onnx")
    cnn(tmp_path / "cnn.onnx")
    with pytest.raises(RewriteError, match=message):
        gs.load(tmp_path / "pre.onnx").merge(tmp_path / "cnn.onnx", connect=connect)


def test_type_mismatch_is_refused(tmp_path):
    preprocessing(tmp_path / "pre.onnx")
    preprocessing(tmp_path / "pre2.onnx", out="z")
    with pytest.raises(RewriteError, match="is float but B's input 'raw' is uint8"):
        gs.load(tmp_path / "pre.onnx").merge(tmp_path / "pre2.onnx", connect="normalized:raw", prefix_b="b_")


def test_connected_name_reused_by_b_is_refused_before_any_edit(tmp_path):
    """Fuzz finding: A x->y fed into B x->y (`connect` y:x) wrote two producers of 'y'."""
    relu = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.save(relu, tmp_path / "a.onnx")
    onnx.save(relu, tmp_path / "b.onnx")
    a = gs.load(tmp_path / "a.onnx")
    with pytest.raises(RewriteError, match=r"tensor name\(s\) 'y'; give `prefix_a` or `prefix_b`"):
        a.merge(tmp_path / "b.onnx", connect="y:x")
    assert a.proto.SerializeToString() == relu.SerializeToString()
    merged = gs.load(tmp_path / "a.onnx").merge(tmp_path / "b.onnx", connect="y:x", prefix_b="b/")
    onnx.checker.check_model(merged.proto)
    assert [o.name for o in merged.proto.graph.output] == ["b/y"]
