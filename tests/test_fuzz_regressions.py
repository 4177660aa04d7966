"""Regression tests for what the long fuzz run (bench/fuzz_run.py) found, one per root cause.

Each was a bad outcome of the oracle in tests/fuzz/engine.py: a crashed worker, an output onnxruntime or onnx's
checker refuses although the input passed, or a --verify that failed on a meaning-preserving edit.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import AttributeProto, TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.inference import UNTYPED_INPUT_CRASHES, full_check, infer_shapes
from graphsurgeon.core.numeric import _compare

REPO = Path(__file__).resolve().parents[1]


def conformance(name: str) -> onnx.ModelProto:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = next(c.model for c in collect_testcases(None) if c.name == name)
    copy = onnx.ModelProto()  # onnx keeps the cases: a test editing one must not edit it for the next
    copy.CopyFrom(found)
    return copy


def loads_in_ort(path: Path) -> bool:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return True


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("graphsurgeon: error: "), lines
    return lines[0]


# -- convert-opset below the opset an attribute appeared in (finding a) --------------------------------------
def cast_model(round_mode: str) -> onnx.ModelProto:
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT, round_mode=round_mode, saturate=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)], ir_version=11)


def test_convert_opset_drops_an_attribute_at_its_default_the_target_lacks(tmp_path: Path):
    """onnx's converter kept Cast's round_mode (new in opset 24) going down to 17: checker and onnxruntime
    refused the output. At the default it had, the attribute means what the older op always did."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(cast_model("up"), str(src))
    assert main(["convert-opset", str(src), "--opset", "17", "-o", str(out), "--verify", "-q"]) == 0
    converted = onnx.load(str(out))
    assert {a.name for a in converted.graph.node[0].attribute} == {"to"}
    onnx.checker.check_model(converted, full_check=True)
    assert loads_in_ort(out)


