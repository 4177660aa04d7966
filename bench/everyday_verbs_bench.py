"""Benchmark: the everyday surgery verbs of issue 9 on big models, each as one whole CLI command.

    python bench/everyday_verbs_bench.py [--workdir DIR] [--nodes 10000] [--weights 16] [--repeat 5] [--keep]

1. `add-outputs --all-intermediate` on a 10,000-node model (float and float16 tensors of changing rank): whole
   command under 3 s, and every added output's dtype and shape as onnxruntime computes them.
2. `rename --regex` over the same model's 10,000 tensors: whole command under 1 s (also timed in-process).
3. `extract` on a ~1 GB external-data model (a chain of 64 MiB MatMul weights; `--weights 43`: 2.7 GiB) of a
   subgraph that needs one weight: wall time and peak RSS, side by side with `onnx.utils.extract_model` on the
   same cut. The result is saved beside the model, so it shares the data file (saving to another folder copies
   that file). The page cache is dropped before each extract run where the bench may (root).

Wall time is spawn to exit (Python start-up and imports included); CPU is the command's user + sys and peak RSS
its own (GNU time). Commands run with byte-code caching on (PYTHONDONTWRITEBYTECODE unset, one warm-up run
first), as an installed package runs; the load average is printed with the table because others share the
machine: compare CPU seconds across runs, walls only on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _harness as H
import numpy as np
import onnx
from onnx import TensorProto, helper

WIDTH = 64


def chain_model(nodes: int) -> onnx.ModelProto:
    """x: float[1, WIDTH] through blocks of Add -> Unsqueeze -> Cast(f16) -> Squeeze -> Cast(f32) (5 nodes)."""
    graph_nodes = []
    current = "x"
    for block in range(nodes // 5):
        names = [f"t{block * 5 + i}" for i in range(5)]
        graph_nodes += [
            helper.make_node("Add", [current, "bias"], [names[0]], name=f"n{block * 5}"),
            helper.make_node("Unsqueeze", [names[0], "axis0"], [names[1]], name=f"n{block * 5 + 1}"),
            helper.make_node("Cast", [names[1]], [names[2]], name=f"n{block * 5 + 2}", to=TensorProto.FLOAT16),
            helper.make_node("Squeeze", [names[2], "axis0"], [names[3]], name=f"n{block * 5 + 3}"),
            helper.make_node("Cast", [names[3]], [names[4]], name=f"n{block * 5 + 4}", to=TensorProto.FLOAT),
        ]
        current = names[4]
    graph = helper.make_graph(
        graph_nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=[
            helper.make_tensor("bias", TensorProto.FLOAT, [WIDTH], np.full(WIDTH, 1e-4, np.float32)),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def big_model(folder: Path, weights: int, side: int = 4096) -> Path:
    """A chain MatMul(W_i) -> Relu of `weights` float[side, side] weights in one external data file."""
    data = folder / "big.onnx.data"
    initializers, nodes, offset = [], [], 0
    rng = np.random.default_rng(0)
    with open(data, "wb") as f:
        for i in range(weights):
            block = (rng.standard_normal((side, side), dtype=np.float32) / side).tobytes()
            f.write(block)
            weight = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[side, side])
            weight.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(len(block)))):
                entry = weight.external_data.add()
                entry.key, entry.value = key, value
            offset += len(block)
            initializers.append(weight)
            source = "x" if i == 0 else f"r{i - 1}"
            nodes += [
                helper.make_node("MatMul", [source, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
                helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}"),
            ]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
        [helper.make_tensor_value_info(f"r{weights - 1}", TensorProto.FLOAT, [1, side])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "big.onnx"
    onnx.save(model, path)
    return path


ONNX_EXTRACT = r"""
import sys, onnx.utils
src, dst, start, end = sys.argv[1:5]
onnx.utils.extract_model(src, dst, [start], [end])
"""


def check_added_outputs(path: Path, before: int) -> str:
    """Run the result in onnxruntime: every added output's declared dtype and dims equal the computed value's."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    values = session.run(None, {"x": np.ones((2, WIDTH), np.float32)})
    wrong = 0
    for info, value in list(zip(model.graph.output, values, strict=True))[before:]:
        t = info.type.tensor_type
        dtype_ok = helper.tensor_dtype_to_np_dtype(t.elem_type) == value.dtype
        dims = t.shape.dim if t.HasField("shape") else None
        shape_ok = dims is not None and len(dims) == value.ndim
        pairs = zip(dims, value.shape, strict=True) if shape_ok else ()
        known = (d.dim_value == n if d.HasField("dim_value") else bool(d.dim_param) for d, n in pairs)
        shape_ok = shape_ok and all(known)
        wrong += not (dtype_ok and shape_ok)
    added = len(model.graph.output) - before
    return f"{added} added outputs, {added - wrong} with dtype and shape right"


