"""fold-constants: conformance, real models, policies, size limit, evaluation fallbacks, subgraphs, >2 GB path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main as cli_main
from graphsurgeon.errors import RewriteError
from tests.fold_conformance import session

F = TensorProto.FLOAT


def summary_line(model: gs.Model) -> str:
    """The verb's own summary record, as text."""
    return next(str(c) for c in model.changes if c.action == "summary")


def make_model(nodes, inputs, outputs, inits=(), opset=17, functions=(), **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10, functions=list(functions), **kwargs
    )
    return model


def vi(name, dims, elem=F):
    return helper.make_tensor_value_info(name, elem, dims)


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return session(model).run(None, feeds)


def fold(model: onnx.ModelProto, **kwargs) -> gs.Model:
    m = gs.load(onnx.load_from_string(model.SerializeToString()))
    return m.fold_constants(**kwargs)


def ops(model: gs.Model) -> list[str]:
    return [n.op_type for n in model.proto.graph.node]


# -- basics --------------------------------------------------------------------------------------------------
def test_constant_chain_becomes_one_initializer_and_inputs_die():
    a = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "a")
    b = numpy_helper.from_array(np.full((2, 3), 2, np.float32), "b")
    nodes = [
        helper.make_node("Add", ["a", "b"], ["ab"], name="add"),
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.float32(3.0))),
        helper.make_node("Mul", ["ab", "c"], ["k"], name="mul"),
        helper.make_node("Add", ["x", "k"], ["y"], name="use"),
    ]
    model = make_model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3])], [a, b])
    model.doc_string = "keep me"
    model.metadata_props.add(key="k", value="v")
    x = np.ones((2, 3), np.float32)
    folded = fold(model)
    assert ops(folded) == ["Add"]
    assert [t.name for t in folded.proto.graph.initializer] == ["k"]
    assert folded.proto.doc_string == "keep me" and folded.proto.metadata_props[0].value == "v"
    np.testing.assert_array_equal(run(folded.proto, {"x": x})[0], run(model, {"x": x})[0])
    assert "folded 3 node(s)" in summary_line(folded)


def test_initializer_that_is_also_an_input_is_not_constant():
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    nodes = [helper.make_node("Neg", ["w"], ["n"]), helper.make_node("Add", ["x", "n"], ["y"])]
    model = make_model(nodes, [vi("x", [3]), vi("w", [3])], [vi("y", [3])], [w])
    assert ops(fold(model)) == ["Neg", "Add"]


def test_static_shape_chain_folds_into_the_reshape_target():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["g"], axis=0),
        helper.make_node("Unsqueeze", ["g", "axes"], ["u"]),
        helper.make_node("Concat", ["u", "minus1"], ["t"], axis=0),
        helper.make_node("Reshape", ["r", "t"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    model = make_model(nodes, [vi("x", [4, 2, 3])], [vi("y", None)], inits)
    folded = fold(model)
    assert ops(folded) == ["Relu", "Reshape"]
    target = numpy_helper.to_array(next(t for t in folded.proto.graph.initializer if t.name == "t"))
    assert target.tolist() == [4, -1]


def test_partly_dynamic_shape_folds_the_static_dims_only():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["d1"], axis=0),
        helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
        helper.make_node("Cast", ["d1"], ["f1"], to=F),
        helper.make_node("Cast", ["d0"], ["f0"], to=F),
        helper.make_node("Add", ["f0", "f1"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
    ]
    model = make_model(nodes, [vi("x", ["N", 256])], [vi("y", [])], inits)
    folded = fold(model)
    assert "Cast" in ops(folded) and ops(folded).count("Cast") == 1  # the static dim 1 folded, dim 0 did not
    assert ops(folded).count("Gather") == 1
    x = np.zeros((5, 256), np.float32)
    assert run(folded.proto, {"x": x})[0] == 261.0


# -- policies ------------------------------------------------------------------------------------------------
def test_random_ops_are_never_folded_and_are_reported():
    nodes = [
        helper.make_node("RandomNormal", [], ["r"], shape=[2], name="rnd"),
        helper.make_node("Add", ["x", "r"], ["y"]),
    ]
    folded = fold(make_model(nodes, [vi("x", [2])], [vi("y", [2])]), strict=True)
    assert ops(folded) == ["RandomNormal", "Add"]
    assert any("rnd" in line and "random" in line for line in map(str, folded.changes))


def test_qdq_kept_by_default_and_folded_on_request():
    w = numpy_helper.from_array(np.array([1, 2, 3], np.int8), "w")
    s = numpy_helper.from_array(np.float32(0.5), "s")
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "s"], ["dq"], name="dq"),
        helper.make_node("Add", ["x", "dq"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [3])], [vi("y", [3])], [w, s])
    assert ops(fold(model)) == ["DequantizeLinear", "Add"]
    folded = fold(model, fold_qdq=True)
    assert ops(folded) == ["Add"]
    np.testing.assert_array_equal(run(folded.proto, {"x": np.zeros(3, np.float32)})[0], [0.5, 1.0, 1.5])


