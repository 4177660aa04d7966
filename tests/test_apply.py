"""`graphsurgeon apply` and `graphsurgeon.apply`: the recipe checked before any work (each kind of mistake gives
one clear error), all steps in memory and one atomic save, many models in parallel with one failure isolated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.recipe import Recipe, RecipeError, StepError, schema
from tests.conftest import CORPUS
from tests.test_promote_input import resize_model

PROMOTE = "steps:\n  - promote-input: {node: Resize, attr: scales}\n  - cleanup: {}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    onnx.save(resize_model(), tmp_path / "m.onnx")
    (tmp_path / "promote.yaml").write_text(PROMOTE)
    return tmp_path


def write(folder: Path, text: str, name: str = "r.yaml") -> str:
    (folder / name).write_text(text)
    return str(folder / name)


# -- ten (and more) kinds of mistakes, each one clear line before any work ------------------------------------
BROKEN = {
    "not YAML": ("steps: [cleanup: {", "not valid YAML (line 1, column 19)"),
    "not a mapping": ("- cleanup: {}", "a recipe is a mapping with a 'steps' list, not a list"),
    "unknown top-level key": ("step:\n  - cleanup: {}", "unknown key 'step' (did you mean 'steps'?)"),
    "no steps": ("steps: []", "'steps' must be a list of at least one step, not an empty list"),
    "unknown verb": (
        "steps:\n  - promote-inptu: {node: Resize}",
        "step 1: unknown verb 'promote-inptu' (did you mean 'promote-input'?); valid: promote-input,",
    ),
    "report verb": ("steps:\n  - cleanup:\n  - inspect: {}", "step 2: inspect is a report verb and changes nothing"),
    "unknown option": (
        "steps:\n  - promote-input: {nod: Resize, attr: scales}",
        "step 1 (promote-input): no option 'nod' (did you mean 'node'?); promote-input's options: node, attr,",
    ),
    "wrong type": (
        "steps:\n  - promote-input: {node: Resize, attr: scales, keep-default: 3}",
        "step 1 (promote-input): option 'keep_default' takes true or false, not 3",
    ),
    "missing required option": (
        "steps:\n  - promote-input: {node: Resize}",
        "step 1 (promote-input): needs the option 'attr'",
    ),
    "undeclared variable": (
        "steps:\n  - promote-input: {node: '${node}', attr: scales}",
        "step 1 (promote-input): option 'node': variable 'node' is not declared under 'variables'",
    ),
    "variable without a value": (
        "variables: {node: null}\nsteps:\n  - promote-input: {node: '${node}', attr: scales}",
        "variable 'node' has no default and was not given a value",
    ),
    "two verbs in one step": (
        "steps:\n  - cleanup: {}\n    toposort: {}",
        "step 1: a step names exactly one verb (found: cleanup, toposort)",
    ),
    "step verify not a boolean": ("steps:\n  - cleanup: {}\n    verify: maybe", "'verify' must be true or false"),
    "options not a mapping": ("steps:\n  - cleanup: [a, b]", "the options must be a mapping of name: value"),
    "option given twice": (
        "steps:\n  - promote-input: {node: R, attr: s, keep-default: true, keep_default: false}",
        "option 'keep_default' is given twice (as 'keep-default' and 'keep_default')",
    ),
    "pattern syntax": (
        "steps:\n  - rewrite: {pattern: 'Relu(x', op: P}",
        "step 1 (rewrite): the 'pattern' 'Relu(x' has a syntax error at column 7",
    ),
    "list of numbers for a list of names": (
        "steps:\n  - rewrite: {pattern: 'Relu(x)', op: P, inputs: [1, 2]}",
        "option 'inputs' takes a string or a list of strings, not [1, 2]",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_recipe_is_one_clear_error_before_any_work(kind, folder, capsys):
    text, fragment = BROKEN[kind]
    recipe = write(folder, text)
    (folder / "corrupt.onnx").write_bytes(b"not a model")  # never read: the recipe is refused first
    before = (folder / "m.onnx").read_bytes()
    assert main(["apply", recipe, str(folder / "m.onnx"), str(folder / "corrupt.onnx"), "--output-dir", "o"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("graphsurgeon: error: r.yaml: ") and "\n" not in err, err
    assert fragment in err, err
    assert not (folder / "o").exists() and (folder / "m.onnx").read_bytes() == before
    with pytest.raises(RecipeError):
        Recipe.parse(text, source="r.yaml").resolve()


@pytest.mark.parametrize("kind", [k for k in BROKEN if k not in ("not YAML", "variable without a value")])
def test_the_json_schema_also_rejects_each_structural_mistake(kind):
    import yaml

    text, _ = BROKEN[kind]
    data = yaml.safe_load(text)
    if kind in ("undeclared variable", "pattern syntax"):  # checks the schema cannot express
        return
    assert schema.schema_problems(data), kind


def test_without_jsonschema_the_own_checks_give_the_same_errors(monkeypatch):
    monkeypatch.setattr(schema, "_validator", lambda: None)
    for text, fragment in BROKEN.values():
        with pytest.raises(RecipeError, match=None) as e:
            Recipe.parse(text, source="r.yaml").resolve()
        assert fragment.replace("r.yaml: ", "") in str(e.value)


def test_set_names_an_undeclared_variable(folder, capsys):
    recipe = write(folder, "variables: {factor: 3}\n" + PROMOTE)
    assert main(["apply", recipe, str(folder / "m.onnx"), "--set", "factr=2"]) == 1
    assert "there is no variable 'factr' to set; the recipe's variables: factor" in capsys.readouterr().err


# -- the library --------------------------------------------------------------------------------------------
def test_a_recipe_built_in_code_equals_the_file_and_the_verbs_run_one_by_one(folder):
    recipe = Recipe().step("promote-input", node="Resize", attr="scales").step("cleanup")
    by_code = gs.apply(recipe, folder / "m.onnx")
    by_file = gs.apply(folder / "promote.yaml", folder / "m.onnx")
    by_dict = gs.apply(
        {"steps": [{"promote_input": {"node": "Resize", "attr": "scales"}}, "cleanup"]}, folder / "m.onnx"
    )
    by_hand = gs.load(folder / "m.onnx").promote_input(node="Resize", attr="scales").cleanup()
    blobs = {m.proto.SerializeToString() for m in (by_code, by_file, by_dict, by_hand)}
    assert len(blobs) == 1
    first = by_code.changes[0]
    assert (first.verb, first.action, first.kind, first.detail) == (
        "apply",
        "applied",
        "recipe",
        "2 step(s): promote-input, cleanup",
    )
    assert [c.verb for c in by_code.changes][1:] == [c.verb for c in by_hand.changes]


def test_variables_are_substituted_with_their_types(folder):
    text = (
        "variables: {sel: Resize, keep: false}\n"
        "steps:\n  - promote-input: {node: '${sel}', attr: scales, name: 'factor_${sel}', keep_default: '${keep}'}\n"
    )
    recipe = Recipe.parse(text)
    resolved = recipe.resolve({"keep": "true"})
    assert resolved.steps[0].options == {
        "node": "Resize",
        "attr": "scales",
        "name": "factor_Resize",
        "keep_default": True,
    }
    model = gs.apply(recipe, folder / "m.onnx", variables={"sel": "resize"})
    assert "factor_resize" in model.graph_inputs


def test_a_failing_step_is_named_and_nothing_is_written(folder):
    recipe = Recipe().step("cleanup").step("promote-input", node="Nope", attr="scales")
    with pytest.raises(StepError, match=r"step 2 \(promote-input\): node selector 'Nope' matches no node") as e:
        gs.apply(recipe, folder / "m.onnx")
    assert e.value.step == 2


def test_library_messages_use_the_recipe_spelling_of_options(folder):
    onnx.save(resize_model(), folder / "two.onnx")
    model = gs.load(folder / "two.onnx")
    model.add_node("Resize", ["x", "", "baked"], ["up2"], name="resize2")
    with pytest.raises(StepError) as e:
        gs.apply(Recipe().step("promote-input", node="Resize", attr="scales"), model)
    assert "`" not in str(e.value) and "--" not in str(e.value)


def test_per_step_verify_catches_a_step_that_changes_the_numbers(folder):
    recipe = Recipe().step("rewrite", pattern="Relu(x)", op="Sigmoid", verify=True)
    with pytest.raises(StepError, match=r"step 1 \(rewrite\): verify failed: y: MISMATCH") as e:
        gs.apply(recipe, folder / "m.onnx")
    assert e.value.report is not None and e.value.report.status == "different"
    same = Recipe().step("promote-input", node="Resize", attr="scales", verify=True).step("cleanup", verify=True)
    run = same.run(gs.load(folder / "m.onnx"))  # an input added by step 1 is fed its old value by step 2's check
    assert [s.verify.status for s in run.steps] == ["equal", "equal"]


# -- the CLI, one model ---------------------------------------------------------------------------------------
def test_one_model_default_output_prints_changes_summary_and_path(folder, capsys):
    assert main(["apply", str(folder / "promote.yaml"), str(folder / "m.onnx"), "--verify"]) == 0
    out = capsys.readouterr().out
    target = folder / "m.promote.onnx"
    assert target.exists() and f"wrote {target}" in out
    assert "promote-input: promoted input 'scales'" in out and "nodes: 2 -> 2" in out and "verify: equal" in out
    assert (
        target.read_bytes()
        == gs.load(folder / "m.onnx").promote_input(node="Resize", attr="scales").cleanup().proto.SerializeToString()
    )


def test_dry_run_prints_the_plan_and_each_change_and_writes_nothing(folder, capsys):
    assert main(["apply", str(folder / "promote.yaml"), str(folder / "m.onnx"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1. promote-input node='Resize', attr='scales'" in out and "2. cleanup" in out
    assert "promoted input 'scales'" in out and "dry run: nothing written" in out
    assert sorted(p.name for p in folder.iterdir()) == ["m.onnx", "promote.yaml"]


def test_verify_failure_writes_nothing(folder, capsys):
    recipe = write(folder, "steps:\n  - rewrite: {pattern: 'Relu(x)', op: Sigmoid}\nverify: true\n")
    assert main(["apply", recipe, str(folder / "m.onnx"), "-o", str(folder / "o.onnx")]) == 1
    assert "verify failed" in capsys.readouterr().err and not (folder / "o.onnx").exists()


def test_in_place_and_set_before_the_model(folder):
    recipe = write(
        folder, "variables: {n: factor}\nsteps:\n  - promote-input: {node: Resize, attr: scales, name: '${n}'}\n"
    )
    assert main(["apply", recipe, "--set", "n=zoom", str(folder / "m.onnx"), "--in-place"]) == 0
    assert "zoom" in gs.load(folder / "m.onnx").graph_inputs


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["-o", "x.onnx"], "--output names one file but 2 models were given; use --output-dir"),
        (["--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_output_choices_are_checked_before_any_work(folder, capsys, extra, fragment):
    shutil.copy(folder / "m.onnx", folder / "n.onnx")
    assert main(["apply", str(folder / "promote.yaml"), str(folder / "m.onnx"), str(folder / "n.onnx"), *extra]) == 1
    assert fragment in capsys.readouterr().err


def test_missing_models_and_empty_globs_and_collisions(folder, capsys):
    recipe = str(folder / "promote.yaml")
    assert main(["apply", recipe, str(folder / "nope.onnx")]) == 1
    assert "no such model file" in capsys.readouterr().err
    assert main(["apply", recipe, str(folder / "*.nothing")]) == 1
    assert "no model matches" in capsys.readouterr().err
    (folder / "sub").mkdir()
    shutil.copy(folder / "m.onnx", folder / "sub" / "m.onnx")
    assert main(["apply", recipe, str(folder / "m.onnx"), str(folder / "sub" / "m.onnx"), "--output-dir", "o"]) == 1
    assert "would both be written to" in capsys.readouterr().err


# -- the CLI, many models ---------------------------------------------------------------------------------------
def many(folder: Path, count: int, broken: int) -> list[Path]:
    models = []
    for number in range(count):
        path = folder / "models" / f"m{number:02}.onnx"
        path.parent.mkdir(exist_ok=True)
        if number == broken:  # a model without a Resize: step 1 fails on it
            shutil.copy(CORPUS / "onnx-graphsurgeon" / "identity.onnx", path)
        else:
            onnx.save(resize_model(factor=2.0 + number / 4), path)
        models.append(path)
    return models


@pytest.mark.parametrize("jobs", [1, 2])
def test_many_models_one_failure_in_the_middle_the_rest_written(folder, capsys, jobs):
    models = many(folder, 6, broken=3)
    code = main(
        [
            "apply",
            str(folder / "promote.yaml"),
            str(folder / "models" / "*.onnx"),
            "--output-dir",
            str(folder / "out"),
            "-j",
            str(jobs),
            "--verify",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    written = sorted(p.name for p in (folder / "out").iterdir())
    assert written == [m.name for i, m in enumerate(models) if i != 3]
    lines = captured.out.splitlines()
    assert lines[0].split() == ["model", "status", "nodes", "verify", "output", "/", "error"]
    assert [line.split()[1] for line in lines[1:]] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    assert "2 -> 2" in lines[1] and "equal" in lines[1]
    assert "step 1 (promote-input): node selector 'Resize' matches no node" in lines[4]
    assert "1 model(s) failed (5 of 6 model(s) passed)" in captured.err
    for model in models[:3]:  # each result is the promoted model at its own factor
        got = gs.load(folder / "out" / model.name)
        assert "scales" in got.graph_inputs


def test_many_models_json_document(folder, capsys):
    many(folder, 4, broken=-1)
    assert main(["apply", str(folder / "promote.yaml"), str(folder / "models" / "*.onnx"), "-j", "2", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["passed"], document["failed"], document["exit_code"], document["jobs"]) == (4, 0, 0, 2)
    first = document["models"][0]
    assert first["status"] == "ok" and first["nodes_before"] == 2 and first["summary"]["nodes"]["after"] == 2
    assert first["changes"][0]["kind"] == "recipe" and first["output"].endswith("m00.promote.onnx")


def test_many_models_dry_run_lists_the_targets(folder, capsys):
    many(folder, 3, broken=-1)
    assert main(["apply", str(folder / "promote.yaml"), str(folder / "models" / "*.onnx"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "on 3 model(s):" in out and "m02.promote.onnx" in out
    assert len(list((folder / "models").iterdir())) == 3


def test_numbers_are_unchanged_through_many_models(folder):
    models = many(folder, 3, broken=-1)
    assert (
        main(["apply", str(folder / "promote.yaml"), *map(str, models), "--output-dir", str(folder / "out"), "-j", "2"])
        == 0
    )
    from tests.conftest import run_ort

    x = np.random.default_rng(0).random((1, 2, 4, 5), dtype=np.float32)
    for number, model in enumerate(models):
        factor = 2.0 + number / 4
        scales = np.array([1, 1, factor, factor], np.float32)
        got = run_ort(str(folder / "out" / model.name), {"x": x, "scales": scales})[0]
        np.testing.assert_array_equal(got, run_ort(str(model), {"x": x})[0])


def test_a_json_recipe_and_kebab_case_options(folder):
    recipe = {"steps": [{"promote-input": {"node": "Resize", "attr": "scales", "keep-default": True}}], "verify": True}
    path = write(folder, json.dumps(recipe), "r.json")
    assert main(["apply", path, str(folder / "m.onnx"), "-o", str(folder / "o.onnx")]) == 0
    model = gs.load(folder / "o.onnx")
    assert "scales" in model.index.main.inputs and "scales" in model.index.main.initializers
