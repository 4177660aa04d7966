"""Regression tests for what the long fuzz run (bench/fuzz_run.py) found in the edits whose values a user
chooses (shapes, frozen values, attributes, retyped interfaces) and in verifying them, one per root cause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from tests.test_fuzz_regressions import REPO, conformance, loads_in_ort, one_error_line


# -- user-chosen values onnxruntime's inference refuses (fuzz: outputs onnxruntime cannot load) -------------
def test_freeze_input_refuses_a_value_the_model_cannot_take(tmp_path: Path, capsys):
    """Freezing Split's `split` to [1, 1] for an axis of 6 fits the input's declaration, not the model."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_split_variable_parts_1d_opset18"), str(src))
    assert main(["freeze-input", str(src), "--input", "split=1,1", "--fold", "-o", str(out)]) == 1
    assert "Mismatch between the sum of 'split'" in one_error_line(capsys)
    assert not out.exists()
    assert main(["freeze-input", str(src), "--input", "split=2,4", "--fold", "-o", str(out), "-q"]) == 0
    assert loads_in_ort(out)


def test_set_attr_refuses_what_inference_with_shape_values_refuses(tmp_path: Path, capsys):
    """Shape(end=1) feeding Expand: only shape-value propagation (which onnxruntime does) sees [3] vs [2]."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Expand", ["w", "s"], ["e"]),
        helper.make_node("ReduceSum", ["e"], ["y"], keepdims=0),
    ]
    w = onnx.numpy_helper.from_array(np.ones(3, np.float32), "w")
    x, y = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("y", 1, [])
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["set-attr", str(src), "--node", "shape", "--attr", "end=1", "-o", str(out)]) == 1
    assert "Incompatible dimensions" in one_error_line(capsys)
    assert not out.exists()
    assert main(["set-attr", str(src), "--node", "shape", "--attr", "start=1", "-o", str(out), "-q"]) == 0
    assert loads_in_ort(out)


# -- verifying a freed batch on a model whose items are not independent (fuzz: verify failed) --------------
@pytest.mark.parametrize("case", ["test_softmax_axis_0_expanded", "test_logsoftmax_axis_0_expanded"])
def test_make_dynamic_on_a_model_mixing_its_items_verifies_at_the_exported_shape(tmp_path: Path, capsys, case):
    """A Softmax over axis 0 mixes the items, so the result at batch 7 is not the original's batch-3 slices
    concatenated; the original itself shows that, and verify then compares at the exported shape."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance(case), str(src))
    assert main(["make-dynamic", str(src), "--leading", "-o", str(out), "--verify"]) == 0
    assert "compared at the exported shape only" in capsys.readouterr().out


# -- a rewrite whose node references went stale under IR < 4 (fuzz: an output onnxruntime cannot load) -----
def test_retype_narrowing_on_an_ir2_model_keeps_its_rewiring(tmp_path: Path):
    """IR < 4 turns a new initializer into a Constant node inserted first, which copied every node after it:
    the narrowing's saved node references then edited detached copies."""
    model = conformance("test_rotary_embedding_no_position_ids_expanded")
    model.ir_version = 2
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["retype", str(src), "--int64-to-int32", "-o", str(out), "--verify", "-q"]) == 0
    assert loads_in_ort(out)


def test_insert_nodes_keeps_the_stored_nodes():
    model = gs.load(conformance("test_rotary_embedding_no_position_ids_expanded").SerializeToString())
    last = model.proto.graph.node[len(model.proto.graph.node) - 1]
    model.insert_nodes(model.index.main, 0, [helper.make_node("Constant", [], ["k"], value_int=1)])
    assert model.proto.graph.node[len(model.proto.graph.node) - 1] is last


