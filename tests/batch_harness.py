"""Batch-slicing correctness: a model made dynamic must equal its original run slice by slice.

For a model exported at batch B and a version of it made dynamic on that axis, at batch N the dynamic model's
outputs must equal running the original on consecutive batch-B slices of the same inputs and concatenating
(the last slice is completed with extra items whose outputs are dropped). That holds for any model whose items
are independent and whose outputs are batch-major; nothing here knows our models.

    results = check_batches(original_path, dynamic_path, sizes=(1, 2, 5, 8))
    assert all(r.ok for r in results), results
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from graphsurgeon.core.numeric import random_feeds


@dataclass
class BatchResult:
    size: int
    ok: bool
    problem: str = ""
    max_abs: float = 0.0


def _session(model: onnx.ModelProto | str | Path, data_dir: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if isinstance(model, onnx.ModelProto):
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def exported_batch(model: onnx.ModelProto, axis: int = 0) -> int:
    """The batch the model was exported at: the first static size on `axis` of its inputs."""
    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) > axis and dims[axis].HasField("dim_value"):
            return dims[axis].dim_value
    raise ValueError("no input has a static size on the batch axis")


def check_batches(
    original: onnx.ModelProto | str | Path,
    dynamic: onnx.ModelProto | str | Path,
    *,
    sizes: Sequence[int] | None = None,
    axis: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    seed: int = 0,
) -> list[BatchResult]:
    """Compare the dynamic model at each batch size with the original run slice by slice.

    `sizes` defaults to 1, B, 2B+1 and 8. Integer inputs are random in the range random_feeds picks for the
    original (valid embedding indices and the like).
    """
    proto = original if isinstance(original, onnx.ModelProto) else onnx.load(str(original), load_external_data=False)
    batch = exported_batch(proto, axis)
    sizes = list(sizes) if sizes is not None else sorted({1, batch, 2 * batch + 1, 8})
    session_a = _session(original)
    try:
        session_b = _session(dynamic)
    except Exception as e:  # a result onnxruntime refuses to load: the finding at every size
        line = str(e).splitlines()[0][:300]
        return [BatchResult(n, False, f"onnxruntime cannot load it: {line}") for n in sizes]
    names = [o.name for o in session_a.get_outputs()]
    results = []
    for n in sizes:
        chunks = [random_feeds(proto, seed=seed * 1000 + k) for k in range(math.ceil(n / batch))]
        feeds = {name: np.concatenate([c[name] for c in chunks], axis=axis)[:n] for name in chunks[0]}
        feeds = {name: np.take(v, range(n), axis=axis) for name, v in feeds.items()}
        want_parts = [session_a.run(names, c) for c in chunks]
        if len(chunks) == 1 and n == batch:  # one whole slice: the original's outputs as they are, any layout
            want = [np.asarray(w) for w in want_parts[0]]
        else:
            want = [
                np.take(np.concatenate([p[i] for p in want_parts], axis=axis), range(n), axis=axis)
                for i in range(len(names))
            ]
        try:
            got = session_b.run(names, feeds)
        except Exception as e:  # the dynamic model fails at this size: that is the finding
            results.append(BatchResult(n, False, f"fails at batch {n}: {str(e).splitlines()[0][:300]}"))
            continue
        result = BatchResult(n, True)
        for name, w, g in zip(names, want, got, strict=True):
            g = np.asarray(g)
            if g.shape != w.shape:
                result = BatchResult(n, False, f"{name}: shape {list(g.shape)}, expected {list(w.shape)}")
                break
            if w.dtype.kind in "fc":
                diff = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
                result.max_abs = max(result.max_abs, diff)
                if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
                    result = BatchResult(n, False, f"{name}: values differ (max abs {diff:.3g})", diff)
                    break
            elif not np.array_equal(g, w):
                result = BatchResult(n, False, f"{name}: values differ")
                break
        results.append(result)
    return results