def test_exclude_selector_keeps_the_node():
    a = numpy_helper.from_array(np.ones(3, np.float32), "a")
    nodes = [helper.make_node("Neg", ["a"], ["n"], name="keepme"), helper.make_node("Add", ["x", "n"], ["y"])]
    model = make_model(nodes, [vi("x", [3])], [vi("y", [3])], [a])
    folded = fold(model, exclude=["keepme"])
    assert ops(folded) == ["Neg", "Add"]
    assert any("excluded" in line for line in map(str, folded.changes))


def test_custom_op_with_constant_inputs_is_reported_and_strict_fails():
    a = numpy_helper.from_array(np.ones(3, np.float32), "a")
    nodes = [
        helper.make_node("Plugin", ["a"], ["p"], domain="my.domain", name="plug"),
        helper.make_node("Add", ["x", "p"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [3])], [vi("y", [3])], [a])
    model.opset_import.append(helper.make_opsetid("my.domain", 1))
    folded = fold(model)
    assert ops(folded) == ["Plugin", "Add"]
    assert any("plug" in line and "custom op" in line for line in map(str, folded.changes))
    with pytest.raises(RewriteError, match="could not be folded.*plug"):
        fold(model, strict=True)


def test_op_onnxruntime_cannot_run_falls_back_to_the_reference_evaluator():
    # onnxruntime 1.32 has no Relu kernel for int16; the reference evaluator does
    a = numpy_helper.from_array(np.array([-1, 2, 3], np.int16), "a")
    b = numpy_helper.from_array(np.array([-1, 1, 1], np.int16), "b")
    nodes = [
        helper.make_node("Add", ["a", "b"], ["ab"]),
        helper.make_node("Relu", ["ab"], ["n"], name="relu16"),
        helper.make_node("Cast", ["n"], ["nf"], to=F),
        helper.make_node("Add", ["x", "nf"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [3])], [vi("y", [3])], [a, b], opset=18)
    with pytest.raises(Exception, match="NOT_IMPLEMENTED|Could not find an implementation"):  # noqa: B017
        run(model, {"x": np.zeros(3, np.float32)})  # the premise: onnxruntime cannot run it as it is
    folded = fold(model)
    assert ops(folded) == ["Add"]
    assert "1 reference evaluation(s)" in summary_line(folded)
    expected = np.array([0, 3, 4], np.float32)
    np.testing.assert_array_equal(run(folded.proto, {"x": np.zeros(3, np.float32)})[0], expected)


