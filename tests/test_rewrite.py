"""rewrite: pattern matching on the protobuf (onnx-graphsurgeon's toy-plugin pattern cases), conditions, the
replacement (in place, lossless elsewhere), clear refusals, and a custom op whose body comes along."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.index import ModelIndex
from graphsurgeon.core.verb import OptionError
from graphsurgeon.verbs.pattern import parse_pattern
from tests.conftest import CORPUS, run_ort

TOY = CORPUS / "onnx-graphsurgeon"


def toy(case: str) -> Path:
    return TOY / f"test_toyPlugin_{case}.onnx"


def ops(model: gs.Model) -> list[str]:
    return [f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in model.proto.graph.node]


def index_is_fresh(model: gs.Model) -> bool:
    """The indexes the edits kept equal a fresh build over the edited proto."""
    fresh = ModelIndex(model.proto).main
    kept = model.index.main
    return {k: id(v) for k, v in kept.producer.items()} == {k: id(v) for k, v in fresh.producer.items()} and {
        k: sorted(id(n) for n in v) for k, v in kept.consumers.items() if v
    } == {k: sorted(id(n) for n in v) for k, v in fresh.consumers.items() if v}


def gelu_model(batch: int = 2) -> onnx.ModelProto:
    """Linear -> erf-GELU (as TorchScript exports it) -> Add, twice: two matches; Constant nodes for the numbers."""
    nodes, inits = [], [helper.make_tensor("w", TensorProto.FLOAT, [8, 8], np.random.default_rng(0).random(64))]

    def const(name: str, value: float) -> str:
        nodes.append(helper.make_node("Constant", [], [name], name=name, value_float=value))
        return name

    x = "x"
    for i in range(2):
        h = f"h{i}"
        nodes.append(helper.make_node("MatMul", [x, "w"], [h], name=f"mm{i}"))
        nodes.append(helper.make_node("Div", [h, const(f"sqrt2_{i}", 1.4142135)], [f"d{i}"], name=f"div{i}"))
        nodes.append(helper.make_node("Erf", [f"d{i}"], [f"e{i}"], name=f"erf{i}"))
        nodes.append(helper.make_node("Add", [f"e{i}", const(f"one_{i}", 1.0)], [f"a{i}"], name=f"add{i}"))
        nodes.append(helper.make_node("Mul", [h, f"a{i}"], [f"m{i}"], name=f"mul{i}"))
        nodes.append(helper.make_node("Mul", [f"m{i}", const(f"half_{i}", 0.5)], [f"g{i}"], name=f"gelu{i}"))
        x = f"g{i}"
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [batch, 8])],
        inits,
        doc_string="kept",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.metadata_props.add(key="author", value="kept")
    return model


GELU = "Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1.0)), 0.5)"


# -- the pattern language ------------------------------------------------------------------------------------
def test_pattern_parses_calls_names_numbers_none_and_attributes():
    call = parse_pattern('com.microsoft::Foo(Resize(x, None, s, mode="cubic", axes=[2, 3]), _, 0.5)')
    assert call.label == "com.microsoft::Foo"
    assert call.names() == ["x", "s"]
    assert call.args[0].attributes == {"mode": "cubic", "axes": [2, 3]}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Relu(x", "column 7: expected ',' or ')'"),
        ("x", "must be an op call"),
        ("Relu(x))", "unexpected ')'"),
        ("Relu(a=1, x)", "inputs come before attribute conditions"),
        ("Relu(x $)", "unexpected '$'"),
        ("Relu(" * 40 + "x" + ")" * 40, "nested deeper than"),
    ],
)
def test_pattern_syntax_errors_name_the_column(text, fragment):
    with pytest.raises(OptionError, match="`pattern`") as e:
        parse_pattern(text)
    assert fragment in str(e.value)


# -- matching: onnx-graphsurgeon's toy-plugin cases ----------------------------------------------------------
def test_base_case_matches_and_the_root_keeps_its_output_names():
    model = gs.load(toy("base_match_case")).rewrite(pattern="C(A(x), B(x))", op="trt::ToyPlugin")
    assert ops(model) == ["O", "trt::ToyPlugin", "D", "E"]
    plugin = model.proto.graph.node[1]
    assert list(plugin.input) == ["i1"] and list(plugin.output) == ["i4"]
    assert model.opset_version("trt") == 1
    assert index_is_fresh(model)
    assert [c.action for c in model.changes] == ["replaced", "added"]


@pytest.mark.parametrize(
    "case, why",
    [
        ("intermediate_output_unmatch_case", "the inner tensor 'i3' is a graph output"),
        ("intermediate_output_to_other_node_unmatch_case", "the inner tensor 'i3' is also read by 'n7'"),
    ],
)
def test_inner_tensors_read_outside_stop_the_match(case, why):
    model = gs.load(toy(case))
    with pytest.raises(gs.RewriteError, match="matches nothing") as e:
        model.rewrite(pattern="C(A(x), B(x))", op="trt::ToyPlugin")
    assert why in str(e.value)
    assert len(model.changes) == 0


@pytest.mark.parametrize("case", ["constant_initializer_match_case", "constant_node_match_case"])
def test_constant_condition_matches_initializers_and_constant_nodes(case):
    model = gs.load(toy(case)).rewrite(pattern="B(A(x), c)", op="trt::ToyPlugin", constant=["c"])
    assert "trt::ToyPlugin" in ops(model)
    plugin = next(n for n in model.proto.graph.node if n.op_type == "ToyPlugin")
    assert list(plugin.input) == ["i0", "i2"]


def test_constant_condition_refuses_a_computed_tensor():
    with pytest.raises(gs.RewriteError, match="'x' .* is not a constant"):
        gs.load(toy("base_match_case")).rewrite(pattern="A(x)", op="trt::P", constant=["x"])


def test_the_same_name_must_be_the_same_tensor():
    # C(A(i1), B(i1)): A and B read the same tensor; a pattern asking for two different names still matches,
    # one asking C(A(x), x) does not (C's second input is B's output)
    model = gs.load(toy("base_match_case"))
    with pytest.raises(gs.RewriteError, match="matches nothing"):
        model.rewrite(pattern="C(A(x), x)", op="P")
    assert "P" in ops(gs.load(toy("base_match_case")).rewrite(pattern="C(A(x), B(y))", op="P", inputs=["x"]))


# -- real-looking rewrites -----------------------------------------------------------------------------------
def test_erf_gelu_becomes_one_onnxruntime_gelu_per_match_and_computes_the_same(tmp_path):
    original = gelu_model()
    model = gs.load(original.SerializeToString()).rewrite(pattern=GELU, op="com.microsoft::Gelu")
    assert ops(model) == ["MatMul", "com.microsoft::Gelu", "MatMul", "com.microsoft::Gelu"]
    assert not [i for i in model.proto.graph.node if i.op_type == "Constant"]  # the numbers' constants went too
    assert model.proto.graph.doc_string == "kept" and model.proto.metadata_props[0].value == "kept"
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    np.testing.assert_allclose(run_ort(model.proto, {"x": x})[0], run_ort(original, {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert index_is_fresh(model)


def test_a_number_matches_only_its_value():
    with pytest.raises(gs.RewriteError, match="not a constant equal to 0.7"):
        gs.load(gelu_model().SerializeToString()).rewrite(pattern=GELU.replace("0.5)", "0.7)"), op="P")


def test_attribute_conditions_and_absent_inputs(tmp_path):
    from tests.test_promote_input import resize_model

    model = gs.load(resize_model())  # Resize(x, "", baked) with mode=linear
    with pytest.raises(gs.RewriteError, match="has mode='linear', not 'cubic'"):
        model.rewrite(pattern="Resize(x, None, s, mode=cubic)", op="P")
    model.rewrite(pattern="Resize(x, None, s, mode=linear)", op="trt::ResizePlugin", inputs=["x", "s"], name="up")
    node = model.node("up")
    assert (node.op_type, list(node.input)) == ("ResizePlugin", ["x", "baked"])


def test_optional_notes_a_miss_and_changes_nothing():
    model = gs.load(toy("base_match_case")).rewrite(pattern="Softmax(x)", op="P", optional=True)
    assert len(model.changes) == 0 and "matched nothing (no Softmax node in the model)" in model.notes[0]


def test_attributes_of_the_new_op_are_typed(tmp_path):
    model = gs.load(toy("base_match_case"))
    model.rewrite(pattern="C(A(x), B(x))", op="trt::P", attribute=["alpha:0.5", "axes:1,2", "mode:fast", "n:3"])
    node = next(n for n in model.proto.graph.node if n.op_type == "P")
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute} == {
        "alpha": 0.5,
        "axes": [1, 2],
        "mode": b"fast",
        "n": 3,
    }


# -- the CLI ---------------------------------------------------------------------------------------------------
def test_cli_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    source = tmp_path / "m.onnx"
    shutil.copy(toy("base_match_case"), source)
    before = source.read_bytes()
    out = tmp_path / "out.onnx"
    for args, fragment in [
        (["--pattern", "C(A(x)", "--op", "P"], "the --pattern 'C(A(x)' has a syntax error"),
        (["--pattern", "C(A(x), B(x))"], "give the replacing op as --op"),
        (["--pattern", "C(A(x), B(x))", "--op", "P", "--inputs", "z"], "'z' is not a name of the pattern"),
        (["--pattern", "Softmax(x)", "--op", "P"], "no Softmax node in the model"),
    ]:
        assert main(["rewrite", str(source), *args, "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and fragment in err, err
        assert not out.exists() and source.read_bytes() == before


def test_custom_op_needs_a_body_written_for_the_models_opset(tmp_path):
    pytest.importorskip("torch")
    from tests.test_promote_input import resize_model

    model = gs.load(resize_model(opset=13))
    with pytest.raises(gs.RewriteError, match="cannot bring graphsurgeon::dynamic_resize's body into this model"):
        model.rewrite(
            pattern="Resize(x, None, s)",
            custom_op="graphsurgeon::dynamic_resize",
            attribute={"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
        )
    with pytest.raises(gs.RewriteError, match="has no attribute 'colour'; its attributes: coordinate_transformation"):
        gs.load(resize_model(opset=18)).rewrite(
            pattern="Resize(x, None, s)", custom_op="graphsurgeon::dynamic_resize", attribute={"colour": "red"}
        )


def test_rewrite_runs_without_torch(tmp_path):
    """The core imports and rewrites to a plugin op with torch unimportable (custom_ops is only for custom_op)."""
    shutil.copy(toy("base_match_case"), tmp_path / "m.onnx")
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnxscript'] = None\n"
        "from graphsurgeon.cli import main\n"
        "assert main(['rewrite', 'm.onnx', '--pattern', 'C(A(x), B(x))', '--op', 'trt::P', '-o', 'o.onnx']) == 0\n"
        "assert main(['apply', 'r.yaml', 'm.onnx', '-o', 'a.onnx']) == 0\n"
    )
    (tmp_path / "r.yaml").write_text("steps:\n  - rewrite: {pattern: 'C(A(x), B(x))', op: 'trt::P'}\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_diff_shows_only_the_replaced_subgraphs(tmp_path):
    onnx.save(gelu_model(), tmp_path / "g.onnx")
    gs.load(tmp_path / "g.onnx").rewrite(pattern=GELU, op="com.microsoft::Gelu").save(tmp_path / "fused.onnx")
    differences = gs.load(tmp_path / "g.onnx").diff(tmp_path / "fused.onnx").differences
    removed = {d.name for d in differences if d.action == "removed"}
    changed = {d.name for d in differences if d.action == "changed"}
    inner = {f"{op}{i}" for op in ("div", "erf", "add", "mul") for i in (0, 1)}
    constants = {f"{c}_{i}" for c in ("sqrt2", "one", "half") for i in (0, 1)}
    assert removed == inner | constants and changed == {"gelu0", "gelu1"}
    assert {(d.section, d.name) for d in differences if d.action == "added"} == {("opset", "com.microsoft")}


def test_an_onnx_op_without_its_required_attributes_is_refused():
    """Fuzz finding: `op` MaxPool without kernel_shape wrote a model onnx's checker refuses."""
    model = gs.load(toy("base_match_case"))
    before = model.proto.SerializeToString()
    with pytest.raises(gs.RewriteError, match=r"MaxPool \(opset \d+\) needs the attribute\(s\) kernel_shape"):
        model.rewrite(pattern="C(A(x), B(x))", op="MaxPool", inputs=["x"])
    with pytest.raises(gs.RewriteError, match=r"Relu \(opset \d+\) takes 1 to 1 inputs, not 2"):
        model.rewrite(pattern="C(A(x), B(y))", op="Relu")
    assert model.proto.SerializeToString() == before
