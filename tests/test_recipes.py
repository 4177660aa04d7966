"""Every shipped recipe (recipes/*.yaml), run by `graphsurgeon apply` on a real torch export, gives a model that
computes what torch computes. Recipes whose verbs are still being built are skipped, naming the missing verb,
until the verb is registered. Also: the shipped JSON Schema is the one the declarations make, and every shipped
recipe passes it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.recipe import Recipe, schema
from graphsurgeon.verbs import registry
from tests.conftest import REPO, run_ort

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from recipes import srcnn_promote_input  # noqa: E402
from recipes.srcnn_model import make_srcnn  # noqa: E402

RECIPES = REPO / "recipes"
FACTORS = (2.0, 3.0, 4.0, 2.5)
TESTED = {
    "srcnn-dynamic-factor.yaml",
    "srcnn-custom-resize.yaml",
    "gelu-plugin.yaml",
    "debug-all-outputs.yaml",
    "batch-dynamic.yaml",
    "fp16.yaml",
    "deploy-static.yaml",
    "uint8-preprocess.yaml",
}


def needs(*verbs: str) -> None:
    missing = [v for v in verbs if v not in registry()]
    if missing:
        pytest.skip(f"the recipe needs the verb(s) {', '.join(missing)}, not registered yet")


class Block(nn.Module):
    """A pre-norm transformer block (attention, erf-GELU MLP) as exported language and vision models have."""

    def __init__(self, d: int = 32, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1) @ v
        x = x + self.proj(attention.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class SmallCNN(nn.Module):
    """conv-bn-relu x2, pool, flatten, linear: a classifier whose Flatten/Reshape carries the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        )  # fmt: skip
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).reshape(x.shape[0], -1))


def export(
    model: nn.Module, example: torch.Tensor, path: Path, *, opset: int = 17, dynamic_batch: bool = False
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None,
        )
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    cnn, block = SmallCNN().eval(), nn.Sequential(Block(), Block()).eval()
    srcnn = make_srcnn(upscale=3)
    image, tokens = torch.rand(2, 3, 32, 32), torch.rand(2, 10, 32)
    found = {
        "srcnn": srcnn_promote_input.export(srcnn, folder / "srcnn.onnx", dynamo=False),
        "srcnn-dynamo": srcnn_promote_input.export(srcnn, folder / "srcnn_dynamo.onnx", dynamo=True),
        "srcnn-18": export(srcnn, torch.rand(srcnn_promote_input.INPUT_SHAPE), folder / "srcnn18.onnx", opset=18),
        "cnn": export(cnn, image, folder / "cnn.onnx"),
        "cnn-dynamic": export(cnn, image, folder / "cnn_dynamic.onnx", dynamic_batch=True),
        "transformer": export(block, tokens, folder / "transformer.onnx"),
    }
    found_models = {"cnn": cnn, "transformer": block, "srcnn": srcnn}
    return found | {f"torch:{k}": v for k, v in found_models.items()}  # type: ignore[dict-item]


def apply(recipe: str, model: Path, out: Path, *extra: str) -> Path:
    assert main(["apply", str(RECIPES / recipe), str(model), "-o", str(out), *extra]) == 0
    return out


@torch.no_grad()
def torch_out(module: nn.Module, x: np.ndarray) -> np.ndarray:
    return module(torch.from_numpy(x)).numpy()


# -- the shipped recipes ------------------------------------------------------------------------------------------
def test_every_shipped_recipe_is_tested_and_passes_the_schema():
    shipped = {p.name for p in RECIPES.glob("*.yaml")}
    assert shipped == TESTED
    for name in shipped:
        data = yaml.safe_load((RECIPES / name).read_text())
        assert not schema.schema_problems(data) or any(
            v not in registry() for step in data["steps"] for v in (step if isinstance(step, dict) else {step: 0})
        ), name
        assert Recipe.load(RECIPES / name).description


