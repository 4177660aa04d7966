"""Real models for the fold/simplify tests: the shared corpus and the onnx wheel's model files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

CORPUS = Path(os.environ.get("GRAPHSURGEON_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
RTOL, ATOL = 1e-3, 1e-4


def model_files() -> list[Path]:
    files = sorted(CORPUS.rglob("*.onnx")) if CORPUS.is_dir() else []
    for sub in ("light", "simple", "pytorch-converted", "pytorch-operator", "real"):
        files += sorted((ONNX_DATA / sub).rglob("*.onnx"))
    return files


def external_data_dir(path: Path) -> Path:
    """Polygraphy's ext_weights.onnx keeps its data in data/; every other model beside itself."""
    if path.parent.name == "polygraphy" and path.name == "ext_weights.onnx":
        return path.parent / "data"
    return path.parent


def load_full(path: Path) -> onnx.ModelProto:
    """The model with its external data read in (for running the original in onnxruntime from memory)."""
    from onnx.external_data_helper import load_external_data_for_model

    model = onnx.load(str(path), load_external_data=False)
    load_external_data_for_model(model, str(external_data_dir(path)))
    return model


def model_id(path: Path) -> str:
    for root in (CORPUS, ONNX_DATA):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return path.name


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray] | None:
    """Random feeds for the graph inputs (symbolic dims -> 2); None if an input is not a plain tensor."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if vi.type.WhichOneof("value") != "tensor_type":
            return None
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            return None
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tt.shape.dim]
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except Exception:
            return None
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[vi.name] = rng.integers(0, 3, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            return None
    return feeds
