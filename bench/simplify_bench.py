"""Side-by-side benchmark: graphsurgeon simplify vs onnxsim, onnxslim, polygraphy (and, on the >2 GB model,
onnxscript's optimizer and a bare onnx-ir load+save).

Each tool runs as its own subprocess (the whole command, start-up included); wall time is measured around it,
peak RSS by GNU time (``%M``). Node counts are the main graph's. Outputs are compared with the original under
onnxruntime on random inputs (rtol 1e-3, atol 1e-4); for the 2.3 GB model each tool is also run on a 256-wide
variant of the same graph, and that variant's outputs are compared.

    python bench/simplify_bench.py [--workdir /tmp/gs_bench] [--only synthetic,transformer_ts,...]
        [--tools graphsurgeon,onnxsim,...] [--repeat N]

    --only synthetic_opset11,synthetic_opset13,synthetic_opset17,synthetic_latest: the shape-chain workload
    regenerated at each opset (Unsqueeze takes its axes as an attribute before 13, as an input from 13 on).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
RTOL, ATOL = 1e-3, 1e-4

_OSCRIPT = (
    "import sys, onnx_ir as ir, onnxscript.optimizer as o; m = ir.load(sys.argv[1]); o.optimize(m); "
    "ir.save(m, sys.argv[2], external_data=__import__('os').path.basename(sys.argv[2]) + '.data')"
)
_IR_ROUNDTRIP = (
    "import sys, os, onnx_ir as ir; m = ir.load(sys.argv[1]); "
    "ir.save(m, sys.argv[2], external_data=os.path.basename(sys.argv[2]) + '.data')"
)

TOOLS = {
    "graphsurgeon simplify": lambda i, o: [PY, "-m", "graphsurgeon", "simplify", i, "-o", o],
    "onnxsim": lambda i, o: ["onnxsim", i, o],
    "onnxslim": lambda i, o: ["onnxslim", i, o],
    "polygraphy sanitize --fold-constants": lambda i, o: [
        "polygraphy",
        "surgeon",
        "sanitize",
        i,
        "--fold-constants",
        "-o",
        o,
    ],
    "onnxscript optimizer": lambda i, o: [PY, "-c", _OSCRIPT, i, o],
    "onnx-ir load+save": lambda i, o: [PY, "-c", _IR_ROUNDTRIP, i, o],
}
PER_WORKLOAD = {
    "synthetic": ["graphsurgeon simplify", "onnxsim", "onnxslim", "polygraphy sanitize --fold-constants"],
    # the same workload regenerated at other opsets (fold_workloads.py synthetic --opset N)
    **{
        f"synthetic_{suffix}": ["graphsurgeon simplify", "onnxsim", "onnxslim", "polygraphy sanitize --fold-constants"]
        for suffix in ("opset11", "opset13", "opset17", "latest")
    },
    "transformer_ts": ["graphsurgeon simplify", "onnxsim", "onnxslim", "polygraphy sanitize --fold-constants"],
    "transformer_dynamo": ["graphsurgeon simplify", "onnxsim", "onnxslim", "polygraphy sanitize --fold-constants"],
    "big": [
        "graphsurgeon simplify",
        "onnxsim",
        "onnxslim",
        "polygraphy sanitize --fold-constants",
        "onnxscript optimizer",
        "onnx-ir load+save",
    ],
}


def run_measured(cmd: list[str], timeout: float = 300) -> tuple[int, float, int, str]:
    """(exit code, wall seconds, peak RSS bytes, tail of output) of one whole command."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.sync()  # let the previous command's writes reach the disk first: each command pays only its own
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty tool must never block on a full pipe
    # Linux carries a process's peak RSS across exec, so a child of this (large) process would report at least
    # our own peak: GNU time, a tiny parent, measures the tool instead.
    timed = ["/usr/bin/time", "-f", "GSBENCH_MAXRSS_KB=%M", *cmd] if os.path.exists("/usr/bin/time") else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(timed, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - start
    log.seek(0)
    out = log.read().decode(errors="replace")
    log.close()
    peak = usage.ru_maxrss * 1024
    marker = out.rfind("GSBENCH_MAXRSS_KB=")
    if marker >= 0:
        peak = int(out[marker:].split("=", 1)[1].split()[0]) * 1024
        out = out[:marker].replace(f"Command exited with non-zero status {os.waitstatus_to_exitcode(status)}", "")
    return os.waitstatus_to_exitcode(status), wall, peak, out[-600:]


def node_count(path: Path) -> int:
    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _inputs(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path), load_external_data=False)
    rng = np.random.default_rng(0)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def compare(original: Path, candidate: Path) -> str:
    try:
        feeds = _inputs(original)
        want, got = outputs(original, feeds), outputs(candidate, feeds)
        if len(want) != len(got):
            return "no: output count"
        for w, g in zip(want, got, strict=True):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
        return "yes"
    except AssertionError as e:
        return "NO: " + str(e).strip().splitlines()[-1][:60]
    except Exception as e:  # onnxruntime cannot run it
        return f"NO: {type(e).__name__}: {str(e)[:60]}"