@pytest.mark.parametrize("exported", ["srcnn", "srcnn-dynamo"])
def test_srcnn_dynamic_factor_equals_the_promote_input_command_and_torch(exports, exported, tmp_path, capsys):
    model = exports[exported]
    result = apply("srcnn-dynamic-factor.yaml", model, tmp_path / "recipe.onnx")
    assert (
        main(["promote-input", str(model), "--node", "Resize", "--attr", "scales", "-o", str(tmp_path / "cmd.onnx")])
        == 0
    )
    assert result.read_bytes() == (tmp_path / "cmd.onnx").read_bytes()
    x = np.random.default_rng(1).random(srcnn_promote_input.INPUT_SHAPE, dtype=np.float32)
    errors = srcnn_promote_input.max_errors(result, exports["torch:srcnn"], x)
    assert set(errors) == set(FACTORS) and max(errors.values()) <= srcnn_promote_input.TOLERANCE, errors
    assert "verify: equal" in capsys.readouterr().out  # the recipe asks for verify


def test_srcnn_custom_resize_runs_the_custom_op_body_at_every_factor(exports, tmp_path):
    result = apply("srcnn-custom-resize.yaml", exports["srcnn-18"], tmp_path / "custom.onnx")
    proto = onnx.load(result)
    assert [n.op_type for n in proto.graph.node][0] == "dynamic_resize"
    assert [(f.domain, f.name) for f in proto.functions] == [("graphsurgeon", "dynamic_resize")]
    x = np.random.default_rng(2).random(srcnn_promote_input.INPUT_SHAPE, dtype=np.float32)
    errors = srcnn_promote_input.max_errors(result, exports["torch:srcnn"], x)
    assert max(errors.values()) <= srcnn_promote_input.TOLERANCE, errors


