"""External data: validate references without reading weights, read single tensors on demand, copy files.

Existing data files are never modified: a saved copy gets copied files, new tensors go to new files.
"""

from __future__ import annotations

import mmap
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphsurgeon.core.tempfiles import temp_path
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
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        key, value = entry.key, entry.value
        if not isinstance(key, str) or not isinstance(value, str):  # protobuf hands out bytes for non-UTF-8
            raise ExternalDataError(f"tensor {tensor.name!r}: an external data entry is not UTF-8 text")
        if key in entries:
            raise ExternalDataError(f"tensor {tensor.name!r}: external data names {key!r} more than once")
        entries[key] = value
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


# Scratch files standing in for a location of a model's folder: a rewrite's new data file (folded weights) is
# written outside the model's folder, beside the save target, until the save moves it in under its real name.
_STAND_INS: dict[tuple[Path, str], Path] = {}


def add_stand_in(data_dir: Path, location: str, path: Path) -> None:
    """Make `location` in `data_dir` resolve to `path` (see ModelState.scratch_data_file)."""
    _STAND_INS[(data_dir.resolve(), location)] = path


def drop_stand_in(data_dir: Path, location: str) -> None:
    _STAND_INS.pop((data_dir.resolve(), location), None)


def stand_ins(data_dir: Path | None) -> dict[str, Path]:
    """The locations of `data_dir` that scratch files stand in for (usually none)."""
    if not _STAND_INS or data_dir is None:
        return {}
    root = data_dir.resolve()
    return {location: path for (folder, location), path in _STAND_INS.items() if folder == root}


def resolve_location(location: str, data_dir: Path, tensor_name: str) -> Path:
    """The data file for `location`, refusing anything that escapes `data_dir` (.., absolute, symlinks)."""
    if "\0" in location:
        raise ExternalDataError(f"tensor {tensor_name!r}: external data location {location!r} holds a NUL byte")
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
    try:
        root = data_dir.resolve()
        if (root, location) in _STAND_INS:
            return _STAND_INS[(root, location)]
        path = (root / location).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop (RuntimeError before Python 3.13)
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} cannot be resolved (a symlink loop?): {e}"
        ) from e
    if not path.is_relative_to(root):
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} resolves to {path}, "
            f"outside the model's folder {root} (symlink?)"
        )
    return path


def open_regular(path: Path, what: str) -> BinaryIO:
    """Open a regular file for reading; anything else (a FIFO, a device, a socket) is refused unread.

    O_NONBLOCK keeps the open itself from waiting on a FIFO's writer; it means nothing for regular files.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ExternalDataError(f"{what} {path}: cannot read: {e.strerror or e}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ExternalDataError(f"{what} {path} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
            try:
                info = path.stat()
            except FileNotFoundError:
                raise ExternalDataError(f"tensor {tensor.name!r}: external data file {path} does not exist") from None
            except OSError as e:
                raise ExternalDataError(f"tensor {tensor.name!r}: external data {path}: {e.strerror or e}") from e
            if not stat.S_ISREG(info.st_mode):
                raise ExternalDataError(f"tensor {tensor.name!r}: external data {path} is not a regular file")
            files[ref.location] = path
            sizes[ref.location] = info.st_size
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
        with open_regular(path, f"tensor {tensor.name!r}: external data") as f:
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
    problem = inline_problem(tensor)
    if problem:
        raise RewriteError(problem)
    try:
        return onnx.numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as e:
        raise RewriteError(f"tensor {tensor.name!r} cannot be read: {e}") from e


_TYPED_FIELDS: dict[int, str] = {
    TensorProto.FLOAT: "float_data",
    TensorProto.COMPLEX64: "float_data",
    TensorProto.DOUBLE: "double_data",
    TensorProto.COMPLEX128: "double_data",
    TensorProto.INT64: "int64_data",
    TensorProto.UINT32: "uint64_data",
    TensorProto.UINT64: "uint64_data",
    TensorProto.STRING: "string_data",
    **{
        dtype: "int32_data"
        for dtype in (
            TensorProto.INT32,
            TensorProto.INT16,
            TensorProto.INT8,
            TensorProto.UINT16,
            TensorProto.UINT8,
            TensorProto.BOOL,
            TensorProto.FLOAT16,
            TensorProto.BFLOAT16,
        )
    },
}


def inline_problem(tensor: TensorProto) -> str | None:
    """Why an inline tensor's data cannot be its value (None when it can): raw bytes or typed values that
    disagree with its dims and dtype, or a negative dim. Metadata and lengths only: nothing is decoded."""
    if any(d < 0 for d in tensor.dims):
        return f"tensor {tensor.name!r} declares a negative dimension {list(tensor.dims)}"
    expected = declared_nbytes(tensor)
    shown = f"tensor {tensor.name!r} declares shape {list(tensor.dims)}"
    if tensor.HasField("raw_data") and tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return f"tensor {tensor.name!r} holds raw bytes, which a string or untyped tensor never has"
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data)
        if expected is not None and held != expected:
            return f"{shown} ({expected} bytes) but holds {held} bytes"
        return None
    count = 1
    for d in tensor.dims:
        count *= d
    if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        count *= 2
    field = _TYPED_FIELDS.get(tensor.data_type)
    if field is None:  # packed or exotic types: left to the decoder
        return None
    held = len(getattr(tensor, field))
    if held != count and not (held == 0 and count == 0):
        return f"{shown} ({count} values) but holds {held} values"
    return None


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
    tmp = temp_path(dst)
    try:
        with open_regular(src, "external data") as fin, open(tmp, "wb") as fout:
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