def test_convert_opset_refuses_an_attribute_the_target_cannot_express(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(cast_model("down"), str(src))
    assert main(["convert-opset", str(src), "--opset", "17", "-o", str(out)]) == 1
    assert "round_mode='down'" in one_error_line(capsys)
    assert not out.exists()


def test_convert_opset_refuses_a_type_the_target_lacks(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_cast_e8m0_FLOAT_to_FLOAT8E8M0"), str(src))
    assert main(["convert-opset", str(src), "--opset", "17", "-o", str(out)]) == 1
    assert "cannot convert from opset" in one_error_line(capsys)
    assert not out.exists()


# -- onnx's shape inference segfaulting on an untyped input (finding b) --------------------------------------
def label_encoder_behind_custom_op() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Foo", ["z"], ["x"], domain="custom"),
        helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", keys_strings=["a"], values_int64s=[1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [2])],
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 4), helper.make_opsetid("custom", 1)]
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("mutation", ["custom producer", "untyped graph input"])
def test_no_verb_dies_on_an_op_whose_inference_reads_an_unknown_type(tmp_path: Path, mutation: str):
    """The view worker died (SIGSEGV in onnx.shape_inference) on a LabelEncoder whose input had no type."""
    if mutation == "custom producer":
        model = label_encoder_behind_custom_op()
    else:
        model = conformance("test_ai_onnx_ml_label_encoder_string_int")
        model.graph.input[0].ClearField("type")
    src = tmp_path / "m.onnx"
    onnx.save(model, str(src))
    for verb, extra in (
        ("view", ["-o", str(tmp_path / "p.html")]),
        ("check", []),
        ("inspect", []),
        ("fold-constants", ["-o", str(tmp_path / "f.onnx")]),
        ("simplify", ["-o", str(tmp_path / "s.onnx")]),
        ("to-fp16", ["-o", str(tmp_path / "h.onnx")]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "graphsurgeon", verb, str(src), *extra, "-q"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert done.returncode in (0, 1), (verb, done.returncode, done.stderr[-500:])
        clear = done.stderr.startswith("graphsurgeon: error: ") or (verb == "check" and not done.stderr)
        assert done.returncode == 0 or clear, (verb, done.stderr)  # check: exit 1 with its report


def test_inference_still_types_what_follows_a_typed_risky_op():
    """Hidden only when an input's type is unknown: a typed LabelEncoder is inferred as before."""
    z = helper.make_tensor_value_info("z", TensorProto.STRING, [2])
    nodes = [
        helper.make_node("Identity", ["z"], ["x"]),
        helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", keys_strings=["a"], values_int64s=[1]),
        helper.make_node("Identity", ["y"], ["w"]),
    ]
    graph = helper.make_graph(nodes, "g", [z], [helper.make_value_info("w", onnx.TypeProto())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 4)])
    before = model.SerializeToString()
    inferred = infer_shapes(model, strict_mode=False)
    assert model.SerializeToString() == before
    assert inferred.graph.output[0].type.tensor_type.elem_type == TensorProto.INT64
    assert [n.domain for n in inferred.graph.node] == ["", "ai.onnx.ml", ""]
    assert [o.domain for o in inferred.opset_import] == ["", "ai.onnx.ml"]
    full_check(label_encoder_behind_custom_op())  # onnx's own full check dies on this one


_PLAIN = {
    AttributeProto.INT: 1,
    AttributeProto.FLOAT: 1.0,
    AttributeProto.STRING: "a",
    AttributeProto.INTS: [1],
    AttributeProto.FLOATS: [1.0],
    AttributeProto.STRINGS: ["a"],
}


def _probe_models():
    """Every op of onnx's registry with untyped (or left-out) inputs, its required attributes plus each optional
    one alone."""
    for schema in onnx.defs.get_all_schemas():
        required = {n: _PLAIN[a.type] for n, a in schema.attributes.items() if a.required and a.type in _PLAIN}
        optional = [n for n, a in schema.attributes.items() if not a.required and a.type in _PLAIN]
        for extra, left_out in itertools.product([None, *optional], [False, True]):
            attributes = dict(required, **({extra: _PLAIN[schema.attributes[extra].type]} if extra else {}))
            inputs = [f"x{i}" for i in range(max(schema.min_input, 1))]
            used = [""] * len(inputs) if left_out else inputs
            node = helper.make_node(schema.name, used, ["y"], domain=schema.domain, **attributes)
            graph = helper.make_graph([node], "g", [onnx.ValueInfoProto(name=x) for x in inputs], [])
            opsets = [helper.make_opsetid(schema.domain, schema.since_version)]
            if schema.domain:
                opsets.append(helper.make_opsetid("", 21))
            yield f"{schema.domain}::{schema.name} {extra or ''}", helper.make_model(graph, opset_imports=opsets)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="probes each op in a forked child")
def test_inference_survives_every_op_with_untyped_inputs():
    """What found UNTYPED_INPUT_CRASHES: a new onnx release adding a crashing op fails here, naming it."""
    died = []
    for label, model in _probe_models():
        pid = os.fork()
        if pid == 0:  # the child: a segfault ends only it
            os.close(1)
            os.close(2)
            try:
                infer_shapes(model, strict_mode=False, data_prop=True)
            except Exception:  # noqa: BLE001 - inference errors are fine, dying is not
                pass
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            died.append(label)
    assert not died, f"add to UNTYPED_INPUT_CRASHES: {died}"
    assert ("ai.onnx.ml", "LabelEncoder") in UNTYPED_INPUT_CRASHES


# -- --verify on float16 outputs (finding c) -----------------------------------------------------------------
def test_add_outputs_on_a_float16_attention_verifies(tmp_path: Path):
    """Exposing the no-op Casts of an expanded float16 Attention stops onnxruntime from running that chain in
    float32 (its Cast insertion and removal): Y moved by one float16 unit, which --verify called a mismatch."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_attention_4d_fp16_expanded"), str(src))
    argv = ["add-outputs", str(src), "--all-intermediate", "-o", str(out), "--verify", "-q"]
    assert main(argv) == 0


def test_float16_outputs_get_a_few_units_in_the_last_place():
    a = np.linspace(-1.6, 1.6, 64).astype(np.float16)
    b = a.copy()
    b[10] = np.nextafter(b[10], np.float16(2))  # one unit at a small value: a large relative error
    b[20] += np.float16(2**-10)  # one unit at the tensor's magnitude
    assert _compare("y", a, b, 1e-3, 1e-5).ok
    far = a.copy()
    far[5] += np.float16(0.05)
    assert not _compare("y", a, far, 1e-3, 1e-5).ok
    assert not _compare("y", a.astype(np.float32), b.astype(np.float32), 1e-3, 1e-5).ok  # float32: as before


# -- to-fp16 and sequences (fuzz: onnxruntime refused the output) ------------------------------------------
@pytest.mark.parametrize(
    "case",
    ["test_sequence_map_identity_1_sequence_1_tensor_expanded", "test_sequence_map_add_1_sequence_1_tensor_expanded"],
)
def test_to_fp16_leaves_ops_on_float_sequences_in_float32(tmp_path: Path, case: str):
    """SequenceInsert got a float16 tensor for a float32 sequence: the container's element type is tied to the
    tensor's by the op, not by a type parameter the plan sees."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance(case), str(src))
    assert main(["to-fp16", str(src), "-o", str(out), "--verify", "-q"]) == 0
    assert loads_in_ort(out)


