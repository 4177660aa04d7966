"""rename: tensors and nodes renamed consistently in every scope; collisions and unknown names refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.index import ModelIndex
from graphsurgeon.errors import GraphSurgeonError
from tests.conftest import corpus_models, external_data_dir, model_id, run_ort


def branching_model() -> onnx.ModelProto:
    """x -> Relu -> h; If(cond) whose branches read h from the outer scope; a local function doubling its input."""
    then = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["then_out"], name="neg")],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [2, 3])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["h"], ["else_out"], name="ident")],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [2, 3])],
    )
    double = helper.make_function(
        "local",
        "Double",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"], name="add_in_function")],
        [helper.make_opsetid("", 17)],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["h"], name="relu"),
        helper.make_node("If", ["cond"], ["branch"], name="if", then_branch=then, else_branch=other),
        helper.make_node("Double", ["branch"], ["doubled"], name="double", domain="local"),
        helper.make_node("Mul", ["doubled", "scale"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[helper.make_tensor("scale", TensorProto.FLOAT, [1], [3.0])],
        value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 3])],
        doc_string="kept",
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[double]
    )
    model.ir_version = 8
    helper.set_model_props(model, {"author": "test"})
    return model


FEEDS = {"x": np.arange(-3, 3, dtype=np.float32).reshape(2, 3), "cond": np.array(True)}


def then_branch(model: onnx.ModelProto) -> onnx.GraphProto:
    return next(a.g for a in model.graph.node[1].attribute if a.name == "then_branch")


def occurrences(model: onnx.ModelProto, name: str) -> int:
    """How often `name` appears as a tensor name anywhere in the model's graphs."""
    from google.protobuf import text_format

    return text_format.MessageToString(model).count(f'"{name}"')


def test_a_tensor_is_renamed_in_every_scope_and_the_model_computes_the_same():
    original = branching_model()
    model = gs.load(branching_model())
    model.rename(tensor=["h=hidden", "y=result", "x=image"])
    proto = model.proto
    assert occurrences(proto, "h") == 0 and occurrences(proto, "hidden") == 4  # def, value_info, 2 subgraph reads
    assert [n.input[0] for n in then_branch(proto).node] == ["hidden"]
    assert [vi.name for vi in proto.graph.input] == ["image", "cond"] and proto.graph.output[0].name == "result"
    assert model.interface_renames == {"y": "result", "x": "image"}
    assert model.index.snapshot() == ModelIndex(proto).snapshot()  # the index was kept right
    onnx.checker.check_model(proto)
    feeds = {"image": FEEDS["x"], "cond": FEEDS["cond"]}
    np.testing.assert_array_equal(run_ort(proto, feeds)[0], run_ort(original, FEEDS)[0])
    assert proto.metadata_props[0].key == "author" and proto.graph.doc_string == "kept"


def test_a_swap_is_one_to_one_and_allowed():
    model = gs.load(branching_model())
    model.rename(tensor=["x=cond", "cond=x"])
    assert [vi.name for vi in model.proto.graph.input] == ["cond", "x"]
    assert model.proto.graph.node[0].input[0] == "cond" and model.proto.graph.node[1].input[0] == "x"


def test_nodes_and_regex():
    model = gs.load(branching_model())
    model.rename(node=["relu=first"], regex="^(.*)$=n_\\1", what="nodes")
    names = [n.name for n in model.proto.graph.node]
    assert names == ["first", "n_if", "n_double", "n_mul"]  # explicit pairs win over the pattern
    assert then_branch(model.proto).node[0].name == "n_neg"
    assert model.proto.functions[0].node[0].name == "n_add_in_function"
    assert model.proto.graph.input[0].name == "x"  # what="nodes": tensors untouched
    model.rename(regex="_out$=_value", what="tensors")
    assert then_branch(model.proto).output[0].name == "then_value"