# -- make-dynamic on a Conv whose weight is a graph input (fuzz: verify failed) ---------------------------
def test_make_dynamic_refuses_to_free_a_conv_weights_leading_axis(tmp_path: Path, capsys):
    """Every input's leading axis included W's: the filters (output channels), which no batch is; the output
    was declared [batch, 1, 5, 5] while it had `batch` channels."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_basic_conv_with_padding"), str(src))
    assert main(["make-dynamic", str(src), "-o", str(out)]) == 1
    assert "cannot follow a changed dim of its weight" in one_error_line(capsys)
    assert not out.exists()
    assert main(["make-dynamic", str(src), "--input", "x", "-o", str(out), "--verify", "-q"]) == 0


# -- make-dynamic through a Transpose whose perm does not fit (fuzz: internal error) ----------------------
def test_make_dynamic_refuses_a_transpose_perm_its_input_cannot_take(tmp_path: Path, capsys):
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1, 1])],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["make-dynamic", str(src), "-o", str(out)]) == 1
    assert "perm [0, 2, 1] does not fit its input" in one_error_line(capsys)
    assert not out.exists()


# -- make-dynamic below the opset of the ops its rewrite makes (fuzz: the checker refused the output) ------
def test_make_dynamic_refuses_ops_the_models_opset_lacks(tmp_path: Path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])
    shape = onnx.numpy_helper.from_array(np.array([6], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)]), str(src))
    code = main(["make-dynamic", str(src), "-o", str(out), "-q"])
    if code == 0:  # what it made must exist at opset 6
        onnx.checker.check_model(str(out))
    else:
        assert "convert-opset first" in one_error_line(capsys)


# -- make-dynamic reading a constant whose data is short (fuzz: internal error) ---------------------------
def test_make_dynamic_refuses_a_shape_constant_missing_bytes(tmp_path: Path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    shape = onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    shape.raw_data = shape.raw_data[:13]
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["make-dynamic", str(src), "-o", str(out)]) == 1
    assert "but holds 13 bytes" in one_error_line(capsys)


# -- verifying a freed axis an op reads by position (fuzz: verify failed) ---------------------------------
def test_make_dynamic_on_a_trilu_row_axis_verifies_at_the_exported_shape(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_tril_neg"), str(src))
    assert main(["make-dynamic", str(src), "--input", "x", "-o", str(out), "--verify"]) == 0
    assert "depends on the item's position" in capsys.readouterr().out


# -- verify on an input that declares no shape (fuzz: onnxruntime aborted the process) --------------------
def test_verify_does_not_guess_a_shape_for_an_input_declaring_none(tmp_path: Path):
    model = conformance("test_attention_4d_causal_with_past_and_present")
    next(vi for vi in model.graph.input if vi.name == "past_key").type.tensor_type.ClearField("shape")
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    done = subprocess.run(  # a scalar fed as past_key made onnxruntime abort: in a child, to survive that
        [sys.executable, "-m", "graphsurgeon", "cleanup", str(src), "-o", str(out), "--verify"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert done.returncode == 0, done.stderr
    assert "'past_key' declares no shape" in done.stdout


# -- verify after a shape edit, on an input random values cannot stand for (fuzz: wrote, then exit 1) ------
def test_verify_of_a_shape_edit_reports_what_it_cannot_feed(tmp_path: Path):
    model = conformance("test_sequence_map_identity_1_sequence_1_tensor")
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    code = main(["set-shape", str(src), "--input", "x1:3", "-o", str(out), "--verify", "-q"])
    assert code in (0, 1)
    assert code == 0 or not out.exists()  # never written and then failed


# -- retype on a graph output listed twice (fuzz: an output onnxruntime cannot load) ------------------------
def test_retype_retypes_every_entry_of_a_duplicated_output(tmp_path: Path):
    model = conformance("test_sce_mean_no_weight_ii_3d_log_prob")
    model.graph.output.add().CopyFrom(model.graph.output[1])  # log_prob, twice
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["retype", str(src), "--graph-output", "log_prob:double", "-o", str(out), "-q"]) == 0
    kinds = {vi.type.tensor_type.elem_type for vi in onnx.load(str(out)).graph.output if vi.name == "log_prob"}
    assert kinds == {TensorProto.DOUBLE}
    assert loads_in_ort(out)


def test_retype_refuses_a_model_without_the_default_domain(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_ai_onnx_ml_tree_ensemble_set_membership"), str(src))
    assert main(["retype", str(src), "--input", "X:double", "-o", str(out)]) == 1
    assert "imports no ai.onnx opset" in one_error_line(capsys)
    assert not out.exists()


# -- a shape rewrite computing a value beyond int64 (fuzz: internal error) ---------------------------------
def test_a_shape_value_beyond_its_type_is_refused(tmp_path: Path, capsys):
    """The head size fixed to 1 through a named dim: the rotary split lengths went negative, then past int64."""
    model = conformance("test_rotary_embedding_no_position_ids_rotary_dim_expanded")
    last = model.graph.input[0].type.tensor_type.shape.dim[3]
    last.Clear()
    last.dim_param = "0"
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    argv = ["set-shape", str(src), "--input", "sin_cache:2,3,N", "--graph-output", "output:2,4,3,8", "--dim", "0=1"]
    assert main([*argv, "--simplify", "-o", str(out)]) == 1
    assert "does not fit int64" in one_error_line(capsys)
    assert not out.exists()


# -- a dim_param with no size through a Reshape (fuzz: internal error) -------------------------------------
def test_make_dynamic_refuses_an_odd_symbol_it_cannot_size(tmp_path: Path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "-1", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, None])
    shape = onnx.numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g", [x], [y], [shape])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    code = main(["make-dynamic", str(src), "-o", str(out), "-q"])
    assert code in (0, 1)
    if code == 1:
        one_error_line(capsys)


# -- to-fp16 on a tensor produced twice; top-k over too few values (fuzz: outputs onnxruntime refused) -------
def test_to_fp16_refuses_a_tensor_produced_twice(tmp_path: Path, capsys):
    model = conformance("test_constant")
    model.graph.node.add().CopyFrom(model.graph.node[0])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["to-fp16", str(src), "-o", str(out)]) == 1
    assert "produced more than once" in one_error_line(capsys)
    assert not out.exists()


def test_add_postprocess_refuses_more_top_values_than_the_axis_has(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_layer_normalization_4d_axis2_expanded_ver18"), str(src))
    assert main(["add-postprocess", str(src), "--graph-output", "InvStdDev", "--topk", "2", "-o", str(out)]) == 1
    assert "--topk 2 is more than the 1 value(s)" in one_error_line(capsys)
    assert not out.exists()


# -- verify of a batch fixed to another size on a model mixing its items (fuzz: verify failed) -------------
def test_fixing_the_batch_of_a_mixing_model_says_it_cannot_be_checked(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_mvn_expanded"), str(src))  # ReduceMean over axis 0: items mix
    assert main(["set-shape", str(src), "--input", "X:1,3,3,1", "-o", str(out), "--verify"]) == 0
    assert "could not verify" in capsys.readouterr().out


# -- a zero dim through a Reshape (fuzz: internal error) ----------------------------------------------------
def test_make_dynamic_refuses_a_reshape_of_a_zero_dim(tmp_path: Path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 0])
    shape = onnx.numpy_helper.from_array(np.array([2, 0], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)], "g", [x], [y], [shape])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["make-dynamic", str(src), "-o", str(out)]) == 1
    assert "has a dim of 0" in one_error_line(capsys)


def test_make_dynamic_on_a_cumsum_verifies_at_the_exported_shape(tmp_path: Path, capsys):
    """The independence check drew other inputs (CumSum's axis) than the per-slice check: it must draw the same."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_cumsum_1d_int32_exclusive"), str(src))
    assert main(["make-dynamic", str(src), "--input", "x", "-o", str(out), "--verify"]) == 0
    assert "compared at the exported shape only" in capsys.readouterr().out


# -- make-dynamic on a model importing no ai.onnx opset (fuzz: internal error reading Pad as opset 1) ------
def test_make_dynamic_refuses_a_model_without_the_default_opset(tmp_path: Path, capsys):
    model = conformance("test_constant_pad_negative_axes")
    del model.opset_import[:]
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["make-dynamic", str(src), "--input", "x", "-o", str(out)]) == 1
    assert "imports no ai.onnx opset" in one_error_line(capsys)