def test_node_nothing_can_evaluate_is_reported_with_its_reason():
    a = numpy_helper.from_array(np.ones((2, 3), np.float32), "a")
    bad_shape = numpy_helper.from_array(np.array([7], np.int64), "bad")
    nodes = [
        helper.make_node("Reshape", ["a", "bad"], ["r"], name="impossible"),
        helper.make_node("Neg", ["r"], ["n"], name="after"),
        helper.make_node("Add", ["x", "n"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [7])], [vi("y", [7])], [a, bad_shape])
    folded = fold(model)
    assert ops(folded) == ["Reshape", "Neg", "Add"]
    text = "\n".join(map(str, folded.changes))
    assert "impossible" in text and "onnxruntime" in text and "reference evaluator" in text
    assert "after" in text and "could not be folded" in text
    with pytest.raises(RewriteError):
        fold(model, strict=True)


# -- size limit ----------------------------------------------------------------------------------------------
def test_size_limit_refuses_growth_but_folds_a_transpose_of_a_weight_used_only_there():
    w = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64), "w")
    shape = numpy_helper.from_array(np.array([64, 64], np.int64), "shape")
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0], name="transpose"),
        helper.make_node("MatMul", ["x", "wt"], ["m"]),
        helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
        helper.make_node("Add", ["m", "big"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [1, 64])], [vi("y", [1, 64])], [w, shape, one])
    folded = fold(model, size_limit=1024)
    assert ops(folded) == ["MatMul", "Expand", "Add"]  # the Transpose folded (16 KiB, frees 16 KiB)
    assert any("expand" in line and "size limit" in line for line in map(str, folded.changes))
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(run(folded.proto, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-5)
    assert ops(fold(model)) == ["MatMul", "Add"]  # default 1 MiB limit: both fold


def test_size_limit_keeps_a_transpose_of_a_weight_also_used_elsewhere():
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "wt"], ["m"]),
        helper.make_node("MatMul", ["m", "w"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [1, 64])], [vi("y", [1, 64])], [w])
    assert ops(fold(model, size_limit=1024)) == ["Transpose", "MatMul", "MatMul"]


def test_weights_shared_through_identity_are_not_copied():
    # the TorchScript exporter shares a weight between layers as Identity(W): folding must not copy it per layer
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), "w")
    nodes, prev = [], "x"
    for i in range(4):
        nodes += [
            helper.make_node("Identity", ["w"], [f"w{i}"]),
            helper.make_node("Transpose", [f"w{i}"], [f"wt{i}"], perm=[1, 0]),
            helper.make_node("MatMul", [prev, f"wt{i}"], [f"y{i}"]),
        ]
        prev = f"y{i}"
    model = make_model(nodes, [vi("x", [1, 64])], [vi(prev, [1, 64])], [w])
    folded = fold(model)
    assert ops(folded) == ["MatMul"] * 4
    assert len(folded.proto.graph.initializer) == 1  # one transposed copy, read by all four; w itself died
    assert folded.proto.ByteSize() <= model.ByteSize()
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(run(folded.proto, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


# -- subgraphs and functions ---------------------------------------------------------------------------------
def _if_model(cond: bool) -> onnx.ModelProto:
    then = helper.make_graph(
        [helper.make_node("Add", ["x", "c1"], ["t"])], "then", [], [vi("t", [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "c1")],
    )  # fmt: skip
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [vi("e", [2])])
    nodes = [
        helper.make_node("Not", ["c"], ["nc"]),
        helper.make_node("If", ["nc"], ["y"], then_branch=then, else_branch=other, name="branch"),
    ]
    inits = [numpy_helper.from_array(np.array(not cond), "c")]
    return make_model(nodes, [vi("x", [2])], [vi("y", [2])], inits)


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_constant_condition_is_replaced_by_its_branch(cond: bool):
    model = _if_model(cond)
    folded = fold(model)
    assert ops(folded) == (["Add"] if cond else ["Neg"])
    assert folded.proto.graph.output[0].name == "y"
    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_array_equal(run(folded.proto, {"x": x})[0], run(model, {"x": x})[0])
    onnx.checker.check_model(folded.proto, full_check=True)


def test_folds_inside_loop_bodies_with_outer_constants():
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["outer_c", "two"], ["k"]),  # constant: outer initializer x body initializer
            helper.make_node("Add", ["acc", "k"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL), vi("acc", [2])],
        [vi("cond_out", [], TensorProto.BOOL), vi("acc_out", [2])],
        [numpy_helper.from_array(np.full(2, 2, np.float32), "two")],
    )
    nodes = [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)]
    inits = [
        numpy_helper.from_array(np.array(3, np.int64), "n"),
        numpy_helper.from_array(np.ones(2, np.float32), "outer_c"),
    ]
    model = make_model(nodes, [vi("x", [2])], [vi("y", [2])], inits)
    folded = fold(model)
    body_ops = [n.op_type for n in folded.proto.graph.node[0].attribute[0].g.node]
    assert body_ops == ["Add", "Identity"]
    x = np.zeros(2, np.float32)
    np.testing.assert_array_equal(run(folded.proto, {"x": x})[0], [6.0, 6.0])


