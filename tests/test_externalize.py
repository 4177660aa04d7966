"""externalize / internalize, and saving to a new folder without copying dead bytes of data files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import RewriteError
from tests.conftest import run_ort


def mlp(path: Path, widths=(64, 256, 256, 8), seed=0) -> Path:
    """x -> (MatMul + Add + Relu) per layer, weights inline as raw_data (like torch's exports)."""
    rng = np.random.default_rng(seed)
    nodes, inits, last = [], [], "x"
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        inits += [
            numpy_helper.from_array(rng.standard_normal((a, b)).astype(np.float32), f"w{i}"),
            numpy_helper.from_array(rng.standard_normal(b).astype(np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"add{i}"),
            helper.make_node("Relu", [f"a{i}"], [f"h{i}"], name=f"relu{i}"),
        ]
        last = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", widths[0]])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["N", widths[-1]])],
        inits,
        doc_string="an mlp",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    model.ir_version = 9
    helper.set_model_props(model, {"k": "v"})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)}


def test_sharded_round_trip_is_byte_identical(tmp_path):
    source = mlp(tmp_path / "src" / "mlp.onnx")
    sharded = tmp_path / "sharded" / "mlp.onnx"
    assert main(["externalize", str(source), "--shard-size", "300KB", "-o", str(sharded), "--verify"]) == 0
    files = sorted(p.name for p in sharded.parent.iterdir())
    assert files == ["mlp.1.data", "mlp.2.data", "mlp.onnx"]  # w0 b0 | w1 b1 w2 b2
    for name in files[:-1]:
        assert (sharded.parent / name).stat().st_size <= 300_000
    assert sharded.stat().st_size < 2000
    np.testing.assert_array_equal(run_ort(sharded, feeds())[0], run_ort(source, feeds())[0])
    back = tmp_path / "back" / "mlp.onnx"
    assert main(["internalize", str(sharded), "-o", str(back)]) == 0
    assert back.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in back.parent.iterdir()) == ["mlp.onnx"]


def test_library_threshold_location_and_what_stays_inline(tmp_path):
    source = mlp(tmp_path / "mlp.onnx")
    model = gs.load(source).externalize(threshold="2KiB", location="weights/all.data")
    inline = [t.name for t in model.proto.graph.initializer if t.data_location != TensorProto.EXTERNAL]
    assert inline == ["b0", "b1", "b2"]  # 1 KiB and less: under the threshold
    out = tmp_path / "out" / "m.onnx"
    model.save(out)
    assert (out.parent / "weights" / "all.data").exists()
    assert not (tmp_path / "weights" / "all.data").exists()  # the scratch file moved along
    np.testing.assert_array_equal(run_ort(out, feeds())[0], run_ort(source, feeds())[0])


def test_resharding_external_data_copies_kernel_side(tmp_path):
    source = mlp(tmp_path / "mlp.onnx")
    gs.load(source).externalize().save(tmp_path / "one" / "mlp.onnx")
    assert (tmp_path / "one" / "mlp.data").exists()
    model = gs.load(tmp_path / "one" / "mlp.onnx").externalize(shard_size="200KiB", location="part-{n}.bin")
    model.save(tmp_path / "two" / "mlp.onnx")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "mlp.onnx",
        "part-1.bin",
        "part-2.bin",
        "part-3.bin",
    ]
    np.testing.assert_array_equal(run_ort(tmp_path / "two" / "mlp.onnx", feeds())[0], run_ort(source, feeds())[0])


