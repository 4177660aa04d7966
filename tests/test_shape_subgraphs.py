"""The re-batching engine inside Loop and Scan bodies, and where a changed dim would otherwise be lost: a Reshape
target the analysis cannot follow, shape arithmetic exported through floats, IR 3 initializers listed as inputs.
Each model is hand-built (ir_version 8 unless stated), made dynamic, and checked per batch slice at 1, 2, 3, 5, 8
(tests/batch_harness.py) -- or refused in one sentence naming the node."""

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

F, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _vi(name, dims, dtype=F):
    return helper.make_tensor_value_info(name, dtype, dims)


def _model(nodes, inputs, outputs, inits=(), opset=17, ir=8, check=True) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def _dynamic_ok(tmp_path: Path, model: onnx.ModelProto, sizes=(1, 2, 3, 5, 8)) -> onnx.ModelProto:
    src, out = tmp_path / "m.onnx", tmp_path / "dyn.onnx"
    onnx.save(model, src)
    m = gs.load(src)
    m.make_dynamic()
    m.save(out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    results = check_batches(src, out, sizes=sizes)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    return onnx.load(out)


def _body(graph: onnx.ModelProto) -> onnx.GraphProto:
    return next(a.g for a in graph.graph.node[-1].attribute if a.name == "body")


def _loop_state(b=2):
    """Carried x [B,3,4]: the body reshapes it to [B,12] with a body constant and back with an outer one;
    a scan output stacks [B,12] per iteration (3 iterations)."""
    body = helper.make_graph(
        [
            helper.make_node("Constant", [], ["t"], value=_i64("t", [b, 12])),
            helper.make_node("Reshape", ["x_in", "t"], ["r"]),
            helper.make_node("Relu", ["r"], ["rr"]),
            helper.make_node("Reshape", ["rr", "back"], ["x_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Reshape", ["x_in", "t"], ["scan_out"]),
        ],
        "body",
        [_vi("i", [], I64), _vi("cond_in", [], BOOL), _vi("x_in", [b, 3, 4])],
        [_vi("cond_out", [], BOOL), _vi("x_out", [b, 3, 4]), _vi("scan_out", [b, 12])],
    )
    nodes = [helper.make_node("Loop", ["M", "", "x"], ["y", "scans"], body=body)]
    inits = [numpy_helper.from_array(np.array(3, np.int64), "M"), _i64("back", [b, 3, 4])]
    return _model(nodes, [_vi("x", [b, 3, 4])], [_vi("y", [b, 3, 4]), _vi("scans", [3, b, 12])], inits)


def test_loop_body_constants_follow_the_batch(tmp_path):
    out = _dynamic_ok(tmp_path, _loop_state())
    body = _body(out)
    assert not any(n.op_type == "Constant" for n in body.node)  # the body constant now follows the batch
    assert body.input[2].type.tensor_type.shape.dim[0].dim_param == "batch"  # the carried state's declaration
    scans = out.graph.output[1].type.tensor_type.shape.dim
    assert [scans[0].dim_value, scans[1].dim_param, scans[2].dim_value] == [3, "batch", 12]


def test_loop_counting_the_items_from_the_shape_follows(tmp_path):
    # trip count = Shape(x)[0]: the loop visits every item; its scan output carries the batch
    body = helper.make_graph(
        [
            helper.make_node("Gather", ["x", "i"], ["item"], axis=0),
            helper.make_node("Constant", [], ["t"], value=_i64("t", [2, 6])),
            helper.make_node("Reshape", ["item", "t"], ["y_t"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [_vi("i", [], I64), _vi("cond_in", [], BOOL)],
        [_vi("cond_out", [], BOOL), _vi("y_t", [2, 6])],
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["count"], axis=0),
        helper.make_node("Loop", ["count", ""], ["ys"], body=body),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero")]
    out = _dynamic_ok(tmp_path, _model(nodes, [_vi("x", [3, 3, 4])], [_vi("ys", [3, 2, 6])], inits))
    assert out.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_loop_with_a_trip_count_baked_at_the_batch_is_refused(tmp_path, capsys):
    body = helper.make_graph(
        [
            helper.make_node("Gather", ["x", "i"], ["item"], axis=0),
            helper.make_node("Relu", ["item"], ["y_t"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [_vi("i", [], I64), _vi("cond_in", [], BOOL)],
        [_vi("cond_out", [], BOOL), _vi("y_t", [3])],
    )
    nodes = [helper.make_node("Loop", ["M", ""], ["ys"], body=body, name="per_item")]
    model = _model(
        nodes, [_vi("x", [2, 3])], [_vi("ys", [2, 3])], [numpy_helper.from_array(np.array(2, np.int64), "M")]
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, src)
    assert main(["make-dynamic", str(src), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Loop node 'per_item'" in err[0] and "trip count 2" in err[0] and not out.exists()


def _scan_over_time(b=2, t=5):
    """Scan over axis 1 (time) of x [B,T,4] with state [B,4]; the body reshapes [B,4] -> [B,2,2] and back."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "xt"], ["sum"]),
            helper.make_node("Constant", [], ["t"], value=_i64("t", [b, 2, 2])),
            helper.make_node("Reshape", ["sum", "t"], ["r"]),
            helper.make_node("Constant", [], ["t2"], value=_i64("t2", [b, 4])),
            helper.make_node("Reshape", ["r", "t2"], ["s_out"]),
            helper.make_node("Identity", ["s_out"], ["y_t"]),
        ],
        "body",
        [_vi("s_in", [b, 4]), _vi("xt", [b, 4])],
        [_vi("s_out", [b, 4]), _vi("y_t", [b, 4])],
    )
    scan = helper.make_node(
        "Scan", ["s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1, scan_input_axes=[1], scan_output_axes=[1]
    )
    return _model([scan], [_vi("s0", [b, 4]), _vi("x", [b, t, 4])], [_vi("s", [b, 4]), _vi("ys", [b, t, 4])])


def test_scan_over_another_axis_follows_the_batch(tmp_path):
    out = _dynamic_ok(tmp_path, _scan_over_time())
    body = _body(out)
    assert [vi.type.tensor_type.shape.dim[0].dim_param for vi in body.input] == ["batch", "batch"]
    ys = out.graph.output[1].type.tensor_type.shape.dim
    assert [ys[0].dim_param, ys[1].dim_value, ys[2].dim_value] == ["batch", 5, 4]


def test_scan_over_another_axis_passes_verify(tmp_path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_scan_over_time(), src)
    assert main(["make-dynamic", str(src), "-o", str(out), "--verify"]) == 0
    assert "per batch slice" in capsys.readouterr().out


def test_scan_over_the_batch_axis(tmp_path):
    # the body sees one item; the scan output's length is the batch
    body = helper.make_graph(
        [
            helper.make_node("Constant", [], ["t"], value=_i64("t", [12])),
            helper.make_node("Reshape", ["xt", "t"], ["y_t"]),
        ],
        "body",
        [_vi("xt", [3, 4])],
        [_vi("y_t", [12])],
    )
    scan = helper.make_node("Scan", ["x"], ["ys"], body=body, num_scan_inputs=1)
    out = _dynamic_ok(tmp_path, _model([scan], [_vi("x", [2, 3, 4])], [_vi("ys", [2, 12])]))
    assert out.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


# -- a changed dim must never be lost silently ---------------------------------------------------------------------
def _flatten_by(target_is_input: bool, ir: int) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="flatten"),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    inputs = [_vi("x", [2, 3, 4])] + ([_vi("target", [2], I64)] if target_is_input else [])
    return _model(nodes, inputs, [_vi("y", [2, 12])], [_i64("target", [2, 12])], ir=ir)


def test_ir3_initializers_listed_as_inputs_are_constants(tmp_path):
    model = _flatten_by(target_is_input=True, ir=3)
    out = _dynamic_ok(tmp_path, model)
    assert out.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    inputs = {vi.name for vi in out.graph.input}
    assert {t.name for t in out.graph.initializer} <= inputs  # IR 3: new values are Constant nodes


def test_a_target_a_caller_may_replace_is_refused(tmp_path):
    with pytest.raises(RewriteError, match="Reshape node 'flatten'.*'target', a graph input with a default.*freeze"):
        gs.Model(_flatten_by(target_is_input=True, ir=8)).make_dynamic()


def test_an_unknown_output_shape_is_refused_not_taken_from_the_export():
    # If branches that disagree on the shape: downstream, the exported [2, ...] shapes would be wrong
    def branch(name, target):
        nodes = [helper.make_node("Reshape", ["x", f"{name}_t"], [f"{name}_out"])]
        outputs = [_vi(f"{name}_out", [2, 12] if len(target) == 2 else [24])]
        return helper.make_graph(nodes, name, [], outputs, initializer=[_i64(f"{name}_t", target)])

    nodes = [
        helper.make_node("If", ["cond"], ["r"], then_branch=branch("a", [-1, 12]), else_branch=branch("b", [24])),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    model = _model(nodes, [_vi("x", [2, 3, 4]), _vi("cond", [], BOOL)], [_vi("y", None)], check=False)
    with pytest.raises(RewriteError, match="If node.*cannot be followed"):
        gs.Model(model).make_dynamic(input=["x"])


def test_shape_arithmetic_through_floats_and_reduce_prod(tmp_path):
    # Shape -> Cast(float) -> Concat with a float 12 -> Cast(int64): the target follows the batch;
    # ReduceProd(Shape) with keepdims: the element count, a 1-element vector
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        helper.make_node("Cast", ["b"], ["bf"], to=F),
        helper.make_node("Concat", ["bf", "twelve"], ["tf"], axis=0),
        helper.make_node("Cast", ["tf"], ["target"], to=I64),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Shape", ["r"], ["rshape"]),
        helper.make_node("ReduceProd", ["rshape"], ["count"]),
        helper.make_node("Reshape", ["r", "count"], ["y"]),
    ]
    inits = [_i64("zero", [0]), numpy_helper.from_array(np.array([12.0], np.float32), "twelve")]
    src = tmp_path / "m.onnx"
    onnx.save(_model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [24])], inits, opset=13), src)
    m = gs.load(src)
    m.make_dynamic()
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(run_ort(m.proto, {"x": x})[0], x.reshape(-1))
    assert m.proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "12*batch"
