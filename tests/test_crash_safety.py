"""Crash safety (issue 12): a save killed with SIGKILL at any point never leaves a partial file under a target
name and never changes the input. Every file is written to a temporary name and renamed into place, so a kill
leaves the old state or the new one, plus at worst a stray temporary file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs

SPARSE_BYTES = 300 << 20  # a hole-only tensor: 300 MB to copy, no disk used

SAVER = """
import sys, graphsurgeon as gs
src, dst, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
model = gs.load(src)
print("loaded", flush=True)
model.save(dst, external_data=extra[0] if extra else None)
print("saved", flush=True)
"""


def big_model(folder: Path) -> Path:
    """x @ W (W: 2 MiB in external data) + a 300 MB hole-only external tensor, and 8 MiB of inline weights."""
    folder.mkdir(parents=True)
    w = np.random.default_rng(0).standard_normal((1024, 512)).astype(np.float32)
    with open(folder / "weights.bin", "wb") as f:
        f.write(w.tobytes())
        f.truncate(w.nbytes + SPARSE_BYTES)

    def external(name: str, dims: list[int], offset: int, length: int) -> TensorProto:
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        return tensor

    inline = numpy_helper.from_array(np.ones((2048, 1024), np.float32), "inline")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Identity", ["inline"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [2048, 1024]),
        ],
        [
            external("w", [1024, 512], 0, w.nbytes),
            external("huge", [SPARSE_BYTES // 4], w.nbytes, SPARSE_BYTES),
            inline,
        ],
    )
    path = folder / "model.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    )
    return path


def fingerprint(folder: Path) -> dict[str, tuple]:
    """Names, sizes, inodes and mtimes (the input is never opened for writing: these change if it is touched)."""
    return {p.name: (p.stat().st_size, p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def check_after_kill(src_dir: Path, before: dict, out: Path, data_name: str | None) -> None:
    now = fingerprint(src_dir)
    assert {name: now.get(name) for name in before} == before, "the input changed"
    finals = [p for p in out.parent.iterdir() if not p.name.endswith(".tmp") and p.name not in before]
    assert {p.name for p in finals} <= {out.name, "weights.bin", "new.data"}, finals
    if out.exists():  # the graph file is renamed last: the whole model is there and loads
        model = gs.load(out)
        assert model.tensor_value("w").shape == (1024, 512)
    for path in finals:  # a data file under its final name is complete
        if path.name == "weights.bin":
            assert path.stat().st_size == (src_dir / "weights.bin").stat().st_size
        if data_name and path.name == data_name:
            assert path.stat().st_size >= 2048 * 1024 * 4


@pytest.mark.parametrize("scenario", ["copy data files", "new data file", "graph file only"])
def test_sigkill_during_save_never_leaves_a_partial_output(tmp_path: Path, scenario: str):
    src = big_model(tmp_path / "in")
    before = fingerprint(src.parent)
    if scenario == "graph file only":  # beside the input: no data copied, only the 8 MiB graph file written
        out, extra = src.parent / "result.onnx", []
    else:
        out = tmp_path / "out" / "result.onnx"
        extra = ["new.data"] if scenario == "new data file" else []
    argv = [sys.executable, "-c", SAVER, str(src), str(out), *extra]

    started = time.perf_counter()  # one uninterrupted save: how long the window to kill in is
    subprocess.run(argv, check=True, capture_output=True)
    full = time.perf_counter() - started
    for path in list(out.parent.iterdir()):  # start from scratch (the input's own files stay)
        if out.parent != src.parent or path.name not in before:
            path.unlink()

    rng = random.Random(12)
    for _ in range(6):
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "loaded"
        time.sleep(rng.uniform(0, full * 0.6))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        check_after_kill(src.parent, before, out, extra[0] if extra else None)
        for path in list(out.parent.iterdir()):  # start the next attempt from scratch
            if out.parent != src.parent or path.name not in before:
                path.unlink()
