"""onnxruntime, set up one way: CPU, quiet, weights read from the model's external-data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphsurgeon.core.external_data import external_ref, is_external, read_tensor, stand_ins


def session_options(*, optimize: bool = True, arena: bool = True, data_dir: Path | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 4
    if not arena:
        options.enable_cpu_mem_arena = False
    if data_dir is not None:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(data_dir))
    return options


# onnxruntime 1.32's SkipLayerNormFusion kills the process (SIGSEGV) on a LayerNormalization whose optional bias
# is given as an empty name (found by the fuzzer): graphsurgeon's sessions run without it
CRASHING_OPTIMIZERS = ["SkipLayerNormFusion"]


def make_session(
    model: bytes | str | Path, *, optimize: bool = True, arena: bool = True, data_dir: Path | None = None
) -> Any:
    """An InferenceSession on the CPU; `model` is serialized bytes or a path (weights stay on disk)."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    options = session_options(optimize=optimize, arena=arena, data_dir=data_dir)
    held = _stand_in_initializers(options, model, data_dir)
    session = ort.InferenceSession(
        source, options, providers=["CPUExecutionProvider"], disabled_optimizers=CRASHING_OPTIMIZERS
    )
    if held:
        session.graphsurgeon_held = held  # the memory onnxruntime reads those initializers from
    return session


def _stand_in_initializers(options: Any, model: bytes | str | Path, data_dir: Path | None) -> list[Any]:
    """Main-graph initializers whose data an unsaved scratch file holds (core/external_data.stand_ins) are
    handed to onnxruntime as memory-mapped values: it reads external data only from inside the model's folder."""
    found = stand_ins(data_dir)
    if not found:
        return []
    import numpy as np
    import onnx
    import onnxruntime as ort

    proto = (
        onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model), load_external_data=False)
    )
    names, values, held = [], [], []
    for tensor in proto.graph.initializer:
        if is_external(tensor) and external_ref(tensor).location in found:
            array = np.ascontiguousarray(read_tensor(tensor, data_dir))
            names.append(tensor.name)
            values.append(ort.OrtValue.ortvalue_from_numpy(array))
            held.append(array)
    if names:
        options.add_external_initializers(names, values)
    return held + values


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line (onnxruntime's messages span many)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:limit]
