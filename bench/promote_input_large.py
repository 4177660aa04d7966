"""Benchmark: promote Resize's constant `scales` to a graph input on a ~2.7 GB external-data model.

    python bench/promote_input_large.py [--workdir DIR] [--size 8192] [--layers 10] [--keep] [--warm]
    python bench/promote_input_large.py --self-check          # small model (size 256) + onnxruntime checks

The generated model: X float[1,S] -> MatMul x L (S x S fp32 weights, all in ONE external file model.onnx.data,
written streaming) -> Reshape [1,1,1,S] -> Resize(scales = constant [1,1,1,2], nearest) -> Y float[1,1,1,2S].
The same edit (scales becomes a float[4] graph input named `scales`, the constant is dropped, Y's dims become
symbolic) is done by each tool as one whole command in its own process; wall time and that process's peak
RSS are measured (Python start-up and imports included). Every output is then verified: `scales` is a graph
input read by the Resize, weights still external with the right sizes, sampled weight bytes equal the
original's, and onnxruntime loads it (and, in --self-check, computes the same as the original).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _harness as H

DATA_NAME = "model.onnx.data"
SCALES_INIT = "resize_scales"  # the constant's name in the generated model; the new input is `scales`
ALIGN = 4096
SLOW_S = 10.0
WARM_MODULES = [
    "numpy",
    "onnx",
    "onnx_ir",
    "onnx_graphsurgeon",
    "onnxruntime",
    "graphsurgeon.cli",
    "graphsurgeon.verbs.promote_input",
]

# --- each tool's whole command -------------------------------------------------------------------------------
# argv: SRC DST (DST == SRC means in place). Same edit everywhere; output dims named like graphsurgeon names them.

OGS = r"""
import os, sys
import numpy as np, onnx, onnx_graphsurgeon as gs
src, dst = sys.argv[1:3]
graph = gs.import_onnx(onnx.load(src))
resize = next(n for n in graph.nodes if n.op == "Resize")
scales = gs.Variable("scales", dtype=np.float32, shape=[4])
resize.inputs[2] = scales
graph.inputs.append(scales)
y = resize.outputs[0]
y.shape = [f"{y.name}_dim{i}" for i in range(len(y.shape))]
graph.cleanup()
os.makedirs(os.path.dirname(dst), exist_ok=True)
onnx.save(gs.export_onnx(graph), dst, save_as_external_data=True, all_tensors_to_one_file=True,
          location="model.onnx.data")
"""

ONNX_IR = r"""
import os, sys
import onnx_ir as ir
src, dst = sys.argv[1:3]
model = ir.load(src)
graph = model.graph
resize = next(n for n in graph if n.op_type == "Resize")
old = resize.inputs[2]
scales = ir.Value(name="scales", shape=ir.Shape([4]), type=ir.TensorType(ir.DataType.FLOAT))
graph.inputs.append(scales)
resize.replace_input_with(2, scales)
if not old.uses():
    graph.initializers.pop(old.name)
y = resize.outputs[0]
y.shape = ir.Shape([f"{y.name}_dim{i}" for i in range(len(y.shape))])
os.makedirs(os.path.dirname(dst), exist_ok=True)
ir.save(model, dst, external_data="model.onnx.data")
"""

# onnx.load (weights read) + protobuf edit + onnx.save with external data: the baseline of a full round trip.
# With load_external_data=False and DST == SRC it is the graph-file-only edit (the lower bound for in place).
ONNX_PROTO = r"""
import os, sys
import onnx
from onnx import TensorProto, helper
src, dst, full = sys.argv[1], sys.argv[2], sys.argv[3] == "full"
model = onnx.load(src, load_external_data=full)
graph = model.graph
resize = next(n for n in graph.node if n.op_type == "Resize")
old = resize.input[2]
resize.input[2] = "scales"
graph.input.append(helper.make_tensor_value_info("scales", TensorProto.FLOAT, [4]))
if not any(old in n.input for n in graph.node):
    del graph.initializer[[t.name for t in graph.initializer].index(old)]