def test_bad_options_are_refused_before_any_write(tmp_path, capsys):
    source = mlp(tmp_path / "mlp.onnx")
    with pytest.raises(RewriteError, match="needs \\{n\\}"):
        gs.load(source).externalize(shard_size="100KB", location="one.data")
    out = tmp_path / "o" / "m.onnx"
    assert main(["externalize", str(source), "--location", "../escape.data", "-o", str(out)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "escape.data").exists()
    model = gs.load(source).externalize(threshold="1GiB")
    assert model.notes and "no initializer" in model.notes[0]
    assert gs.load(source).internalize().notes == ["the model keeps no weight in external data"]


def test_internalize_refuses_past_2gb(tmp_path, capsys):
    data = tmp_path / "big.data"
    with open(data, "wb") as f:  # sparse: no disk used
        f.truncate(2_200_000_000)
    big = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[550_000_000])
    big.data_location = TensorProto.EXTERNAL
    big.external_data.add(key="location", value="big.data")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", 1, None)], [big]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "big.onnx"))
    out = tmp_path / "o" / "inline.onnx"
    assert main(["internalize", str(tmp_path / "big.onnx"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 GB" in err[0]
    assert not out.exists()


def test_saving_elsewhere_compacts_a_mostly_dead_data_file(tmp_path):
    source = mlp(tmp_path / "src" / "mlp.onnx", widths=(64, 1024, 1024, 8))
    gs.load(source).externalize().save(tmp_path / "ext" / "mlp.onnx")
    data = tmp_path / "ext" / "mlp.data"
    full = data.stat().st_size
    model = gs.load(tmp_path / "ext" / "mlp.onnx").extract(outputs=["h0"])  # w1 (4 MiB) and w2 become dead
    out = tmp_path / "small" / "mlp.onnx"
    model.save(out)
    kept = (out.parent / "mlp.data").stat().st_size
    assert kept < full / 10, (kept, full)
    assert data.stat().st_size == full  # the original is never modified
    expected = run_ort(source.parent / "mlp.onnx", feeds())  # h0 is the first Relu: compare through onnxruntime
    reference = gs.load(tmp_path / "ext" / "mlp.onnx").extract(outputs=["h0"])
    reference.save(tmp_path / "ref" / "m.onnx", external_data=None)
    np.testing.assert_array_equal(run_ort(out, feeds())[0], run_ort(tmp_path / "ref" / "m.onnx", feeds())[0])
    assert expected[0].shape == (3, 8)


def test_mostly_live_files_are_copied_whole(tmp_path):
    source = mlp(tmp_path / "src" / "mlp.onnx")
    gs.load(source).externalize().save(tmp_path / "ext" / "mlp.onnx")
    data = tmp_path / "ext" / "mlp.data"
    gs.load(tmp_path / "ext" / "mlp.onnx").save(tmp_path / "copy" / "mlp.onnx")
    assert (tmp_path / "copy" / "mlp.data").read_bytes() == data.read_bytes()
    assert os.path.getsize(tmp_path / "copy" / "mlp.onnx") == os.path.getsize(tmp_path / "ext" / "mlp.onnx")


# -- dead bytes: saving to another folder carries only what the model references -----------------------------
def transposed_weights(path: Path, n: int = 512, layers: int = 4) -> Path:
    """x -> MatMul(x, Transpose(W_i)) per layer, the weights in external data (4 MiB): folding the Transposes
    leaves every original weight unreferenced."""
    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), f"w{i}"))
        nodes += [
            helper.make_node("Transpose", [f"w{i}"], [f"wt{i}"], perm=[1, 0]),
            helper.make_node("MatMul", [last, f"wt{i}"], [f"h{i}"]),
        ]
        last = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["N", n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), save_as_external_data=True, location=f"{path.name}.data")
    return path


def live_bytes(path: Path) -> tuple[int, int]:
    """(bytes the model's external tensors reference, without overlaps; bytes of its data files)."""
    model = onnx.load(str(path), load_external_data=False)
    spans: dict[str, list[tuple[int, int]]] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            start = int(entries.get("offset", 0))
            spans.setdefault(entries["location"], []).append((start, start + int(entries["length"])))
    live = 0
    for ranges in spans.values():
        end = 0
        for start, stop in sorted(ranges):
            live += max(0, stop - max(start, end))
            end = max(end, stop)
    return live, sum((path.parent / location).stat().st_size for location in spans)