# -- a shape rule meeting an attribute past the rank (fuzz: internal errors in Split, Pad, Transpose...) -----
def test_a_shape_rule_failing_on_a_broken_node_is_a_refusal(tmp_path: Path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    a, b = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in "ab")
    graph = helper.make_graph([helper.make_node("Split", ["x"], ["a", "b"], axis=1 << 40)], "g", [x], [a, b])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    code = main(["make-dynamic", str(src), "-o", str(out), "-q"])
    assert code in (0, 1)
    if code == 1:
        assert "do not fit its input's shape" in one_error_line(capsys)


# -- onnx's data propagation and a declared dim of 2^62 (fuzz: a hang) --------------------------------------
def test_inference_does_not_hang_on_a_huge_declared_dim(tmp_path: Path):
    model = conformance("test_slice_neg_steps")
    axes = next(vi for vi in model.graph.input if vi.name == "axes")
    axes.type.tensor_type.shape.dim[0].dim_value = 1 << 62
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    done = subprocess.run(  # in a child with a timeout: a hang must fail the test, not stall the suite
        [sys.executable, "-m", "graphsurgeon", "freeze-input", str(src), "--input", "ends=1,1,1", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert done.returncode in (0, 1), done.stderr


# -- a named dim pinned where the graph needs another size (fuzz: verify failed) --------------------------
def test_set_shape_refuses_pinning_a_named_dim_the_graph_contradicts(tmp_path: Path, capsys):
    model = conformance("test_gemm_default_zero_bias")
    b = next(vi for vi in model.graph.input if vi.name == "b").type.tensor_type.shape.dim[0]
    b.Clear()
    b.dim_param = "K"  # exported as 5: a[3, 5] @ b[K, 4]
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["set-shape", str(src), "--dim", "K=1", "-o", str(out)]) == 1
    assert "does not fit together" in one_error_line(capsys)
    assert main(["set-shape", str(src), "--dim", "K=5", "-o", str(out), "--verify", "-q"]) == 0


# -- folding with a constant of an element type numpy cannot name (fuzz: internal error) -------------------
def test_fold_leaves_a_constant_of_an_unknown_element_type(tmp_path: Path):
    odd = TensorProto(name="a", data_type=99, dims=[3], raw_data=b"\0" * 12)
    nodes = [helper.make_node("Neg", ["a"], ["n"]), helper.make_node("Identity", ["n"], ["y"])]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [odd])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["fold-constants", str(src), "-o", str(out), "-q"]) in (0, 1)