# -- insert after a graph output's producer (fuzz: onnxruntime refused the output) ------------------------
def test_insert_keeps_the_declared_type_of_the_value_it_takes_over(tmp_path: Path):
    """The graph output's declared type described the producer's value; once renamed, that value had none, and
    onnxruntime's inference failed where the declared type had settled it."""
    model = conformance("test_cast_FLOAT16_to_DOUBLE")
    model.graph.node[0].attribute[0].i = -(1 << 62)  # as mutated: only the declared output type settles it
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert loads_in_ort(src)
    argv = ["insert", str(src), "--op", "Identity", "--inputs", "output", "--outputs", "output", "-o", str(out)]
    assert main([*argv, "-q"]) == 0
    result = gs.load(out).proto.graph
    kept = {vi.name: vi.type for vi in result.value_info}
    assert kept["output_pre_Identity"] == result.output[0].type
    assert loads_in_ort(out)


# -- externalize and an inline tensor without its data (fuzz: internal error) ------------------------------
def test_externalize_refuses_an_inline_tensor_missing_its_data(tmp_path: Path, capsys):
    """A tensor declaring [7, 2^25] floats with no data (under the 2 GB the loader refuses) crashed the copy."""
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[7, 1 << 25])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7, 1 << 25])],
        [huge],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "out" / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["externalize", str(src), "-o", str(out)]) == 1
    assert "holds 0 values" in one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


# -- a shape given to an input that declares none (fuzz: an output onnxruntime cannot load) ----------------
@pytest.mark.parametrize("verb", ["simplify", "set-shape"])
def test_a_rank_the_readers_refuse_is_refused_for_an_unshaped_input(tmp_path: Path, capsys, verb: str):
    model = conformance("test_attention_4d_attn_mask_4d")
    next(vi for vi in model.graph.input if vi.name == "V").type.tensor_type.ClearField("shape")
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    flag = "--input-shape" if verb == "simplify" else "--input"
    assert main([verb, str(src), flag, "V:", "-o", str(out)]) == 1
    assert "as V:[] the model does not fit together" in one_error_line(capsys)
    assert not out.exists()
    assert main([verb, str(src), flag, "V:2,3,6,8", "-o", str(out), "--verify", "-q"]) == 0


# -- insert after a Constant its declaration misdescribes (fuzz: an output onnxruntime cannot load) --------
def test_insert_reads_a_constants_real_type(tmp_path: Path, capsys):
    model = conformance("test_constant")
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.BOOL  # the Constant makes float
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    argv = ["insert", str(src), "--op", "Identity", "--inputs", "values", "--outputs", "values", "-o", str(out)]
    assert main(argv) == 1
    assert "would be tensor(float), but the readers of 'values' expect tensor(bool)" in one_error_line(capsys)
    assert not out.exists()


# -- to-fp16 and an axis outside the rank (fuzz: an output onnxruntime cannot load) -----------------------
def test_to_fp16_keeps_a_node_with_an_undefined_axis_in_float32(tmp_path: Path):
    """onnxruntime runs LogSoftmax(axis=-2^62) in float32 but refuses the float16 function body it inlines."""
    node = helper.make_node("LogSoftmax", ["x"], ["y"], axis=-(1 << 62))
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert loads_in_ort(src)
    assert main(["to-fp16", str(src), "-o", str(out), "-q"]) == 0
    assert loads_in_ort(out)