@pytest.mark.parametrize("verb", ["simplify", "fold-constants", "extract"])
def test_saving_elsewhere_writes_no_dead_bytes(tmp_path, verb):
    source = transposed_weights(tmp_path / "src" / "m.onnx")
    original = source.stat().st_size + (source.parent / "m.onnx.data").stat().st_size
    out = tmp_path / "out" / "m.onnx"
    options = ["--outputs", "h1"] if verb == "extract" else []  # extract: the last 2 layers' weights go dead
    assert main([verb, str(source), *options, "-o", str(out)]) == 0
    live, written = live_bytes(out)
    assert written <= live + 4096 * 4, (written, live)  # at most each range's 4 KiB alignment
    total = sum(p.stat().st_size for p in out.parent.iterdir())
    assert total < original * (0.51 if verb == "extract" else 1.01), (total, original)
    x = {"x": np.random.default_rng(1).standard_normal((2, 512)).astype(np.float32)}
    expected = run_ort(source, x)[0] if verb != "extract" else None
    if expected is not None:
        np.testing.assert_allclose(run_ort(out, x)[0], expected, rtol=1e-5, atol=1e-4)


# -- data files in a subfolder: never an empty folder left behind, never a scratch file lost --------------------
def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_subfolder_location_moves_along_and_leaves_the_source_folder_as_it_was(tmp_path):
    source = mlp(tmp_path / "src" / "mlp.onnx")
    out = tmp_path / "out" / "m.onnx"
    assert (
        main(["externalize", str(source), "--location", "sub/w_{n}.bin", "--shard-size", "300KB", "-o", str(out)]) == 0
    )
    assert tree(source.parent) == ["mlp.onnx"]
    assert tree(out.parent) == ["m.onnx", "sub", "sub/w_1.bin", "sub/w_2.bin"]
    np.testing.assert_array_equal(run_ort(out, feeds())[0], run_ort(source, feeds())[0])


@pytest.mark.parametrize("where", ["in_place", "beside"])
def test_subfolder_location_saved_in_the_same_folder_keeps_its_data(tmp_path, where):
    """The new data file is the model's data once saved beside it: it must not be dropped as a scratch file."""
    source = mlp(tmp_path / "src" / "mlp.onnx")
    expected = run_ort(source, feeds())[0]
    out = source if where == "in_place" else source.parent / "o.onnx"
    save = ["--in-place"] if where == "in_place" else ["-o", str(out)]
    assert main(["externalize", str(source), "--location", "sub/w.bin", *save, "--verify"]) == 0
    assert (source.parent / "sub" / "w.bin").stat().st_size > 300_000
    np.testing.assert_array_equal(run_ort(out, feeds())[0], expected)


def test_refused_or_failed_externalize_leaves_no_folder_and_no_file(tmp_path, capsys, monkeypatch):
    source = mlp(tmp_path / "src" / "mlp.onnx")
    (source.parent / "part2").mkdir()
    (source.parent / "part2" / "w.bin").write_bytes(b"not ours")
    out = tmp_path / "out" / "m.onnx"
    args = ["externalize", str(source), "--location", "part{n}/w.bin", "--shard-size", "300KB", "-o", str(out)]
    assert main(args) == 1  # shard 2 would overwrite a file: refused after shard 1 was written
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert tree(source.parent) == ["mlp.onnx", "part2", "part2/w.bin"]
    assert not out.parent.exists()

    model = gs.load(source).externalize(location="a/b/w.bin")  # discarded unsaved: the scratch and its folders go
    assert (source.parent / "a" / "b" / "w.bin").exists()
    del model
    assert tree(source.parent) == ["mlp.onnx", "part2", "part2/w.bin"]

    model = gs.load(source).externalize(location="a/b/w.bin")
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if Path(dst).name == "m.onnx":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(gs.SaveError, match="No space left"):
        model.save(out)
    monkeypatch.undo()
    assert not out.parent.exists()  # the data file moved there went back, and the folders made for it
    assert (source.parent / "a" / "b" / "w.bin").exists()
    del model
    assert tree(source.parent) == ["mlp.onnx", "part2", "part2/w.bin"]


def test_a_new_data_file_that_takes_nothing_leaves_no_folder(tmp_path):
    source = mlp(tmp_path / "src" / "mlp.onnx", widths=(4, 4, 2))  # 64-byte weights: under the threshold
    out = tmp_path / "out" / "m.onnx"
    gs.load(source).save(out, external_data="sub/w.bin")
    assert tree(out.parent) == ["m.onnx"]
