"""Shared test material: the real corpora, onnx's node conformance cases, and onnxruntime helpers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def corpus_models() -> list[Path]:
    """Every model file of ../shared/corpus and of the onnx wheel's test data."""
    return sorted(CORPUS.rglob("*.onnx")) + sorted(ONNX_DATA.rglob("*.onnx"))


def external_data_dir(path: Path) -> Path:
    """Polygraphy's ext_weights.onnx keeps its data in data/; every other model beside itself."""
    if path.parent.name == "polygraphy" and path.name == "ext_weights.onnx":
        return path.parent / "data"
    return path.parent


def model_id(path: Path) -> str:
    for root in (CORPUS, ONNX_DATA):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return path.name


@pytest.fixture(scope="session")
def conformance_cases():
    """onnx's node conformance cases that carry input/expected data (built once: ~10 s)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return [c for c in cases if c.data_sets]


def run_ort(model: onnx.ModelProto | str | os.PathLike, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def outputs_match(got: list, want: list, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    """Same tolerance as onnx's backend tests; NaN equals NaN; exact for non-floats."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, list):
            if not isinstance(g, list) or not outputs_match(g, w, rtol, atol):
                return False
            continue
        if w is None or g is None:
            if g is not w:
                return False
            continue
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return False
        if w.dtype.kind in "fc":
            if not np.allclose(g.astype(w.dtype), w, rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif w.dtype.kind in "OSU":
            if g.tolist() != w.tolist():
                return False
        elif not np.array_equal(g, w):
            return False
    return True


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray] | None:
    """Random inputs for a model's graph inputs (None if some input has no static tensor shape)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return None
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        elif dtype.kind in "iu":
            feeds[vi.name] = rng.integers(0, 3, dims).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            return None
    return feeds