# -- Casts made in a model below opset 6 (fuzz: checker, then onnxruntime refused the output) ---------------
def test_a_cast_below_opset_6_is_refused(tmp_path: Path, capsys):
    """Cast-1 names its type as a string: onnx's checker took a numeric `to`'s fix, onnxruntime has no kernel."""
    model = conformance("test_gemm_transposeA")
    model.opset_import[0].version = 1
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["to-fp16", str(src), "-o", str(out)]) == 1
    assert "convert-opset to 6 or later first" in one_error_line(capsys)
    assert not out.exists()


# -- convert-opset across a change of meaning its signature does not show (fuzz: verify failed) -----------
def test_convert_opset_sees_softmax_change_meaning_at_13(tmp_path: Path):
    """Softmax-1 and Softmax-13 have the same inputs, outputs and attribute names; only the axis' default
    changed (1, with 2-D coercion -> -1). Taken as the same op, the opset import alone changed the results."""
    model = conformance("test_softmax_default_axis")
    model.opset_import[0].version = 11
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["convert-opset", str(src), "--opset", "15", "-o", str(out), "--verify", "-q"]) == 0


# -- add-postprocess on a type its op does not take (fuzz: an output onnxruntime cannot load) -------------
def test_add_postprocess_refuses_a_softmax_over_integers(tmp_path: Path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_bitwise_and_ui64_bcast_3v1d"), str(src))
    assert main(["add-postprocess", str(src), "--graph-output", "bitwiseand", "--softmax", "-1", "-o", str(out)]) == 1
    assert "Softmax cannot read graph output 'bitwiseand' (tensor(uint64))" in one_error_line(capsys)
    assert not out.exists()


# -- merge connecting values that cannot be each other (fuzz: outputs onnxruntime cannot load) ------------
def test_merge_refuses_a_connection_of_another_rank(tmp_path: Path, capsys):
    a, b, out = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_flatten_axis1"), str(a))  # b: [2, 60]
    onnx.save(conformance("test_flatten_axis3"), str(b))  # a: [2, 3, 4, 5]
    argv = ["merge", str(a), str(b), "--connect", "b:a", "--prefix-a", "a_", "--prefix-b", "b_", "-o", str(out)]
    assert main(argv) == 1
    assert "cannot feed B's input 'a'" in one_error_line(capsys)
    assert not out.exists()


# -- a string tensor holding raw bytes (fuzz: internal error while folding) --------------------------------
def test_fold_refuses_a_string_tensor_with_raw_bytes(tmp_path: Path, capsys):
    bad = TensorProto(name="s", data_type=TensorProto.STRING, dims=[1, 3], raw_data=b"\0" * 12)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"]), helper.make_node("Identity", ["t"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.STRING, [1, 3])],
        [bad],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    code = main(["fold-constants", str(src), "-o", str(out)])
    if code == 1:
        assert "holds raw bytes" in one_error_line(capsys)
        assert not out.exists()
    else:  # nothing needed its value
        assert code == 0


# -- add-preprocess on an IR 3 model (fuzz: the checker refused the unsorted output) -----------------------
def test_add_preprocess_keeps_an_ir3_graph_sorted(tmp_path: Path):
    model = conformance("test_dft_axis_opset19")
    model.ir_version = 3
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["add-preprocess", str(src), "--input", "x", "--scale", "0.5", "-o", str(out), "-q"]) == 0
    onnx.checker.check_model(str(out))