for vi in graph.output:
    if vi.name == resize.output[0]:
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            d.dim_param = f"{vi.name}_dim{i}"
if full:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    onnx.save(model, dst, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data")
else:
    onnx.save(model, dst)
"""

# The issue's measured figures (same model shape), for reference.
ISSUE_FIGURES = {
    "onnx-graphsurgeon": "31.8 s / 7.9 GB",
    "onnx.load + onnx.save": "24.4 s / 2.9 GB",
    "onnx-ir": "3.9 s / 75 MB",
    "graph-file-only edit": "0.5 s / 38 MB",
}


# --- generator -----------------------------------------------------------------------------------------------
def generate(folder: Path, size: int, layers: int, seed: int = 0) -> Path:
    """Write model.onnx + model.onnx.data, streaming the weights (a few MB of numpy at a time)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "params.json"
    params = {"size": size, "layers": layers, "seed": seed, "version": 2}
    model_path = folder / "model.onnx"
    if stamp.exists() and json.loads(stamp.read_text()) == params and model_path.exists():
        print(f"reusing {model_path}")
        return model_path
    stamp.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, (16 << 20) // (size * 4))
    weights = []
    with open(folder / DATA_NAME, "wb") as f:
        for i in range(layers):
            if f.tell() % ALIGN:
                f.write(b"\0" * (ALIGN - f.tell() % ALIGN))
            offset = f.tell()
            for start in range(0, size, rows_per_chunk):
                rows = min(rows_per_chunk, size - start)
                chunk = rng.standard_normal((rows, size), dtype=np.float32)
                chunk *= np.float32(1 / np.sqrt(size))  # keeps activations ~N(0,1) through the chain
                f.write(chunk.tobytes())
            length = f.tell() - offset
            t = TensorProto(
                name=f"W{i}", data_type=TensorProto.FLOAT, dims=[size, size], data_location=TensorProto.EXTERNAL
            )
            for key, value in (("location", DATA_NAME), ("offset", offset), ("length", length)):
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
            weights.append(t)
    nodes, value_info, prev = [], [], "X"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"h{i}"], name=f"MatMul_{i}"))
        value_info.append(helper.make_tensor_value_info(f"h{i}", TensorProto.FLOAT, [1, size]))
        prev = f"h{i}"
    shape = helper.make_tensor("reshape_shape", TensorProto.INT64, [4], [1, 1, 1, size])
    scales = helper.make_tensor(SCALES_INIT, TensorProto.FLOAT, [4], [1, 1, 1, 2])
    nodes.append(helper.make_node("Reshape", [prev, "reshape_shape"], ["r"], name="Reshape"))
    value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 1, 1, size]))
    nodes.append(
        helper.make_node(
            "Resize",
            ["r", "", SCALES_INIT],
            ["Y"],
            name="Resize",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    )
    graph = helper.make_graph(
        nodes,
        "promote_input_large",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 1, 2 * size])],
        initializer=[*weights, shape, scales],
        value_info=value_info,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10, producer_name="graphsurgeon-bench"
    )
    onnx.save(model, model_path)
    onnx.checker.check_model(str(model_path))  # by path: resolves and checks the external data files too
    stamp.write_text(json.dumps(params))
    return model_path


def weight_refs(model_path: Path) -> dict[str, tuple[str, int, int]]:
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    refs = {}
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            e = {x.key: x.value for x in t.external_data}
            refs[t.name] = (e["location"], int(e.get("offset", 0)), int(e["length"]))
    return refs