def test_folds_inside_model_local_functions_into_constants():
    body = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(2, np.float32))),
        helper.make_node("Add", ["c", "c"], ["cc"]),
        helper.make_node("Add", ["a", "cc"], ["out"]),
    ]
    fn = helper.make_function("local", "AddTwo", ["a"], ["out"], body, [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("AddTwo", ["x"], ["y"], domain="local")]
    model = make_model(nodes, [vi("x", [2])], [vi("y", [2])], functions=[fn])
    model.opset_import.append(helper.make_opsetid("local", 1))
    folded = fold(model)
    fn_ops = [n.op_type for n in folded.proto.functions[0].node]
    assert fn_ops.count("Add") == 1 and "Constant" in fn_ops
    np.testing.assert_array_equal(run(folded.proto, {"x": np.zeros(2, np.float32)})[0], [2.0, 2.0])


# -- external data -------------------------------------------------------------------------------------------
def _external_model(folder: Path, layers: int = 3, width: int = 256) -> Path:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), f"W{i}"))
        nodes += [
            helper.make_node("Transpose", [f"W{i}"], [f"Wt{i}"], perm=[1, 0]),
            helper.make_node("MatMul", [prev, f"Wt{i}"], [f"y{i}"]),
        ]
        prev = f"y{i}"
    model = make_model(nodes, [vi("x", [1, width])], [vi(prev, [1, width])], inits)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    return folder / "m.onnx"


def test_external_data_results_go_to_a_new_data_file_and_survive_save_elsewhere(tmp_path: Path):
    src = _external_model(tmp_path / "src")
    before = sorted(p.name for p in src.parent.iterdir())
    x = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
    want = run(onnx.load(str(src)), {"x": x})[0]
    model = gs.load(src).fold_constants()
    assert ops(model) == ["MatMul"] * 3
    assert all(t.data_location == TensorProto.EXTERNAL for t in model.proto.graph.initializer)
    out = model.save(tmp_path / "out" / "folded.onnx")
    assert sorted(p.name for p in src.parent.iterdir()) == before  # the scratch file moved, nothing left behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["folded.onnx", "m.folded.data"]  # old weights died
    np.testing.assert_allclose(run(onnx.load(str(out)), {"x": x})[0], want, rtol=1e-4, atol=1e-5)


def test_external_data_results_survive_an_in_place_save(tmp_path: Path):
    src = _external_model(tmp_path / "src")
    x = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
    want = run(onnx.load(str(src)), {"x": x})[0]
    gs.load(src).fold_constants().save(in_place=True)
    np.testing.assert_allclose(run(onnx.load(str(src)), {"x": x})[0], want, rtol=1e-4, atol=1e-5)
    assert summary_line(gs.load(src).fold_constants()).startswith("fold-constants: folded 0 node(s)")


