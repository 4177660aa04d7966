"""Hostile input (issue 12): each bug the fuzz run found, reproduced, and refused with one clear line (exit 1,
nothing written, the input untouched) or handled correctly. The fuzzer (tests/test_fuzz.py) keeps the class closed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphsurgeon.cli import main
from tests.conftest import run_ort

vi = helper.make_tensor_value_info


def model(nodes, inputs, outputs, inits=(), *, opset: int | None = 17, ir: int = 8, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), **kw)
    opsets = [helper.make_opsetid("", opset)] if opset is not None else [helper.make_opsetid("com.x", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir)


def matmul_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    return model([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", 1, [1, 64])], [vi("y", 1, [1, 64])], [w])


def resize_model(scales=None) -> onnx.ModelProto:
    scales = scales if scales is not None else numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")
    node = helper.make_node("Resize", ["x", "", "sc"], ["y"], name="resize", mode="nearest")
    return model([node], [vi("x", 1, [1, 1, 2, 2])], [vi("y", 1, [1, 1, 4, 4])], [scales])


def write(folder: Path, proto: onnx.ModelProto | bytes, name: str = "m.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
    return path


def snapshot(folder: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = "link" if path.is_symlink() else path.read_bytes() if path.is_file() else "other"
    return found


def refused(capsys, argv: list[str], message: str) -> None:
    """The CLI refuses with one clear line naming `message`, exit 1."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, err
    assert len(err) == 1 and err[0].startswith("graphsurgeon: error: "), err
    assert message in err[0], err[0]


