"""Reading and writing model files: clear errors on bad input, lazy external data, atomic saves."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from onnx import ModelProto, TensorProto, numpy_helper

from graphsurgeon.core.external_data import copy_file, declared_nbytes, is_external, validate_external_data
from graphsurgeon.core.walk import model_graphs, model_tensors
from graphsurgeon.errors import ModelLoadError, SaveError

PROTOBUF_LIMIT = 2**31 - 1


def remove_where(repeated, dead: Callable[[Any], bool]) -> int:
    """Remove the items of a protobuf repeated field for which `dead` is true, in one pass; returns how many.

    Stable for the kept items (a sort on a boolean key is stable), and the kept messages stay the same objects.
    """
    count = sum(1 for item in repeated if dead(item))
    if count:
        repeated.sort(key=lambda item: bool(dead(item)))
        del repeated[len(repeated) - count :]
    return count


def parse_model(data: bytes, what: str) -> ModelProto:
    """Parse and sanity-check a serialized ModelProto; `what` names the source in messages."""
    if not data:
        raise ModelLoadError(f"{what} is empty, not an ONNX model")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        if "MaxDepth" in str(e):
            raise ModelLoadError(f"{what} nests subgraphs deeper than protobuf allows, so it cannot be read") from e
        raise ModelLoadError(
            f"{what} is not a valid ONNX model: protobuf could not parse it "
            f"(truncated, corrupt, not ONNX, or nested deeper than protobuf allows): {e}"
        ) from e
    check_is_onnx(model, what)
    return model


def check_is_onnx(model: ModelProto, what: str) -> None:
    """Refuse protobufs that parse but hold no ONNX model (random bytes often parse as unknown fields)."""
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelLoadError(f"{what} is not an ONNX model (no IR version or no graph)")


def read_model_file(path: Path) -> ModelProto:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
    try:
        size = path.stat().st_size
        if size > PROTOBUF_LIMIT:
            raise ModelLoadError(
                f"{path} is {size} bytes: protobuf cannot hold a model over 2 GB in one file "
                "(such models keep their weights in external data)"
            )
        data = path.read_bytes()
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_model(data, str(path))


def unused_location(model: ModelProto, wanted: str) -> str:
    used = {
        entry.value
        for t in model_tensors(model)
        if is_external(t)
        for entry in t.external_data
        if entry.key == "location"
    }
    if wanted not in used:
        return wanted
    stem, n = wanted.removesuffix(".data"), 1
    while f"{stem}.{n}.data" in used:
        n += 1
    return f"{stem}.{n}.data"


def externalize(model: ModelProto, data_dir: Path, location: str, threshold: int) -> list[Path]:
    """Move inline initializers of at least `threshold` bytes into a new data file `location` in `data_dir`.

    Existing data files are never touched: if `location` is already used, a fresh name is picked.
    Returns the files written.
    """
    location = unused_location(model, location)
    path = data_dir / location
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    moved = 0
    try:
        with open(tmp, "wb") as f:
            for graph in model_graphs(model):
                for tensor in graph.initializer:
                    if is_external(tensor) or tensor.data_type == TensorProto.STRING:
                        continue
                    data = tensor.raw_data if tensor.HasField("raw_data") else None
                    if data is None:
                        if tensor.ByteSize() < threshold:
                            continue
                        data = numpy_helper.to_array(tensor).tobytes()
                    if len(data) < threshold:
                        continue
                    offset = f.tell()
                    if len(data) >= 4096 and offset % 4096:
                        f.write(b"\0" * (4096 - offset % 4096))
                        offset = f.tell()
                    f.write(data)
                    name, dims, dtype, doc = tensor.name, list(tensor.dims), tensor.data_type, tensor.doc_string
                    tensor.Clear()
                    tensor.name, tensor.data_type, tensor.doc_string = name, dtype, doc
                    tensor.dims.extend(dims)
                    tensor.data_location = TensorProto.EXTERNAL
                    for key, value in (("location", location), ("offset", offset), ("length", len(data))):
                        entry = tensor.external_data.add()
                        entry.key, entry.value = key, str(value)
                    moved += 1
        if not moved:
            return []
        os.replace(tmp, path)
        return [path]
    finally:
        tmp.unlink(missing_ok=True)


def _inline_bytes(model: ModelProto) -> int:
    """What the inline tensors declare (metadata only: cheap, unlike ByteSize, which encodes)."""
    return sum(declared_nbytes(t) or 0 for t in model_tensors(model) if not is_external(t))


def write_model(
    model: ModelProto,
    target: Path,
    *,
    data_dir: Path | None,
    out_data_dir: Path,
    external_data: str | None = None,
    external_data_threshold: int = 1024,
    movable: set[Path] | None = None,
) -> Path | None:
    """Write `model` to `target` atomically; returns the folder its external data now resolves against.

    External data files referenced by the model are copied (kernel-side) from `data_dir` to `out_data_dir`
    when those differ, and left alone when they are the same. `external_data` names a new data file for
    the model's inline initializers; a model too big for one protobuf gets one automatically. Files in
    `movable` (scratch files a rewrite wrote) are moved rather than copied, and moved back if the save fails.
    """
    if target.is_dir():
        raise SaveError(f"{target} is a directory; give a file path to save to")
    created: list[Path] = []
    moved: list[tuple[Path, Path]] = []
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out_data_dir.mkdir(parents=True, exist_ok=True)
        files = validate_external_data(model, data_dir)
        if files and data_dir is not None and out_data_dir.resolve() != data_dir.resolve():
            for location, src in files.items():
                dst = out_data_dir / location
                if dst.exists() and os.path.samefile(src, dst):
                    continue
                existed = dst.exists()
                if movable and src in movable and not existed:
                    try:
                        os.replace(src, dst)
                        moved.append((src, dst))
                        continue
                    except OSError:  # another filesystem: copy below
                        pass
                copy_file(src, dst)
                if not existed:
                    created.append(dst)
        copied = len(created)
        if external_data:
            created += externalize(model, out_data_dir, external_data, external_data_threshold)
        elif _inline_bytes(model) > PROTOBUF_LIMIT - (64 << 20):  # too big for one protobuf: move weights out
            created += externalize(model, out_data_dir, f"{target.name}.data", external_data_threshold)
        moved_out = len(created) > copied
        data = model.SerializeToString()
        if len(data) > PROTOBUF_LIMIT:
            raise SaveError(f"the model's graph alone is {len(data)} bytes, over protobuf's 2 GB limit")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        created.clear()
        moved.clear()
    except OSError as e:
        raise SaveError(f"cannot write {target}: {e.strerror or e}") from e
    finally:
        tmp.unlink(missing_ok=True)
        for path in created:  # only on failure: leave nothing half-done behind
            path.unlink(missing_ok=True)
        for src, dst in moved:
            os.replace(dst, src)
    return out_data_dir if (files or moved_out) else data_dir
