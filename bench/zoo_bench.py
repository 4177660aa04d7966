"""graphsurgeon simplify against its peers on the real-model zoo (bench/zoo.py): nodes, wall, peak memory,
outputs equal on two input sets, and onnxruntime latency before/after.

Every tool runs as its own subprocess on each model (the whole command; wall and peak RSS measured as in
simplify_bench.py). Outputs are compared with the original's under onnxruntime on two input sets — "random"
(standard normal floats, ints across the model's range) and "sane" (uniform [0, 1) floats, small ints) — with
rtol 1e-3, atol 1e-4. Latency: onnxruntime (default optimizations, one intra-op thread), median of up to 50
runs after 3 warm-ups, original vs each result. Node counts are the main graph's.

    python bench/zoo_bench.py [--cache /tmp/gs_zoo] [--only NAME,...] [--tools graphsurgeon,onnxslim,...]
        [--out bench/results/zoo_bench]   # writes OUT.md (tables) and OUT.json (every measurement)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simplify_bench import PY, TOOLS, node_count, run_measured  # noqa: E402
from zoo import MODELS, Spec, build_zoo  # noqa: E402

PEERS = ["graphsurgeon simplify", "onnxsim", "onnxslim", "polygraphy sanitize --fold-constants", "onnxscript optimizer"]
SHORT = {
    "graphsurgeon simplify": "gs",
    "polygraphy sanitize --fold-constants": "polygraphy",
    "onnxscript optimizer": "onnxscript",
}
RTOL, ATOL = 1e-3, 1e-4
TOOLS = dict(TOOLS)
TOOLS["onnxscript optimizer"] = lambda i, o: [
    PY,
    "-c",
    "import sys, onnx_ir as ir, onnxscript.optimizer as o; "
    "m = ir.load(sys.argv[1]); o.optimize(m); ir.save(m, sys.argv[2])",
    i,
    o,
]


def _dim(spec: Spec, name: str, axis: int, dim) -> int:
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return dim.dim_value
    for key in (f"{name}:{axis}", dim.dim_param, f"?{axis}", "?"):
        if key and key in spec.dims:
            return spec.dims[key]
    return 1 if axis == 0 else 16


def feeds(path: Path, spec: Spec, kind: str) -> dict[str, np.ndarray]:
    """Inputs for the model: kind "random" or "sane" (see the module docstring)."""
    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(0 if kind == "random" else 1)
    out: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        shape = [_dim(spec, vi.name, axis, d) for axis, d in enumerate(t.shape.dim)]
        if vi.name in spec.fixed:
            out[vi.name] = np.full(shape, spec.fixed[vi.name], dtype)
        elif dtype.kind in "iu":
            low, high = spec.ints.get(vi.name, (0, 10))
            high = high if kind == "random" else min(high, low + 4)
            out[vi.name] = rng.integers(low, high, shape).astype(dtype)
        elif dtype.kind == "b":
            out[vi.name] = rng.integers(0, 2, shape).astype(bool)
        elif kind == "random":
            out[vi.name] = rng.standard_normal(shape).astype(dtype)
        else:
            out[vi.name] = rng.uniform(0, 1, shape).astype(dtype)
    return out


def _session(path: Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(original: Path, candidate: Path, inputs: list[dict]) -> str:
    try:
        a, b = _session(original), _session(candidate)
        for feed in inputs:
            want, got = a.run(None, feed), b.run(None, feed)
            if len(want) != len(got):
                return "NO: output count"
            for w, g in zip(want, got, strict=True):
                w, g = np.asarray(w), np.asarray(g)
                if w.shape != g.shape or w.dtype != g.dtype:
                    return f"NO: {w.dtype}{list(w.shape)} vs {g.dtype}{list(g.shape)}"
                if w.dtype.kind in "fc":
                    np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
                elif not np.array_equal(g, w):
                    return "NO: values differ"
        return "yes"
    except AssertionError as e:
        return "NO: " + str(e).strip().splitlines()[-1][:60]
    except Exception as e:
        return f"NO: {type(e).__name__}: {str(e)[:60]}"


def latency_ms(original: Path, result: Path, feed: dict) -> tuple[float, float] | None:
    """Median milliseconds per run of the original and the result, runs interleaved (so both see the same
    load from other jobs): up to 50 each, at least 5, about 2 s in all, after 3 warm-ups."""
    try:
        sessions = [_session(original), _session(result)]
        for session in sessions:
            for _ in range(3):
                session.run(None, feed)
        times: list[list[float]] = [[], []]
        budget = time.perf_counter() + 2.0
        while len(times[1]) < 50 and (len(times[1]) < 5 or time.perf_counter() < budget):
            for session, spent in zip(sessions, times, strict=True):
                start = time.perf_counter()
                session.run(None, feed)
                spent.append(time.perf_counter() - start)
        return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000
    except Exception:
        return None


def bench_model(name: str, path: Path, workdir: Path, tools: list[str]) -> dict:
    spec = MODELS[name]
    inputs = [feeds(path, spec, "random"), feeds(path, spec, "sane")]
    row: dict = {"model": name, "source": spec.source, "nodes": node_count(path), "tools": {}}
    for tool in tools:
        out_dir = workdir / name / SHORT.get(tool, tool)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        out = out_dir / "model.onnx"
        code, wall, rss, tail = run_measured(TOOLS[tool](str(path), str(out)), timeout=300)
        entry: dict = {"wall_s": round(wall, 2), "peak_mb": round(rss / 1e6)}
        if code != 0 or not out.exists():
            lines = tail.strip().splitlines()
            entry["failed"] = f"exit {code}: {lines[-1][:100] if lines else ''}"
        else:
            entry["nodes"] = node_count(out)
            entry["equal"] = compare(path, out, inputs)
            entry["inputs_kept"] = _inputs(out) == _inputs(path)
            pair = latency_ms(path, out, inputs[1])
            if pair is not None:
                entry["latency_before_ms"], entry["latency_ms"] = pair
        row["tools"][tool] = entry
        print(f"{name} / {tool}: {entry}", flush=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return row


def _inputs(path: Path) -> list[str]:
    """The graph inputs a caller can feed (an IR < 4 initializer listed as an input is one too)."""
    return [vi.name for vi in onnx.load(str(path), load_external_data=False).graph.input]


def _cell(entry: dict) -> str:
    if "failed" in entry:
        return "fail"
    text = str(entry["nodes"])
    if entry["equal"] != "yes":
        return f"{text} ✗"
    return text if entry.get("inputs_kept", True) else f"{text} †"


def _valid_nodes(entry: dict) -> int | None:
    """Nodes of a result that computes what the original did: same outputs, same inputs to feed."""
    return entry.get("nodes") if entry.get("equal") == "yes" and entry.get("inputs_kept", True) else None


def tables(rows: list[dict], tools: list[str]) -> str:
    gs = "graphsurgeon simplify"
    head = ["model", "nodes", *[SHORT.get(t, t) for t in tools], "gs wall (s)", "best peer wall (s)"]
    head += ["gs peak (MB)", "ORT ms before", "ORT ms after gs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fewest = tied = behind = fastest = 0
    for row in rows:
        entries = row["tools"]
        cells = [row["model"], str(row["nodes"]), *[_cell(entries[t]) if t in entries else "" for t in tools]]
        ours = entries.get(gs, {})
        peers = [entries[t] for t in tools if t != gs and t in entries]
        peer_nodes = [n for n in (_valid_nodes(e) for e in peers) if n is not None]
        peer_walls = [e["wall_s"] for e in peers if "failed" not in e]
        mine = _valid_nodes(ours)
        if mine is not None and peer_nodes:
            best = min(peer_nodes)
            fewest += mine < best
            tied += mine == best
            behind += mine > best
        if "failed" not in ours and peer_walls and ours.get("wall_s", 1e9) <= min(peer_walls):
            fastest += 1
        before, after = ours.get("latency_before_ms"), ours.get("latency_ms")
        cells += [
            f"{ours.get('wall_s', '')}",
            f"{min(peer_walls):.2f}" if peer_walls else "",
            f"{ours.get('peak_mb', '')}",
            f"{before:.2f}" if before else "",
            f"{after:.2f}" if after else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    summary = (
        f"{len(rows)} models: graphsurgeon has the fewest nodes on {fewest}, tied on {tied}, behind on {behind} "
        f"(counting only results whose outputs match); fastest command on {fastest}."
    )
    return summary + "\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=os.environ.get("GS_ZOO", "/tmp/gs_zoo"))
    parser.add_argument("--workdir", default="/tmp/gs_zoo_out")
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--tools", help="comma-separated words: run only the tools whose name contains one")
    parser.add_argument("--out", default=str(HERE / "results" / "zoo_bench"))
    parser.add_argument("--merge", help="an earlier OUT.json: keep its rows for the tools not run now")
    args = parser.parse_args()
    tools = [t for t in PEERS if not args.tools or any(w.lower() in t.lower() for w in args.tools.split(","))]
    models = build_zoo(Path(args.cache), args.only.split(",") if args.only else None)
    rows = [bench_model(name, path, Path(args.workdir), tools) for name, path in models.items()]
    if args.merge:
        earlier = {row["model"]: row for row in json.loads(Path(args.merge).read_text())}
        for row in rows:
            for tool, entry in earlier.get(row["model"], {}).get("tools", {}).items():
                row["tools"].setdefault(tool, entry)
        tools = PEERS
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} shared cores, one command at a time "
        f"(`python bench/zoo_bench.py`). A cell is the result's node count; ✗: its outputs differ from the "
        "original's on one of the two input sets (or onnxruntime cannot run it); †: the result no longer has all "
        "the original's graph inputs (an IR < 4 model's initializers are inputs a caller may feed; folding them "
        "changes what the model computes for such a caller); fail: the tool failed. Only results with neither "
        "mark count in the fewest-nodes tally.\n\n"
    )
    Path(args.out + ".md").write_text(header + tables(rows, tools))
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(header + tables(rows, tools))


if __name__ == "__main__":
    main()
