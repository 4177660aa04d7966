"""The CLI is made from the verb declarations: shared option groups, one subcommand per declared verb."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

import graphsurgeon as gs
from graphsurgeon.cli import EXIT_USAGE, build_parser, main
from graphsurgeon.verbs import registry
from tests.conftest import CORPUS, REPO
from tests.test_promote_input import resize_model


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(resize_model(), path)
    return path


def _subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "verb")
    return action.choices[name]


def test_every_verb_is_a_method_and_a_subcommand_with_the_declared_options():
    for verb in registry().values():
        method = getattr(gs.Model, verb.method_name)
        parameters = list(inspect.signature(method).parameters.values())[1:]
        assert [p.name for p in parameters] == [o.name for o in verb.options], verb.name
        assert [p.default for p in parameters] == [o.default for o in verb.options], verb.name
        assert method.__doc__.startswith(verb.summary), verb.name
        dests = {a.dest for a in _subparser(verb.name)._actions}
        assert {o.name for o in verb.options} <= dests, verb.name
        assert {"model", "json", "quiet", "verbose", "debug"} <= dests, verb.name
        assert ({"output", "in_place", "verify", "verify_runs", "feeds", "rtol", "atol"} <= dests) == verb.writes


def test_output_options(model_path: Path, capsys):
    assert main(["cleanup", str(model_path)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"wrote {model_path.with_name('m.cleanup.onnx')}")
    assert main(["toposort", str(model_path), "-o", str(model_path.with_name("sorted.onnx"))]) == 0
    assert model_path.with_name("sorted.onnx").exists()
    before = model_path.read_bytes()
    assert main(["promote-input", str(model_path), "--node", "Resize", "--attr", "scales", "--in-place"]) == 0
    assert model_path.read_bytes() != before
    assert onnx.load(model_path).graph.input[-1].name == "scales"


def test_usage_errors_exit_2_with_the_verbs_usage(model_path: Path, capsys):
    assert main(["cleanup", str(model_path), "--in-place", "-o", "x.onnx"]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("usage: graphsurgeon cleanup") and len(err) == 2
    assert main(["promote-input", str(model_path), "--node", "Resize"]) == EXIT_USAGE
    assert "--attr" in capsys.readouterr().err


def test_inspect_json(capsys):
    assert main(["inspect", str(CORPUS / "polygraphy" / "loop.onnx"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    report = document["result"]
    assert report["opsets"] == {"": 11}
    assert report["nodes_by_op"]["Loop"] == 1
    assert report["subgraphs"] == ["Loop 'while_loop'.body"]


def test_json_on_a_writing_verb_is_one_document(model_path: Path, tmp_path: Path, capsys):
    out = tmp_path / "p.onnx"
    args = ["promote-input", str(model_path), "--node", "Resize", "--attr", "scales", "-o", str(out), "--json"]
    assert main([*args, "--verify"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["output"] == str(out) and document["exit_code"] == 0
    assert document["changes"][0]["action"] == "promoted" and document["changes"][0]["name"] == "scales"
    summary = document["summary"]
    removed = summary["nodes"]["before"] - summary["nodes"]["after"]
    removed += summary["initializers"]["before"] - summary["initializers"]["after"]
    assert removed == 1  # the baked-in scales constant
    assert document["verify"]["status"] == "equal"


def test_external_data_dir_option(tmp_path: Path, capsys):
    polygraphy = CORPUS / "polygraphy"
    args = ["ext_weights.onnx", "--external-data-dir", str(polygraphy / "data")]
    assert main(["check", str(polygraphy / args[0]), *args[1:]]) == 0
    assert main(["cleanup", str(polygraphy / args[0]), *args[1:], "-o", str(tmp_path / "out.onnx")]) == 0
    assert (tmp_path / "ext_weights.data").read_bytes() == (polygraphy / "data" / "ext_weights.data").read_bytes()


def test_version_and_flags_before_or_after_the_verb(model_path: Path, tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert gs.__version__ in capsys.readouterr().out
    assert main(["-q", "cleanup", str(model_path), "-o", str(tmp_path / "a.onnx")]) == 0
    assert capsys.readouterr().out == ""
    assert main(["cleanup", str(model_path), "-o", str(tmp_path / "b.onnx"), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["--debug", "cleanup", str(model_path), "-v", "-o", str(tmp_path / "c.onnx")]) == 0


def test_sizes_take_units(tmp_path: Path, capsys):
    path = CORPUS / "polygraphy" / "const_foldable.onnx"
    for size in ("1MiB", "512KB", "1024"):
        assert main(["fold-constants", str(path), "--size-limit", size, "-o", str(tmp_path / "f.onnx")]) == 0
    assert main(["fold-constants", str(path), "--size-limit", "lots", "-o", str(tmp_path / "f.onnx")]) == EXIT_USAGE
    assert "not a size" in capsys.readouterr().err


def test_a_list_option_cannot_swallow_model(tmp_path: Path, capsys):
    model = tmp_path / "d.onnx"
    model.write_bytes((CORPUS / "polygraphy" / "dynamic_identity.onnx").read_bytes())
    name = onnx.load(model).graph.input[0].name
    out = tmp_path / "s.onnx"
    assert main(["simplify", "--input-shape", f"{name}:1,2,4,4", str(model), "-o", str(out)]) == 0
    dims = onnx.load(out).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 2, 4, 4]
    assert main(["simplify", "--input-shape", f"{name}:1,2,4,4", "nothing-here"]) == EXIT_USAGE
    assert "MODEL is missing" in capsys.readouterr().err


def test_broken_pipe_ends_quietly(model_path: Path):
    done = subprocess.run(
        f"{sys.executable} -m graphsurgeon inspect {model_path} | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "error" not in done.stderr.lower() and "Traceback" not in done.stderr


def test_shell_completion_scripts():
    for shell in ("bash", "zsh"):
        done = subprocess.run(
            [sys.executable, "-m", "graphsurgeon", "--print-completion", shell],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0 and "promote-input" in done.stdout and "--size-limit" in done.stdout


def test_exit_codes_are_documented():
    readme = (REPO / "README.md").read_text()
    for code in ("`0`", "`1`", "`2`", "`3`"):
        assert code in readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
