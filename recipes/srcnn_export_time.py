"""Recipe: export SRCNN with the upscale factor as a real graph input, at export time.

    python -m recipes.srcnn_export_time [--out DIR]

Builds the SRCNN whose forward(x, factor) upsamples with custom_ops.dynamic_resize(x, factor, mode="cubic")
(then the three convs of recipes.srcnn_model.SRCNNBody, random seeded weights), exports it with both torch
exporters and both lowerings (graph inputs `input` and `factor`, input H/W dynamic), and runs each model in
onnxruntime at factors 2, 3, 4 and 2.5 on 32x32 and 24x20 inputs, comparing with torch's bicubic upsample +
convs at the same factor. Exits non-zero if any differs by more than 1e-4. No surgery after export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import custom_ops
from recipes.srcnn_model import SRCNNBody, reference_upscale

FACTORS = (2.0, 3.0, 4.0, 2.5)
SIZES = ((32, 32), (24, 20))
TOLERANCE = 1e-4
ROUTES = ((True, "standard"), (True, "function"), (False, "standard"), (False, "function"))


class DynamicSRCNN(torch.nn.Module):
    """SRCNN whose upscale factor is an input: scales (1, 1, factor, factor) as in ONNX Resize."""

    def __init__(self, channels: int = 1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = SRCNNBody(channels)

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.body(custom_ops.dynamic_resize(x, factor, mode="cubic"))


def export(model: DynamicSRCNN, path: Path, *, dynamo: bool, lowering: str) -> Path:
    example = (torch.rand(1, 1, 32, 32), torch.tensor([1.0, 1.0, 3.0, 3.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        custom_ops.export(
            model,
            example,
            path,
            dynamo=dynamo,
            lowering=lowering,
            input_names=["input", "factor"],
            output_names=["output"],
            dynamic_axes={"input": {2: "height", 3: "width"}},
        )
    return path


def max_errors(path: Path, model: DynamicSRCNN) -> dict[tuple[tuple[int, int], float], float]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    errors = {}
    for size in SIZES:
        x = rng.random((1, 1, *size), dtype=np.float32)
        for factor in FACTORS:
            (got,) = session.run(None, {"input": x, "factor": np.array([1, 1, factor, factor], dtype=np.float32)})
            want = reference_upscale(model.body, torch.from_numpy(x), factor).numpy()
            errors[size, factor] = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the exported models (default: a temp dir)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="srcnn_export_time_"))
    out.mkdir(parents=True, exist_ok=True)
    model = DynamicSRCNN().eval()
    header = "".join(f"{f'{h}x{w} x{f:g}':>13}" for (h, w) in SIZES for f in FACTORS)
    print(f"max |onnxruntime - torch eager| per input size and factor (tolerance {TOLERANCE:g})")
    print(f"{'exporter / lowering':<24}{header}")
    worst = 0.0
    for dynamo, lowering in ROUTES:
        exporter = "dynamo" if dynamo else "torchscript"
        path = export(model, out / f"srcnn_{exporter}_{lowering}.onnx", dynamo=dynamo, lowering=lowering)
        errors = max_errors(path, model)
        print(f"{f'{exporter} / {lowering}':<24}" + "".join(f"{e:>13.2e}" for e in errors.values()))
        worst = max(worst, *errors.values())
    print(f"models in {out}")
    print(f"worst error {worst:.2e} (tolerance {TOLERANCE:g}): {'PASS' if worst <= TOLERANCE else 'FAIL'}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
