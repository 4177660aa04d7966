"""`graphsurgeon view` in a real headless Chromium: first paint and interaction times, and page sizes.

    python bench/view_bench.py [--nodes 10000] [--repeat 3] [--workdir DIR] [--keep]

Models (generated, nothing downloaded):
  * scoped-10k: ~10,000 nodes in name scopes /encoder/layer.N/{attention,ffn}/... (as the torch exporter names
    them), opened collapsed: first paint, expand one group, search, collapse.
  * transformer-real: an 18-layer torch TransformerEncoder exported by torch.onnx (TorchScript exporter, its own
    name scopes; ~1,500 nodes), laid out in full ("expand all").
  * weights-2.7GB: ten 8192x8192 fp32 MatMul weights in external data (a sparse file: no disk used): the page
    size shows weights are never embedded.

Times are taken inside the page (performance.now(), relative to navigation start for first paint) after the
next animation frame, i.e. once the browser has painted the result. Needs chromium-headless-shell and the
playwright package (see README); prints a markdown table and writes bench/results/view_bench.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphsurgeon as gs  # noqa: E402
from tests.browser import chromium, unavailable  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAINTED = "new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))"


def scoped_model(nodes: int, width: int = 16) -> onnx.ModelProto:
    """A transformer-shaped chain of `nodes` nodes named /encoder/layer.N/<block>/<op>_k (~200 per layer)."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [width, width], np.zeros(width * width, np.float32).tolist())
    made, layer, prev = [], 0, "x"
    blocks = ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output", "ffn")
    while len(made) < nodes:
        start = prev
        for block in blocks:
            for k in range(20):
                out = f"/encoder/layer.{layer}/{block}/t{k}"
                op = ("MatMul", "Add", "Relu", "Mul")[k % 4]
                inputs = [prev, "W"] if op == "MatMul" else [prev, start] if op in ("Add", "Mul") else [prev]
                made.append(helper.make_node(op, inputs, [out], name=f"/encoder/layer.{layer}/{block}/{op}_{k}"))
                prev = out
                if len(made) >= nodes:
                    break
            if len(made) >= nodes:
                break
        layer += 1
    graph = helper.make_graph(
        made,
        "scoped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, width])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def transformer_model(path: Path, layers: int = 18) -> Path:
    """A real exported model: torch's TransformerEncoder, TorchScript exporter (scoped names /layers.N/...)."""
    import torch

    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(encoder, (torch.rand(1, 8, 64),), str(path), dynamo=False, opset_version=17)
    return path


def big_weights_model(folder: Path, size: int = 8192, layers: int = 10) -> Path:
    """~2.7 GB of fp32 weights in model.onnx.data, as a sparse file (no disk blocks, never read)."""
    nbytes = size * size * 4
    weights, nodes, prev = [], [], "x"
    for i in range(layers):
        w = helper.make_tensor_value_info(f"w{i}", TensorProto.FLOAT, [size, size])
        tensor = TensorProto(name=w.name, data_type=TensorProto.FLOAT, dims=[size, size])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "model.onnx.data"), ("offset", str(i * nbytes)), ("length", str(nbytes))):
            tensor.external_data.add(key=key, value=value)
        weights.append(tensor)
        nodes.append(helper.make_node("MatMul", [prev, w.name], [f"h{i}"], name=f"/layers.{i}/MatMul"))
        prev = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, size])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "model.onnx"
    onnx.save(model, path)
    with open(folder / "model.onnx.data", "wb") as data:
        data.truncate(nbytes * layers)
    return path


def write_page(model_path: Path) -> tuple[Path, float, int]:
    started = time.perf_counter()
    report = gs.load(model_path).view(output=str(model_path.with_suffix(".html")))
    return Path(report.page), time.perf_counter() - started, report.size


def measure_scoped(open_page, page: Path) -> dict[str, float]:
    opened = open_page(page)
    p = opened.page
    first = p.evaluate("window.gsView.firstPaint")
    counts = p.evaluate("window.gsView.counts()")
    expand = p.evaluate(
        f"""async () => {{
        const el = document.querySelector('#scene .group');
        const t0 = performance.now();
        el.dispatchEvent(new MouseEvent('click', {{bubbles: true}}));
        await {PAINTED};
        return performance.now() - t0; }}"""
    )
    after = p.evaluate("window.gsView.counts()")
    search = p.evaluate(
        f"""async () => {{
        const box = document.getElementById('search');
        const t0 = performance.now();
        box.value = 'layer.37/ffn/MatMul';
        box.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}}));
        await {PAINTED};
        return performance.now() - t0; }}"""
    )
    shown = p.evaluate("document.getElementById('panel-title') && document.getElementById('panel-title').textContent")
    assert not opened.errors and not opened.requests, (opened.errors, opened.requests)
    p.close()
    return {
        "first_paint_ms": first,
        "expand_ms": expand,
        "search_jump_ms": search,
        "shown_at_open": counts["nodes"] + counts["groups"],
        "shown_after_expand": after["nodes"] + after["groups"],
        "search_found": float(shown == "MatMul"),
    }


def measure_full(open_page, page: Path) -> dict[str, float]:
    opened = open_page(page)
    p = opened.page
    first = p.evaluate("window.gsView.firstPaint")
    full = p.evaluate(
        f"""async () => {{ const t0 = performance.now(); window.gsView.expandAll(); await {PAINTED};
        return performance.now() - t0; }}"""
    )
    counts = p.evaluate("window.gsView.counts()")
    assert not opened.errors and not opened.requests, (opened.errors, opened.requests)
    p.close()
    return {"first_paint_ms": first, "expand_all_ms": full, "nodes_drawn": counts["nodes"], "edges": counts["edges"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    why = unavailable()
    if why:
        print(f"view_bench: cannot run: {why}", file=sys.stderr)
        return 1
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gs-view-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        scoped = work / "scoped.onnx"
        onnx.save(scoped_model(args.nodes), scoped)
        real = transformer_model(work / "transformer.onnx")
        big_dir = work / "big"
        big_dir.mkdir(exist_ok=True)
        big = big_weights_model(big_dir)
        rows = []
        for label, path, measure in (("scoped-10k", scoped, measure_scoped), ("transformer-real", real, measure_full)):
            page, build_s, size = write_page(path)
            nodes = sum(1 for _ in onnx.load(path, load_external_data=False).graph.node)
            results: dict[str, list[float]] = {}
            with chromium() as open_page:
                for _ in range(args.repeat):
                    for key, value in measure(open_page, page).items():
                        results.setdefault(key, []).append(value)
            rows.append((label, nodes, build_s, size, {k: statistics.median(v) for k, v in results.items()}))
        _, big_build_s, big_size = write_page(big)
        data_bytes = (big_dir / "model.onnx.data").stat().st_size
        lines = [
            f"# view bench ({time.strftime('%Y-%m-%d')}, headless Chromium, median of {args.repeat})",
            "",
            "| model | nodes | page built (s) | page size | measurements (ms unless named) |",
            "|---|---|---|---|---|",
        ]
        for label, nodes, build_s, size, values in rows:
            shown = ", ".join(f"{k} {v:.0f}" for k, v in values.items())
            lines.append(f"| {label} | {nodes} | {build_s:.2f} | {size / 1024:.0f} KiB | {shown} |")
        lines.append(
            f"| weights-2.7GB | 10 | {big_build_s:.2f} | {big_size / 1024:.0f} KiB "
            f"| external data {data_bytes / 1e9:.2f} GB, none of it in the page |"
        )
        table = "\n".join(lines)
        print(table)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "view_bench.md").write_text(table + "\n")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
