"""to-fp16 on real models: small torch CNNs, transformer-like and LSTM exports from both torch exporters, and the
onnx wheel's model-zoo graphs. Each result runs in onnxruntime with the float32 interface kept, within float16's
error of the original, with no two Casts in a row; plus subgraphs, functions, external data, bf16, the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.numeric import random_feeds
from graphsurgeon.core.walk import model_graphs
from tests.conftest import ONNX_DATA, run_ort

torch = pytest.importorskip("torch")
nn = torch.nn


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, groups=2), nn.BatchNorm2d(32), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.f(x).flatten(1))


class TinyGPT(nn.Module):
    """Token + position embeddings, causal -inf mask, pre-norm encoder layers, LM head."""

    def __init__(self, vocab=100, d=32, heads=4, layers=2, ctx=16):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 64, dropout=0.0, batch_first=True, norm_first=True, activation="gelu")
            for _ in range(layers)
        )
        self.ln, self.out = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids):
        length = ids.shape[1]
        h = self.tok(ids) + self.pos(torch.arange(length))[None]
        mask = torch.triu(torch.full((length, length), float("-inf")), 1)
        for block in self.blocks:
            h = block(h, src_mask=mask)
        return self.out(self.ln(h))


class Attention(nn.Module):
    """BERT-style attention with a padding mask scaled by float32's min (out of float16's range)."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.qkv, self.o, self.heads, self.ln = nn.Linear(d, 3 * d), nn.Linear(d, d), heads, nn.LayerNorm(d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / (d // self.heads) ** 0.5
        att = att + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.ln(x + self.o(y))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.o = nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 4)

    def forward(self, x):
        return self.o(self.lstm(x)[0])


def _examples():
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    return {
        "cnn": (CNN, (torch.randn(1, 3, 16, 16),), ["x"]),
        "gpt": (TinyGPT, (torch.randint(0, 100, (1, 16)),), ["ids"]),
        "attn": (Attention, (torch.randn(2, 8, 32), mask), ["x", "mask"]),
        "lstm": (LSTMNet, (torch.randn(2, 5, 8),), ["x"]),
    }


def build_torch_models(folder: Path) -> dict[str, Path]:
    """name_exporter -> model path (the dynamo exports keep their weights in external data)."""
    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)
    built = {}
    for dynamo in (False, True):
        tag = "dynamo" if dynamo else "torchscript"
        for name, (cls, args, names) in _examples().items():
            path = folder / f"{name}_{tag}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    cls().eval(), args, str(path), dynamo=dynamo, input_names=names, opset_version=18 if dynamo else 17
                )
            built[f"{name}_{tag}"] = path
    return built


def feeds_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    feeds = random_feeds(model, symbolic=2)
    if "mask" in feeds:  # a padding mask is 0 or 1
        feeds["mask"] = (feeds["mask"] % 2).astype(feeds["mask"].dtype)
        feeds["mask"][:, 0] = 1
    return feeds


def worst_relative_error(original: Path, converted: Path) -> float:
    feeds = feeds_for(onnx.load(str(original)))
    worst = 0.0
    for a, b in zip(run_ort(original, feeds), run_ort(converted, feeds), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.kind == "f":
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b)) / (np.max(np.abs(a)) + 1e-12)))
    return worst


def cast_pairs(model: onnx.ModelProto) -> int:
    pairs = 0
    for graph in model_graphs(model):
        producers = {o: n for n in graph.node for o in n.output}
        pairs += sum(
            n.op_type == "Cast" and n.input[0] in producers and producers[n.input[0]].op_type == "Cast"
            for n in graph.node
        )
    return pairs


def interface(model: onnx.ModelProto) -> list[tuple[str, int]]:
    inits = {t.name for t in model.graph.initializer}
    return [
        (v.name, v.type.tensor_type.elem_type) for v in (*model.graph.input, *model.graph.output) if v.name not in inits
    ]


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory) -> dict[str, Path]:
    return build_torch_models(tmp_path_factory.mktemp("torch_models"))


LIGHT = sorted((ONNX_DATA / "light").glob("*.onnx"))


@pytest.mark.parametrize("name", [f"{m}_{e}" for e in ("torchscript", "dynamo") for m in _examples()])
def test_torch_exports(torch_models, tmp_path, name):
    source = torch_models[name]
    out = tmp_path / "out.onnx"
    gs.load(source).to_fp16().save(out)
    converted = onnx.load(str(out), load_external_data=False)
    assert interface(converted) == interface(onnx.load(str(source), load_external_data=False))
    assert cast_pairs(converted) == 0
    assert worst_relative_error(source, out) < 5e-3
    scales = {n.input[2] for g in model_graphs(converted) for n in g.node if n.op_type == "Resize" and len(n.input) > 2}
    floats = [t.name for g in model_graphs(converted) for t in g.initializer if t.data_type == TensorProto.FLOAT]
    assert set(floats) <= scales  # Resize's scales are float32 by definition
    if "dynamo" in name:  # streamed to a new data file; the float32 one is not carried along
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{source.stem}.fp16.data", "out.onnx"]


