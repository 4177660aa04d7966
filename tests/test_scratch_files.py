"""Scratch and temporary files (issue 12): a rewrite's new data file (fold-constants, simplify) waits beside the
save target, never beside the input, and is moved in on save; every temporary name is recognizable
(core/tempfiles) and what a killed process left behind is removed by the next save into that folder."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.core.numeric import Runnable, compare_models
from graphsurgeon.core.tempfiles import PREFIX, remove_stale, temp_name

REPO = Path(__file__).resolve().parents[1]


def transpose_model(folder: Path, width: int = 64) -> Path:
    """y = x @ W^T with W in external data: folding the Transpose writes a new data file."""
    folder.mkdir(parents=True)
    w = np.random.default_rng(0).standard_normal((width, width)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]), helper.make_node("MatMul", ["x", "wt"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        [numpy_helper.from_array(w, "w")],
    )
    path = folder / "m.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    return path


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


# -- where the scratch goes ----------------------------------------------------------------------------------
def test_the_scratch_waits_beside_the_output_and_is_moved_in(tmp_path: Path):
    src = transpose_model(tmp_path / "in")
    (tmp_path / "out").mkdir()
    before = listing(src.parent)
    model = gs.load(src)
    model.scratch_dir = tmp_path / "out"  # what the CLI sets: the output's folder
    model.fold_constants()
    assert listing(src.parent) == before  # nothing written beside the input, not even for a moment
    assert [n for n in os.listdir(tmp_path / "out") if n.startswith(PREFIX)]
    assert compare_models(Runnable(src, src.parent), Runnable(model.proto.SerializeToString(), src.parent)).ok
    model.save(tmp_path / "out" / "o.onnx")
    assert sorted(os.listdir(tmp_path / "out")) == ["m.folded.data", "o.onnx"]
    assert listing(src.parent) == before
    assert compare_models(Runnable(src, src.parent), Runnable(tmp_path / "out" / "o.onnx", tmp_path / "out")).ok


@pytest.mark.parametrize("verb", ["fold-constants", "simplify"])
def test_a_read_only_input_folder_is_no_obstacle(tmp_path: Path, verb: str):
    """Real permissions (root ignores them, so the command runs without CAP_DAC_OVERRIDE where setpriv exists)."""
    src = transpose_model(tmp_path / "in")
    (tmp_path / "out").mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be taken away")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    before = listing(src.parent)
    os.chmod(src.parent, 0o555)
    try:
        args = [verb, "in/m.onnx", "-o", "out/o.onnx", "--verify", "-q"]
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "graphsurgeon", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env(),
        )
    finally:
        os.chmod(src.parent, 0o755)
    assert done.returncode == 0, done.stderr
    assert listing(src.parent) == before
    assert sorted(os.listdir(tmp_path / "out")) == ["m.folded.data", "o.onnx"]


def test_a_save_never_overwrites_another_models_folded_data(tmp_path: Path):
    src = transpose_model(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["fold-constants", str(src), "-o", str(out / "a.onnx"), "-q"]) == 0
    for name in ("b", "c"):  # the CLI (scratch beside the output) and the library (scratch in the temp folder)
        if name == "b":
            assert main(["fold-constants", str(src), "-o", str(out / "b.onnx"), "-q"]) == 0
        else:
            gs.load(src).fold_constants().save(out / "c.onnx")
    locations = {n: gs.load(out / f"{n}.onnx").proto.graph.initializer[0].external_data[0].value for n in "abc"}
    assert len(set(locations.values())) == 3, locations
    want = gs.load(src).tensor_value("w").T
    for name in "abc":
        assert np.array_equal(gs.load(out / f"{name}.onnx").tensor_value("wt"), want)
    assert not temps(out)


def test_rerunning_a_command_replaces_its_own_data_instead_of_piling_up(tmp_path: Path):
    src = transpose_model(tmp_path / "in")
    out = tmp_path / "out"
    for _ in range(3):
        assert main(["fold-constants", str(src), "-o", str(out / "o.onnx"), "-q"]) == 0
    assert sorted(os.listdir(out)) == ["m.folded.data", "o.onnx"]
    assert np.array_equal(gs.load(out / "o.onnx").tensor_value("wt"), gs.load(src).tensor_value("w").T)


def test_a_failed_rerun_leaves_the_replaced_model_and_its_data(tmp_path: Path, monkeypatch, capsys):
    src = transpose_model(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["fold-constants", str(src), "-o", str(out / "o.onnx"), "-q"]) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("graphsurgeon.core.io.os.fsync", broken_fsync)
    assert main(["fold-constants", str(src), "-o", str(out / "o.onnx"), "-q"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_in_place_fold_moves_the_scratch_beside_the_model(tmp_path: Path):
    src = transpose_model(tmp_path / "in")
    assert main(["fold-constants", str(src), "--in-place", "--verify", "-q"]) == 0
    assert sorted(os.listdir(src.parent)) == ["m.data", "m.folded.data", "m.onnx"]


# -- what a killed process leaves ----------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_save_removes_what_dead_processes_left(tmp_path: Path):
    src = transpose_model(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    host = temp_name("x").split("-")[1]
    pid = dead_pid()
    stale = [f"{PREFIX}{host}-{pid}-3-o.onnx.tmp", f"{PREFIX}{host}-{pid}-4-m.folded.data.tmp"]
    kept = [
        f"{PREFIX}{host}-1-5-o.onnx.tmp",  # pid 1 lives: its writer may still be at work
        f"{PREFIX}{host}-{os.getpid()}-999-o.onnx.tmp",  # this very process
        f"{PREFIX}000000-{pid}-3-o.onnx.tmp" if host != "000000" else f"{PREFIX}ffffff-{pid}-3-o.onnx.tmp",
        f".o.onnx.{pid}.tmp",  # not ours by name: never removed
        "notes.tmp",
    ]
    for name in stale + kept:
        (out / name).write_bytes(b"partial")
    assert main(["cleanup", str(src), "-o", str(out / "o.onnx"), "-q"]) == 0
    assert temps(out) == sorted(kept)


def test_names_stay_within_the_file_name_limit():
    name = temp_name("é" * 200 + ".onnx")
    assert len(name.encode()) <= 255 and name.startswith(PREFIX) and name.endswith(".tmp")
    assert temp_name("a.onnx") != temp_name("a.onnx")


def test_remove_stale_ignores_a_missing_folder(tmp_path: Path):
    assert remove_stale(tmp_path / "nowhere") == []


FOLDER = """
import sys, time, graphsurgeon as gs
from pathlib import Path
model = gs.load(sys.argv[1])
model.scratch_dir = Path(sys.argv[2]).parent
print("loaded", flush=True)
started = time.perf_counter()
model.fold_constants().save(sys.argv[2])
print(time.perf_counter() - started, flush=True)
"""


def test_sigkill_during_fold_and_save_leaves_only_recognizable_temps(tmp_path: Path):
    """Killed at random points of a fold whose new data file is 64 MiB, and of its save: the input never
    changes, a file under a final name is complete, leftovers are temporary names, and the next save removes
    them all."""
    src = transpose_model(tmp_path / "in", width=4096)
    out = tmp_path / "out"
    out.mkdir()
    before = listing(src.parent)
    argv = [sys.executable, "-c", FOLDER, str(src), str(out / "o.onnx")]
    full = float(subprocess.run(argv, check=True, env=env(), capture_output=True, text=True).stdout.split()[-1])
    for path in out.iterdir():
        path.unlink()
    rng = random.Random(7)
    left = 0
    for attempt in range(6):
        child = subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "loaded"
        if attempt == 0:  # the moment the scratch file appears: killed while writing it, for sure
            deadline = time.perf_counter() + 30
            while not temps(out) and child.poll() is None and time.perf_counter() < deadline:
                time.sleep(0.0005)
        else:
            time.sleep(rng.uniform(0, full))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert listing(src.parent) == before
        finals = [p for p in out.iterdir() if not p.name.endswith(".tmp")]
        assert {p.name for p in finals} <= {"o.onnx", "m.folded.data"}
        if (out / "o.onnx").exists():
            assert gs.load(out / "o.onnx").tensor_value("wt").shape == (4096, 4096)
        assert all(p.startswith(PREFIX) for p in temps(out)), temps(out)
        left += len(temps(out))
        for path in finals:
            path.unlink()
    assert left  # the kills did land mid-way (the scratch file, or a save's temporary)
    subprocess.run(argv, check=True, env=env(), capture_output=True)
    assert not temps(out)
    assert sorted(os.listdir(out)) == ["m.folded.data", "o.onnx"]