# --- verification --------------------------------------------------------------------------------------------
def verify(out: Path, src: Path, size: int, layers: int) -> tuple[bool, str, str]:
    """(ok, problems-or-'ok', data-file description) for one tool's output, without loading weights."""
    import onnx

    problems = []
    model = onnx.load(out, load_external_data=False)
    graph = model.graph
    inputs = {vi.name: vi for vi in graph.input}
    if "scales" not in inputs:
        problems.append("no graph input `scales`")
    else:
        tt = inputs["scales"].type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim]
        if tt.elem_type != onnx.TensorProto.FLOAT or dims != [4]:
            problems.append(f"`scales` input is {tt.elem_type}{dims}, not float[4]")
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    if len(resizes) != 1 or len(resizes[0].input) < 3 or resizes[0].input[2] != "scales":
        problems.append("Resize does not read `scales`")
    inits = {t.name: t for t in graph.initializer}
    if SCALES_INIT in inits or "scales" in inits:
        problems.append("the scales constant is still an initializer")
    for vi in graph.output:
        static = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if vi.name == "Y" and len(static) == 4:
            problems.append(f"output Y still fully static {static}")
    # weights: still external, sizes right, sampled bytes identical to the generated ones
    src_refs = weight_refs(src)
    out_refs = weight_refs(out)
    expected_len = size * size * 4
    files: dict[str, int] = {}
    for i in range(layers):
        name = f"W{i}"
        if name not in out_refs:
            problems.append(f"{name} is not external in the output")
            continue
        loc, off, length = out_refs[name]
        path = out.parent / loc
        if loc not in files:
            files[loc] = path.stat().st_size if path.exists() else -1
        if length != expected_len:
            problems.append(f"{name} length {length} != {expected_len}")
        if files[loc] < off + length:
            problems.append(f"{name} lies past the end of {loc}")
            continue
        sloc, soff, _ = src_refs[name]
        sample = min(65536, length)
        with open(path, "rb") as fo, open(src.parent / sloc, "rb") as fs:
            for at in (0, length // 2, length - sample):
                fo.seek(off + at)
                fs.seek(soff + at)
                if fo.read(sample) != fs.read(sample):
                    problems.append(f"{name} bytes differ at +{at}")
                    break
    total = sum(files.values())
    data = ", ".join(f"{loc} {size_ / 1e9:.3f} GB" for loc, size_ in files.items()) or "none"
    data += f" (weights {layers * expected_len / 1e9:.3f} GB)"
    if total < layers * expected_len:
        problems.append("external data smaller than the weights")
    return (not problems), ("; ".join(problems) or "ok"), data


ORT_LOAD = r"""
import sys, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
print([ (i.name, i.shape) for i in s.get_inputs()], [(o.name, o.shape) for o in s.get_outputs()])
"""


def ort_loads(model: Path) -> tuple[bool, str]:
    r = subprocess.run([sys.executable, "-c", ORT_LOAD, str(model)], capture_output=True, text=True)
    if r.returncode == 0:
        return True, r.stdout.strip()
    return False, (r.stderr.strip().splitlines() or ["?"])[-1]


def ort_compare(original: Path, edited: Path, size: int) -> tuple[bool, str]:
    """Edited at scales [1,1,1,2] == original; at [1,1,1,3] == nearest repeat of the pre-resize values."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, size), dtype=np.float32)
    ref = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
    sess = ort.InferenceSession(str(edited), providers=["CPUExecutionProvider"])
    got2 = sess.run(None, {"X": x, "scales": np.array([1, 1, 1, 2], np.float32)})[0]
    got3 = sess.run(None, {"X": x, "scales": np.array([1, 1, 1, 3], np.float32)})[0]
    want3 = np.repeat(ref[..., ::2], 3, axis=-1)
    d2 = float(np.max(np.abs(got2 - ref))) if got2.shape == ref.shape else float("inf")
    d3 = float(np.max(np.abs(got3 - want3))) if got3.shape == want3.shape else float("inf")
    ok = d2 == 0.0 and d3 == 0.0
    return ok, f"max abs diff {d2:g} at x2, {d3:g} at x3 vs nearest repeat, Y {list(got3.shape)}"


# --- the benchmark -------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/gsbench/promote_input_large"))
    ap.add_argument("--size", type=int, default=None, help="weight side S (default 8192; 256 with --self-check)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument(
        "--self-check",
        action="store_true",
        help="small model; also run onnxruntime on every output against the original",
    )
    ap.add_argument("--keep", action="store_true", help="keep the generated model and outputs")
    ap.add_argument("--warm", action="store_true", help="do not drop the page cache between runs")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default 5); the table shows medians")
    ap.add_argument(
        "--slow-rounds",
        type=int,
        default=2,
        help=f"rounds for tools slower than {SLOW_S:.0f} s (default 2): their spread is small next to their time",
    )
    ap.add_argument("--only", nargs="*", help="run only the tools whose label contains one of these words")
    args = ap.parse_args()
    size = args.size or (256 if args.self_check else 8192)
    name = "promote_input_large" + ("_selfcheck" if args.self_check else "")
    work: Path = args.workdir / (f"s{size}_l{args.layers}")
    src_dir, outs = work / "src", work / "out"
    need = 2 * size * size * 4 * args.layers / 1e9 + 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    if H.disk_free_gb(args.workdir) < need:
        print(f"need ~{need:.0f} GB free in {args.workdir}", file=sys.stderr)
        return 1

    t = time.perf_counter()
    src = generate(src_dir, size, args.layers)
    gen_s = time.perf_counter() - t
    data_bytes = (src_dir / DATA_NAME).stat().st_size
    print(f"model: {src} + {DATA_NAME} {data_bytes / 1e9:.3f} GB (generated in {gen_s:.1f} s)")
    ok, msg = ort_loads(src)
    print(f"onnxruntime loads the generated model: {ok} {msg}")
    if not ok:
        return 1

    py, gs_cli = H.python(), H.graphsurgeon_cmd()
    graph_file = src.read_bytes()

    def restore() -> None:  # in-place runs rewrite model.onnx only; put the original graph file back
        src.write_bytes(graph_file)

    tools = [
        # (label, command, output, in place?)
        (
            "graphsurgeon CLI, -o other folder",
            [*gs_cli, "promote-input", src, "--node", "Resize", "--attr", "scales", "-o", outs / "gs" / "model.onnx"],
            outs / "gs" / "model.onnx",
            False,
        ),
        ("onnx-graphsurgeon", [py, "-c", OGS, src, outs / "ogs" / "model.onnx"], outs / "ogs" / "model.onnx", False),
        ("onnx-ir", [py, "-c", ONNX_IR, src, outs / "ir" / "model.onnx"], outs / "ir" / "model.onnx", False),
        (
            "onnx.load + onnx.save",
            [py, "-c", ONNX_PROTO, src, outs / "onnx" / "model.onnx", "full"],
            outs / "onnx" / "model.onnx",
            False,
        ),
        ("graph-file-only edit (onnx, in place)", [py, "-c", ONNX_PROTO, src, src, "graph"], src, True),
        (
            "graphsurgeon CLI, --in-place",
            [*gs_cli, "promote-input", src, "--node", "Resize", "--attr", "scales", "--in-place"],
            src,
            True,
        ),
    ]
    if args.only:
        tools = [t for t in tools if any(w.lower() in t[0].lower() for w in args.only)]

    cold = False
    if not args.warm:
        cold = H.drop_caches()
        if not cold:
            print("cannot drop the page cache (not root?): runs are warm-cache; reading the data once to warm up")
    if not cold:
        with open(src_dir / DATA_NAME, "rb") as f:
            while f.read(64 << 20):
                pass

    runs: dict[str, list[H.Run]] = {label: [] for label, *_ in tools}
    checks: dict[str, tuple[str, str]] = {}
    for round_ in range(args.repeat):
        shift = round_ % len(tools)  # rotate the order each round: no tool always runs first or last
        for label, cmd, out, in_place in tools[shift:] + tools[:shift]:
            if len(runs[label]) >= args.slow_rounds and H.median(r.wall for r in runs[label]) > SLOW_S:
                continue  # the slow baselines vary little; their extra rounds would only cost minutes
            if out.parent != src_dir:
                shutil.rmtree(out.parent, ignore_errors=True)
            quiet = H.wait_for_quiet()
            if cold:
                H.drop_caches()
                H.warm_imports(WARM_MODULES)  # code warm, model data cold: what is measured is the model I/O
            print(f"[{round_ + 1}/{args.repeat}] {label} (background load before: {quiet:.2f} cores) ...", flush=True)
            run = H.run_measured(label, cmd, timeout=1800, log_dir=work / "logs")
            runs[label].append(run)
            if not run.ok:
                checks[label] = ("-", f"FAILED: {run.error_line()}")
            elif label not in checks:  # verify each tool's output once (an onnxruntime load of it is slow)
                valid, problems, data = verify(out, src, size, args.layers)
                loads, why = ort_loads(out)
                check = "valid" if valid else problems
                check += ", ORT loads it" if loads else f", ORT refuses it: {why}"
                if args.self_check:
                    same, detail = _compare_with_original(src, graph_file, out, size, in_place)
                    check += f", ORT {'==' if same else '!='} original ({detail})"
                checks[label] = (data, check)
            if in_place:
                restore()
            elif not args.keep:
                shutil.rmtree(out.parent, ignore_errors=True)
            print(
                f"  {H.fmt_seconds(run.wall)}, peak RSS {H.fmt_mb(run.peak_rss_mb)}, sync after "
                f"{run.sync_s:.2f} s; {checks[label][1]}",
                flush=True,
            )

    rows = []
    for label, *_ in tools:
        wall, rss, sync = H.summarize(runs[label])
        figure = next((v for k, v in ISSUE_FIGURES.items() if label.startswith(k)), "")
        if (size, args.layers) != (8192, 10):
            figure = "(other model)" if figure else ""
        rows.append([label, wall, rss, sync, H.background(runs[label]), *checks[label], figure])

    headers = [
        "tool (one whole command)",
        f"wall ({H.stat_label(args.repeat)})",
        "peak RSS (max)",
        "sync after",
        "other load (cores, max)",
        "external data written",
        "output check",
        "issue's figure",
    ]
    table = H.markdown_table(headers, rows)
    verdicts = targets(runs)
    cache = (
        "model data cold (page cache dropped before each run, then Python packages re-imported once so "
        "only the model's own I/O is cold)"
        if cold
        else "warm page cache"
    )
    text = (
        f"# {name}\n\n{H.header()}"
        f"\n\nModel: {args.layers} x MatMul {size}x{size} fp32 -> Reshape -> Resize, "
        f"{data_bytes / 1e9:.2f} GB external data in one file; {cache}; {args.repeat} round(s) ({args.slow_rounds} "
        f"for tools slower than {SLOW_S:.0f} s), tool order rotated each round; peak RSS by {H.rss_method()}.\n"
        f'"sync after" is the time `sync` took once the tool had exited (its writes still in the page cache); '
        f'it is not part of the wall time. "other load" is the CPU other processes on this shared machine '
        f"used during a run (each run waits for a quiet machine first, up to 90 s).\n\n{table}\n\n{verdicts}\n\n"
        "Commands:\n\n"
        + "\n".join(f"- {label}: `{_show(cmd)}`" for label, cmd, _, _ in tools)
        + "\n\nScripts (`python -c SCRIPT SRC DST ...`):\n\n"
        + "".join(
            f"{title}:\n```python{body}```\n\n"
            for title, body in (
                ("onnx-graphsurgeon", OGS),
                ("onnx-ir", ONNX_IR),
                ("onnx (full / graph-file only)", ONNX_PROTO),
            )
        )
    )
    print("\n" + table + "\n\n" + verdicts)
    print(f"\nwritten to {H.write_report(name, text)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.ok for label, rs in runs.items() if "graphsurgeon CLI" in label for r in rs) else 1


def _compare_with_original(src: Path, graph_file: bytes, out: Path, size: int, in_place: bool) -> tuple[bool, str]:
    if not in_place:
        return ort_compare(src, out, size)
    original = src.with_name("model.orig.onnx")  # same folder, so it resolves the same external data
    original.write_bytes(graph_file)
    try:
        return ort_compare(original, out, size)
    finally:
        original.unlink(missing_ok=True)


def targets(runs: dict[str, list[H.Run]]) -> str:
    lines = ["Targets for graphsurgeon (medians):"]
    gs_o = runs.get("graphsurgeon CLI, -o other folder")
    ir_run = runs.get("onnx-ir")
    if gs_o and ir_run and all(r.ok for r in gs_o + ir_run):
        a, b = H.median(r.wall for r in gs_o), H.median(r.wall for r in ir_run)
        rss = max(r.peak_rss_mb for r in gs_o)
        lines.append(
            f"- to another folder: {H.fmt_seconds(a)} vs onnx-ir {H.fmt_seconds(b)} "
            f"({'met' if a <= b else f'MISSED by {a - b:.2f} s ({(a / b - 1) * 100:.0f} %)'}); "
            f"peak RSS {H.fmt_mb(rss)} vs < 200 MB ({'met' if rss * 1.048576 < 200 else 'MISSED'})"
        )
    gs_i = runs.get("graphsurgeon CLI, --in-place")
    if gs_i and all(r.ok for r in gs_i):
        a = H.median(r.wall for r in gs_i)
        lines.append(f"- in place: {H.fmt_seconds(a)} vs < 1 s ({'met' if a < 1 else f'MISSED by {a - 1:.2f} s'})")
    return "\n".join(lines)


def _show(cmd: list[str]) -> str:
    return " ".join("SCRIPT" if "\n" in str(c) else str(c) for c in cmd)


if __name__ == "__main__":
    sys.exit(main())