def test_regex_renames_function_bodies_in_their_own_namespace():
    model = gs.load(branching_model())
    model.rename(regex="^([ab])$=fn_\\1", what="tensors")
    function = model.proto.functions[0]
    assert list(function.input) == ["fn_a"] and list(function.node[0].input) == ["fn_a", "fn_a"]
    assert list(function.output) == ["fn_b"]
    np.testing.assert_array_equal(run_ort(model.proto, FEEDS)[0], run_ort(branching_model(), FEEDS)[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tensor": ["h=y"]}, "already has a tensor 'y'"),
        ({"tensor": ["h=z", "x=z"]}, "both to 'z'"),
        ({"tensor": ["hh=z"]}, "no tensor of that name (did you mean 'h'?)"),
        ({"node": ["relu=mul"]}, "already has a node 'mul'"),
        ({"node": ["nothere=a"]}, "the model has no node"),
        ({"tensor": ["novalue"]}, "takes OLD=NEW"),
        ({"regex": "(=x"}, "not a valid regular expression"),
        ({"regex": "^zzz=a"}, "matches no tensor or node name"),
        ({"regex": "^.*$="}, "empty name"),
        ({"regex": "^[xy]$=same", "what": "tensors"}, "both to 'same'"),
        ({}, "nothing to rename"),
    ],
)
def test_bad_input_is_refused_before_any_edit(options, message):
    model = gs.load(branching_model())
    before = model.proto.SerializeToString()
    with pytest.raises(GraphSurgeonError, match=None) as caught:
        model.rename(**options)
    assert message in str(caught.value)
    assert model.proto.SerializeToString() == before and not model.changes


def test_cli_verify_pairs_renamed_interface_and_bad_input_writes_nothing(tmp_path: Path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(branching_model(), path)
    out = tmp_path / "out.onnx"
    args = ["rename", str(path), "--tensor", "x=image", "y=result", "--regex", "^(relu|mul)$=layer_\\1"]
    assert main([*args, "-o", str(out), "--verify", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verify"]["status"] == "equal"
    assert [c["name"] for c in document["changes"] if c["kind"] == "node"] == ["relu", "mul"]
    bad = tmp_path / "bad.onnx"
    assert main(["rename", str(path), "--tensor", "x=cond", "-o", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cond'" in err[0] and not bad.exists()


def _loadable(path: Path) -> gs.Model | None:
    try:
        return gs.load(path, external_data_dir=external_data_dir(path))
    except GraphSurgeonError:
        return None


@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_corpus_rename_everything_and_back_is_byte_identical(path: Path):
    model = _loadable(path)
    if model is None:
        pytest.skip("not a model graphsurgeon loads")
    if not model.tensor_names() and not any(n.name for _, n in model.index.find_nodes()):
        pytest.skip("nothing named")
    before = model.proto.SerializeToString()
    prefix = "\x01gs/"
    model.rename(regex=f"^(.+)$={prefix}\\1")
    named = {n for n in model.tensor_names()} | {n.name for _, n in model.index.find_nodes() if n.name}
    assert all(name.startswith(prefix) for name in named)
    assert model.index.snapshot() == ModelIndex(model.proto).snapshot()
    model.rename(regex=f"^{prefix}(.*)$=\\1")
    assert model.proto.SerializeToString() == before


def test_corpus_rename_of_an_output_is_verified(tmp_path: Path, capsys):
    from tests.test_verify_json import runnable

    checked = 0
    for path in corpus_models():
        if "corpus" not in str(path) or not runnable(path):
            continue
        original = onnx.load(str(path), load_external_data=False)
        first_output = original.graph.output[0].name
        out = tmp_path / f"{path.stem}.onnx"
        args = ["rename", str(path), "--tensor", f"{first_output}=renamed_output", "-o", str(out), "--verify"]
        args += ["--json", "--external-data-dir", str(external_data_dir(path))]
        assert main(args) == 0, path
        document = json.loads(capsys.readouterr().out)
        assert document["verify"]["status"] == "equal", (path, document["verify"])
        differences = gs.load(path, external_data_dir=external_data_dir(path)).diff(out).differences
        renamed = {first_output, "renamed_output"}
        assert all(d.name in renamed or d.section == "node" for d in differences), (path, differences)
        checked += 1
    assert checked >= 20
