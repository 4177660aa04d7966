"""The headline: SRCNN exported by both torch exporters, patched by the exact CLI command, matches torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recipes import srcnn_promote_input as recipe  # noqa: E402
from recipes.srcnn_model import make_srcnn  # noqa: E402


@pytest.fixture(scope="module")
def srcnn():
    return make_srcnn(upscale=3)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
def test_patched_srcnn_matches_torch_at_every_factor(srcnn, dynamo: bool, tmp_path: Path):
    exported = recipe.export(srcnn, tmp_path / "srcnn.onnx", dynamo=dynamo)
    patched = recipe.promote(exported)  # runs `graphsurgeon promote-input srcnn.onnx --node Resize --attr scales`
    assert patched == tmp_path / "srcnn.promote-input.onnx"
    x = np.random.default_rng(1).random(recipe.INPUT_SHAPE, dtype=np.float32)
    errors = recipe.max_errors(patched, srcnn, x)
    assert set(errors) == {2.0, 3.0, 4.0, 2.5}
    assert max(errors.values()) <= 1e-4, errors


def test_recipe_main_passes(tmp_path: Path):
    assert recipe.main(["--out", str(tmp_path)]) == 0
