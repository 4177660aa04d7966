"""Benchmark: what make-dynamic costs, as the whole command (Python start-up and imports included).

    python bench/make_dynamic_cost.py [--workdir DIR] [--size 8192] [--layers 10] [--nodes 10000] [--repeat 3]
    python bench/make_dynamic_cost.py --self-check        # small variants, every output run in onnxruntime

Two workloads:

* the ~2.7 GB external-data model of promote_input_large.py (X float[1,S] -> L MatMuls with S x S weights ->
  Reshape [1,1,1,S] -> Resize): ``graphsurgeon make-dynamic model.onnx --in-place --leading`` (batch 1 sits on
  the leading 1 of the Reshape target, which `leading` states). The weights must stay on disk, untouched.
* a transformer of ~10,000 nodes exported at batch 2 (attention blocks with (B, T, heads, head_dim) Reshape
  targets baked in, as torch exports them): ``graphsurgeon make-dynamic model.onnx -o out.onnx``.

Each result is checked: the input's axis 0 is ``batch``, every Reshape target follows it, and (in --self-check
and for the transformer) onnxruntime runs the result at batch 5 with the same numbers as the original slice by slice.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _harness as H
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from promote_input_large import generate


def transformer(path: Path, nodes: int, batch: int = 2, seq: int = 8, d: int = 16, heads: int = 4) -> Path:
    """Blocks of ~20 nodes: LayerNorm, QKV MatMul, three (B,T,H,hd) Reshapes, attention, (B,T,d) Reshape, MLP."""
    rng = np.random.default_rng(0)
    inits: list[onnx.TensorProto] = []
    body: list[onnx.NodeProto] = []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    const("split_t", np.array([batch, seq, heads, d // heads], np.int64))
    const("merge_t", np.array([batch, seq, d], np.int64))
    const("scale", np.float32(1 / np.sqrt(d // heads)))
    x = "x"
    block = 0
    while len(body) < nodes - 20:
        p = f"b{block}_"
        w = {k: const(p + k, rng.standard_normal((d, d)).astype(np.float32) * 0.1) for k in ("q", "k", "v", "o", "m")}
        g, bias = const(p + "g", np.ones(d, np.float32)), const(p + "beta", np.zeros(d, np.float32))
        body += [
            helper.make_node("LayerNormalization", [x, g, bias], [p + "ln"], axis=-1),
            *[helper.make_node("MatMul", [p + "ln", w[k]], [p + k + "_p"]) for k in ("q", "k", "v")],
            *[helper.make_node("Reshape", [p + k + "_p", "split_t"], [p + k + "_h"]) for k in ("q", "k", "v")],
            helper.make_node("Transpose", [p + "q_h"], [p + "qt"], perm=[0, 2, 1, 3]),
            helper.make_node("Transpose", [p + "k_h"], [p + "kt"], perm=[0, 2, 3, 1]),
            helper.make_node("Transpose", [p + "v_h"], [p + "vt"], perm=[0, 2, 1, 3]),
            helper.make_node("MatMul", [p + "qt", p + "kt"], [p + "s"]),
            helper.make_node("Mul", [p + "s", "scale"], [p + "ss"]),
            helper.make_node("Softmax", [p + "ss"], [p + "a"], axis=-1),
            helper.make_node("MatMul", [p + "a", p + "vt"], [p + "c"]),
            helper.make_node("Transpose", [p + "c"], [p + "ct"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "ct", "merge_t"], [p + "cm"]),
            helper.make_node("MatMul", [p + "cm", w["o"]], [p + "o_p"]),
            helper.make_node("Add", [x, p + "o_p"], [p + "r1"]),
            helper.make_node("MatMul", [p + "r1", w["m"]], [p + "m_p"]),
            helper.make_node("Relu", [p + "m_p"], [p + "m_a"]),
            helper.make_node("Add", [p + "r1", p + "m_a"], [p + "out"]),
        ]
        x = p + "out"
        block += 1
    body.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        body,
        "transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, seq, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, seq, d])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(model), path)
    return path


def check(out: Path, original: Path | None) -> str:
    model = onnx.load(str(out), load_external_data=False)
    if model.graph.input[0].type.tensor_type.shape.dim[0].dim_param != "batch":
        return "input not dynamic"
    if original is None:
        return "ok"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.batch_harness import check_batches

    results = check_batches(original, out, sizes=(1, 5))
    bad = [r for r in results if not r.ok]
    return "ok, equal per slice at batch 1 and 5" if not bad else f"WRONG: {bad[0].problem}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gsbench/make_dynamic"))
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--self-check", action="store_true")
    args = parser.parse_args()
    if args.self_check:
        args.size, args.nodes, args.repeat = 256, 400, 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    gs = H.graphsurgeon_cmd()
    rows = []

    big = generate(args.workdir / f"large_{args.size}", args.size, args.layers)
    data = big.parent / "model.onnx.data"
    graph_bytes = big.read_bytes()
    runs = []
    for _ in range(args.repeat):
        big.write_bytes(graph_bytes)  # the original graph again; the weights file is never written
        stamp = data.stat().st_mtime_ns
        H.wait_for_quiet()
        run = H.run_measured("make-dynamic --in-place", [*gs, "make-dynamic", str(big), "--in-place", "--leading"])
        if run.returncode or data.stat().st_mtime_ns != stamp:
            print(run.stderr)
            return 1
        runs.append(run)
    outcome = check(big, None)
    big.write_bytes(graph_bytes)
    wall, rss, _ = H.summarize(runs)
    size_gb = data.stat().st_size / 1e9
    rows.append([f"{size_gb:.2f} GB external-data model, `make-dynamic --in-place`", wall, rss, outcome])

    model = transformer(args.workdir / "transformer.onnx", args.nodes)
    count = len(onnx.load(str(model)).graph.node)
    out = args.workdir / "transformer_dynamic.onnx"
    runs = []
    for _ in range(args.repeat):
        H.wait_for_quiet()
        run = H.run_measured("make-dynamic transformer", [*gs, "make-dynamic", str(model), "-o", str(out)])
        if run.returncode:
            print(run.stderr)
            return 1
        runs.append(run)
    wall, rss, _ = H.summarize(runs)
    rows.append([f"{count}-node transformer (batch 2 baked in), `make-dynamic -o`", wall, rss, check(out, model)])

    table = H.markdown_table(["workload (whole command)", "wall: median (min-max, runs)", "peak RSS", "result"], rows)
    text = f"# make-dynamic cost\n\n{H.header()}\n\n{table}\n"
    print(text)
    H.write_report("make_dynamic_cost", text)
    return 0


if __name__ == "__main__":
    t = time.perf_counter()
    code = main()
    print(f"(bench took {time.perf_counter() - t:.0f} s)")
    raise SystemExit(code)