def generate(name: str, workdir: Path) -> Path:
    path = workdir / name / "model.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, str(HERE / "fold_workloads.py"), name, str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def bench(name: str, workdir: Path, tools: list[str] | None = None, repeat: int = 1) -> list[str]:
    model = generate(name, workdir)
    size = sum(f.stat().st_size for f in model.parent.iterdir() if f.is_file())
    small = generate("big_small", workdir) if name == "big" else None
    rows = [
        f"\n### {name}: {node_count(model)} nodes, {size / 1e6:,.0f} MB on disk\n",
        "| tool | nodes | wall (s) | peak RSS (MB) | outputs match |",
        "|---|---:|---:|---:|---|",
    ]
    for tool in PER_WORKLOAD[name]:
        if tools and not any(w.lower() in tool.lower() for w in tools):
            continue
        out_dir = workdir / f"{name}.out" / tool.split()[0]
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        out = out_dir / "model.onnx"
        walls, rsss = [], []
        for _ in range(repeat):  # median wall, max peak RSS over the rounds
            # each round starts from an empty output folder with nothing left to flush: the previous round's
            # 2 GB output, replaced or written back during this one, is not this command's cost
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir(parents=True)
            os.sync()
            code, wall, rss, tail = run_measured(TOOLS[tool](str(model), str(out)))
            walls.append(wall)
            rsss.append(rss)
            if code != 0 or wall >= 300:
                break
        wall, rss = statistics.median(walls), max(rsss)
        if len(walls) > 1:
            print(f"{name} / {tool}: walls {', '.join(f'{w:.2f}' for w in walls)} s", flush=True)
        if wall >= 300:
            rows.append(f"| {tool} | timed out | >300 | {rss / 1e6:,.0f} | killed after 300 s |")
            print(rows[-1], flush=True)
            continue
        if code != 0 or not out.exists():
            last = tail.strip().splitlines()[-1][:80] if tail.strip() else ""
            rows.append(f"| {tool} | failed (exit {code}) | {wall:.1f} | {rss / 1e6:,.0f} | {last} |")
            continue
        if small is not None:
            small_out = out_dir / "small" / "model.onnx"
            small_out.parent.mkdir()
            run_measured(TOOLS[tool](str(small), str(small_out)))
            match = compare(small, small_out) + " (256-wide variant)" if small_out.exists() else "not run"
        else:
            match = compare(model, out)
        rows.append(f"| {tool} | {node_count(out)} | {wall:.1f} | {rss / 1e6:,.0f} | {match} |")
        print(rows[-1], flush=True)
        if name == "big":
            shutil.rmtree(out_dir, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="/tmp/gs_bench")
    parser.add_argument("--only", default="synthetic,transformer_ts,transformer_dynamo,big")
    parser.add_argument("--tools", help="comma-separated words: run only the tools whose name contains one")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (wall: median, RSS: max)")
    args = parser.parse_args()
    tools = args.tools.split(",") if args.tools else None
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    report = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores (whole commands, one at a time; "
        f"{args.repeat} run(s) per tool: wall is the median, RSS the max)."
    ]
    for name in args.only.split(","):
        report += bench(name, workdir, tools, args.repeat)
    print("\n".join(report))


if __name__ == "__main__":
    main()
