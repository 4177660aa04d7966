"""External data: validate references without reading weights, read single tensors on demand, copy files.

Existing data files are never modified: a saved copy gets copied files, new tensors go to new files.
"""

from __future__ import annotations

import mmap
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphsurgeon.core.walk import model_tensors
from graphsurgeon.errors import ExternalDataError, RewriteError


@dataclass(frozen=True)
class ExternalRef:
    """Where one tensor's bytes live: `length` bytes at `offset` of `location` (relative to the data folder)."""

    location: str
    offset: int
    length: int | None


def is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL


def external_ref(tensor: TensorProto) -> ExternalRef:
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError as e:
        raise ExternalDataError(f"tensor {tensor.name!r}: external data offset/length is not a number ({e})") from e
    if not location:
        raise ExternalDataError(f"tensor {tensor.name!r} is marked external but names no location")
    if offset < 0 or (length is not None and length < 0):
        raise ExternalDataError(f"tensor {tensor.name!r}: negative external data offset or length")
    return ExternalRef(location, offset, length)


_SUB_BYTE_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in (
        ("INT4", 4),
        ("UINT4", 4),
        ("FLOAT4E2M1", 4),
        ("INT2", 2),
        ("UINT2", 2),
        ("FLOAT6E2M3", 6),
        ("FLOAT6E3M2", 6),
    )
    if hasattr(TensorProto, name)
}


def declared_nbytes(tensor: TensorProto) -> int | None:
    """Bytes the tensor's dtype and dims call for; None for types without a fixed size (strings)."""
    count = 1
    for d in tensor.dims:
        count *= d
    if tensor.data_type in _SUB_BYTE_BITS:
        return (count * _SUB_BYTE_BITS[tensor.data_type] + 7) // 8
    if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    try:
        return count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, ValueError, TypeError):
        return None


def resolve_location(location: str, data_dir: Path, tensor_name: str) -> Path:
    """The data file for `location`, refusing anything that escapes `data_dir` (.., absolute, symlinks)."""
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location.split("/")[0]:
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} is absolute; "
            "locations must be relative to the model's folder"
        )
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} escapes the model's folder"
        )
    root = data_dir.resolve()
    path = (root / location).resolve()
    if not path.is_relative_to(root):
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} resolves to {path}, "
            f"outside the model's folder {root} (symlink?)"
        )
    return path


def validate_external_data(model: onnx.ModelProto, data_dir: Path | None) -> dict[str, Path]:
    """Check every external reference against the files on disk (metadata only: no weight is read).

    Returns the data files used, by location.
    """
    files: dict[str, Path] = {}
    sizes: dict[str, int] = {}
    for tensor in model_tensors(model):
        if not is_external(tensor):
            continue
        ref = external_ref(tensor)
        if data_dir is None:
            raise ExternalDataError(
                f"tensor {tensor.name!r} keeps its data in {ref.location!r}, but no external-data folder "
                "was given (pass `external_data_dir`)"
            )
        if ref.location not in files:
            path = resolve_location(ref.location, data_dir, tensor.name)
            if not path.exists():
                raise ExternalDataError(f"tensor {tensor.name!r}: external data file {path} does not exist")
            if not path.is_file():
                raise ExternalDataError(f"tensor {tensor.name!r}: external data {path} is not a regular file")
            files[ref.location] = path
            sizes[ref.location] = path.stat().st_size
        file_size = sizes[ref.location]
        length = ref.length if ref.length is not None else file_size - ref.offset
        if ref.offset + length > file_size or length < 0:
            raise ExternalDataError(
                f"tensor {tensor.name!r}: external data [{ref.offset}, {ref.offset + length}) lies past the end "
                f"of {files[ref.location]} ({file_size} bytes)"
            )
        expected = declared_nbytes(tensor)
        if expected is not None and expected != length:
            raise ExternalDataError(
                f"tensor {tensor.name!r} declares shape {list(tensor.dims)} ({expected} bytes) "
                f"but its external data holds {length} bytes"
            )
    return files


def read_tensor(tensor: TensorProto, data_dir: Path | None) -> np.ndarray:
    """The tensor's value as a numpy array, reading only its own bytes (memory-mapped for external data)."""
    expected = declared_nbytes(tensor)
    if is_external(tensor):
        if data_dir is None:
            raise ExternalDataError(f"tensor {tensor.name!r} is external, but no external-data folder is known")
        ref = external_ref(tensor)
        path = resolve_location(ref.location, data_dir, tensor.name)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            length = ref.length if ref.length is not None else size - ref.offset
            if ref.offset + length > size:
                raise ExternalDataError(f"tensor {tensor.name!r}: external data lies past the end of {path}")
            if expected is not None and expected != length:
                raise ExternalDataError(f"tensor {tensor.name!r}: declares {expected} bytes, data holds {length}")
            if length == 0:
                buffer = b""
            else:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    buffer = mm[ref.offset : ref.offset + length]
        inline = TensorProto()
        inline.CopyFrom(tensor)
        del inline.external_data[:]
        inline.data_location = TensorProto.DEFAULT
        inline.raw_data = buffer
        return onnx.numpy_helper.to_array(inline)
    if expected is not None and tensor.HasField("raw_data") and len(tensor.raw_data) != expected:
        raise RewriteError(
            f"tensor {tensor.name!r} declares shape {list(tensor.dims)} ({expected} bytes) "
            f"but holds {len(tensor.raw_data)} bytes"
        )
    try:
        return onnx.numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as e:
        raise RewriteError(f"tensor {tensor.name!r} cannot be read: {e}") from e


_PARALLEL_COPY_MIN = 256 << 20
_COPY_STREAMS = 4


def _copy_range(fin: int, fout: int, start: int, end: int) -> None:
    while start < end:
        copied = os.copy_file_range(fin, fout, min(end - start, 1 << 30), start, start)
        if copied == 0:
            raise OSError(f"short copy at byte {start}")
        start += copied


def _kernel_copy(fin: int, fout: int, size: int) -> None:
    """copy_file_range over the whole file; big files in a few parallel ranges (the disk queues them)."""
    if size < _PARALLEL_COPY_MIN:
        _copy_range(fin, fout, 0, size)
        return
    step = -(-size // _COPY_STREAMS)
    with ThreadPoolExecutor(_COPY_STREAMS) as pool:
        ranges = [pool.submit(_copy_range, fin, fout, lo, min(lo + step, size)) for lo in range(0, size, step)]
        for done in ranges:
            done.result()


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` atomically, kernel-side where the OS can (never a hard link: onnx refuses those)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            size = os.fstat(fin.fileno()).st_size
            try:
                _kernel_copy(fin.fileno(), fout.fileno(), size)
            except (AttributeError, OSError):  # no copy_file_range here (or across these filesystems)
                fin.seek(0)
                fout.seek(0)
                fout.truncate()
                shutil.copyfileobj(fin, fout, 1 << 20)
            if os.fstat(fout.fileno()).st_size != size:
                raise OSError(f"short copy of {src}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
