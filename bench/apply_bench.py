"""`graphsurgeon apply` over 100 models: one process (-j 1) against two worker processes (-j 2).

    python bench/apply_bench.py [--models 100] [--repeat 3] [--keep]

Two workloads, each MODELS copies of a real torch export with a model that has nothing to match put in the
middle (number MODELS // 2), so one model fails at step 1:

- **transformer**: a 12-block pre-norm transformer (TorchScript, opset 17, 550 nodes); the recipe fuses every
  erf-GELU into com.microsoft::Gelu (`rewrite`), then `simplify` and `cleanup`: graph work, in Python.
- **srcnn-verify**: SRCNN (64x64 input); the shipped recipes/srcnn-dynamic-factor.yaml, whose `verify: true`
  runs the original and the result in onnxruntime for every model (onnxruntime's own thread pool already uses
  both cores inside one process, so -j 2 has less to gain there).

Each is run as a user would, `graphsurgeon apply RECIPE 'models/*.onnx' --output-dir out -j N`, for N = 1 and 2
(after one unmeasured warm-up), each round into a fresh output folder. Reported: the median wall time of each,
the speed-up, the summary table of the last -j 2 run (head, the failing row, tail), and a check that every
model but the broken one was written and the broken one was not (exit code 1: not all passed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (  # noqa: E402
    graphsurgeon_cmd,
    header,
    markdown_table,
    median,
    run_measured,
    wait_for_quiet,
    write_report,
)

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "tests" / "data" / "corpus" / "onnx-graphsurgeon" / "identity.onnx"
TRANSFORMER_RECIPE = """\
description: erf-GELU fused into com.microsoft::Gelu, then simplify and cleanup (the apply benchmark)
steps:
  - rewrite: {pattern: 'Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1.0)), 0.5)', op: 'com.microsoft::Gelu'}
  - simplify: {}
  - cleanup: {}
"""


def export(module: Any, example: Any, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return path


def transformer(folder: Path) -> tuple[Path, Path]:
    import torch
    from torch import nn

    from tests.test_recipes import Block

    torch.manual_seed(0)
    model = nn.Sequential(*[Block(64) for _ in range(12)]).eval()
    (folder / "gelu-simplify.yaml").write_text(TRANSFORMER_RECIPE)
    return export(model, torch.rand(2, 16, 64), folder / "transformer.onnx"), folder / "gelu-simplify.yaml"


def srcnn(folder: Path) -> tuple[Path, Path]:
    import torch

    from recipes.srcnn_model import make_srcnn

    source = export(make_srcnn(upscale=3), torch.rand(1, 1, 64, 64), folder / "srcnn.onnx")
    return source, REPO / "recipes" / "srcnn-dynamic-factor.yaml"


WORKLOADS: dict[str, Callable[[Path], tuple[Path, Path]]] = {"transformer": transformer, "srcnn-verify": srcnn}


def copies(source: Path, folder: Path, count: int) -> tuple[list[Path], Path]:
    folder.mkdir()
    broken = folder / f"m{count // 2:03}.onnx"
    models = [folder / f"m{number:03}.onnx" for number in range(count)]
    for path in models:
        shutil.copy(BROKEN if path == broken else source, path)
    return models, broken


def measure(work: Path, recipe: Path, models: list[Path], broken: Path, repeat: int) -> tuple[dict, Any, list[str]]:
    """Wall times per -j, the last -j 2 run, and what went wrong (nothing, we hope)."""
    walls: dict[int, list[float]] = {1: [], 2: []}
    last, problems = None, []
    expected = sorted(m.name for m in models if m != broken)
    base = [*graphsurgeon_cmd(), "apply", str(recipe), "models/*.onnx", "--output-dir"]
    run_measured("warm-up", [*base, "warm", "--dry-run"], cwd=work)
    for round_number in range(repeat):
        for jobs in (1, 2):
            out = work / f"out_j{jobs}_{round_number}"
            load = wait_for_quiet()
            run = run_measured(f"apply -j {jobs}", [*base, out.name, "-j", str(jobs)], cwd=work)
            walls[jobs].append(run.wall)
            print(
                f"  -j {jobs}: {run.wall:.2f} s (exit {run.returncode}, other load {load:.2f} cores)", file=sys.stderr
            )
            written = sorted(p.name for p in out.iterdir()) if out.exists() else []
            if run.returncode != 1 or written != expected:
                problems.append(f"-j {jobs} round {round_number}: exit {run.returncode}, {len(written)} written")
            last = run if jobs == 2 else last
            shutil.rmtree(out, ignore_errors=True)
    return walls, last, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per -j value (median reported)")
    parser.add_argument("--only", choices=list(WORKLOADS), help="run one workload")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="gs_apply_bench_"))
    rows, excerpts, problems = [], [], []
    for name, make in WORKLOADS.items():
        if args.only and name != args.only:
            continue
        work = root / name
        work.mkdir(parents=True, exist_ok=True)
        source, recipe = make(work)
        models, broken = copies(source, work / "models", args.models)
        print(f"{name}: {len(models)} models (broken: {broken.name}), recipe {recipe.name}", file=sys.stderr)
        walls, last, found = measure(work, recipe, models, broken, args.repeat)
        problems += [f"{name}: {p}" for p in found]
        one, two = median(walls[1]), median(walls[2])
        for jobs, value in ((1, one), (2, two)):
            runs = ", ".join(f"{w:.2f}" for w in walls[jobs])
            speed = f"{one / two:.2f}x" if jobs == 2 else ""
            rows.append([name, f"-j {jobs}", f"{value:.2f} s", runs, f"{value / len(models) * 1000:.0f} ms", speed])
        lines = last.stdout.splitlines() if last is not None else []
        failing = [r for r in lines if " failed " in r]
        tail = last.stderr.strip().splitlines()[-1:] if last is not None else []
        excerpts += [
            f"{name} (last -j 2 run):",
            "",
            "```",
            *lines[:3],
            "...",
            *failing,
            "...",
            *lines[-2:],
            *tail,
            "```",
            "",
        ]
    table = markdown_table(["workload", "processes", "wall (median)", "runs", "per model", "speed-up"], rows)
    report = "\n".join(
        [
            header(),
            "",
            f"`graphsurgeon apply RECIPE 'models/*.onnx' --output-dir out -j N`, {args.models} models per workload "
            f"(one broken, number {args.models // 2}); wall time of the whole command (start-up included)",
            "",
            table,
            "",
            *excerpts,
            "checks: "
            + (
                "every model but the broken one written, the broken one not, exit 1"
                if not problems
                else "; ".join(problems)
            ),
        ]
    )
    print(report)
    print(f"\nwritten to {write_report('apply_bench', report)}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