def test_srcnn_custom_resize_refuses_a_model_at_another_opset(exports, tmp_path, capsys):
    assert (
        main(
            ["apply", str(RECIPES / "srcnn-custom-resize.yaml"), str(exports["srcnn"]), "-o", str(tmp_path / "o.onnx")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "step 2 (rewrite): cannot bring graphsurgeon::dynamic_resize's body into this model" in err
    assert "opset 18" in err and not (tmp_path / "o.onnx").exists()


def test_gelu_plugin_fuses_every_erf_gelu_and_onnxruntime_agrees(exports, tmp_path, capsys):
    result = apply("gelu-plugin.yaml", exports["transformer"], tmp_path / "gelu.onnx", "--verify")
    assert "verify: equal" in capsys.readouterr().out
    ops = [(n.domain, n.op_type) for n in onnx.load(result).graph.node]
    assert ops.count(("com.microsoft", "Gelu")) == 2 and ("", "Erf") not in ops
    x = np.random.default_rng(3).random((2, 10, 32), dtype=np.float32)
    np.testing.assert_allclose(
        run_ort(str(result), {"input": x})[0], torch_out(exports["torch:transformer"], x), atol=1e-5
    )
    plugin = apply("gelu-plugin.yaml", exports["transformer"], tmp_path / "trt.onnx", "--set", "op=trt::GeluPlugin")
    proto = onnx.load(plugin)
    assert sum(n.op_type == "GeluPlugin" and n.domain == "trt" for n in proto.graph.node) == 2
    assert ("trt", 1) in [(o.domain, o.version) for o in proto.opset_import]


def test_debug_all_outputs_exposes_every_intermediate_tensor(exports, tmp_path):
    needs("add-outputs")
    original = onnx.load(exports["srcnn"])
    result = apply("debug-all-outputs.yaml", exports["srcnn"], tmp_path / "debug.onnx")
    outputs = [o.name for o in onnx.load(result).graph.output]
    computed = [t for n in original.graph.node if n.op_type != "Constant" for t in n.output]
    assert outputs[0] == "output" and set(computed) <= set(outputs)
    x = np.random.default_rng(4).random(srcnn_promote_input.INPUT_SHAPE, dtype=np.float32)
    values = dict(zip(outputs, run_ort(str(result), {"input": x}), strict=True))
    np.testing.assert_array_equal(values["output"], run_ort(str(exports["srcnn"]), {"input": x})[0])
    relu = next(n for n in original.graph.node if n.op_type == "Relu").output[0]
    assert values[relu].min() >= 0


@pytest.mark.parametrize("exported", ["cnn", "transformer"])
def test_batch_dynamic_runs_at_any_batch(exports, exported, tmp_path):
    needs("make-dynamic")
    result = apply("batch-dynamic.yaml", exports[exported], tmp_path / "dynamic.onnx")
    shape = (3, 32, 32) if exported == "cnn" else (10, 32)
    for batch in (1, 2, 5, 8):
        x = np.random.default_rng(batch).random((batch, *shape), dtype=np.float32)
        got = run_ort(str(result), {"input": x})[0]
        np.testing.assert_allclose(got, torch_out(exports[f"torch:{exported}"], x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("exported", ["cnn", "transformer"])
def test_fp16_keeps_float32_inputs_and_outputs(exports, exported, tmp_path):
    needs("to-fp16")
    result = apply("fp16.yaml", exports[exported], tmp_path / "fp16.onnx")
    proto = onnx.load(result)
    assert {i.type.tensor_type.elem_type for i in (*proto.graph.input, *proto.graph.output)} == {onnx.TensorProto.FLOAT}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    x = np.random.default_rng(5).random((2, 3, 32, 32) if exported == "cnn" else (2, 10, 32), dtype=np.float32)
    got, want = run_ort(str(result), {"input": x})[0], torch_out(exports[f"torch:{exported}"], x)
    assert np.abs(got - want).max() <= 2e-2 * max(1.0, np.abs(want).max())


def test_deploy_static_fixes_the_shape_and_folds_what_became_static(exports, tmp_path):
    needs("set-shape")
    result = apply(
        "deploy-static.yaml", exports["cnn-dynamic"], tmp_path / "static.onnx", "--set", "shape=input:1,3,32,32"
    )
    proto = onnx.load(result)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 32, 32] and "Shape" not in {n.op_type for n in proto.graph.node}
    x = np.random.default_rng(6).random((1, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(
        run_ort(str(result), {"input": x})[0], torch_out(exports["torch:cnn"], x), rtol=1e-4, atol=1e-5
    )


def test_deploy_static_needs_the_shape(exports, tmp_path, capsys):
    needs("set-shape")
    assert main(["apply", str(RECIPES / "deploy-static.yaml"), str(exports["cnn-dynamic"])]) == 1
    assert "variable 'shape' has no default and was not given a value" in capsys.readouterr().err


def test_uint8_preprocess_takes_raw_images(exports, tmp_path):
    needs("add-preprocess")
    result = apply("uint8-preprocess.yaml", exports["cnn"], tmp_path / "pre.onnx")
    image = np.random.default_rng(7).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = ((image.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2).copy()
    got = run_ort(str(result), {"input": image})[0]
    np.testing.assert_allclose(got, torch_out(exports["torch:cnn"], x), rtol=1e-4, atol=1e-4)


# -- the JSON Schema ------------------------------------------------------------------------------------------------
def test_the_shipped_schema_is_the_one_the_declarations_make():
    shipped = json.loads(schema.SCHEMA_PATH.read_text())
    assert shipped == schema.recipe_schema(), "the verbs changed: regenerate with `python -m graphsurgeon.recipe`"


def test_the_schema_lists_every_writing_verb_with_its_options():
    made = schema.recipe_schema()
    writing = [v for v in registry().values() if v.writes]
    assert set(made["$defs"]) == {"variable", *(v.name for v in writing)}
    promote = made["$defs"]["promote-input"]["anyOf"][0]
    assert {"node", "attr", "keep_default", "keep-default"} <= set(promote["properties"])
    assert gs.Recipe.parse("steps:\n  - promote-input: {node: '${n}', attr: s}\nvariables: {n: R}").resolve()
