"""Helpers shared by the custom_ops tests (a uniquely named module: tests/ has its own conftest)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

import custom_ops

ROUTES = [(True, "standard"), (True, "function"), (False, "standard"), (False, "function")]
ROUTE_IDS = ["dynamo-standard", "dynamo-function", "torchscript-standard", "torchscript-function"]


class Exported:
    """One exported model: its file, its proto, and an onnxruntime session over it."""

    def __init__(self, path: Path, proto: Any) -> None:
        self.path, self.proto = path, proto
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


def export_routes_into(
    folder: Path, name: str, model: torch.nn.Module, args: tuple[Any, ...], **kwargs: Any
) -> dict[tuple[bool, str], Exported]:
    """Export ``model`` along all four routes into ``folder``: {(dynamo, lowering): Exported}."""
    exported = {}
    for dynamo, lowering in ROUTES:
        path = folder / f"{name}-{'dynamo' if dynamo else 'torchscript'}-{lowering}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = custom_ops.export(model, args, path, dynamo=dynamo, lowering=lowering, **kwargs)
        exported[(dynamo, lowering)] = Exported(path, proto)
    return exported
