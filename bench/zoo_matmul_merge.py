"""Is simplify's MatMul merge (q/k/v projections reading one tensor -> one MatMul + Split) at least as fast
under onnxruntime? The decision to run it by default rests on this measurement.

For BERT and ViT (transformers configs of zoo_torch.py, random weights) exported by the dynamo exporter at
batch 1 and 8, and by the TorchScript exporter (dynamic batch, fed 1 and 8): simplify without and with the
merge, then both results run under onnxruntime (default optimizations, 1 and 2 intra-op threads), run by
run alternating which goes first, many runs each. Reported: median latency of each, the spread (p10-p90),
and the median of the per-pair ratios merged/unmerged with its bootstrap 95% interval.

    python bench/zoo_matmul_merge.py [--workdir /tmp/gs_merge] [--runs 2000] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
PY = sys.executable

_EXPORT = """
import sys, torch
sys.path.insert(0, {here!r})
from zoo_torch import MODULES
kind, exporter, batch, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
make, example, dynamic = MODULES[kind]
torch.manual_seed(0)
model = make().eval()
x = example()
x = x[:1].repeat(batch, *([1] * (x.dim() - 1)))
name = "ids" if kind in ("bert", "gpt2") else "x"
torch.backends.mha.set_fastpath_enabled(False)
with torch.no_grad():
    if exporter == "ts":
        torch.onnx.export(model, (x,), out, dynamo=False, opset_version=17, input_names=[name],
                          output_names=["y"], dynamic_axes={{name: dynamic}})
    else:
        torch.onnx.export(model, (x,), dynamo=True, input_names=[name], output_names=["y"]).save(out)
"""


def export(kind: str, exporter: str, batch: int, out: Path) -> Path:
    if not out.exists():
        code = _EXPORT.format(here=str(HERE))
        subprocess.run([PY, "-c", code, kind, exporter, str(batch), str(out)], check=True, cwd=out.parent)
    return out


def simplified(path: Path, merge: bool) -> bytes:
    """simplify's result with the merge pattern on or off (whatever its default)."""
    import graphsurgeon as gs
    from graphsurgeon.verbs.simplify import patterns

    saved = list(patterns.PATTERNS)
    patterns.PATTERNS[:] = [
        dataclasses.replace(p, default=merge) if p.name == "matmul_merge" else p for p in patterns.PATTERNS
    ]
    try:
        return gs.load(path).simplify().proto.SerializeToString()
    finally:
        patterns.PATTERNS[:] = saved


def feed_for(model: onnx.ModelProto, batch: int, rng: np.random.Generator) -> dict:
    feed = {}
    for vi in model.graph.input:
        shape = vi.type.tensor_type.shape.dim
        dims = [d.dim_value if d.dim_value > 0 else (batch if i == 0 else 16) for i, d in enumerate(shape)]
        if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            feed[vi.name] = rng.integers(0, 1000, dims, dtype=np.int64)
        else:
            feed[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feed


def session(data: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def compare(unmerged: bytes, merged: bytes, feed: dict, threads: int, runs: int) -> dict:
    a, b = session(unmerged, threads), session(merged, threads)
    out_a, out_b = a.run(None, feed), b.run(None, feed)
    equal = all(np.allclose(x, y, rtol=1e-4, atol=1e-5) for x, y in zip(out_a, out_b, strict=True))
    for _ in range(50):  # warm-up
        a.run(None, feed)
        b.run(None, feed)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(runs):
        order = (("off", a), ("on", b)) if i % 2 == 0 else (("on", b), ("off", a))
        for key, s in order:
            start = time.perf_counter()
            s.run(None, feed)
            times[key].append((time.perf_counter() - start) * 1e3)
    off, on = np.array(times["off"]), np.array(times["on"])
    ratios = on / off
    rng = np.random.default_rng(0)
    boot = [float(np.median(rng.choice(ratios, ratios.size))) for _ in range(500)]
    return {
        "equal": equal,
        "off_ms": float(np.median(off)),
        "off_p10_p90": (float(np.percentile(off, 10)), float(np.percentile(off, 90))),
        "on_ms": float(np.median(on)),
        "on_p10_p90": (float(np.percentile(on, 10)), float(np.percentile(on, 90))),
        "ratio": float(np.median(ratios)),
        "ratio_ci": (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gs_merge"))
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--models", default="bert,vit")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    print(
        "| model | batch | threads | nodes off -> on | unmerged ms (p10-p90) | merged ms (p10-p90) | "
        "merged/unmerged (95% CI) | equal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.models.split(","):
        for exporter, batches in (("dynamo", ((1, 1), (8, 8))), ("ts", ((2, 1), (2, 8)))):
            for export_batch, batch in batches:
                path = export(kind, exporter, export_batch, args.workdir / f"{kind}_{exporter}_b{export_batch}.onnx")
                unmerged, merged = simplified(path, False), simplified(path, True)
                n_off = len(onnx.load_from_string(unmerged).graph.node)
                n_on = len(onnx.load_from_string(merged).graph.node)
                feed = feed_for(onnx.load_from_string(unmerged), batch, rng)
                for threads in (int(t) for t in args.threads.split(",")):
                    r = compare(unmerged, merged, feed, threads, args.runs)
                    print(
                        f"| {kind} {exporter} | {batch} | {threads} | {n_off} -> {n_on} | {r['off_ms']:.3f} "
                        f"({r['off_p10_p90'][0]:.3f}-{r['off_p10_p90'][1]:.3f}) | {r['on_ms']:.3f} "
                        f"({r['on_p10_p90'][0]:.3f}-{r['on_p10_p90'][1]:.3f}) | {r['ratio']:.3f} "
                        f"({r['ratio_ci'][0]:.3f}-{r['ratio_ci'][1]:.3f}) | {'yes' if r['equal'] else 'NO'} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
