"""add-outputs: intermediate tensors become graph outputs whose values are what the original computes there."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import CORPUS, external_data_dir, load_full, output_mismatch, random_feeds, run_ort
from tests.test_rename import FEEDS, branching_model


def small_models() -> list[str]:
    """Corpus models onnxruntime runs as they are, with at least two nodes in the main graph."""
    from tests.test_verify_json import runnable

    found = []
    for path in sorted(CORPUS.rglob("*.onnx")):
        if len(onnx.load(str(path), load_external_data=False).graph.node) >= 2 and runnable(path):
            found.append(str(path.relative_to(CORPUS)))
    return found


def reference_cut(model: onnx.ModelProto, tensor: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The original model cut at `tensor` by onnx.utils.Extractor, run in onnxruntime (where Extractor fails on
    the model: the original with `tensor` as an untyped extra output)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inferred = onnx.shape_inference.infer_shapes(model)
            constants = {t.name for t in model.graph.initializer}
            inputs = [vi.name for vi in model.graph.input if vi.name not in constants]
            cut = onnx.utils.Extractor(inferred).extract_model(inputs, [tensor])
    except Exception:
        cut = onnx.ModelProto()
        cut.CopyFrom(model)
        del cut.graph.output[:]
        cut.graph.output.add().name = tensor
    inputs = {vi.name for vi in cut.graph.input}
    return run_ort(cut, {k: v for k, v in feeds.items() if k in inputs})[0]


def check_declared_types(model: onnx.ModelProto, values: list[np.ndarray], names: list[str]) -> None:
    """The named outputs' declared dtype, rank and static dims are those of the value onnxruntime computes."""
    for info, value in zip(model.graph.output, values, strict=True):
        if info.name not in names:
            continue
        tensor_type = info.type.tensor_type
        assert helper.tensor_dtype_to_np_dtype(tensor_type.elem_type) == value.dtype, info.name
        if not tensor_type.HasField("shape"):  # rank unknown to inference (a Loop's scan output): not wrong
            continue
        dims = tensor_type.shape.dim
        assert len(dims) == value.ndim, info.name
        for dim, size in zip(dims, value.shape, strict=True):
            assert not dim.HasField("dim_value") or dim.dim_value in (size, -1), info.name  # -1: legacy unknown


@pytest.mark.parametrize("name", small_models())
def test_all_intermediate_values_match_the_original_cut_there(name: str, tmp_path: Path):
    path = CORPUS / name
    original = load_full(path)
    feeds = random_feeds(original)
    assert feeds is not None
    model = gs.load(path, external_data_dir=external_data_dir(path))
    before = list(model.graph_outputs)
    model.add_outputs(all_intermediate=True)
    added = [o for o in model.graph_outputs if o not in before]
    if not added:  # every intermediate lacks a complete type (an If of unknown rank): skipped, and said so
        assert any("skipped" in note for note in model.notes)
        return
    out = tmp_path / "out.onnx"
    model.save(out)
    result = load_full(out) if external_data_dir(path) == path.parent else onnx.load(str(out))
    values = run_ort(result, feeds)
    check_declared_types(result, values, added)
    by_name = dict(zip(model.graph_outputs, values, strict=True))
    for tensor in added[:12]:  # the cut is rebuilt per tensor: a sample keeps the test quick
        problem = output_mismatch([by_name[tensor]], [reference_cut(original, tensor, feeds)])
        assert problem is None, (tensor, problem)
    differences = gs.load(path, external_data_dir=external_data_dir(path)).diff(out).differences
    assert {(d.section, d.action) for d in differences} == {("output", "added")}
    assert sorted(d.name for d in differences) == sorted(added)


def test_named_tensors_and_op_selector_keep_the_original_outputs_first():
    model = gs.load(branching_model())
    model.add_outputs(["h"], op="Double")
    assert model.graph_outputs == ["y", "h", "doubled"]
    values = run_ort(model.proto, FEEDS)
    np.testing.assert_array_equal(values[1], np.maximum(FEEDS["x"], 0))
    check_declared_types(model.proto, values, ["h", "doubled"])
    assert [c.action for c in model.changes] == ["added", "added"]


def test_already_an_output_is_noted_not_refused():
    model = gs.load(branching_model())
    model.add_outputs(tensors=["y"])
    assert model.graph_outputs == ["y"] and not model.changes and model.notes


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tensors": ["then_out"]}, "exists only inside subgraph 'then'"),
        ({"tensors": ["b"]}, "exists only inside function local::Double"),
        ({"tensors": ["hh"]}, "not a tensor of the main graph (did you mean 'h'?)"),
        ({"op": "Neg"}, "matches only nodes inside subgraphs"),
        ({"op": "Conv"}, "matches no node"),
        ({}, "nothing to add"),
    ],
)
def test_bad_input_is_refused_before_any_edit(options, message):
    model = gs.load(branching_model())
    before = model.proto.SerializeToString()
    with pytest.raises(GraphSurgeonError) as caught:
        model.add_outputs(**options)
    assert message in str(caught.value)
    assert model.proto.SerializeToString() == before


def test_cli_positional_tensors_verify_and_bad_input(tmp_path: Path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(branching_model(), path)
    out = tmp_path / "out.onnx"
    assert main(["add-outputs", str(path), "h", "branch", "-o", str(out), "--verify", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verify"]["status"] == "equal"
    assert [o.name for o in onnx.load(out).graph.output] == ["y", "h", "branch"]
    assert main(["add-outputs", str(path), "--all-intermediate", "-o", str(out)]) == 0
    assert len(onnx.load(out).graph.output) == 4
    capsys.readouterr()
    bad = tmp_path / "bad.onnx"
    assert main(["add-outputs", str(path), "else_out", "-o", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "else_out" in err[0] and not bad.exists()


def untyped_intermediate_model() -> onnx.ModelProto:
    """x -> custom Opaque -> t -> Relu -> y: shape inference cannot type t."""
    return helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Opaque", ["x"], ["t"], domain="custom"),
                helper.make_node("Relu", ["t"], ["y"]),
            ],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)],
    )


def test_tensors_without_a_complete_type_are_skipped_or_refused_never_written_typeless(tmp_path):
    """Fuzz finding: `all_intermediate` wrote graph outputs without a type, which onnx's checker refuses."""
    model = gs.load(untyped_intermediate_model())
    model.add_outputs(all_intermediate=True)
    assert "t" not in model.graph_outputs and any("skipped 't'" in note for note in model.notes)
    assert all(o.type.WhichOneof("value") for o in model.proto.graph.output)
    with pytest.raises(GraphSurgeonError, match="cannot make 't' a graph output: its type is unknown"):
        gs.load(untyped_intermediate_model()).add_outputs(["t"])
    with pytest.raises(GraphSurgeonError, match="cannot add graph output 't': its type is unknown"):
        gs.load(untyped_intermediate_model()).add_graph_output("t")
