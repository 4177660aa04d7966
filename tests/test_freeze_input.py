"""freeze-input: a graph input becomes a constant (initializer), optionally folded; the inverse of promote-input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import outputs_match, run_ort
from tests.test_promote_input import X, resize_model
from tests.test_remove_node import diff_lines, run_cli_expecting_refusal, save


def promoted() -> onnx.ModelProto:
    return gs.load(resize_model().SerializeToString()).promote_input(node="Resize", attr="scales").proto


def test_inverse_of_promote_input(tmp_path: Path):
    path = save(promoted(), tmp_path / "m.onnx")
    model = gs.load(path).freeze_input(input=["scales=1,1,3,3"])
    proto = model.proto
    assert [i.name for i in proto.graph.input] == ["x"] and [t.name for t in proto.graph.initializer] == ["scales"]
    assert outputs_match(run_ort(proto, {"x": X}), run_ort(resize_model(), {"x": X}))
    out = model.save(tmp_path / "out.onnx")
    assert sorted(diff_lines(path, out)) == [("initializer", "added", "scales"), ("input", "removed", "scales")]


def test_from_npy_and_fold(tmp_path: Path):
    np.save(tmp_path / "x.npy", X)
    proto = gs.load(resize_model().SerializeToString()).freeze_input(input=f"x={tmp_path / 'x.npy'}", fold=True).proto
    assert not proto.graph.input and not proto.graph.node  # everything folded to the output
    assert outputs_match(run_ort(proto, {}), run_ort(resize_model(), {"x": X}))


def test_fold_summary_is_recorded():
    model = gs.load(promoted().SerializeToString()).freeze_input(input=["scales=1,1,3,3"], fold=True)
    assert any(c.action == "folded" and "folded" in c.detail for c in model.changes)


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ("nope=1", "no graph input 'nope'; its inputs: x, scales"),
        ("scales=1,2", "needs 4 values, not 2"),
        ("scales=a,b,c,d", "needs numbers"),
        ("scales", "is not NAME=VALUE"),
    ],
)
def test_refusals(spelling: str, message: str):
    with pytest.raises(GraphSurgeonError, match=message):
        gs.load(promoted().SerializeToString()).freeze_input(input=[spelling])


def test_npy_of_the_wrong_shape_or_type(tmp_path: Path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(GraphSurgeonError, match="does not fit"):
        gs.load(promoted().SerializeToString()).freeze_input(input=[f"scales={tmp_path / 'bad.npy'}"])
    np.save(tmp_path / "s.npy", np.array(["a"] * 4))
    with pytest.raises(GraphSurgeonError, match="does not convert"):
        gs.load(promoted().SerializeToString()).freeze_input(input=[f"scales={tmp_path / 's.npy'}"])


def test_symbolic_dims_need_a_file_unless_rank_1():
    model = resize_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    with pytest.raises(GraphSurgeonError, match="no static shape"):
        gs.load(model.SerializeToString()).freeze_input(input=["x=1,2"])


def test_subgraph_reading_the_input_reads_the_constant():
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
            [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", 1, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    proto = gs.load(model.SerializeToString()).freeze_input(input=["x=1.5,-2"]).proto
    assert outputs_match(run_ort(proto, {"c": np.array(True)}), [np.array([-1.5, 2], np.float32)])


def test_cli(tmp_path: Path, capsys):
    path = save(promoted(), tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    assert "needs 4 values" in run_cli_expecting_refusal(
        ["freeze-input", str(path), "--input", "scales=1"], out, capsys
    )
    assert main(["freeze-input", str(path), "--input", "scales=1,1,3,3", "--fold", "-o", str(out)]) == 0
    assert [i.name for i in onnx.load(out).graph.input] == ["x"]


def test_model_without_outputs_is_refused():
    """Fuzz finding: freezing the only input of a model with no outputs left one onnxruntime cannot load."""
    from tests.test_remove_node import no_output_model

    with pytest.raises(GraphSurgeonError, match="has no graph outputs"):
        gs.load(no_output_model().SerializeToString()).freeze_input(input=["x=1,2"])


# -- --initializers: weights listed as inputs (IR < 4, or exported with initializers kept as inputs) ----------
def _squeezenet() -> Path:
    return Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"


def test_initializers_of_an_ir3_model_leave_the_interface(tmp_path: Path):
    source = onnx.load(_squeezenet())
    assert source.ir_version == 3
    (data,) = {i.name for i in source.graph.input} - {t.name for t in source.graph.initializer}
    model = gs.load(_squeezenet()).freeze_input(initializers=True)
    proto = model.proto
    assert proto.ir_version == 4
    assert [i.name for i in proto.graph.input] == [data]
    assert [t.name for t in proto.graph.initializer] == [t.name for t in source.graph.initializer]  # untouched
    onnx.checker.check_model(proto, full_check=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    assert outputs_match(run_ort(proto, {data: x}), run_ort(source, {data: x}))
    out = model.save(tmp_path / "out.onnx")
    assert main(["simplify", str(out), "-o", str(tmp_path / "s.onnx"), "--verify", "-q"]) == 0
    assert len(onnx.load(tmp_path / "s.onnx").graph.node) <= 66  # from 105: the weights' ConstantOfShape fold now


def test_initializers_kept_as_inputs_at_ir_8_and_named_inputs_together(tmp_path: Path):
    model = promoted()
    model.graph.input.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4]))  # the default
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 1, 3, 3], np.float32), "scales"))
    del model.graph.input[1]  # one "scales" input, now backed by an initializer
    assert [i.name for i in model.graph.input] == ["x", "scales"]
    np.save(tmp_path / "x.npy", X)
    frozen = gs.load(model.SerializeToString()).freeze_input(initializers=True, input=[f"x={tmp_path / 'x.npy'}"])
    frozen = frozen.proto
    assert not frozen.graph.input and frozen.ir_version == model.ir_version
    assert outputs_match(run_ort(frozen, {}), run_ort(resize_model(), {"x": X}))


def test_nothing_to_freeze_is_said(capsys):
    with pytest.raises(GraphSurgeonError, match="--initializers"):
        gs.load(promoted().SerializeToString()).freeze_input()
    model = gs.load(promoted().SerializeToString()).freeze_input(initializers=True)
    assert [i.name for i in model.proto.graph.input] == ["x", "scales"]
    assert any("no graph input has an initializer" in n for n in model.notes)
