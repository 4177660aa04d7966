"""extract: the subgraph between given tensors as a model of its own, computing what the original does there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import CORPUS, external_data_dir, load_full, output_mismatch, random_feeds, run_ort
from tests.test_add_outputs import reference_cut, small_models
from tests.test_rename import FEEDS, branching_model


def values_at(model: onnx.ModelProto, tensors: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the original computes at `tensors` (each run as a cut of the original)."""
    return {t: reference_cut(model, t, feeds) for t in tensors}


def test_intermediate_inputs_needed_initializers_and_functions_only():
    model = gs.load(branching_model())
    model.extract(inputs=["h", "cond"], outputs=["doubled"])
    proto = model.proto
    assert [vi.name for vi in proto.graph.input] == ["h", "cond"]
    assert [vi.name for vi in proto.graph.output] == ["doubled"]
    assert [n.name for n in proto.graph.node] == ["if", "double"]
    assert not proto.graph.initializer and not proto.graph.value_info  # `scale` unused; h is now an input
    assert [f.name for f in proto.functions] == ["Double"] and proto.metadata_props[0].value == "test"
    onnx.checker.check_model(proto, full_check=True)
    h = np.maximum(FEEDS["x"], 0)
    np.testing.assert_array_equal(run_ort(proto, {"h": h, "cond": FEEDS["cond"]})[0], -2 * h)


def test_unused_functions_go_and_default_inputs_are_the_ones_needed():
    model = gs.load(branching_model())
    model.extract(outputs=["h"])
    assert [vi.name for vi in model.proto.graph.input] == ["x"] and not model.proto.functions
    assert [n.name for n in model.proto.graph.node] == ["relu"]


@pytest.mark.parametrize("name", small_models())
def test_corpus_cut_computes_what_the_original_computes_there(name: str, tmp_path: Path):
    path = CORPUS / name
    original = load_full(path)
    feeds = random_feeds(original)
    assert feeds is not None
    graph = original.graph
    middle = graph.node[len(graph.node) // 2]
    start = next((t for t in middle.input if any(t in n.output for n in graph.node)), None)
    end = [graph.output[0].name]
    model = gs.load(path, external_data_dir=external_data_dir(path))
    try:
        model.extract(inputs=[start] if start else [], outputs=end)
    except GraphSurgeonError as e:  # the cut needs a graph input besides `start`: name it too
        if "no complete type" in str(e):  # `start` has unknown rank (an If's output): no valid graph input
            return
        assert "not among `inputs`" in str(e)
        needed = str(e).split("needs ")[1].split("'")[1]
        model.extract(inputs=[start, needed], outputs=end)
    out = tmp_path / "cut.onnx"
    model.save(out)
    result = load_full(out) if external_data_dir(path) == path.parent else onnx.load(str(out))
    inputs = [vi.name for vi in result.graph.input if vi.name not in {t.name for t in result.graph.initializer}]
    known = values_at(original, [i for i in inputs if i not in feeds], feeds) | feeds
    got = run_ort(result, {i: known[i] for i in inputs})
    assert output_mismatch(got, [reference_cut(original, end[0], feeds)]) is None
    differences = gs.load(path, external_data_dir=external_data_dir(path)).diff(out).differences
    allowed = {"node", "initializer", "value_info", "input", "output", "function", "sparse initializer"}
    assert {d.section for d in differences} <= allowed, differences
    assert all(d.action == "removed" or d.section in ("input", "output") for d in differences), differences


def test_weights_are_never_read(tmp_path: Path, monkeypatch):
    import graphsurgeon.core.external_data as external_data

    def refuse(*args, **kwargs):
        raise AssertionError("a weight was read")

    monkeypatch.setattr(external_data, "read_tensor", refuse)
    monkeypatch.setattr("graphsurgeon.core.state.read_tensor", refuse)  # where ModelState imports it
    monkeypatch.setattr(onnx.numpy_helper, "to_array", refuse)
    polygraphy = CORPUS / "polygraphy"
    model = gs.load(polygraphy / "ext_weights.onnx", external_data_dir=polygraphy / "data")
    model.extract(outputs=["c"])
    assert [t.name for t in model.proto.graph.initializer] == ["a", "b"]
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in model.proto.graph.initializer)
    model.save(tmp_path / "c.onnx")
    assert (tmp_path / "ext_weights.data").exists()  # the data file travels with the graph; nothing decoded
    monkeypatch.undo()
    np.testing.assert_allclose(run_ort(onnx.load(str(tmp_path / "c.onnx")), {})[0], np.full((1, 3), 2.0), rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"inputs": ["h"], "outputs": ["doubled"]}, "output 'doubled' needs 'cond', a graph input"),
        ({"outputs": ["nothere"]}, "not a tensor of the main graph"),
        ({"outputs": ["then_out"]}, "exists only inside subgraph 'then'"),
        ({"inputs": ["scale"], "outputs": ["y"]}, "an initializer"),
        ({"outputs": []}, "`outputs` is empty"),
    ],
)
def test_bad_input_is_refused_before_any_edit(options, message):
    model = gs.load(branching_model())
    before = model.proto.SerializeToString()
    with pytest.raises(GraphSurgeonError) as caught:
        model.extract(**options)
    assert message in str(caught.value)
    assert model.proto.SerializeToString() == before


def test_cli(tmp_path: Path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(branching_model(), path)
    out = tmp_path / "out.onnx"
    assert main(["extract", str(path), "--inputs", "h", "cond", "--outputs", "branch", "-o", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {(c["action"], c["kind"], c["name"]) for c in document["changes"]} >= {("added", "input", "h")}
    assert [o.name for o in onnx.load(out).graph.output] == ["branch"]
    bad = tmp_path / "bad.onnx"
    assert main(["extract", str(path), "--inputs", "h", "--outputs", "y", "-o", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cond'" in err[0] and not bad.exists()


def test_an_output_of_unknown_rank_is_refused(tmp_path):
    """Fuzz finding: an intermediate output typed float with no shape (ReduceSum over runtime axes) was written
    as a graph output, which onnx's checker refuses ("Field 'shape' of 'type' is required")."""
    from onnx import TensorProto, helper

    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("ReduceSum", ["x", "axes"], ["r"], keepdims=0),
                helper.make_node("Relu", ["r"], ["y"]),
            ],
            "g",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                helper.make_tensor_value_info("axes", TensorProto.INT64, [1]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    del model.graph.output[0].type.tensor_type.shape.dim[:]
    model.graph.output[0].type.tensor_type.shape.SetInParent()
    original = model.SerializeToString()
    edited = gs.load(model)
    with pytest.raises(gs.RewriteError, match=r"no complete type for 'r' \('r': its type is incomplete"):
        edited.extract(outputs=["r"])
    assert edited.proto.SerializeToString() == original