def test_unsaved_scratch_data_is_removed_with_the_model(tmp_path: Path):
    """The folded values' scratch file is written in the scratch folder (the library's default: the system's
    temporary folder), never beside the input, and is deleted when the model is discarded unsaved."""
    src = _external_model(tmp_path / "src")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = sorted(p.name for p in src.parent.iterdir())
    code = (
        "import graphsurgeon as gs, sys, os; m = gs.load(sys.argv[1]).fold_constants(); "
        "assert [n for n in os.listdir(sys.argv[2]) if n.startswith('.graphsurgeon-')], os.listdir(sys.argv[2]); "
        "assert len(os.listdir(os.path.dirname(sys.argv[1]))) == 2"
    )
    env = {**_env(), "TMPDIR": str(scratch)}
    subprocess.run([sys.executable, "-c", code, str(src), str(scratch)], check=True, env=env)
    assert sorted(p.name for p in src.parent.iterdir()) == before
    assert not [p for p in scratch.iterdir() if p.name.startswith(".graphsurgeon-")]


def test_batches_split_by_memory_and_results_stay_right(tmp_path: Path):
    from graphsurgeon.verbs.fold import fold

    src = _external_model(tmp_path / "src", layers=4, width=128)
    x = np.random.default_rng(1).standard_normal((1, 128)).astype(np.float32)
    want = run(onnx.load(str(src)), {"x": x})[0]
    model = gs.load(src)
    report = fold(model, batch_bytes=1)
    assert report.sessions == 4 and report.folded == 4
    out = model.save(tmp_path / "out" / "m.onnx")
    np.testing.assert_allclose(run(onnx.load(str(out)), {"x": x})[0], want, rtol=1e-4, atol=1e-5)


def _env() -> dict:
    root = str(Path(__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))


# -- CLI -----------------------------------------------------------------------------------------------------
def test_cli_fold_constants(tmp_path: Path, capsys):
    a = numpy_helper.from_array(np.ones(3, np.float32), "a")
    nodes = [
        helper.make_node("Neg", ["a"], ["n"], name="neg"),
        helper.make_node("RandomUniform", [], ["r"], shape=[3], name="rnd"),
        helper.make_node("Add", ["x", "n"], ["s"]),
        helper.make_node("Add", ["s", "r"], ["y"]),
    ]
    path = tmp_path / "m.onnx"
    onnx.save(make_model(nodes, [vi("x", [3])], [vi("y", [3])], [a]), str(path))
    out = tmp_path / "o.onnx"
    assert cli_main(["fold-constants", str(path), "-o", str(out), "--size-limit", "100", "--strict"]) == 0
    printed = capsys.readouterr().out
    assert "folded 1 node(s)" in printed and "rnd" in printed
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["RandomUniform", "Add", "Add"]
    assert cli_main(["fold-constants", str(path), "-o", str(out), "--exclude", "neg", "rnd"]) == 0
    assert [n.op_type for n in onnx.load(str(out)).graph.node][0] == "Neg"


_MEMORY_PROBE = """
import sys, graphsurgeon as gs
from graphsurgeon.verbs.fold import fold
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
model = gs.load(sys.argv[1])
import onnxruntime, onnx.reference  # imported before measuring: only folding's own memory counts
before = hwm()
fold(model, batch_bytes=8 << 20)
model.save(sys.argv[2])
print(hwm() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_is_bounded_by_the_batch_not_the_model(tmp_path: Path):
    growth = {}
    for layers in (16, 64):  # 2 MiB weights: 32 MiB and 128 MiB of external data
        src = _external_model(tmp_path / f"m{layers}", layers=layers, width=724)
        out = tmp_path / f"out{layers}" / "m.onnx"
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(src), str(out)], env=_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        growth[layers] = int(done.stdout.strip().splitlines()[-1])
        assert [n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node] == ["MatMul"] * layers
    model_bytes = 64 * 724 * 724 * 4
    assert growth[64] < growth[16] + (24 << 20), growth  # 4x the weights, about the same peak
    assert growth[64] < model_bytes * 0.4, growth
