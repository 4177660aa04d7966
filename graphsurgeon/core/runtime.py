"""onnxruntime, set up one way: CPU, quiet, weights read from the model's external-data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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


def make_session(
    model: bytes | str | Path, *, optimize: bool = True, arena: bool = True, data_dir: Path | None = None
) -> Any:
    """An InferenceSession on the CPU; `model` is serialized bytes or a path (weights stay on disk)."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    options = session_options(optimize=optimize, arena=arena, data_dir=data_dir)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line (onnxruntime's messages span many)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:limit]
