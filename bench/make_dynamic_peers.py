"""Side by side: changing the batch of real exported models with graphsurgeon and with the tools people use.

    python bench/make_dynamic_peers.py [--workdir DIR] [--only WORD ...]

The models are those of tests/test_make_dynamic.py (CNN, YOLO-style detection head, mask builder, attention
encoder, BERT, GPT-2, ViT, Whisper, T5; random weights, no downloads), exported at batch 2 by torch.onnx.export
with dynamo=False and dynamo=True. Each tool does its version of the edit, as a user would run it:

* graphsurgeon: ``make-dynamic MODEL -o OUT`` (one dynamic model);
* onnx ``update_inputs_outputs_dims`` (onnx.tools.update_model_dims): batch symbolic on inputs and outputs;
* Polygraphy: ``polygraphy surgeon sanitize --override-input-shapes NAME:[batch,...]``;
* onnxsim ``--overwrite-input-shape`` and onnxslim ``--input-shapes``: these fix static shapes, so each is run once
  per batch size N with the inputs set to N.

Then every result is run in onnxruntime at batch 1, 3 and 8 and compared with the original run slice by slice
(tests/batch_harness.py). A cell says at which sizes the result runs and is right, else what happens.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import _harness as H
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = (1, 3, 8)


def _run(cmd: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="bench-cwd-") as scratch:  # peers may write scratch files into the cwd
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=scratch)
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return proc.returncode == 0, (lines[-1] if lines else "")[:160]


def _inputs(model: onnx.ModelProto) -> dict[str, list]:
    inits = {t.name for t in model.graph.initializer}
    return {
        vi.name: [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]
        for vi in model.graph.input
        if vi.name not in inits
    }


def _batched(dims: list, n) -> str:
    return ",".join(str(d) for d in [n, *dims[1:]])


def _short(problem: str) -> str:
    """A failure in a few words: where onnxruntime stops, or what is wrong with the result."""
    if "invalid dimensions for input" in problem:
        return "input still static"
    if "cannot load" in problem or "tool error" in problem:
        return "does not load" if "cannot load" in problem else "tool error"
    match = re.search(r"running (\w+) node", problem)
    if match:
        return f"fails in {match.group(1)}"
    if "shape [" in problem:
        return "wrong output shape"
    if "values differ" in problem:
        return "wrong numbers"
    return problem[:40]


def _verdict(results_by_size: dict[int, object]) -> str:
    good = [n for n, r in results_by_size.items() if getattr(r, "ok", False)]
    if len(good) == len(results_by_size):
        return "right at " + "/".join(map(str, good))
    parts = ["right at " + "/".join(map(str, good))] if good else []
    by_problem: dict[str, list[int]] = {}
    for n, r in results_by_size.items():
        if not getattr(r, "ok", False):
            problem = r if isinstance(r, str) else r.problem  # type: ignore[attr-defined]
            by_problem.setdefault(_short(problem), []).append(n)
    parts += [f"{'/'.join(map(str, sizes))}: {what}" for what, sizes in by_problem.items()]
    return "; ".join(parts)


def dynamic_tool(name: str, src: Path, work: Path) -> str:
    from tests.batch_harness import check_batches

    model = onnx.load(str(src))
    inputs = _inputs(model)
    out = work / f"{name}.onnx"
    if name == "graphsurgeon":
        ok, msg = _run([*H.graphsurgeon_cmd(), "make-dynamic", str(src), "-o", str(out)])
    elif name == "update_model_dims":
        from onnx.tools import update_model_dims

        outputs = {
            o.name: ["batch", *[d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim][1:]]
            for o in model.graph.output
        }
        try:
            updated = update_model_dims.update_inputs_outputs_dims(
                model, {k: ["batch", *v[1:]] for k, v in inputs.items()}, outputs
            )
            onnx.save(updated, out)
            ok, msg = True, ""
        except Exception as e:
            ok, msg = False, str(e).splitlines()[0][:160]
    else:  # polygraphy
        shapes = [f"{k}:[{_batched(v, 'batch')}]" for k, v in inputs.items()]
        ok, msg = _run(
            ["polygraphy", "surgeon", "sanitize", str(src), "--override-input-shapes", *shapes, "-o", str(out)]
        )
    if not ok:
        return f"tool error: {msg}"
    results = check_batches(src, out, sizes=SIZES)
    return _verdict({r.size: r for r in results})


def static_tool(name: str, src: Path, work: Path) -> str:
    from tests.batch_harness import check_batches

    inputs = _inputs(onnx.load(str(src)))
    found: dict[int, object] = {}
    for n in SIZES:
        out = work / f"{name}_{n}.onnx"
        shapes = [f"{k}:{_batched(v, n)}" for k, v in inputs.items()]
        if name == "onnxsim":
            ok, msg = _run(["onnxsim", str(src), str(out), "--overwrite-input-shape", *shapes])
        else:
            ok, msg = _run(["onnxslim", str(src), str(out), "--input-shapes", *shapes])
        if not ok:
            found[n] = f"tool error: {msg}"
            continue
        found[n] = check_batches(src, out, sizes=(n,))[0]
    return _verdict(found)


TOOLS = ["graphsurgeon", "update_model_dims", "polygraphy", "onnxsim", "onnxslim"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gsbench" / "make_dynamic_peers")
    parser.add_argument("--only", nargs="*", default=[], help="models whose label contains one of these words")
    args = parser.parse_args()
    from tests.test_make_dynamic import MODELS, UNEXPORTABLE, export

    rows = []
    tally = dict.fromkeys(TOOLS, 0)
    total = 0
    for kind in MODELS:
        for dynamo in (False, True):
            label = f"{kind} ({'dynamo' if dynamo else 'torchscript'})"
            if (kind, dynamo) in UNEXPORTABLE or (args.only and not any(w in label for w in args.only)):
                continue
            work = args.workdir / label.replace(" ", "_").replace("(", "").replace(")", "")
            work.mkdir(parents=True, exist_ok=True)
            src = export(kind, dynamo, work / "original.onnx")
            row = [label]
            for tool in TOOLS:
                cell = dynamic_tool(tool, src, work) if tool in TOOLS[:3] else static_tool(tool, src, work)
                tally[tool] += cell.startswith("right at 1/3/8")
                row.append(cell)
            total += 1
            rows.append(row)
            print(" | ".join(row), flush=True)
    rows.append(["**right at every size**", *[f"**{tally[t]} / {total}**" for t in TOOLS]])
    headers = ["model (exported at batch 2)", "graphsurgeon make-dynamic", "onnx update_model_dims",
               "Polygraphy --override-input-shapes", "onnxsim --overwrite-input-shape (per N)",
               "onnxslim --input-shapes (per N)"]  # fmt: skip
    tools = H.versions("onnxsim", "onnxslim", "polygraphy", "torch", "transformers")
    text = f"# Changing the batch: graphsurgeon and peers\n\n{H.header()}\n\n{tools}\n\n"
    text += H.markdown_table(headers, rows) + "\n"
    print(text)
    H.write_report("make_dynamic_peers", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
