"""retype: graph inputs / outputs take another element type, the Casts inside, names kept."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import corpus_models, external_data_dir, model_id, run_ort
from tests.test_verify_json import runnable


def embedding(path) -> None:
    """ids:int64[1,4] -> Gather(table) -> float[1,4,3] -> ReduceSum -> logits float[1,4,1]."""
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["emb"], name="gather"),
            helper.make_node("ReduceSum", ["emb", "axes"], ["logits"], name="sum", keepdims=1),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 1])],
        [table, numpy_helper.from_array(np.array([2], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_int32_ids_and_float16_logits(tmp_path):
    embedding(tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    assert (
        main(
            [
                "retype",
                str(tmp_path / "m.onnx"),
                "--input",
                "ids:int32",
                "--graph-output",
                "logits:float16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.INT32
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    ids = np.array([[1, 2, 3, 9]])
    expected = run_ort(tmp_path / "m.onnx", {"ids": ids})[0]
    got = run_ort(out, {"ids": ids.astype(np.int32)})[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, expected, rtol=1e-3)


def test_refusals(tmp_path):
    embedding(tmp_path / "m.onnx")
    with pytest.raises(RewriteError, match="no graph input 'nope'"):
        gs.load(tmp_path / "m.onnx").retype(input="nope:int32")
    with pytest.raises(RewriteError, match="not an element type"):
        gs.load(tmp_path / "m.onnx").retype(input="ids:int33")
    with pytest.raises(RewriteError, match="give `input` or `graph_output`"):
        gs.load(tmp_path / "m.onnx").retype()
    assert gs.load(tmp_path / "m.onnx").retype(input={"ids": "int64"}).notes == ["graph input 'ids' is int64 already"]


def test_verify_feeds_the_retyped_input_its_new_type(tmp_path, capsys):
    embedding(tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    assert main(["retype", str(tmp_path / "m.onnx"), "--input", "ids:int32", "-o", str(out), "--verify"]) == 0
    assert "verify: equal" in capsys.readouterr().out


# -- int64_to_int32 ---------------------------------------------------------------------------------------------
INT64_MAX = np.iinfo(np.int64).max


def int64_tensors(path) -> set[str]:
    """Names of the int64 tensors of the main graph (inputs, initializers, Constants and computed ones)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    graph = model.graph
    typed = {vi.name: vi.type.tensor_type.elem_type for vi in (*graph.input, *graph.value_info, *graph.output)}
    typed |= {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:
        for a in node.attribute:
            if node.op_type == "Constant" and a.name == "value":
                typed[node.output[0]] = a.t.data_type
    return {name for name, dtype in typed.items() if dtype == TensorProto.INT64}


def positions(path) -> None:
    """Index arithmetic as exporters write it, on a dynamic sequence length S:

    ids:int64[2,S] -> Gather(tokens) + Gather(table, Range(0, Shape(ids)[1], 1)) -> emb;
    Shape(emb)[1] squared (not provably within int32) -> ConstantOfShape -> zeros;
    ReduceMax(Slice(ids, 1, INT64_MAX)) -> last (an int64 graph output);
    ConstantOfShape(int64 1) * S -> Concat(2, .) -> Expand's shape (fixed int64) -> grid."""
    i64 = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), name)  # noqa: E731
    fill_one = helper.make_tensor("", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Gather", ["tokens", "ids"], ["tok"], name="tok"),
        helper.make_node("Shape", ["ids"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "idx1"], ["seq"], name="seq"),
        helper.make_node("Range", ["zero", "seq", "step"], ["pos"], name="range"),
        helper.make_node("Gather", ["table", "pos"], ["pos_emb"], name="pos_emb"),
        helper.make_node("Add", ["tok", "pos_emb"], ["emb"], name="add"),
        helper.make_node("Shape", ["emb"], ["shape2"], name="shape2"),
        helper.make_node("Gather", ["shape2", "idx1"], ["seq2"], name="seq2"),
        helper.make_node("Mul", ["seq2", "seq2"], ["sq"], name="sq"),
        helper.make_node("Unsqueeze", ["sq", "axes0"], ["sq1"], name="sq1"),
        helper.make_node("ConstantOfShape", ["sq1"], ["zeros"], name="zeros"),
        helper.make_node("Slice", ["ids", "one", "big", "one"], ["tail"], name="tail"),
        helper.make_node("ReduceMax", ["tail"], ["last"], name="last", keepdims=0),
        helper.make_node("ConstantOfShape", ["one"], ["ones"], name="ones", value=fill_one),
        helper.make_node("Mul", ["ones", "seq"], ["width"], name="width"),
        helper.make_node("Concat", ["two", "width"], ["grid_shape"], name="grid_shape", axis=0),
        helper.make_node("Expand", ["flag", "grid_shape"], ["grid"], name="grid"),
    ]
    graph = helper.make_graph(
        nodes,
        "positions",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, "S"])],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, [2, "S", 4]),
            helper.make_tensor_value_info("zeros", TensorProto.FLOAT, ["SS"]),
            helper.make_tensor_value_info("last", TensorProto.INT64, []),
            helper.make_tensor_value_info("grid", TensorProto.BOOL, [2, "S"]),
        ],
        [
            numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "tokens"),
            numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(16, 4) / 7, "table"),
            numpy_helper.from_array(np.array([True]), "flag"),
            i64("zero", 0),
            i64("step", 1),
            i64("idx1", 1),
            i64("one", [1]),
            i64("axes0", [0]),
            i64("big", [INT64_MAX]),
            i64("two", [2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def test_index_arithmetic_is_narrowed_where_it_provably_fits(tmp_path, capsys):
    positions(tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    args = ["retype", str(tmp_path / "m.onnx"), "--input", "ids:int32", "--int64-to-int32", "-o", str(out)]
    assert main([*args, "--verify"]) == 0
    printed = capsys.readouterr().out
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    before, after = int64_tensors(tmp_path / "m.onnx"), int64_tensors(out)
    assert "verify: equal" in printed
    assert f"int64 tensors {len(before)} -> {len(after)}, Casts +3 -1" in printed
    # int32 now: the sequence length, the positions, ConstantOfShape's fill, the width and Expand's shape
    # computed from it, Range's and Concat's constants (converted in place), the ids' tail
    for name in ("seq", "pos", "ones", "width", "grid_shape", "zero", "step", "two", "tail"):
        assert name in before and name not in after, name
    # int64 still: Shape's outputs; S * S and what it feeds (it may pass int32); the int64 graph output; Slice's
    # and Gather's index constants (their type parameter is apart from the data's, and nothing gains)
    for name in ("shape", "shape2", "seq2", "sq", "sq1", "last", "one", "big", "axes0", "idx1"):
        assert name in after, name
    casts = {(n.input[0], n.attribute[0].i) for n in model.graph.node if n.op_type == "Cast"}
    assert casts == {("shape", TensorProto.INT32), ("grid_shape", TensorProto.INT64), ("tail", TensorProto.INT64)}
    assert [n.input[1] for n in model.graph.node if n.name == "tok"] == ["ids"]  # token ids read as int32
    for seq in (3, 9):
        ids = np.random.default_rng(seq).integers(0, 10, (2, seq))
        expected = run_ort(tmp_path / "m.onnx", {"ids": ids})
        got = run_ort(out, {"ids": ids.astype(np.int32)})
        for a, b in zip(expected, got, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_unproven_int64_inputs_keep_int64(tmp_path):
    embedding(tmp_path / "m.onnx")
    model = gs.load(tmp_path / "m.onnx").retype(int64_to_int32=True)
    assert any("no int64 tensor narrowed" in note for note in model.notes), model.notes
    assert any("'ids' keep int64" in note for note in model.notes), model.notes
    assert not gs.load(tmp_path / "m.onnx").diff(model.save(tmp_path / "o.onnx")).differences


def test_constants_shared_with_int64_reads_get_an_int32_copy(tmp_path):
    """`k` is read by the narrowed Concat and by Reshape's shape (fixed int64): Reshape keeps the int64 original.
    (An Add of int32 ids could pass int32's range: it would keep int64.)"""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
            helper.make_node("Concat", ["ids64", "k"], ["shifted"], axis=0),
            helper.make_node("Gather", ["table", "shifted"], ["rows"]),
            helper.make_node("Reshape", ["rows", "k"], ["flat"]),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, [4])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.array([-1], np.int64), "k"),
            numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    result = gs.load(tmp_path / "m.onnx").retype(int64_to_int32=True)
    proto = result.proto
    assert [n.op_type for n in proto.graph.node] == ["Concat", "Gather", "Reshape"]  # no Cast: ids is int32
    assert {t.name: t.data_type for t in proto.graph.initializer}["k"] == TensorProto.INT64
    assert {t.name: t.data_type for t in proto.graph.initializer}["k_int32"] == TensorProto.INT32
    ids = np.array([1, 2, 3, 9], np.int32)
    np.testing.assert_array_equal(run_ort(proto, {"ids": ids})[0], run_ort(model, {"ids": ids})[0])


def test_a_tensor_read_inside_a_subgraph_keeps_int64(tmp_path):
    then = helper.make_graph(
        [helper.make_node("Identity", ["ids64"], ["picked"])],
        "then",
        [],
        [helper.make_tensor_value_info("picked", TensorProto.INT64, None)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
            helper.make_node("If", ["flag"], ["chosen"], then_branch=then, else_branch=then),
            helper.make_node("Gather", ["table", "ids64"], ["rows"]),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT32, [4])],
        [
            helper.make_tensor_value_info("rows", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("chosen", TensorProto.INT64, None),
        ],
        [
            numpy_helper.from_array(np.array(True), "flag"),
            numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    result = gs.load(model.SerializeToString()).retype(int64_to_int32=True)
    assert [n.op_type for n in result.proto.graph.node] == ["Cast", "If", "Gather"]
    assert result.proto.graph.node[0].attribute[0].i == TensorProto.INT64


# -- BERT- and GPT-2-style exports (random weights, no downloads), both torch exporters, dynamic sequence -------
def _export(kind: str, dynamo: bool, path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
        inner = transformers.BertModel(config)
    else:
        inner = transformers.GPT2Model(
            transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        )

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = inner

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    args = (torch.randint(0, 100, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    names = ["input_ids", "attention_mask"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            seq = torch.export.Dim("seq", max=32)
            torch.onnx.export(
                Wrapped().eval(), args, str(path), dynamo=True, input_names=names, opset_version=18,
                dynamic_shapes=({1: seq}, {1: seq}),
            )  # fmt: skip
        else:
            torch.onnx.export(
                Wrapped().eval(), args, str(path), dynamo=False, input_names=names, opset_version=17,
                dynamic_axes={name: {1: "seq"} for name in names},
            )  # fmt: skip


@pytest.fixture(scope="module")
def transformer_exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    paths = {}
    for kind in ("bert", "gpt2"):
        for dynamo in (False, True):
            name = f"{kind}_{'dynamo' if dynamo else 'torchscript'}"
            (folder / name).mkdir()
            _export(kind, dynamo, folder / name / "model.onnx")
            paths[name] = folder / name / "model.onnx"
    return paths


@pytest.mark.parametrize("name", ["bert_torchscript", "bert_dynamo", "gpt2_torchscript", "gpt2_dynamo"])
def test_transformer_exports_take_int32_ids_with_identical_outputs(transformer_exports, tmp_path, name, capsys):
    source = transformer_exports[name]
    out = tmp_path / "out" / "model.onnx"
    args = ["retype", str(source), "--input", "input_ids:int32", "--int64-to-int32", "-o", str(out)]
    assert main([*args, "--verify", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verify"]["status"] == "equal", document["verify"]
    narrowed = [c for c in document["changes"] if c["action"] == "narrowed"]
    assert len(narrowed) == 1, document["changes"]
    before, after = int64_tensors(source), int64_tensors(out)
    assert len(after) < len(before)
    print(f"{name}: int64 tensors {len(before)} -> {len(after)}; {narrowed[0]['detail']}")
    model = onnx.load(str(out), load_external_data=False)
    interface = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.input}
    assert interface == {"input_ids": TensorProto.INT32, "attention_mask": TensorProto.INT64}
    assert not [n for n in model.graph.node if n.op_type == "Cast" and n.input[0] == "input_ids"]  # read as int32
    producers = {o: n for n in model.graph.node for o in n.output}
    pairs = [n for n in model.graph.node if n.op_type == "Cast" and getattr(producers.get(n.input[0]), "op_type", "")
             == "Cast"]  # fmt: skip
    assert not pairs, [n.name for n in pairs]
    for seq in (5, 11):  # not the exported length: the index arithmetic runs
        rng = np.random.default_rng(seq)
        ids = rng.integers(0, 100, (2, seq))
        mask = np.ones((2, seq), np.int64)
        mask[1, seq - 2 :] = 0
        expected = run_ort(source, {"input_ids": ids, "attention_mask": mask})
        got = run_ort(out, {"input_ids": ids.astype(np.int32), "attention_mask": mask})
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_corpus_int64_inputs_as_int32_and_narrowed_verify_equal(path: Path, tmp_path: Path, capsys):
    """Every corpus model onnxruntime runs: int64 inputs retyped to int32 and the arithmetic narrowed computes
    what the original does (or the model is refused with one clear line)."""
    if not runnable(path):
        pytest.skip("onnxruntime cannot run the original as it is")
    model = onnx.load(str(path), load_external_data=False)
    constant = {t.name for t in model.graph.initializer}
    wide = [vi.name for vi in model.graph.input if vi.name not in constant and vi.type.tensor_type.elem_type == 7]
    out = tmp_path / "out.onnx"
    args = ["retype", str(path), *(["--input", *(f"{n}:int32" for n in wide)] if wide else []), "--int64-to-int32"]
    code = main([*args, "-o", str(out), "--verify", "--json", "--external-data-dir", str(external_data_dir(path))])
    printed = capsys.readouterr()
    if code == 1 and not printed.out:
        assert printed.err.count("\n") == 1 and printed.err.startswith("graphsurgeon: error: "), printed.err
        return
    assert json.loads(printed.out)["verify"]["status"] == "equal", printed.out
