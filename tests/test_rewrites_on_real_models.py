"""Every meaning-preserving rewrite is checked with onnxruntime on real models.

- onnx's node conformance suite: every case onnxruntime passes as-is still passes after the rewrite.
- the shared corpus and the onnx wheel's model files: after the rewrite and a save, outputs on random inputs
  match the original's, and the graph's inputs and outputs are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

import graphsurgeon as gs
from tests.conftest import corpus_models, external_data_dir, load_full, model_id, output_mismatch, random_feeds
from tests.fold_conformance import session, transform_keeps_passing

# name -> (rewrite, rtol, atol): folding reassociates float arithmetic, so it gets the looser tolerance
REWRITES: dict[str, tuple[Callable[[gs.Model], gs.Model], float, float]] = {
    "cleanup+toposort": (lambda m: m.cleanup().toposort(), 1e-4, 1e-5),
    "fold-constants": (lambda m: m.fold_constants(), 1e-3, 1e-4),
    "simplify": (lambda m: m.simplify(), 1e-3, 1e-4),
}


@pytest.mark.parametrize("rewrite", list(REWRITES))
def test_conformance_cases_keep_passing(conformance_cases, rewrite: str):
    apply = REWRITES[rewrite][0]
    passing, failures = transform_keeps_passing(
        conformance_cases, lambda data: apply(gs.load(data)).proto.SerializeToString()
    )
    assert not failures, f"{len(failures)} cases regressed: {failures[:10]}"
    assert passing >= 1497, f"harness problem: only {passing} cases pass as-is"


@cache
def _reference(path: Path) -> tuple[dict, list] | None:
    """Random feeds and the original's outputs, or None if onnxruntime cannot run the model as it is."""
    original = load_full(path)
    feeds = random_feeds(original, symbolic_dim=2)
    if feeds is None:
        return None
    try:
        return feeds, session(original).run(None, feeds)
    except Exception:  # broken on purpose, weightless, custom or unimplemented ops...
        return None


@pytest.mark.parametrize("rewrite", list(REWRITES))
@pytest.mark.parametrize("path", corpus_models(), ids=model_id)
def test_corpus_outputs_unchanged(path: Path, rewrite: str, tmp_path: Path):
    reference = _reference(path)
    if reference is None:
        pytest.skip("onnxruntime cannot run the original as it is, or its inputs are not plain tensors")
    feeds, want = reference
    apply, rtol, atol = REWRITES[rewrite]
    model = gs.load(path, external_data_dir=external_data_dir(path))
    interface = [(v.name, v.type) for v in (*model.proto.graph.input, *model.proto.graph.output)]
    try:
        apply(model)
    except gs.GraphStructureError as e:
        pytest.fail(f"a model onnxruntime runs was refused: {e}")
    assert [(v.name, v.type) for v in (*model.proto.graph.input, *model.proto.graph.output)] == interface
    saved = model.save(tmp_path / "rewritten.onnx")
    got = session(load_full(saved)).run(None, feeds)
    assert output_mismatch(got, want, rtol, atol) is None