def test_externalize_keeps_shape_tensors_inline_whatever_the_threshold(tmp_path: Path, capsys):
    """Fuzz run 8: `externalize --threshold 0` moved the IR-3 light models' ConstantOfShape shapes out, and
    onnxruntime reads those only from inline data (it could not load the result)."""
    source = Path(onnx.__file__).parent / "backend/test/data/light/light_inception_v1.onnx"
    out = tmp_path / "out" / "result.onnx"
    argv = ["externalize", str(source), "--threshold", "0", "--location", "sub/w.data", "-o", str(out), "--verify"]
    assert main(argv) == 0
    assert "stay inline" in capsys.readouterr().out
    assert loads_in_ort(out)


def test_make_dynamic_refuses_a_resize_sized_at_run_time(tmp_path: Path, capsys):
    """Fuzz run 8: Resize(X, sizes) with `sizes` a graph input: its output batch is sizes[0], not X's, so freeing
    X's batch declared Y [batch, ...] and the per-slice verify failed; it is refused, naming the input."""
    graph = helper.make_graph(
        [helper.make_node("Resize", ["X", "", "", "sizes"], ["Y"], mode="nearest")],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 4, 5]),
            helper.make_tensor_value_info("sizes", TensorProto.INT64, [4]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 9, 10])],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9), str(src))
    assert main(["make-dynamic", str(src), "--input", "X", "-o", str(out), "--verify"]) == 1
    assert "run-time value of 'sizes'" in one_error_line(capsys)
    assert not out.exists()


def test_remove_node_refuses_an_identity_the_opset_cannot_type(tmp_path: Path, capsys):
    """Fuzz run 9: bypassing SequenceInsert (opset 11) whose output is a graph output made an Identity of a
    sequence, which Identity takes only from opset 14: onnxruntime could not load the result."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_sequence_insert_at_front"), str(src))
    assert main(["remove-node", str(src), "--node", "SequenceInsert", "--input", "0", "-o", str(out)]) == 1
    assert "Identity (opset 11) does not take seq(tensor(int64))" in one_error_line(capsys)
    assert not out.exists()


def test_remove_node_leaves_an_identity_with_one_output(tmp_path: Path):
    """Fuzz run 9: bypassing a two-output node (LinearAttention, its second output unread) whose first output
    is a graph output left an Identity with two outputs, which the checker refuses."""
    model = conformance("test_linear_attention_prefill_with_past")
    del model.graph.output[1:]  # present_state: produced, read by nothing
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["remove-node", str(src), "--node", "LinearAttention", "-o", str(out), "-q"]) == 0
    result = onnx.load(str(out))
    assert [(n.op_type, list(n.output)) for n in result.graph.node] == [("Identity", ["output"])]
    onnx.checker.check_model(result, full_check=True)


def test_make_dynamic_refuses_to_free_the_length_of_a_resize_size_input(tmp_path: Path, capsys):
    """Fuzz run 10: `make-dynamic --input sizes` freed the length of Resize's `sizes` (one value per resized
    axis), and onnxruntime refused the result at load."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_resize_upsample_sizes_nearest_axes_3_2"), str(src))
    assert main(["make-dynamic", str(src), "--input", "sizes", "--axis", "-1", "-o", str(out), "--verify"]) == 1
    assert "its length cannot change" in one_error_line(capsys)
    assert not out.exists()
