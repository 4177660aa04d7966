"""Bad input: one clear message, a non-zero exit, no output file, the input unchanged. Never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import CORPUS

GOOD = CORPUS / "polygraphy" / "identity.onnx"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphsurgeon", *args], cwd=cwd, capture_output=True, text=True)


def assert_refused(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("graphsurgeon: error: ") and "Traceback" not in done.stderr
    assert message in lines[0], lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def chain(n: int) -> onnx.GraphProto:
    return helper.make_graph(
        [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(n)],
        "g",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1])],
    )


def model_bytes(graph: onnx.GraphProto) -> bytes:
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def cyclic() -> bytes:
    graph = chain(3)
    graph.node[0].input[0] = "t3"
    return model_bytes(graph)


def dangling() -> bytes:
    graph = chain(3)
    graph.node[1].input[0] = "nowhere"
    return model_bytes(graph)


def _length_delimited(field: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return varint(field << 3 | 2) + varint(len(payload)) + payload


def too_deep(depth: int = 200) -> bytes:
    """If nodes nested `depth` deep, written on the wire directly (protobuf refuses to parse it)."""
    graph = b""
    for _ in range(depth):
        attribute = _length_delimited(1, b"then_branch") + b"\xa0\x01\x05" + _length_delimited(6, graph)  # type=GRAPH
        node = _length_delimited(4, b"If") + _length_delimited(5, attribute)
        graph = _length_delimited(1, node)  # GraphProto.node
    model = b"\x08\x08" + _length_delimited(7, graph) + _length_delimited(8, b"\x10\x11")  # ir 8, graph, opset 17
    return model


CASES = {
    "empty file": (b"", ["inspect"], "is empty"),
    "random bytes": (bytes(range(256)) * 4, ["inspect"], "not a valid ONNX model"),
    "truncated model": (GOOD.read_bytes()[:-7], ["cleanup"], "not a valid ONNX model"),
    "text file": (b"hello, I am not a model\n", ["check"], "not"),
    "protobuf but not a model": (
        helper.make_tensor("t", TensorProto.FLOAT, [1], [1.0]).SerializeToString(),
        ["toposort"],
        "not a valid ONNX model",
    ),
    "cyclic graph": (cyclic(), ["toposort"], "has a cycle"),
    "dangling input": (dangling(), ["cleanup"], "reads 'nowhere', which nothing produces"),
    "selector matches nothing": (
        GOOD.read_bytes(),
        ["promote-input", "--node", "Conv", "--attr", "x"],
        "matches no node",
    ),
    "unknown operand": (
        GOOD.read_bytes(),
        ["promote-input", "--node", "Identity", "--attr", "scales"],
        "no operand named 'scales'",
    ),
    "nested deeper than protobuf allows": (too_deep(), ["inspect"], "nests subgraphs deeper than protobuf allows"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_model_is_refused_cleanly(name: str, tmp_path: Path):
    data, args, message = CASES[name]
    (tmp_path / "model.onnx").write_bytes(data)
    before = snapshot(tmp_path)
    done = run_cli(args[0], "model.onnx", *args[1:], cwd=tmp_path)
    assert_refused(done, message)
    assert snapshot(tmp_path) == before


def test_missing_path(tmp_path: Path):
    assert_refused(run_cli("cleanup", "nope.onnx", cwd=tmp_path), "no such file")
    assert not list(tmp_path.iterdir())


def test_directory(tmp_path: Path):
    (tmp_path / "dir.onnx").mkdir()
    assert_refused(run_cli("inspect", "dir.onnx", cwd=tmp_path), "is a directory")


def test_output_onto_the_input_needs_in_place(tmp_path: Path):
    (tmp_path / "m.onnx").write_bytes(GOOD.read_bytes())
    before = snapshot(tmp_path)
    assert_refused(run_cli("cleanup", "m.onnx", "-o", "m.onnx", cwd=tmp_path), "--in-place")
    assert snapshot(tmp_path) == before


def test_debug_shows_the_traceback(tmp_path: Path):
    done = run_cli("--debug", "inspect", "missing.onnx", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_check_reports_an_invalid_model_with_nonzero_exit(tmp_path: Path):
    done = run_cli("check", str(CORPUS / "polygraphy" / "bad_graph_with_no_import_domains.onnx"), cwd=tmp_path)
    assert done.returncode == 1
    assert "verdict: INVALID" in done.stdout
