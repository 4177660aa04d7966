"""External data: never read on load, read per tensor on demand, copied kernel-side, hostile paths refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from tests.conftest import run_ort


def external(name: str, shape: list[int], location: str, offset: int, length: int | None = None) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape)
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def write_model(folder: Path, n: int = 64, location: str = "weights.bin", sparse_bytes: int = 0) -> Path:
    """x[1,n] -> MatMul(W: n x n, external) -> Reshape[1,1,1,n] -> Resize(scales) -> y.

    (onnxruntime cannot take Resize's scales from external data: its shape inference needs them inline.)"""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    scales = np.array([1, 1, 1, 2], dtype=np.float32)
    with open(folder / location, "wb") as f:
        f.write(w.tobytes())
        f.write(scales.tobytes())
        if sparse_bytes:
            f.truncate(f.tell() + sparse_bytes)  # a huge, hole-only tail tensor: costs no disk
    initializers = [
        external("W", [n, n], location, 0, w.nbytes),
        onnx.numpy_helper.from_array(scales, "scales_const"),
        helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 1, n]),
    ]
    if sparse_bytes:
        initializers.append(external("huge", [sparse_bytes // 4], location, w.nbytes + 16, sparse_bytes))
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Reshape", ["h", "shape"], ["r"]),
        helper.make_node("Resize", ["r", "", "scales_const"], ["y"], name="resize", mode="nearest"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 2 * n])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def x_input(n: int = 64) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((1, n)).astype(np.float32)


def test_save_to_another_folder_copies_data_and_runs(tmp_path: Path):
    src = write_model(tmp_path / "a")
    want = run_ort(str(src), {"x": x_input()})
    out = gs.load(src).promote_input(node="Resize", attr="scales").save(tmp_path / "b" / "patched.onnx")
    assert (tmp_path / "b" / "weights.bin").read_bytes() == (tmp_path / "a" / "weights.bin").read_bytes()
    assert os.stat(tmp_path / "b" / "weights.bin").st_nlink == 1  # a copy, never a hard link
    got = run_ort(str(out), {"x": x_input(), "scales": np.array([1, 1, 1, 2], dtype=np.float32)})
    np.testing.assert_array_equal(got[0], want[0])
    assert run_ort(str(out), {"x": x_input(), "scales": np.array([1, 1, 1, 3], dtype=np.float32)})[0].shape[-1] == 192


def test_in_place_rewrites_only_the_graph_file(tmp_path: Path):
    src = write_model(tmp_path)
    data = tmp_path / "weights.bin"
    before = (data.stat().st_ino, data.stat().st_mtime_ns, data.read_bytes())
    gs.load(src).promote_input(node="Resize", attr="scales", keep_default=True).save(in_place=True)
    assert (data.stat().st_ino, data.stat().st_mtime_ns, data.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "weights.bin"]
    assert onnx.load(str(src), load_external_data=False).graph.input[-1].name == "scales"
    assert run_ort(str(src), {"x": x_input()})[0].shape == (1, 1, 1, 128)  # the kept default


def test_save_beside_the_input_shares_its_data(tmp_path: Path):
    src = write_model(tmp_path)
    gs.load(src).cleanup().save(tmp_path / "model.cleanup.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cleanup.onnx", "model.onnx", "weights.bin"]


def test_tensor_value_reads_one_tensor(tmp_path: Path):
    model = gs.load(write_model(tmp_path))
    np.testing.assert_array_equal(model.tensor_value("scales_const"), [1, 1, 1, 2])
    w = model.tensor_value("W")
    assert w.shape == (64, 64)
    np.testing.assert_array_equal(w, np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))


PEAK_RSS = """
import resource, sys
from graphsurgeon.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(code)
"""


def peak_mib(args: list[str], cwd: Path) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_weights_are_never_pulled_through_python(tmp_path: Path):
    """A 1 GiB external tensor: promote-input beside it and into another folder stays far below its size."""
    src = write_model(tmp_path / "a", sparse_bytes=1 << 30)
    baseline = peak_mib(["inspect", "model.onnx"], tmp_path / "a")
    beside = peak_mib(["promote-input", "model.onnx", "--node", "Resize", "--attr", "scales"], tmp_path / "a")
    elsewhere = peak_mib(
        [
            "promote-input",
            "model.onnx",
            "--node",
            "Resize",
            "--attr",
            "scales",
            "-o",
            str(tmp_path / "b" / "model.onnx"),
        ],
        tmp_path / "a",
    )
    assert beside < baseline + 64 and elsewhere < baseline + 64, (baseline, beside, elsewhere)
    assert (tmp_path / "b" / "weights.bin").stat().st_size == (tmp_path / "a" / "weights.bin").stat().st_size
    assert src.exists()


@pytest.mark.parametrize(
    ("location", "offset", "length", "message"),
    [
        ("../outside.bin", 0, 16, "escapes the model's folder"),
        ("/etc/passwd", 0, 16, "is absolute"),
        ("link.bin", 0, 16, "outside the model's folder"),
        ("missing.bin", 0, 16, "does not exist"),
        ("weights.bin", 1 << 20, 16, "past the end"),
        ("weights.bin", 0, 8, "declares shape [4] (16 bytes) but its external data holds 8 bytes"),
    ],
)
def test_hostile_or_broken_locations_are_refused(tmp_path: Path, location, offset, length, message):
    folder = tmp_path / "model"
    write_model(folder)
    (tmp_path / "outside.bin").write_bytes(b"\0" * 64)
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    model.graph.initializer.append(external("extra", [4], location, offset, length))
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(gs.ExternalDataError, match=re.escape(message)):
        gs.load(folder / "model.onnx")


def test_absurd_declared_size_is_refused_on_read():
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[10**6, 10**6], raw_data=b"\0" * 4)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [tensor],
    )
    model = gs.load(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(gs.RewriteError, match=r"declares shape \[1000000, 1000000\] \(4000000000000 bytes\)"):
        model.tensor_value("w")


def test_failed_save_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    src = write_model(tmp_path / "a")
    target = tmp_path / "b" / "out.onnx"
    model = gs.load(src)

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", explode)
    with pytest.raises(gs.SaveError, match="No space left on device"):
        model.save(target)
    assert not target.exists()
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())  # no temp, no half-copied data


def test_models_over_the_protobuf_limit_get_their_inline_weights_moved_out(tmp_path: Path, monkeypatch):
    """Saving a model too big for one protobuf moves its inline weights to external data by itself.

    The 2 GB limit is lowered to 80 MiB here, so the mechanism is shown without allocating gigabytes."""
    from graphsurgeon.core import io as _io

    monkeypatch.setattr(_io, "PROTOBUF_LIMIT", 80 << 20)
    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    big = onnx.numpy_helper.from_array(np.zeros((17 << 20) // 4, np.float32), "big")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["big"], ["y"]), helper.make_node("Identity", ["w"], ["z"])],
        "g",
        [],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
        ],
        [big, onnx.numpy_helper.from_array(w, "w")],
    )
    model = gs.load(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]))
    out = model.save(tmp_path / "big.onnx")
    assert out.stat().st_size < 4096
    assert (tmp_path / "big.onnx.data").stat().st_size >= (17 << 20) + w.nbytes
    reloaded = gs.load(out)
    np.testing.assert_array_equal(reloaded.tensor_value("w"), w)
    assert run_ort(str(out), {})[1].tolist() == w.tolist()