@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_model_zoo_graphs(tmp_path, path):
    out = tmp_path / "out.onnx"
    model = gs.load(path).to_fp16()
    model.save(out)
    converted = onnx.load(str(out))
    assert interface(converted) == interface(onnx.load(str(path)))
    assert cast_pairs(converted) == 0
    assert sum(n.op_type == "Cast" for n in converted.graph.node) == 2  # the input's and the output's
    assert np.isfinite(worst_relative_error(path, out))


def test_blocked_op_keeps_float32_and_casts_around_it(torch_models):
    model = gs.load(torch_models["gpt_torchscript"]).to_fp16(block=["Softmax"])
    softmax = model.find_nodes(op="Softmax")
    assert softmax
    types = {vi.name: vi.type.tensor_type.elem_type for vi in model.proto.graph.value_info}
    for node in softmax:
        producer = model.producer(node.input[0])
        assert producer is not None and producer.op_type == "Cast"
        assert types.get(node.output[0], TensorProto.FLOAT) == TensorProto.FLOAT
    assert cast_pairs(model.proto) == 0
    run_ort(model.proto, feeds_for(model.proto))


def test_without_keep_io_the_interface_is_float16(torch_models):
    model = gs.load(torch_models["cnn_torchscript"]).to_fp16(keep_io=False)
    assert [t for _, t in interface(model.proto)] == [TensorProto.FLOAT16, TensorProto.FLOAT16]
    assert not model.find_nodes(op="Cast")
    feeds = {k: v.astype(np.float16) for k, v in feeds_for(model.proto).items()}
    assert run_ort(model.proto, feeds)[0].dtype == np.float16


def test_bf16_weights_and_a_valid_model(torch_models, tmp_path):
    gs.load(torch_models["gpt_dynamo"]).to_fp16(bf16=True).save(tmp_path / "bf16.onnx")
    onnx.checker.check_model(str(tmp_path / "bf16.onnx"), full_check=True)
    converted = onnx.load(str(tmp_path / "bf16.onnx"))
    assert {t.data_type for t in converted.graph.initializer} <= {TensorProto.BFLOAT16, TensorProto.INT64}


def _if_and_function_model() -> onnx.ModelProto:
    """x -> If(cond: Mul(x, w) | Add(x, w)) -> local function Scale (Mul by a Constant) -> Relu."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.5, 1.5, -2.0, 3.0])
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["t"])], "then", [], [helper.make_tensor_value_info("t", 1, [2, 4])]
    )
    else_branch = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["e"])], "else", [], [helper.make_tensor_value_info("e", 1, [2, 4])]
    )
    body = [
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.FLOAT, [], [0.25])),
        helper.make_node("Mul", ["a", "k"], ["b"]),
    ]
    function = helper.make_function("local", "Scale", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    nodes = [
        helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Scale", ["y"], ["s"], domain="local"),
        helper.make_node("Relu", ["s"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, [2, 4]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", 1, [2, 4])],
        [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[function]
    )
    model.ir_version = 9
    model.doc_string = "kept"
    helper.set_model_props(model, {"author": "me"})
    return model


def test_subgraphs_and_functions_are_converted():
    original = _if_and_function_model()
    model = gs.load(original.SerializeToString()).to_fp16()
    converted = model.proto
    onnx.checker.check_model(converted, full_check=True)
    branch_ops = {
        n.op_type: n for g in model_graphs(converted) if g is not converted.graph for n in g.node
    }  # the If's branches compute in float16 behind Casts at their boundary
    assert "Cast" in branch_ops
    body = converted.functions[0]
    assert any(n.op_type == "Cast" for n in body.node)
    constant = next(n for n in body.node if n.op_type == "Constant")
    assert constant.attribute[0].t.data_type == TensorProto.FLOAT16
    assert converted.doc_string == "kept" and converted.metadata_props[0].key == "author"
    x = np.array([[1, 2, 3, 4], [-1, -2, -3, -4]], np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_allclose(run_ort(converted, feeds)[0], run_ort(original, feeds)[0], rtol=2e-3)


def test_graph_output_read_inside_keeps_its_name_and_one_cast():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["n"])],
        "g",
        [helper.make_tensor_value_info("x", 1, [3])],
        [helper.make_tensor_value_info("r", 1, [3]), helper.make_tensor_value_info("n", 1, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    converted = gs.load(model).to_fp16().proto
    assert [o.name for o in converted.graph.output] == ["r", "n"]
    assert sum(n.op_type == "Cast" for n in converted.graph.node) == 3  # x in, r out, n out
    neg = next(n for n in converted.graph.node if n.op_type == "Neg")
    assert neg.input[0] != "r"  # reads the float16 tensor, not the Cast back to float32
    x = np.array([-1, 0, 2], np.float32)
    got = run_ort(converted, {"x": x})
    np.testing.assert_array_equal(got[0], [0, 0, 2])
    np.testing.assert_array_equal(got[1], [0, 0, -2])


def test_cli(torch_models, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["to-fp16", str(torch_models["cnn_torchscript"]), "-o", str(out), "--block", "Relu", "--json"]) == 0
    assert out.exists()
    assert main(["to-fp16", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.onnx" in err[0]
    assert not (tmp_path / "x.onnx").exists()
