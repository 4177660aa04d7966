"""Batch-slicing correctness: a model made dynamic must equal its original run slice by slice.

For a model exported at batch B and a version of it made dynamic on that axis, at batch N the dynamic model's
outputs must equal running the original on consecutive batch-B slices of the same inputs and concatenating
(the last slice is completed with extra items whose outputs are dropped). That holds for any model whose items
are independent and whose outputs are batch-major; nothing here knows our models. The check itself is
graphsurgeon's own (graphsurgeon.core.batch_check, what --verify runs after a shape edit); this is its test API.

    results = check_batches(original_path, dynamic_path, sizes=(1, 2, 5, 8))
    assert all(r.ok for r in results), results
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx

from graphsurgeon.core.batch_check import BatchAxes, SizeResult, compare_batches
from graphsurgeon.core.numeric import Runnable

BatchResult = SizeResult  # size, ok, problem, max_abs


def _runnable(model: onnx.ModelProto | str | Path, label: str) -> Runnable:
    if isinstance(model, onnx.ModelProto):
        return Runnable(model.SerializeToString(), None, label)
    return Runnable(Path(model), Path(model).parent, label)


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


def _output_axes(
    original: onnx.ModelProto, dynamic: onnx.ModelProto | str | Path, first_input: str, axis: int
) -> dict[str, int]:
    """Each output's batch axis: where the dynamic model declares the first input's batch symbol, else `axis`."""
    found = {vi.name: axis for vi in original.graph.output}
    try:
        model = dynamic if isinstance(dynamic, onnx.ModelProto) else onnx.load(str(dynamic), load_external_data=False)
    except Exception:  # unreadable: the check reports it
        return found
    dims = {vi.name: vi.type.tensor_type.shape.dim for vi in (*model.graph.input, *model.graph.output)}
    symbol = dims[first_input][axis].dim_param if len(dims.get(first_input, ())) > axis else ""
    for vi in model.graph.output:
        named = [a for a, d in enumerate(dims[vi.name]) if symbol and d.dim_param == symbol]
        if len(named) == 1:
            found[vi.name] = named[0]
    return found


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

    Every input carries the batch on `axis`, every output where the dynamic model declares it (else `axis`).
    `sizes` defaults to 1, B, 2B+1 and 8. Integer inputs are random in the range random_feeds picks for the
    original (valid embedding indices and the like).
    """
    proto = original if isinstance(original, onnx.ModelProto) else onnx.load(str(original), load_external_data=False)
    batch = exported_batch(proto, axis)
    sizes = list(sizes) if sizes is not None else sorted({1, batch, 2 * batch + 1, 8})
    inits = {t.name for t in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in inits]
    axes = BatchAxes(batch, {vi.name: axis for vi in inputs}, _output_axes(proto, dynamic, inputs[0].name, axis))
    report = compare_batches(
        _runnable(original, "the original"),
        _runnable(dynamic, "the dynamic model"),
        axes,
        sizes=sizes,
        rtol=rtol,
        atol=atol,
        seed=seed,
    )
    if report.error is not None:
        return [BatchResult(n, False, report.error) for n in sizes]
    return report.sizes
