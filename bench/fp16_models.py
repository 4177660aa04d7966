"""to-fp16 side by side with onnxconverter-common's float16 converter, onnxruntime's transformers float16 tool
and onnxslim's dtype option, on real models: small torch exports from both exporters (tests/test_to_fp16.py),
the onnx wheel's model-zoo graphs and the corpus models onnxruntime runs with float inputs.

Per model and tool: does the result run in onnxruntime, are the interface dtypes unchanged, the worst relative
error vs float32 (max |a-b| / max |a| over float outputs), Casts added, Cast->Cast pairs. A peer that is not
installed is reported as not run. Run: python bench/fp16_models.py  (writes bench/results/fp16_models.md)
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphsurgeon as gs  # noqa: E402
from tests.conftest import CORPUS, ONNX_DATA, run_ort  # noqa: E402
from tests.test_to_fp16 import build_torch_models, cast_pairs, feeds_for, interface  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def peers():
    tools = {"graphsurgeon": lambda path, model: gs.load(path).to_fp16()}
    try:
        from onnxconverter_common import float16 as occ

        tools["onnxconverter-common"] = lambda path, model: occ.convert_float_to_float16(model, keep_io_types=True)
    except ImportError:
        pass
    try:
        from onnxruntime.transformers import float16 as ortf

        tools["ort transformers"] = lambda path, model: ortf.convert_float_to_float16(model, keep_io_types=True)
    except ImportError:
        pass
    try:
        import onnxslim

        tools["onnxslim dtype"] = lambda path, model: onnxslim.slim(model, dtype="float16")
    except ImportError:
        pass
    return tools


def corpus_candidates() -> list[Path]:
    """Corpus models with float32 inputs that onnxruntime runs on random inputs."""
    found = []
    for path in sorted(CORPUS.rglob("*.onnx")):
        try:
            model = onnx.load(str(path))
            if not any(vi.type.tensor_type.elem_type == 1 for vi in model.graph.input):
                continue
            if not any(n.op_type in ("Conv", "MatMul", "Gemm", "LSTM") for n in model.graph.node):
                continue
            run_ort(model, feeds_for(model))
            found.append(path)
        except Exception:
            continue
    return found


def measure(tool, path: Path, model: onnx.ModelProto, folder: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = tool(path, model)
    except Exception as e:
        return f"raised {type(e).__name__}"
    out = folder / "out.onnx"
    if isinstance(converted, gs.Model):  # saved with its new data file
        converted.save(out)
        converted = onnx.load(str(out), load_external_data=False)
    else:
        onnx.save(converted, str(out))
    feeds = feeds_for(model)
    try:
        expected, got = run_ort(model, feeds), run_ort(out, feeds)
    except Exception as e:
        return f"does not run ({str(e).split(':')[-1].strip()[:50]})"
    if interface(converted) != interface(model):
        kept = "**interface changed**, "
    else:
        kept = ""
    worst = 0.0
    for a, b in zip(expected, got, strict=True):
        if a.dtype.kind == "f":
            a64 = a.astype(np.float64)
            worst = max(worst, float(np.max(np.abs(a64 - b.astype(np.float64))) / (np.max(np.abs(a64)) + 1e-12)))
    casts = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(n.op_type == "Cast" for n in model.graph.node)
    pairs = cast_pairs(converted)
    share = _fp16_share(converted)
    return f"{kept}{worst:.1e}, {share:.0%} fp16, +{casts} Casts" + (f", {pairs} Cast pairs" if pairs else "")


def _fp16_share(model: onnx.ModelProto) -> float:
    """Share of the float weights (initializers, Constant values; by element count) now stored as float16."""
    from graphsurgeon.core.walk import model_tensors

    counts = {1: 0, 10: 0}
    for tensor in model_tensors(model):
        if tensor.data_type in counts:
            counts[tensor.data_type] += int(np.prod(tensor.dims)) if tensor.dims else 1
    total = counts[1] + counts[10]
    return counts[10] / total if total else 0.0


def main() -> None:
    tools = peers()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = dict(build_torch_models(folder))
        models |= {f"zoo/{p.stem.removeprefix('light_')}": p for p in sorted((ONNX_DATA / "light").glob("*.onnx"))}
        models |= {f"corpus/{p.stem}": p for p in corpus_candidates()}
        rows = []
        for name, path in models.items():
            model = onnx.load(str(path))
            cells = []
            for tool in tools.values():
                work = folder / "work"
                work.mkdir(exist_ok=True)
                cells.append(measure(tool, path, model, work))
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    header = "| model | " + " | ".join(tools) + " |\n|---|" + "---|" * len(tools)
    table = header + "\n" + "\n".join(rows)
    cell = (
        "cells: worst relative error vs float32 on random inputs, share of float weights stored as float16, "
        "Casts added (keep_io on for every tool). The zoo graphs' weights are constants (all 0.02), so their "
        "outputs are flat: they show the conversion runs, not its accuracy."
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fp16_models.md").write_text(f"# to-fp16 vs peers\n\n{cell}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
