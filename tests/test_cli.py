"""The CLI is a thin layer over the editor: shared load/save options, one verb per method."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import graphsurgeon as gs
from graphsurgeon.cli import VERBS, build_parser, main
from tests.conftest import CORPUS
from tests.test_promote_input import resize_model


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(resize_model(), path)
    return path


def test_every_verb_is_an_editor_method_with_the_same_options():
    for verb, spec in VERBS.items():
        method = getattr(gs.Model, verb.replace("-", "_"))
        parser = build_parser()
        args = parser.parse_args([verb, "m.onnx", *(["--node", "n", "--attr", "a"] if verb == "promote-input" else [])])
        for key in spec.kwargs:
            assert hasattr(args, key), (verb, key)
            assert key in method.__code__.co_varnames, (verb, key)


def test_output_options(model_path: Path, capsys):
    assert main(["cleanup", str(model_path)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"wrote {model_path.with_name('m.cleanup.onnx')}")
    assert main(["toposort", str(model_path), "-o", str(model_path.with_name("sorted.onnx"))]) == 0
    assert model_path.with_name("sorted.onnx").exists()
    before = model_path.read_bytes()
    assert main(["promote-input", str(model_path), "--node", "Resize", "--attr", "scales", "--in-place"]) == 0
    assert model_path.read_bytes() != before
    assert onnx.load(model_path).graph.input[-1].name == "scales"


def test_in_place_and_output_are_exclusive(model_path: Path):
    with pytest.raises(SystemExit):
        main(["cleanup", str(model_path), "--in-place", "-o", "x.onnx"])


def test_inspect_json(capsys):
    assert main(["inspect", str(CORPUS / "polygraphy" / "loop.onnx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["opsets"] == {"": 11}
    assert report["nodes_by_op"]["Loop"] == 1
    assert report["subgraphs"] == ["Loop 'while_loop'.body"]


def test_external_data_dir_option(tmp_path: Path, capsys):
    polygraphy = CORPUS / "polygraphy"
    args = ["ext_weights.onnx", "--external-data-dir", str(polygraphy / "data")]
    assert main(["check", str(polygraphy / args[0]), *args[1:]]) == 0
    assert main(["cleanup", str(polygraphy / args[0]), *args[1:], "-o", str(tmp_path / "out.onnx")]) == 0
    assert (tmp_path / "ext_weights.data").read_bytes() == (polygraphy / "data" / "ext_weights.data").read_bytes()
