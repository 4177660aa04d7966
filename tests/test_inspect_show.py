"""inspect --show nodes|tensors|initializers [--op SEL]: the names to pick for the surgery verbs."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import CORPUS
from tests.test_rename import branching_model


def test_nodes_in_every_scope_filtered_by_op():
    report = gs.load(branching_model()).inspect(show="nodes")
    rows = report.shown.rows
    assert [r["name"] for r in rows][:4] == ["relu", "if", "double", "mul"]  # the main graph first
    assert {r["name"] for r in rows[4:]} == {"ident", "neg", "add_in_function"}
    assert next(r for r in rows if r["name"] == "double")["op"] == "local::Double"
    assert next(r for r in rows if r["name"] == "neg")["scope"].startswith("subgraph 'then'")
    only = gs.load(branching_model()).inspect(show="nodes", op="Neg").shown.rows
    assert [(r["name"], r["inputs"], r["outputs"]) for r in only] == [("neg", ["h"], ["then_out"])]
    assert report.node_count == 7 and report.inputs  # the summary's own fields stay


def test_tensors_have_inferred_types_and_kinds():
    rows = {r["name"]: r for r in gs.load(branching_model()).inspect(show="tensors").shown.rows}
    assert set(rows) == {"x", "cond", "scale", "h", "branch", "doubled", "y"}
    assert rows["doubled"]["type"] == "float[2, 3]" and rows["doubled"]["producer"] == "double"
    assert rows["scale"]["kind"] == "initializer" and rows["y"]["kind"] == "computed, graph output"
    assert rows["h"]["readers"] == 1  # the If reads it from inside its branches
    mul = gs.load(branching_model()).inspect(show="tensors", op="mul").shown.rows
    assert {r["name"] for r in mul} == {"doubled", "scale", "y"}


def test_initializers_say_where_their_data_is_without_reading_it(monkeypatch):
    monkeypatch.setattr("graphsurgeon.core.state.read_tensor", lambda *a, **k: pytest.fail("read a weight"))
    polygraphy = CORPUS / "polygraphy"
    model = gs.load(polygraphy / "ext_weights.onnx", external_data_dir=polygraphy / "data")
    rows = model.inspect(show="initializers", op="Add").shown.rows
    assert rows[0] == {"name": "a", "type": "float[1, 3]", "bytes": 12, "location": "ext_weights.data"}
    assert len(rows) == 3


def test_bad_input():
    model = gs.load(branching_model())
    with pytest.raises(GraphSurgeonError, match="give `show` too"):
        model.inspect(op="Relu")
    with pytest.raises(GraphSurgeonError, match="matches no node"):
        model.inspect(show="nodes", op="Conv")
    with pytest.raises(GraphSurgeonError, match="`show` is one of"):
        model.inspect(show="edges")


def test_cli_text_and_json(tmp_path: Path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(branching_model(), path)
    assert main(["inspect", str(path), "--show", "nodes", "--op", "Relu"]) == 0
    assert capsys.readouterr().out.splitlines() == ["nodes (1, of nodes matching 'Relu'):", "  relu: Relu(x) -> h"]
    assert main(["inspect", str(path), "--show", "tensors", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)["result"]
    assert document["shown"]["show"] == "tensors" and document["node_count"] == 7
    assert main(["inspect", str(path)]) == 0
    assert "shown" not in capsys.readouterr().out
    assert main(["inspect", str(path), "--show", "nodes", "--op", "Conv"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