def in_process_rename(path: Path) -> float:
    import graphsurgeon as gs

    model = gs.load(path)
    start = time.perf_counter()
    model.rename(regex=r"^t(\d+)$=layer_\1", what="tensors")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--weights", type=int, default=16, help="64 MiB weights in the big model (16: 1 GiB)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gs-everyday-"))
    work.mkdir(parents=True, exist_ok=True)
    gs_cmd = H.graphsurgeon_cmd()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc files
    lines = [H.header(), f"graphsurgeon command: `{' '.join(gs_cmd)}`; RSS and CPU: {H.rss_method()}", ""]
    lines.append(f"load average before: {_loadavg()}")
    try:
        chain = work / "chain.onnx"
        onnx.save(chain_model(args.nodes), chain)
        rows = []
        runs = []
        out = work / "chain.outputs.onnx"
        cmd = [*gs_cmd, "add-outputs", str(chain), "--all-intermediate", "-o", str(out), "-q"]
        H.run_measured("warm-up", cmd, log_dir=work, env=env)  # writes the .pyc files, fills the page cache
        for _ in range(args.repeat):
            H.wait_for_quiet()
            runs.append(H.run_measured("add-outputs --all-intermediate", cmd, log_dir=work, env=env))
        check = check_added_outputs(work / "chain.outputs.onnx", 1) if runs[-1].ok else runs[-1].error_line()
        rows.append(_row(f"add-outputs --all-intermediate ({args.nodes} nodes)", runs, "3 s", check))
        runs = []
        for _ in range(args.repeat):
            H.wait_for_quiet()
            out = work / "chain.renamed.onnx"
            cmd = [*gs_cmd, "rename", str(chain), "--regex", r"^t(\d+)$=layer_\1", "--what", "tensors"]
            runs.append(H.run_measured("rename --regex", [*cmd, "-o", str(out), "-q"], log_dir=work, env=env))
        renamed = onnx.load(str(work / "chain.renamed.onnx")) if runs[-1].ok else None
        count = sum(n.output[0].startswith("layer_") for n in renamed.graph.node) if renamed else 0
        verb_time = in_process_rename(chain)
        rows.append(
            _row(
                f"rename --regex ({count} tensors)",
                runs,
                "1 s",
                f"{count} tensors renamed; the verb alone: {H.fmt_seconds(verb_time)}",
            )
        )
        if args.weights:
            big = big_model(work, args.weights)
            size_gb = (work / "big.onnx.data").stat().st_size / 2**30
            k = args.weights // 2
            for tool, cmd in (
                (
                    "graphsurgeon extract",
                    [*gs_cmd, "extract", str(big), "--inputs", f"r{k - 1}", "--outputs", f"m{k}"]
                    + ["-o", str(work / "cut.onnx"), "-q"],
                ),
                (
                    "onnx.utils.extract_model",
                    [H.python(), "-c", ONNX_EXTRACT, str(big), str(work / "cut_onnx.onnx"), f"r{k - 1}", f"m{k}"],
                ),
            ):
                runs = []
                for _ in range(args.repeat):
                    H.drop_caches()
                    H.wait_for_quiet()
                    runs.append(H.run_measured(tool, cmd, log_dir=work, timeout=600, env=env))
                note = "ok" if runs[-1].ok else runs[-1].error_line()
                if tool.startswith("graphsurgeon") and runs[-1].ok:
                    cut = onnx.load(str(work / "cut.onnx"), load_external_data=False)
                    note = f"{len(cut.graph.node)} node(s), initializers {[t.name for t in cut.graph.initializer]}"
                rows.append(_row(f"{tool} ({size_gb:.2f} GiB model, 1 weight needed)", runs, "1 s, 100 MB", note))
        lines.append(f"load average after: {_loadavg()}")
        lines.append("")
        headers = ["command", "wall: median (min-max, runs)", "CPU user+sys: median (min)", "peak RSS", "target"]
        table = H.markdown_table([*headers, "check"], rows)
        lines.append(table)
        text = "\n".join(lines)
        print(text)
        H.write_report("everyday_verbs", text)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _row(label: str, runs: list[H.Run], target: str, check: str) -> list[str]:
    ok = [r for r in runs if r.ok]
    if not ok:
        return [label, "failed", "-", "-", target, runs[-1].error_line()]
    wall, rss, _ = H.summarize(ok)
    cpu = [r.cpu_s for r in ok]
    failed = [r for r in runs if not r.ok]
    if failed:
        check += f"; {len(failed)} of {len(runs)} runs failed: {failed[-1].error_line()}"
    return [label, wall, f"{H.median(cpu):.2f} s ({min(cpu):.2f})", rss, target, check]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
