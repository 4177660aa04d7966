"""Hostile input (issue 12), model side: broken tensors, wrong results on valid models (scalars, IR 3), saves
onnxruntime cannot load, odd shapes, cycles, recursion, usage errors. See tests/test_hostile.py for files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from tests.conftest import run_ort
from tests.test_hostile import matmul_model, model, refused, refused_cleanly, resize_model, snapshot, vi, write


# -- inline tensors that disagree with their shape -------------------------------------------------------------
def test_raw_data_length_disagreeing_with_dims_is_a_clear_fold_error(tmp_path, capsys):
    bad = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[3], raw_data=b"\0" * 10)
    nodes = [helper.make_node("Neg", ["c"], ["d"]), helper.make_node("Add", ["x", "d"], ["y"])]
    path = write(tmp_path, model(nodes, [vi("x", 1, [3])], [vi("y", 1, [3])], [bad]))
    for verb in ("fold-constants", "simplify"):
        refused_cleanly(capsys, tmp_path, [verb, str(path)], "declares shape [3] (12 bytes) but holds 10 bytes")


def test_huge_declared_size_without_data_is_refused_on_load(tmp_path, capsys):
    huge = TensorProto(name="sc", data_type=TensorProto.FLOAT, dims=[1 << 25, 1 << 25])
    path = write(tmp_path, resize_model(huge))
    argv = ["promote-input", str(path), "--node", "resize", "--attr", "scales", "-o", str(tmp_path / "o.onnx")]
    refused_cleanly(capsys, tmp_path, argv, "more than a protobuf can hold")


def test_dense_and_sparse_initializer_of_one_name_is_refused(tmp_path, capsys):
    proto = matmul_model()
    sparse = proto.graph.sparse_initializer.add()
    sparse.values.CopyFrom(helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]))
    sparse.indices.CopyFrom(helper.make_tensor("w_idx", TensorProto.INT64, [1], [0]))
    sparse.dims.extend([64, 64])
    refused_cleanly(capsys, tmp_path, ["inspect", str(write(tmp_path, proto))], "both a dense and a sparse initializer")


# -- wrong results on valid models ------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["fold-constants", "simplify"])
def test_folded_scalars_keep_shape_scalar(tmp_path, verb):
    c = numpy_helper.from_array(np.array([1, 2, 3], np.float32), "c")
    b = numpy_helper.from_array(np.array(True), "b")
    nodes = [helper.make_node("Size", ["c"], ["s"]), helper.make_node("Not", ["b"], ["nb"])]
    path = write(tmp_path, model(nodes, [], [vi("s", TensorProto.INT64, []), vi("nb", TensorProto.BOOL, [])], [c, b]))
    out = tmp_path / "o.onnx"
    assert main([verb, str(path), "-o", str(out), "-q"]) == 0
    size, negated = run_ort(str(out), {})
    assert size.shape == () and int(size) == 3
    assert negated.shape == () and not bool(negated)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


@pytest.mark.parametrize("verb", ["fold-constants", "simplify"])
def test_ir3_models_keep_every_initializer_a_graph_input(tmp_path, verb):
    """IR 3 (squeezenet in the onnx wheel): initializers must be graph inputs, so folded values become
    Constant nodes; a folded graph output still loads in onnxruntime."""
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([4], np.int64)))
    nodes = [
        shape,
        helper.make_node("Relu", ["shape"], ["folded"]),  # a constant graph output
        helper.make_node("Reshape", ["w", "shape"], ["flat"]),
        helper.make_node("Add", ["x", "flat"], ["y"]),
    ]
    outputs = [vi("y", 1, [4]), vi("folded", TensorProto.INT64, [1])]
    proto = model(nodes, [vi("x", 1, [4]), vi("w", 1, [2, 2])], outputs, [w], opset=8, ir=3)
    path = write(tmp_path, proto)
    out = tmp_path / "o.onnx"
    assert main([verb, str(path), "-o", str(out), "--verify", "-q"]) == 0
    result = onnx.load(str(out))
    inputs = {i.name for i in result.graph.input}
    assert all(t.name in inputs for t in result.graph.initializer)
    onnx.checker.check_model(result)
    got = run_ort(str(out), {"x": np.zeros(4, np.float32)})
    assert got[1].tolist() == [4]


def test_fold_never_leaves_a_value_info_without_type(tmp_path):
    """An If inlined by fold brings its branch's value_info along; each keeps its type (onnxruntime needs it)."""
    inner = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["o"])],
        "then",
        [],
        [vi("o", 1, [2])],
        value_info=[vi("t", 1, [2])],
    )
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["o2"])], "else", [], [vi("o2", 1, [2])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=other)
    path = write(tmp_path, model([node], [vi("x", 1, [2])], [vi("y", 1, [2])], [cond]))
    for verb in ("fold-constants", "simplify"):
        out = tmp_path / f"{verb}.onnx"
        assert main([verb, str(path), "-o", str(out), "--verify", "-q"]) == 0
        result = onnx.load(str(out))
        assert all(info.HasField("type") for info in result.graph.value_info)
        run_ort(str(out), {"x": np.ones(2, np.float32)})