def refused_cleanly(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    before = snapshot(tmp_path)
    refused(capsys, argv, message)
    assert snapshot(tmp_path) == before


# -- the data file name is checked like an output path --------------------------------------------------------
def test_external_data_never_overwrites_the_input_model(tmp_path: Path, capsys):
    src = write(tmp_path, matmul_model())
    out = str(tmp_path / "out.onnx")
    refused_cleanly(capsys, tmp_path, ["cleanup", str(src), "-o", out, "--external-data", "m.onnx"], "already exists")


def test_external_data_never_leaves_the_output_folder(tmp_path: Path, capsys):
    src = write(tmp_path / "a", matmul_model())
    out = str(tmp_path / "a" / "out.onnx")
    for name in ("../escape.data", str(tmp_path / "abs.data")):
        refused_cleanly(
            capsys, tmp_path, ["cleanup", str(src), "-o", out, "--external-data", name], "leaves the output"
        )


def test_external_data_never_overwrites_a_file_it_did_not_write(tmp_path: Path, capsys):
    src = write(tmp_path, matmul_model())
    (tmp_path / "keep.bin").write_bytes(b"keep")
    argv = ["cleanup", str(src), "-o", str(tmp_path / "out.onnx"), "--external-data", "keep.bin"]
    refused_cleanly(capsys, tmp_path, argv, "never overwrites a file it did not write")
    argv = ["cleanup", str(src), "-o", str(tmp_path / "out.onnx"), "--external-data", "out.onnx"]
    refused_cleanly(capsys, tmp_path, argv, "is the output model file itself")


def test_external_data_in_a_subfolder_of_the_output_works(tmp_path: Path):
    src = write(tmp_path, matmul_model())
    assert main(["cleanup", str(src), "-o", str(tmp_path / "o.onnx"), "--external-data", "sub/w.data", "-q"]) == 0
    assert (tmp_path / "sub" / "w.data").stat().st_size == 64 * 64 * 4
    x = np.ones((1, 64), np.float32)
    assert run_ort(str(tmp_path / "o.onnx"), {"x": x})[0].tolist() == run_ort(str(src), {"x": x})[0].tolist()


# -- special files are refused without reading ----------------------------------------------------------------
def _cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "graphsurgeon", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_fifo_and_devices_as_the_model_are_refused_unread(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.onnx")
    for path in (tmp_path / "pipe.onnx", Path("/dev/zero")):
        done = _cli("inspect", str(path), cwd=tmp_path, timeout=30)  # a hang would raise TimeoutExpired
        assert done.returncode == 1 and "is not a regular file" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def external_model(folder: Path, location: str | bytes, data: bytes | None = b"\0" * 16) -> Path:
    """x + w, w (float[4]) in external data at `location` (bytes: written on the wire, e.g. not UTF-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    placeholder = "L" * (len(location) if isinstance(location, bytes) else 8)
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", placeholder if isinstance(location, bytes) else location), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    proto = model([helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", 1, [4])], [vi("y", 1, [4])], [tensor])
    raw = proto.SerializeToString()
    if isinstance(location, bytes):
        raw = raw.replace(placeholder.encode(), location)
    if data is not None and isinstance(location, str) and "\0" not in location and location.isidentifier():
        (folder / location).write_bytes(data)
    return write(folder, raw)


def test_fifo_as_external_data_is_refused_unread(tmp_path: Path, capsys):
    path = external_model(tmp_path, "pipe", data=None)
    os.mkfifo(tmp_path / "pipe")
    refused(capsys, ["inspect", str(path)], "is not a regular file")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("loop", "cannot be resolved (a symlink loop?)"),
        ("w\0.data", "holds a NUL byte"),
        (b"w\xff\xfe.dat", "is not UTF-8"),
    ],
)
def test_hostile_locations_are_clear_errors(tmp_path: Path, capsys, location, message):
    path = external_model(tmp_path, location, data=None)
    if location == "loop":
        os.symlink("loop2", tmp_path / "loop")
        os.symlink("loop", tmp_path / "loop2")
    refused_cleanly(capsys, tmp_path, ["inspect", str(path)], message)


def test_duplicate_location_keys_are_refused(tmp_path: Path, capsys):
    path = external_model(tmp_path, "w.data")
    proto = onnx.load(str(path), load_external_data=False)
    entry = proto.graph.initializer[0].external_data.add()
    entry.key, entry.value = "location", "../escape.data"
    write(tmp_path, proto)
    refused_cleanly(capsys, tmp_path, ["cleanup", str(path)], "names 'location' more than once")


# -- non-UTF-8 text, unknown domains, no default opset --------------------------------------------------------
def test_non_utf8_names_are_refused_on_load(tmp_path: Path, capsys):
    proto = model(
        [helper.make_node("Relu", ["x"], ["NNNNN"], name="nnnnn")], [vi("x", 1, [1])], [vi("NNNNN", 1, ["P"])]
    )
    raw = proto.SerializeToString().replace(b"NNNNN", b"\xff\xfeQQ\x80").replace(b"nnnnn", b"\xc3\x28aaa")
    path = write(tmp_path, raw)
    for verb in ("inspect", "cleanup", "simplify"):
        refused_cleanly(capsys, tmp_path, [verb, str(path)], "not UTF-8")


def test_inspect_unknown_domain(tmp_path: Path, capsys):
    proto = model([helper.make_node("Foo", ["x"], ["y"], domain="weird.dom")], [vi("x", 1, [1])], [vi("y", 99, [1])])
    proto.opset_import.append(helper.make_opsetid("weird.dom", 1))
    assert main(["inspect", str(write(tmp_path, proto))]) == 0
    assert "weird.dom::Foo" in capsys.readouterr().out


def test_promote_input_without_a_default_opset_import(tmp_path: Path, capsys):
    path = write(tmp_path, _no_default_opset())
    refused_cleanly(capsys, tmp_path, ["promote-input", str(path), "--node", "resize", "--attr", "scales"], "opset")


def _no_default_opset() -> bytes:
    proto = resize_model()
    del proto.opset_import[:]
    proto.opset_import.append(helper.make_opsetid("com.x", 1))
    return proto.SerializeToString()


# -- a read-only output folder --------------------------------------------------------------------------------
def test_read_only_folder_is_a_cannot_write_error(tmp_path: Path):
    """Real permissions (root ignores them, so the command runs without CAP_DAC_OVERRIDE where setpriv exists)."""
    src = tmp_path / "in"
    src.mkdir()
    onnx.save(matmul_model(), str(src / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "out").mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be taken away")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    os.chmod(src, 0o555)
    os.chmod(tmp_path / "out", 0o555)
    try:
        before = snapshot(tmp_path)
        for verb, out in (("cleanup", "out/o.onnx"), ("fold-constants", "out/o.onnx"), ("cleanup", None)):
            args = [verb, "in/m.onnx", *(["-o", out] if out else [])]
            done = subprocess.run(
                [*prefix, sys.executable, "-m", "graphsurgeon", *args], cwd=tmp_path, capture_output=True, text=True
            )
            assert done.returncode == 1, done.stderr
            assert done.stderr.startswith("graphsurgeon: error: cannot write"), done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
        assert snapshot(tmp_path) == before
    finally:
        os.chmod(src, 0o755)
        os.chmod(tmp_path / "out", 0o755)


def test_special_file_as_save_target_is_refused(tmp_path: Path, capsys):
    src = write(tmp_path, matmul_model())
    os.mkfifo(tmp_path / "pipe.onnx")
    refused_cleanly(capsys, tmp_path, ["cleanup", str(src), "-o", str(tmp_path / "pipe.onnx")], "not a regular file")
    (tmp_path / "file").write_bytes(b"keep")
    refused_cleanly(capsys, tmp_path, ["cleanup", str(src), "-o", str(tmp_path / "file" / "o.onnx")], "cannot write")
