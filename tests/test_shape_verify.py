"""--verify after set-shape and make-dynamic: a freed batch is checked per batch slice (the result at batch 1 and
2B+1 against the original run on batch-B slices, concatenated); any other changed dim at one shape, saying so.

The check is graphsurgeon.core.batch_check; the verbs declare what they changed (``ctx.shape_edit``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.batch_check import BatchAxes, compare_batches
from graphsurgeon.core.numeric import Runnable, compare_models

F = TensorProto.FLOAT


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _vi(name, dims, dtype=F):
    return helper.make_tensor_value_info(name, dtype, dims)


def _save(tmp_path: Path, nodes, inputs, outputs, inits=(), name="m.onnx") -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _grouped_softmax(tmp_path: Path, batch=2, name="m.onnx") -> Path:
    """x [B,4] -> Reshape [2,-1] -> Softmax(axis 1) -> Reshape [-1,4]: at B=2 each row is one item, so items are
    independent; the same graph at any other batch groups the items in two rows and mixes them."""
    nodes = [
        helper.make_node("Reshape", ["x", "t1"], ["r"]),
        helper.make_node("Softmax", ["r"], ["s"], axis=1),
        helper.make_node("Reshape", ["s", "t2"], ["y"]),
    ]
    inits = [_i64("t1", [2, -1]), _i64("t2", [-1, 4])]
    return _save(tmp_path, nodes, [_vi("x", [batch, 4])], [_vi("y", [batch, 4])], inits, name)


def _verify_json(capsys, args: list[str]) -> tuple[int, dict]:
    code = main([*args, "--verify", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_make_dynamic_verify_json_on_a_real_export(tmp_path, capsys):
    pytest.importorskip("torch")
    from tests.test_make_dynamic import export

    src = export("encoder", False, tmp_path / "enc.onnx")
    out = tmp_path / "dyn.onnx"
    code, document = _verify_json(capsys, ["make-dynamic", str(src), "-o", str(out)])
    verify = document["verify"]
    assert code == 0 and document["exit_code"] == 0 and verify["status"] == "equal", verify
    assert verify["batch"]["exported"] == 2 and verify["batch"]["sizes"] == [1, 5]
    assert verify["batch"]["inputs"] == {"in0": 0} and set(verify["batch"]["outputs"].values()) == {0}
    assert [r["ok"] for r in verify["batch"]["results"]] == [True, True]
    assert any("per batch slice" in n for n in verify["notes"])


def test_a_result_that_mixes_items_fails_verify(tmp_path, capsys, monkeypatch):
    # an engine that forgets to re-batch (what only rewriting the declared dims does): right at the exported
    # batch, wrong at any other -- the plain check at batch 2 cannot see it, the batch-slice check can
    import graphsurgeon.verbs.shape as engine

    src = _grouped_softmax(tmp_path)
    monkeypatch.setattr(engine, "apply_plans", lambda ctx, analysis: [])
    out = tmp_path / "o.onnx"
    code, document = _verify_json(capsys, ["make-dynamic", str(src), "-o", str(out)])
    verify = document["verify"]
    assert code == 1 and document["exit_code"] == 1 and verify["status"] == "different", verify
    assert not any(r["ok"] for r in verify["batch"]["results"])
    assert "at batch 1" in verify["outputs"][0]["problem"]
    assert out.exists()  # kept, named as failing
    plain = compare_models(Runnable(src, tmp_path), Runnable(out, tmp_path))
    assert plain.status == "equal"  # what --verify said before: blind to it
    assert main(["make-dynamic", str(src), "-o", str(out), "--verify"]) == 1
    printed = capsys.readouterr()
    assert "MISMATCH" in printed.out and "verify failed" in printed.err


def test_compare_batches_on_a_hand_built_result_that_mixes_items(tmp_path):
    src = _grouped_softmax(tmp_path)
    wrong = onnx.load(_grouped_softmax(tmp_path, batch="batch", name="wrong.onnx"))
    report = compare_batches(
        Runnable(src, tmp_path), Runnable(wrong.SerializeToString()), BatchAxes(2, {"x": 0}, {"y": 0})
    )
    assert report.status == "different" and [s.size for s in report.sizes] == [1, 5]
    assert report.exit_code == 1 and "batch" in report.to_dict()
    fixed = gs.load(src).make_dynamic()
    right = compare_batches(
        Runnable(src, tmp_path), Runnable(fixed.proto.SerializeToString()), BatchAxes(2, {"x": 0}, {"y": 0})
    )
    assert right.status == "equal", right


def _sequence_model(tmp_path: Path) -> Path:
    nodes = [helper.make_node("Reshape", ["x", "t"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    return _save(tmp_path, nodes, [_vi("x", [2, 7, 4])], [_vi("y", [2, 28])], [_i64("t", [2, 28])])


def test_a_sequence_axis_is_compared_at_the_exported_shape_and_says_so(tmp_path, capsys):
    src = _sequence_model(tmp_path)
    code, document = _verify_json(
        capsys, ["make-dynamic", str(src), "--axis", "1", "--name", "seq", "-o", str(tmp_path / "o.onnx")]
    )
    verify = document["verify"]
    assert code == 0 and verify["status"] == "equal" and "batch" not in verify
    assert "compared at the exported shape only, not per batch slice" in verify["notes"][-1]
    assert "axis 1 of 'x' (7 -> 'seq')" in verify["notes"][-1]


def test_fixing_a_named_dim_is_compared_at_the_fixed_shape(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    src = _save(tmp_path, nodes, [_vi("x", ["batch", 3])], [_vi("y", ["batch", 3])])
    code, document = _verify_json(capsys, ["set-shape", str(src), "--dim", "batch=1", "-o", str(tmp_path / "o.onnx")])
    verify = document["verify"]
    assert code == 0 and verify["status"] == "equal", verify
    assert "the shape the result fixed" in verify["notes"][-1] and "a named dim is fixed" in verify["notes"][-1]


def test_a_batch_set_to_another_size_is_checked_at_that_size(tmp_path, capsys):
    src = _grouped_softmax(tmp_path)
    code, document = _verify_json(capsys, ["set-shape", str(src), "--input", "x:5,4", "-o", str(tmp_path / "o.onnx")])
    assert code == 0 and document["verify"]["batch"]["sizes"] == [5], document["verify"]


def test_set_shape_freeing_the_batch_is_checked_per_slice(tmp_path, capsys):
    src = _grouped_softmax(tmp_path)
    code, document = _verify_json(
        capsys, ["set-shape", str(src), "--input", "x:n,4", "-o", str(tmp_path / "o.onnx"), "--verify-runs", "2"]
    )
    verify = document["verify"]
    assert code == 0 and verify["runs"] == 2 and verify["batch"]["sizes"] == [1, 5], verify


def test_a_model_counting_its_items_is_not_checked_per_slice(tmp_path, capsys):
    # y = x * arange(B): item i depends on its position, so slices are not independent
    nodes = [
        helper.make_node("Range", ["zero", "limit", "one"], ["idx"], name="positions"),
        helper.make_node("Cast", ["idx"], ["idxf"], to=F),
        helper.make_node("Unsqueeze", ["idxf", "axes"], ["col"]),
        helper.make_node("Mul", ["x", "col"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(2, np.int64), "limit"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        _i64("axes", [1]),
    ]
    src = _save(tmp_path, nodes, [_vi("x", [2, 4])], [_vi("y", [2, 4])], inits)
    code, document = _verify_json(capsys, ["make-dynamic", str(src), "-o", str(tmp_path / "o.onnx")])
    verify = document["verify"]
    assert code == 0 and verify["status"] == "equal" and "batch" not in verify
    assert "Range node 'positions' counts the items" in verify["notes"][-1]


def test_feeds_are_one_batch_slice(tmp_path, capsys):
    src = _grouped_softmax(tmp_path)
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.arange(8, dtype=np.float32).reshape(2, 4))
    args = ["make-dynamic", str(src), "-o", str(tmp_path / "o.onnx"), "--feeds", str(feeds)]
    code, document = _verify_json(capsys, args)
    assert code == 0 and document["verify"]["status"] == "equal"
    np.savez(feeds, x=np.zeros((3, 4), np.float32))
    code, document = _verify_json(capsys, args)
    assert (
        document["verify"]["status"] == "error" and "'x' must hold 2 item(s) on axis 0" in document["verify"]["error"]
    )


def test_a_sequence_set_to_another_static_size_cannot_be_verified_and_says_why(tmp_path, capsys):
    src = _sequence_model(tmp_path)
    out = tmp_path / "o.onnx"
    code, document = _verify_json(capsys, ["set-shape", str(src), "--input", "x:2,9,4", "-o", str(out)])
    verify = document["verify"]
    assert code == 0 and verify["status"] == "error" and out.exists()
    assert "different fixed sizes on axis 1 of 'x' (7 -> 9)" in verify["error"]


def test_a_recipe_verifies_a_freed_batch_per_slice_too(tmp_path, monkeypatch):
    from graphsurgeon.recipe import Recipe, StepError

    src = _grouped_softmax(tmp_path)
    recipe = Recipe.from_dict({"steps": [{"make-dynamic": {}, "verify": True}, {"cleanup": {}}], "verify": True})
    run = recipe.run(gs.load(src))
    assert run.verify is not None and run.verify.status == "equal", run.verify
    assert run.verify.to_dict()["batch"]["sizes"] == [1, 5]
    assert run.steps[0].verify is not None and "batch" in run.steps[0].verify.to_dict()

    import graphsurgeon.verbs.shape as engine

    monkeypatch.setattr(engine, "apply_plans", lambda ctx, analysis: [])  # the declared-dims-only edit
    with pytest.raises(StepError, match="step 1 \\(make-dynamic\\): verify failed"):
        recipe.run(gs.load(src))
