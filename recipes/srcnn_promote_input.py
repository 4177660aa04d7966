"""Recipe: make SRCNN's baked-in upscale factor a runtime input, after export.

    python -m recipes.srcnn_promote_input [--out DIR]

Builds the SRCNN (x3 bicubic upsample, then three convs, random seeded weights), exports it with both torch
exporters (TorchScript at opset 17, and dynamo), patches each file with exactly

    graphsurgeon promote-input srcnn.onnx --node Resize --attr scales

and runs the patched models in onnxruntime at factors 2, 3, 4 and 2.5, comparing each with torch's bicubic
upsample + convs at the same factor. Exits non-zero if any differs by more than 1e-4.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from recipes.srcnn_model import make_srcnn, reference_upscale

FACTORS = (2.0, 3.0, 4.0, 2.5)
TOLERANCE = 1e-4
INPUT_SHAPE = (1, 1, 32, 32)


def export(model: torch.nn.Module, path: Path, *, dynamo: bool) -> Path:
    """Export as users do today: the factor ends up frozen in the Resize's `scales`."""
    example = torch.rand(INPUT_SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                external_data=False,
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=["input"],
                output_names=["output"],
            )
    return path


def promote(path: Path) -> Path:
    """Run the headline command, exactly as a user would type it, and return the file it wrote."""
    command = ["graphsurgeon", "promote-input", path.name, "--node", "Resize", "--attr", "scales"]
    done = subprocess.run(command, cwd=path.parent, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    print(f"  $ {' '.join(command)}")
    for line in done.stdout.splitlines():
        print(f"    {line}")
    return path.parent / done.stdout.strip().splitlines()[-1].removeprefix("wrote ")


def max_errors(patched: Path, model: torch.nn.Module, x: np.ndarray) -> dict[float, float]:
    session = ort.InferenceSession(str(patched), providers=["CPUExecutionProvider"])
    errors = {}
    for factor in FACTORS:
        scales = np.array([1, 1, factor, factor], dtype=np.float32)
        (got,) = session.run(None, {"input": x, "scales": scales})
        want = reference_upscale(model, torch.from_numpy(x), factor).numpy()
        if got.shape != want.shape:
            errors[factor] = float("inf")
            print(f"    factor {factor}: shape {got.shape} != torch {want.shape}")
            continue
        errors[factor] = float(np.abs(got - want).max())
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the exported and patched models (default: a temp dir)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="srcnn_"))
    out.mkdir(parents=True, exist_ok=True)
    model = make_srcnn(upscale=3)
    x = np.random.default_rng(0).random(INPUT_SHAPE, dtype=np.float32)
    worst = 0.0
    for exporter, dynamo in (("TorchScript (opset 17)", False), ("dynamo", True)):
        folder = out / ("dynamo" if dynamo else "torchscript")
        folder.mkdir(exist_ok=True)
        print(f"{exporter}: exporting SRCNN x3 to {folder / 'srcnn.onnx'}")
        patched = promote(export(model, folder / "srcnn.onnx", dynamo=dynamo))
        errors = max_errors(patched, model, x)
        for factor, error in errors.items():
            size = int(INPUT_SHAPE[2] * factor)
            verdict = "ok" if error <= TOLERANCE else "MISMATCH"
            print(f"    factor {factor:<4}: {size}x{size} output, max |onnxruntime - torch| = {error:.2e}  {verdict}")
        worst = max(worst, *errors.values())
    print(f"worst error {worst:.2e} (tolerance {TOLERANCE:g}): {'PASS' if worst <= TOLERANCE else 'FAIL'}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
