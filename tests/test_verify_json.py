"""`--json` and `--verify` on every writing verb, over every corpus model onnxruntime can run.

Each run goes through the CLI as a user would (`graphsurgeon VERB MODEL -o OUT --verify --json`): the JSON
document must parse and hold the changes, the before/after summary and a verify result that says "equal".
promote-input, which changes the interface, is verified at the original values of what it promotes.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import onnx
import pytest

from graphsurgeon.cli import main
from graphsurgeon.core.schema import operand_index
from graphsurgeon.verbs import registry
from tests.conftest import corpus_models, external_data_dir, load_full, model_id, random_feeds
from tests.fold_conformance import session

# every writing verb that runs on any model as it is (verbs that need options naming parts of the model, such
# as remove-node --node, run the same corpus loop in their own tests with options taken from each model)
WRITING = [
    name
    for name, verb in registry().items()
    if verb.writes and (name == "promote-input" or not any(o.required for o in verb.options))
]


@cache
def runnable(path: Path) -> bool:
    """onnxruntime runs the original on random plain-tensor inputs (the models --verify can judge)."""
    try:
        model = load_full(path)
        feeds = random_feeds(model, symbolic_dim=2)
        if feeds is None:
            return False
        session(model).run(None, feeds)
        return True
    except Exception:  # broken on purpose, weightless, custom or unimplemented ops...
        return False


def promotable(path: Path) -> list[str] | None:
    """`--node NAME --attr OPERAND` for the first main-graph node reading a small initializer as a named
    operand (what promote-input can make an input), or None."""
    model = onnx.load(str(path), load_external_data=False)
    small = {t.name for t in model.graph.initializer if 0 < len(t.dims) <= 1 and (not t.dims or t.dims[0] <= 16)}
    small -= {vi.name for vi in model.graph.input}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    names = [n.name for n in model.graph.node]
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or not node.name or names.count(node.name) != 1 or opset is None:
            continue
        schema = onnx.defs.get_schema(node.op_type, opset, "") if onnx.defs.has(node.op_type) else None
        if schema is None:
            continue
        for position, tensor in enumerate(node.input):
            if tensor in small and position < len(schema.inputs):
                operand = schema.inputs[position].name
                try:
                    if operand_index(node, operand, opset) == position:
                        return ["--node", node.name, "--attr", operand]
                except Exception:  # not selectable by that name
                    continue
    return None


@pytest.mark.parametrize("verb", WRITING)
@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_verify_and_json(path: Path, verb: str, tmp_path: Path, capsys):
    if not runnable(path):
        pytest.skip("onnxruntime cannot run the original as it is")
    options: list[str] = []
    if verb == "promote-input":
        options = promotable(path) or []
        if not options:
            pytest.skip("no small constant operand to promote")
    out = tmp_path / "out.onnx"
    args = [verb, str(path), *options, "-o", str(out), "--verify", "--json", "--atol", "1e-4"]
    args += ["--external-data-dir", str(external_data_dir(path))]
    code = main(args)
    printed = capsys.readouterr()
    if code == 1 and not printed.out:  # the verb refuses this model: one clear line, nothing written
        assert printed.err.count("\n") == 1 and printed.err.startswith("graphsurgeon: error: "), printed.err
        assert not out.exists()
        return
    document = json.loads(printed.out)
    assert document["verb"] == verb and document["output"] == str(out)
    assert set(document["summary"]) >= {"nodes", "initializers", "initializer_bytes", "file_bytes", "seconds"}
    assert all(set(c) == {"verb", "action", "kind", "name", "detail"} for c in document["changes"])
    verify = document["verify"]
    assert verify["status"] in ("equal", "different", "error"), verify
    if registry()[verb].preserves_meaning:
        assert verify["status"] == "equal", (verify, printed.err)
        assert code == 0 and document["exit_code"] == 0
    assert code == document["exit_code"] == (1 if verify["status"] == "different" else 0)
    assert out.exists()


def test_a_failing_verify_exits_1_and_keeps_the_output(tmp_path: Path, capsys, monkeypatch):
    import numpy as np

    import graphsurgeon as gs
    from tests.test_promote_input import resize_model

    path = tmp_path / "m.onnx"
    onnx.save(resize_model(), path)
    run_verb = gs.Model.run_verb

    def broken(self, name, /, *args, **options):  # a rewrite with a bug: it changes a constant's value
        result = run_verb(self, name, *args, **options)
        constant = self.proto.graph.initializer[0].name
        self.set_tensor_value(constant, self.tensor_value(constant) * np.float32(2))
        return result

    monkeypatch.setattr(gs.Model, "run_verb", broken)
    out = tmp_path / "out.onnx"
    assert main(["cleanup", str(path), "-o", str(out), "--verify"]) == 1
    printed = capsys.readouterr()
    assert "MISMATCH" in printed.out and "verify failed" in printed.err and str(out) in printed.err
    assert out.exists()  # kept, and named as failing
    assert main(["cleanup", str(path), "-o", str(out), "--verify", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["verify"]["status"] == "different"
