"""externalize --shard-size on a big model: disk-bound (against a plain copy of its data) and small in memory.

Generates a model of SIZE (default 2.68 GB, the size of the promote-input bench model) of float32 weights in
one external data file (24 MatMul layers),
then measures, each as its own process with its page cache dropped first (when root):
  cp          a plain copy of the data file (what the disk can do)
  externalize graphsurgeon externalize MODEL --shard-size 1GiB -o OUT/model.onnx
  internalize graphsurgeon internalize on a < 2 GB model is not measured here (it must hold the model in memory).
The two commands alternate, three rounds (a shared disk drifts).
Run: python bench/externalize_bench.py [--size 2.68GB] [--dir /tmp/gs-externalize]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import (  # noqa: E402
    drop_caches,
    graphsurgeon_cmd,
    header,
    markdown_table,
    run_measured,
    summarize,
    write_report,
)

from graphsurgeon.core.units import format_bytes, parse_size  # noqa: E402

LAYERS = 24


def generate(folder: Path, size: int) -> Path:
    """A chain of MatMuls whose weights fill one data file of about `size` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    side = int((size / LAYERS / 4) ** 0.5)
    chunk = np.random.default_rng(0).standard_normal(side * side, dtype=np.float32).tobytes()
    inits, nodes, last, offset = [], [], "x", 0
    with open(folder / "model.data", "wb") as f:
        for i in range(LAYERS):
            f.write(chunk)
            t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[side, side])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "model.data"), ("offset", str(offset)), ("length", str(len(chunk)))):
                t.external_data.add(key=key, value=value)
            offset += len(chunk)
            inits.append(t)
            nodes.append(helper.make_node("MatMul", [last, f"w{i}"], [f"h{i}"]))
            last = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, side])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def main() -> None:
    size = parse_size(sys.argv[sys.argv.index("--size") + 1]) if "--size" in sys.argv else parse_size("2.68GB")
    root = Path(sys.argv[sys.argv.index("--dir") + 1]) if "--dir" in sys.argv else Path("/tmp/gs-externalize")
    shutil.rmtree(root, ignore_errors=True)
    model = generate(root / "src", size)
    data = root / "src" / "model.data"
    commands = (
        ("cp (plain copy of the data file)", ["cp", str(data), str(root / "copy.data")], root / "copy.data"),
        (
            "graphsurgeon externalize --shard-size 1GiB",
            [
                *graphsurgeon_cmd(),
                "externalize",
                str(model),
                "--shard-size",
                "1GiB",
                "-o",
                str(root / "out" / "model.onnx"),
            ],
            root / "out",
        ),
    )
    runs: dict[str, list] = {label: [] for label, _, _ in commands}
    for _ in range(3):
        for label, cmd, out in commands:
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
            drop_caches()
            runs[label].append(run_measured(label, cmd))
            if not runs[label][-1].ok:
                raise SystemExit(f"{label} failed: {runs[label][-1].error_line}")
    rows = []
    for label, measured in runs.items():
        wall, rss, sync = summarize(measured)
        rows.append([label, wall, rss, sync])
    shards = sorted(p.name + f" ({format_bytes(p.stat().st_size)})" for p in (root / "out").glob("*.data"))
    text = (
        f"# externalize on a {format_bytes(data.stat().st_size)} model\n\n{header()}\n\n"
        + markdown_table(["command", "wall", "peak RSS", "sync after"], rows)
        + f"\n\nshards written: {', '.join(shards)}\n"
    )
    print(text)
    write_report("externalize_bench", text)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
