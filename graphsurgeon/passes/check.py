"""check: onnx's full checker (with shape inference) and an onnxruntime session load, with one verdict."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from graphsurgeon._external_data import validate_external_data
from graphsurgeon.model import Model


@dataclass
class CheckReport:
    checker_error: str | None
    onnxruntime_error: str | None

    @property
    def ok(self) -> bool:
        return self.checker_error is None and self.onnxruntime_error is None

    def __str__(self) -> str:
        lines = [
            "onnx checker (full): " + ("ok" if self.checker_error is None else f"FAILED: {self.checker_error}"),
            "onnxruntime session: " + ("ok" if self.onnxruntime_error is None else f"FAILED: {self.onnxruntime_error}"),
            "verdict: " + ("valid" if self.ok else "INVALID"),
        ]
        return "\n".join(lines)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())[:2000]


def _run_checker(data: bytes, data_files: dict[str, Path]) -> None:
    """onnx's checker on the serialized graph. It wants external data files beside the model and refuses
    symlinks, so it gets a scratch folder of same-size sparse stand-ins (the real files were already
    validated on load: existence, bounds, no escape from the model's folder)."""
    if not data_files:
        onnx.checker.check_model(data, full_check=True)
        return
    with tempfile.TemporaryDirectory() as scratch:
        for location, real in data_files.items():
            stand_in = Path(scratch, location)
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            with open(stand_in, "wb") as f:
                f.truncate(real.stat().st_size)
        graph_file = Path(scratch, "model.onnx")
        graph_file.write_bytes(data)
        onnx.checker.check_model(str(graph_file), full_check=True)


def check(model: Model) -> CheckReport:
    data = model.proto.SerializeToString()  # graph only: external weights stay on disk
    try:
        _run_checker(data, validate_external_data(model.proto, model.external_data_dir))
        checker_error = None
    except Exception as e:  # the checker raises several types; all are verdicts here
        checker_error = _first_line(e)
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if model.external_data_dir is not None:
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path", str(model.external_data_dir)
            )
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        ort_error = None
    except Exception as e:
        ort_error = _first_line(e)
    return CheckReport(checker_error, ort_error)