# -- external data thresholds and shape tensors -----------------------------------------------------------------
def test_negative_threshold_is_refused(tmp_path, capsys):
    src = write(tmp_path, matmul_model())
    assert main(["cleanup", str(src), "--external-data", "w.data", "--external-data-threshold", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("usage: graphsurgeon cleanup") and "-1" in err[1]
    with pytest.raises(gs.GraphSurgeonError, match="cannot be negative"):
        gs.load(src).save(tmp_path / "o.onnx", external_data="w.data", external_data_threshold=-1)


def test_shape_tensors_stay_inline_so_onnxruntime_can_load(tmp_path):
    shape = numpy_helper.from_array(np.array([64, 1], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["y"])]
    proto = matmul_model()
    proto.graph.node.extend(nodes[1:])
    proto.graph.node[0].output[0] = "h"
    proto.graph.initializer.append(shape)
    proto.graph.output[0].CopyFrom(vi("y", 1, [64, 1]))
    src = write(tmp_path, proto)
    out = tmp_path / "o.onnx"
    assert (
        main(["cleanup", str(src), "-o", str(out), "--external-data", "w.data", "--external-data-threshold", "0"]) == 0
    )
    result = onnx.load(str(out), load_external_data=False)
    kinds = {t.name: t.data_location for t in result.graph.initializer}
    assert kinds == {"w": TensorProto.EXTERNAL, "shape": TensorProto.DEFAULT}
    x = np.ones((1, 64), np.float32)
    assert run_ort(str(out), {"x": x})[0].tolist() == run_ort(str(src), {"x": x})[0].tolist()


# -- usage errors, odd dim_params, cycles, recursion, nesting ---------------------------------------------------
def test_usage_errors_are_short(tmp_path, capsys):
    src = write(tmp_path, matmul_model())
    assert main(["cleanup", str(src), "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("usage: graphsurgeon cleanup") and "--no-such-flag" in err[1]


@pytest.mark.parametrize("dim_param", ["", " ", "1", "-1", "N+1", "a b", "?", "unk__0", "é", "x" * 200, "N/2"])
def test_odd_dim_params_still_make_valid_models(tmp_path, dim_param):
    c = numpy_helper.from_array(np.array([2], np.int64), "c")
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Concat", ["s", "c"], ["t"], axis=0),
        helper.make_node("Reshape", ["x", "s"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    proto = model(nodes, [vi("x", 1, [dim_param, 3])], [vi("y", 1, [dim_param, 3]), vi("t", 7, [3])], [c])
    path = write(tmp_path, proto)
    out = tmp_path / "o.onnx"
    assert main(["simplify", str(path), "-o", str(out), "--verify", "-q"]) == 0
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_a_cycle_anywhere_is_refused(tmp_path, capsys):
    nodes = [
        helper.make_node("Resize", ["x", "", "sc"], ["y"], name="resize", mode="nearest"),
        helper.make_node("Relu", ["b"], ["a"], name="ca"),
        helper.make_node("Relu", ["a"], ["b"], name="cb"),
    ]
    proto = resize_model()
    proto.graph.node.extend(nodes[1:])
    path = write(tmp_path, proto)
    argv = ["promote-input", str(path), "--node", "resize", "--attr", "scales", "-o", str(tmp_path / "o.onnx")]
    refused_cleanly(capsys, tmp_path, argv, "has a cycle")
    refused_cleanly(capsys, tmp_path, ["cleanup", str(path), "-o", str(tmp_path / "o.onnx")], "has a cycle")


def test_recursive_functions_are_refused(tmp_path, capsys):
    proto = model([helper.make_node("F", ["x"], ["y"], domain="local")], [vi("x", 1, [1])], [vi("y", 1, [1])])
    proto.opset_import.append(helper.make_opsetid("local", 1))
    body = [helper.make_node("F", ["a"], ["b"], domain="local")]
    proto.functions.append(helper.make_function("local", "F", ["a"], ["b"], body, [helper.make_opsetid("", 17)]))
    refused_cleanly(capsys, tmp_path, ["inspect", str(write(tmp_path, proto))], "functions call themselves")


def test_a_model_without_outputs_is_not_emptied(tmp_path, capsys):
    proto = matmul_model()
    del proto.graph.output[:]
    path = write(tmp_path, proto)
    refused_cleanly(capsys, tmp_path, ["simplify", str(path), "-o", str(tmp_path / "o.onnx")], "no graph output")


def test_deeply_nested_ifs_are_linear_for_extract(tmp_path):
    """If nodes 25 deep: extract used to revisit every nested node once per ancestor (2^25 steps)."""
    depth = 25
    flat = helper.make_graph([helper.make_node("Identity", ["c"], ["o0"])], "b", [], [vi("o0", 9, [])])
    inner = flat
    for level in range(1, depth):
        else_branch = helper.make_graph(
            [helper.make_node("Identity", ["c"], [f"o{level}"])], "e", [], [vi(f"o{level}", 9, [])]
        )
        node = helper.make_node("If", ["c"], [f"o{level}"], then_branch=inner, else_branch=else_branch)
        inner = helper.make_graph([node], f"b{level}", [], [vi(f"o{level}", 9, [])])
    proto = model(list(inner.node), [vi("c", 9, [])], [vi(f"o{depth - 1}", 9, [])])
    path = write(tmp_path, proto)
    assert main(["extract", str(path), "--outputs", f"o{depth - 1}", "-o", str(tmp_path / "o.onnx"), "-q"]) == 0


def test_refusals_leave_nothing_behind(tmp_path, capsys):
    """A failed save into new folders removes the folders it made."""
    src = write(tmp_path, matmul_model())
    before = snapshot(tmp_path)
    refused(
        capsys,
        ["cleanup", str(src), "-o", str(tmp_path / "a" / "b" / "o.onnx"), "--external-data", "../../x"],
        "leaves",
    )
    assert snapshot(tmp_path) == before
