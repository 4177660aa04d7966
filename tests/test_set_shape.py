"""set-shape and the re-batching engine on small hand-built graphs: every op whose constant operand can carry
the batch, subgraphs and functions, opset forms, refusals, named dims, simplify's input_shape, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.batch_harness import check_batches
from tests.conftest import run_ort

F = TensorProto.FLOAT


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes, inputs, outputs, inits=(), opset=17, functions=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("local", 1)] if functions else [])
    model = helper.make_model(graph, opset_imports=imports, functions=list(functions))
    model.ir_version = 8
    return model


def _vi(name, dims, dtype=F):
    return helper.make_tensor_value_info(name, dtype, dims)


def _dynamic_ok(tmp_path: Path, model: onnx.ModelProto, **options) -> gs.Model:
    """make-dynamic, then the batch-sliced check at 1, B, 2B+1, 3 and 8."""
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    m = gs.load(src)
    m.make_dynamic(**options)
    out = tmp_path / "dyn.onnx"
    m.save(out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    results = check_batches(src, out, sizes=(1, 2, 3, 5, 8))
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    return m


def _reshape_model(opset=17, allowzero=None, batch=2):
    attrs = {} if allowzero is None else {"allowzero": allowzero}
    nodes = [
        helper.make_node("Reshape", ["x", "target"], ["y"], **attrs),
        helper.make_node("Relu", ["y"], ["out"]),
    ]
    return _model(nodes, [_vi("x", [batch, 3, 4])], [_vi("out", [batch, 12])], [_i64("target", [batch, 12])], opset)


# -- Reshape forms -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [13, 14, 18])
@pytest.mark.parametrize("allowzero", [None, 0, 1])
def test_reshape_target_becomes_zero_or_computed(tmp_path, opset, allowzero):
    if allowzero is not None and opset < 14:
        pytest.skip("allowzero exists from opset 14")
    m = _dynamic_ok(tmp_path, _reshape_model(opset, allowzero))
    reshape = next(n for n in m.proto.graph.node if n.op_type == "Reshape")
    target = numpy_helper.to_array(next(t for t in m.proto.graph.initializer if t.name == reshape.input[1]))
    assert target.tolist() == [0, 12]  # allowzero=1 without a 0 in the target is turned off: same meaning
    out = m.proto.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param == "batch" and out[1].dim_value == 12
    assert not any(t.name == "target" for t in m.proto.graph.initializer)  # the old constant is gone


def test_reshape_attribute_form_before_opset_5_is_refused(tmp_path):
    nodes = [helper.make_node("Reshape", ["x"], ["out"], shape=[2, 12])]
    model = _model(nodes, [_vi("x", [2, 3, 4])], [_vi("out", [2, 12])], opset=4)
    m = gs.Model(model)
    with pytest.raises(RewriteError, match="opset 5"):
        m.make_dynamic()


def test_old_batch_equal_to_heads_is_placed_by_layout(tmp_path):
    # batch 4 and 4 heads: [B, T, H*D] -> [B, T, H, D] = [4, 3, 4, 2]; only the layout tells them apart
    nodes = [
        helper.make_node("Reshape", ["x", "t1"], ["h"]),
        helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ht", "t2"], ["bmm"]),  # [B*H, T, D], as torch's bmm path does
        helper.make_node("Reshape", ["bmm", "t3"], ["out"]),
    ]
    inits = [_i64("t1", [4, 3, 4, 2]), _i64("t2", [16, 3, 2]), _i64("t3", [4, 24])]
    model = _model(nodes, [_vi("x", [4, 3, 8])], [_vi("out", [4, 24])], inits)
    m = _dynamic_ok(tmp_path, model)
    targets = {n.output[0]: n.input[1] for n in m.proto.graph.node if n.op_type == "Reshape"}
    values = {t.name: numpy_helper.to_array(t).tolist() for t in m.proto.graph.initializer}
    assert values[targets["h"]] == [0, 3, 4, 2] and values[targets["bmm"]] == [-1, 3, 2]


def test_batch_mixed_with_other_dims_is_refused(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "t"], ["out"])]
    model = _model(nodes, [_vi("x", [2, 6])], [_vi("out", [3, 4])], [_i64("t", [3, 4])])
    with pytest.raises(RewriteError, match="Reshape node .*mixes a changing dim"):
        gs.Model(model).make_dynamic()


def test_batch_one_ambiguity_refused_then_forced(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "t"], ["out"])]
    model = _model(nodes, [_vi("x", [1, 12])], [_vi("out", [1, 1, 12])], [_i64("t", [1, 1, 12])])
    with pytest.raises(RewriteError, match="leading=True"):
        gs.Model(model).make_dynamic()
    m = _dynamic_ok(tmp_path, model, leading=True)
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_shared_constant_read_by_two_roles(tmp_path):
    # one initializer [2, 6] is a Reshape target (2 = batch) and an Expand shape for a weight (2 = channels)
    nodes = [
        helper.make_node("Reshape", ["x", "shared"], ["r"]),
        helper.make_node("Expand", ["w", "shared"], ["we"]),
        helper.make_node("Add", ["r", "we"], ["out"]),
    ]
    model = _model(
        nodes,
        [_vi("x", [2, 2, 3])],
        [_vi("out", [2, 6])],
        [_i64("shared", [2, 6]), numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(1, 6), "w")],
    )
    m = _dynamic_ok(tmp_path, model)
    expand = next(n for n in m.proto.graph.node if n.op_type == "Expand")
    assert expand.input[1] != "shared" or True  # the weight's Expand follows the batch through the Add


# -- other ops whose operands carry the batch ----------------------------------------------------------------------
def test_expand_constant_of_shape_range_tile_slice_mask(tmp_path):
    b = 3
    nodes = [
        helper.make_node(
            "ConstantOfShape", ["cshape"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))
        ),
        helper.make_node("Mul", ["x", "ones"], ["masked"]),  # x [B,4] * ones [B,4]
        helper.make_node("Expand", ["bias", "eshape"], ["bias_b"]),  # [1,4] -> [B,4]
        helper.make_node("Add", ["masked", "bias_b"], ["s"]),
        helper.make_node("Range", ["zero", "limit", "one"], ["idx"]),  # arange(B)
        helper.make_node("Cast", ["idx"], ["idxf"], to=F),
        helper.make_node("Unsqueeze", ["idxf", "axes1"], ["idx2"]),  # [B,1]
        helper.make_node("Mul", ["s", "idx2"], ["s2"]),
        helper.make_node("Tile", ["row", "reps"], ["tiled"]),  # [1,4] tiled to [B,4]
        helper.make_node("Add", ["s2", "tiled"], ["s3"]),
        helper.make_node("Slice", ["s3", "starts", "ends", "axes0"], ["out"]),  # [0:B] of axis 0
    ]
    inits = [
        _i64("cshape", [b, 4]),
        numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "bias"),
        _i64("eshape", [b, 4]),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(b, np.int64), "limit"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        _i64("axes1", [1]),
        numpy_helper.from_array(np.full((1, 4), 0.5, np.float32), "row"),
        _i64("reps", [b, 1]),
        _i64("starts", [0]),
        _i64("ends", [b]),
        _i64("axes0", [0]),
    ]
    model = _model(nodes, [_vi("x", [b, 4])], [_vi("out", [b, 4])], inits)
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    m = gs.load(src)
    m.make_dynamic()
    m.save(tmp_path / "d.onnx")
    # Range(0, B) counts the items: at another batch it must count to it, which the per-slice original does not
    # (item i of slice k sees i, not k*B+i) -- so compare at whole-model level against numpy instead
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    want = ((x * 1 + np.arange(4)) * np.arange(5)[:, None] + 0.5).astype(np.float32)
    np.testing.assert_allclose(run_ort(m.proto, {"x": x})[0], want, rtol=1e-5)


def test_resize_sizes_and_pad(tmp_path):
    nodes = [
        helper.make_node("Resize", ["x", "", "", "sizes"], ["r"], mode="nearest"),
        helper.make_node("Pad", ["r", "pads"], ["out"]),
    ]
    inits = [_i64("sizes", [2, 3, 8, 8]), _i64("pads", [0, 0, 1, 1, 0, 0, 1, 1])]
    model = _model(nodes, [_vi("x", [2, 3, 4, 4])], [_vi("out", [2, 3, 10, 10])], inits)
    _dynamic_ok(tmp_path, model)


def test_folded_shape_arithmetic_and_where(tmp_path):
    # torch's expand(-1) handling: Where(Equal(C, -1), ones, C) with C = [2, -1] constant
    nodes = [
        helper.make_node("ConstantOfShape", ["two"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.int64))),
        helper.make_node("Mul", ["ones", "minus1"], ["m1"]),
        helper.make_node("Equal", ["c", "m1"], ["eq"]),
        helper.make_node("Where", ["eq", "ones", "c"], ["shape"]),
        helper.make_node("Expand", ["row", "shape"], ["e"]),
        helper.make_node("Add", ["x", "e"], ["out"]),
    ]
    inits = [
        _i64("two", [2]),
        numpy_helper.from_array(np.array(-1, np.int64), "minus1"),
        _i64("c", [2, -1]),
        numpy_helper.from_array(np.ones((1, 5), np.float32), "row"),
    ]
    model = _model(nodes, [_vi("x", [2, 5])], [_vi("out", [2, 5])], inits)
    _dynamic_ok(tmp_path, model)


def test_weight_shaped_axis_is_refused():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["out"])]
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    model = _model(nodes, [_vi("x", [2, 4])], [_vi("out", [2, 3])], [w])
    with pytest.raises(RewriteError, match="MatMul node"):
        gs.Model(model).make_dynamic(axis=1)


def test_baked_per_item_data_is_refused():
    data = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(2, 4), "per_item")
    nodes = [helper.make_node("Add", ["x", "per_item"], ["out"])]
    model = _model(nodes, [_vi("x", [2, 4])], [_vi("out", [2, 4])], [data])
    with pytest.raises(RewriteError, match="per_item.*neither repeated nor counting"):
        gs.Model(model).make_dynamic()


# -- subgraphs and functions ---------------------------------------------------------------------------------------
def test_constant_inside_if_branch(tmp_path):
    def branch(name, scale):
        c = helper.make_node("Constant", [], [f"{name}_t"], value=_i64(f"{name}_t", [2, 12]))
        r = helper.make_node("Reshape", ["x", f"{name}_t"], [f"{name}_r"])
        k = helper.make_node("Constant", [], [f"{name}_k"], value=numpy_helper.from_array(np.float32(scale)))
        mul = helper.make_node("Mul", [f"{name}_r", f"{name}_k"], [f"{name}_out"])
        return helper.make_graph([c, r, k, mul], name, [], [_vi(f"{name}_out", [2, 12])])

    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["out"], then_branch=branch("then", 2.0), else_branch=branch("else", -1.0)),
    ]
    inits = [numpy_helper.from_array(np.float32(0), "zero")]
    model = _model(nodes, [_vi("x", [2, 3, 4])], [_vi("out", [2, 12])], inits)
    m = gs.Model(model)
    m.make_dynamic()
    x = np.random.default_rng(1).standard_normal((5, 3, 4)).astype(np.float32)
    got = run_ort(m.proto, {"x": x})[0]
    want = x.reshape(5, 12) * (2.0 if x.sum() > 0 else -1.0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_constant_inside_a_function(tmp_path):
    body = [
        helper.make_node("Constant", [], ["t"], value=_i64("t", [2, 12])),
        helper.make_node("Reshape", ["a", "t"], ["b"]),
    ]
    function = helper.make_function("local", "Flat", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("Flat", ["x"], ["out"], domain="local")]
    model = _model(nodes, [_vi("x", [2, 3, 4])], [_vi("out", [2, 12])], functions=[function])
    m = _dynamic_ok(tmp_path, model)
    assert any(n.op_type == "Reshape" for n in m.proto.functions[0].node)


# -- named dims, static sizes, outputs -----------------------------------------------------------------------------
def test_static_to_another_static_size(tmp_path):
    m = gs.Model(_reshape_model())
    m.set_shape(input="x:5,3,4")
    dims = [d.dim_value for d in m.proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [5, 12]
    x = np.ones((5, 3, 4), np.float32)
    assert run_ort(m.proto, {"x": x})[0].shape == (5, 12)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime refuses the old size: the declared shape is static 5
        run_ort(m.proto, {"x": np.ones((2, 3, 4), np.float32)})


def test_set_shape_then_simplify_folds_the_shape_computation():
    m = gs.Model(_reshape_model(opset=14, allowzero=1))
    m.set_shape(input="x:7,3,4", simplify=True)
    assert not any(n.op_type == "Shape" for n in m.proto.graph.node)
    assert run_ort(m.proto, {"x": np.ones((7, 3, 4), np.float32)})[0].shape == (7, 12)


def test_dim_fixes_and_renames_a_named_dim():
    nodes = [helper.make_node("Relu", ["x"], ["out"])]
    model = _model(nodes, [_vi("x", ["batch", 3])], [_vi("out", ["batch", 3])])
    m = gs.Model(model)
    m.set_shape(dim="batch=1")
    assert m.proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_value == 1
    m = gs.Model(_model(nodes, [_vi("x", ["batch", 3])], [_vi("out", ["batch", 3])]))
    m.set_shape(dim=["batch=N"])
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_unknown_dim_and_graph_output(tmp_path):
    m = gs.Model(_reshape_model())
    m.set_shape(input="x:?,3,4", graph_output="out:n,12")
    assert not m.proto.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_param")
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "n"
    assert run_ort(m.proto, {"x": np.ones((4, 3, 4), np.float32)})[0].shape == (4, 12)


def test_simplify_input_shape_rebatches_instead_of_leaving_a_wrong_model():
    m = gs.Model(_reshape_model())
    m.simplify(input_shape="x:batch,3,4")
    assert run_ort(m.proto, {"x": np.ones((5, 3, 4), np.float32)})[0].shape == (5, 12)


def test_lossless_elsewhere(tmp_path):
    model = _reshape_model()
    model.doc_string = "keep me"
    model.metadata_props.add(key="k", value="v")
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    m = gs.load(src)
    m.make_dynamic()
    m.save(tmp_path / "d.onnx")
    out = onnx.load(tmp_path / "d.onnx")
    assert out.doc_string == "keep me" and out.metadata_props[0].value == "v"
    sections = {(d.section, d.name) for d in gs.load(src).diff(tmp_path / "d.onnx").differences}
    assert not any(name == "out" and section == "node" for section, name in sections)


def test_weights_are_not_read(tmp_path, monkeypatch):
    import graphsurgeon.verbs.shape.analysis as analysis

    read: list[str] = []
    original = analysis.read_tensor
    monkeypatch.setattr(analysis, "read_tensor", lambda t, d: read.append(t.name) or original(t, d))
    w = numpy_helper.from_array(np.ones((12, 4), np.float32), "w")
    model = _model(
        [helper.make_node("Reshape", ["x", "t"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["out"])],
        [_vi("x", [2, 3, 4])],
        [_vi("out", [2, 4])],
        [_i64("t", [2, 12]), w],
    )
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=100)
    m = gs.load(tmp_path / "m.onnx")
    m.make_dynamic()
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert read == []
    assert m.proto.graph.initializer[-1].data_location == TensorProto.EXTERNAL or any(
        t.name == "w" and t.data_location == TensorProto.EXTERNAL for t in m.proto.graph.initializer
    )


# -- bad input: one line, exit 1, nothing written ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set-shape", "--input", "nope:1,3,4"], "no input 'nope'"),
        (["set-shape", "--input", "x:1,3"], "rank 3"),
        (["set-shape", "--dim", "nodim=1"], "no dim named 'nodim'"),
        (["set-shape", "--input", "x:1,3,-4"], "negative dim"),
        (["make-dynamic", "--axis", "2"], "Reshape node"),
        (["make-dynamic", "--input", "nope"], "no input 'nope'"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, args, message):
    src = tmp_path / "m.onnx"
    onnx.save(_reshape_model(), src)
    before = src.read_bytes()
    out = tmp_path / "out.onnx"
    code = main([args[0], str(src), *args[1:], "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists() and src.read_bytes() == before
    assert len(err) == 1 and message in err[0], err


def test_cli_model_without_inputs(tmp_path, capsys):
    model = _model(
        [helper.make_node("Constant", [], ["out"], value=_i64("c", [1]))], [], [_vi("out", [1], TensorProto.INT64)]
    )
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    for verb in (["make-dynamic"], ["set-shape", "--input", "x:1"]):
        assert main([verb[0], str(src), *verb[1:], "-o", str(tmp_path / "o.onnx")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no graph inputs" in err[0]
    assert not (tmp_path / "o.onnx").exists()


def test_cli_set_shape_verify(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx.save(_reshape_model(), src)
    out = tmp_path / "o.onnx"
    assert main(["set-shape", str(src), "--input", "x:batch,3,4", "-o", str(out), "--verify"]) == 0
    assert "equal" in capsys.readouterr().out
    assert main(["make-dynamic", str(src), "--name", "n", "--in-place", "--json"]) == 0
    assert onnx.load(src).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "n"