# -- an If with a constant condition lacking the branch it takes (fuzz: internal error) -------------------
def test_fold_refuses_an_if_missing_the_branch_it_takes(tmp_path: Path, capsys):
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])], "b", [], [helper.make_tensor_value_info("t", 1, [1])]
    )
    cond = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True]))
    node = helper.make_node("If", ["c"], ["y"], name="if", else_branch=branch)  # no then_branch
    graph = helper.make_graph(
        [cond, node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    assert main(["simplify", str(src), "-o", str(out)]) == 1
    assert "has no then_branch" in one_error_line(capsys)
    assert not out.exists()


# -- onnxruntime's SkipLayerNormFusion dying on an empty optional bias (fuzz: the worker died) -------------
def test_check_survives_a_layer_normalization_without_bias(tmp_path: Path):
    model = conformance("test_layer_normalization_3d_axis2_epsilon")
    model.graph.node[0].input[2] = ""  # the optional bias left out: onnxruntime's fusion segfaulted
    src = tmp_path / "m.onnx"
    onnx.save(model, str(src))
    for argv in (["check", str(src)], ["cleanup", str(src), "-o", str(tmp_path / "o.onnx"), "--verify", "-q"]):
        done = subprocess.run(
            [sys.executable, "-m", "graphsurgeon", *argv],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert done.returncode == 0, (argv[0], done.returncode, done.stderr[-300:])


# -- a risky op whose input is left out (fuzz: the worker died in onnx's inference) ------------------------
def test_inference_hides_a_risky_op_whose_input_is_left_out():
    model = conformance("test_regex_full_match_basic")
    model.graph.node[0].input[0] = ""
    inferred = infer_shapes(model, strict_mode=False)  # (in-process: a segfault would end the test run)
    assert inferred.graph.node[0].domain == model.graph.node[0].domain


# -- merge with node names both models use (fuzz: onnxruntime refused two nodes of one name) ----------------
def test_merge_refuses_node_names_both_models_use(tmp_path: Path, capsys):
    a = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="n")],
        "a",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    b = helper.make_graph(
        [helper.make_node("Neg", ["u"], ["v"], name="n")],
        "b",
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [2])],
    )
    pa, pb, out = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "o.onnx"
    for path, graph in ((pa, a), (pb, b)):
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["merge", str(pa), str(pb), "--connect", "y:u", "-o", str(out)]) == 1
    assert "both have node(s) named 'n'" in one_error_line(capsys)
    assert main(["merge", str(pa), str(pb), "--connect", "y:u", "--prefix-b", "b_", "-o", str(out), "-q"]) == 0
    assert loads_in_ort(out)


# -- add-preprocess below opset 7 (fuzz: onnxruntime has no Sub-6 kernel) ---------------------------------
def test_add_preprocess_refuses_an_opset_before_broadcasting(tmp_path: Path, capsys):
    model = conformance("test_basic_conv_with_padding")
    model.opset_import[0].version = 6
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["add-preprocess", str(src), "--input", "x", "--mean", "0.5", "-o", str(out)]) == 1
    assert "opset 7 or later" in one_error_line(capsys)


# -- folding a Concat whose axis numpy refuses (fuzz: internal error in the host fast path) ----------------
def test_fold_leaves_a_concat_with_a_huge_axis_to_onnxruntime(tmp_path: Path, capsys):
    a = onnx.numpy_helper.from_array(np.ones(2, np.int64), "a")
    nodes = [helper.make_node("Concat", ["a", "a"], ["c"], axis=1 << 40), helper.make_node("Identity", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("y", TensorProto.INT64, [4])], [a])
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    code = main(["fold-constants", str(src), "-o", str(out), "-q"])
    assert code in (0, 1)  # left unfolded (onnxruntime refuses the axis too), or refused: never an internal error
    if code == 1:
        one_error_line(capsys)


# -- cleanup and a model's only opset import (fuzz: an output onnxruntime cannot load) --------------------
def test_cleanup_keeps_the_last_opset_import(tmp_path: Path):
    model = conformance("test_relu")
    model.opset_import[0].domain = "ai.onnx.preview"  # no import of the default domain, nothing uses this one
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, str(src))
    assert main(["cleanup", str(src), "-o", str(out), "-q"]) == 0
    assert len(onnx.load(str(out)).opset_import) == 1


# -- convert-opset taking a Softmax below 13 on another axis than the last (fuzz: verify failed) ------------
def test_convert_opset_refuses_a_softmax_down_on_a_middle_axis(tmp_path: Path, capsys):
    """onnx's converter keeps axis=1: before opset 13 that normalizes over axes 1 and 2 of a [3, 4, 5] input."""
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(conformance("test_softmax_axis_1"), str(src))
    assert main(["convert-opset", str(src), "--opset", "11", "-o", str(out)]) == 1
    assert "only the last axis means the same" in one_error_line(capsys)
    onnx.save(conformance("test_softmax_axis_2"), str(src))
    assert main(["convert-opset", str(src), "--opset", "11", "-o", str(out), "--verify", "-q"]) == 0
