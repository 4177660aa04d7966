"""Shared test material: the real corpora, onnx's node conformance cases, and onnxruntime helpers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "corpus"  # third-party test models, see its README
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


def output_mismatch(actual: list, expected: list, rtol: float = 1e-3, atol: float = 1e-5) -> str | None:
    """None if every output matches (allclose for floats, NaN-equal; exact for ints, bools, strings), else why."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if isinstance(e, list) or isinstance(a, list):
            if not isinstance(a, list) or not isinstance(e, list) or len(a) != len(e):
                return f"output {i}: sequence mismatch"
            problem = output_mismatch(a, e, rtol, atol)
            if problem:
                return f"output {i}: {problem}"
            continue
        if e is None or a is None:
            if a is not e:
                return f"output {i}: optional mismatch"
            continue
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return f"output {i}: shape {a.shape} != {e.shape}"
        if e.dtype.kind in "fc":
            try:
                np.testing.assert_allclose(a.astype(e.dtype), e, rtol=rtol, atol=atol, equal_nan=True)
            except AssertionError as err:
                return f"output {i}: {str(err).strip().splitlines()[0]}"
        elif e.dtype.kind in "OUS":
            if a.tolist() != e.tolist():
                return f"output {i}: strings differ"
        elif not np.array_equal(a, e):
            return f"output {i}: values differ"
    return None


def outputs_match(actual: list, expected: list, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    return output_mismatch(actual, expected, rtol, atol) is None


def load_full(path: Path) -> onnx.ModelProto:
    """The model with its external data read in (to run the original in onnxruntime from memory)."""
    from onnx.external_data_helper import load_external_data_for_model

    model = onnx.load(str(path), load_external_data=False)
    load_external_data_for_model(model, str(external_data_dir(path)))
    return model


def random_feeds(model: onnx.ModelProto, seed: int = 0, symbolic_dim: int = 1) -> dict[str, np.ndarray] | None:
    """Random inputs for a model's graph inputs, `symbolic_dim` for dims without a value (None if some input
    is not a tensor with a shape and a numeric or bool dtype)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return None
        shape = vi.type.tensor_type.shape.dim
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else symbolic_dim for d in shape]
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
        except (KeyError, TypeError, ValueError):
            return None
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        elif dtype.kind in "iu":
            feeds[vi.name] = rng.integers(0, 3, dims).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            return None
    return feeds
