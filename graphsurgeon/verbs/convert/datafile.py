"""Writing tensors' bytes to new external data files, one tensor at a time (streaming, bounded memory).

New files go to the model's data folder as scratch files the model adopts (a save moves them along; an
unsaved model deletes them). Existing data files are never modified.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
from onnx import TensorProto, numpy_helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, external_ref, is_external, resolve_location
from graphsurgeon.core.io import make_dirs
from graphsurgeon.errors import RewriteError

ALIGN = 4096
_TYPED_FIELDS = (
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "raw_data",
)


def data_folder(ctx: Editor, verb: str) -> Path:
    """The folder new data files go to; refused for a model with no folder (loaded from bytes)."""
    if ctx.external_data_dir is None:
        if ctx.path is None:
            raise RewriteError(
                f"{verb} writes external data files, so it needs a model loaded from a file "
                "(or pass `external_data_dir` when loading)"
            )
        return ctx.path.parent
    return ctx.external_data_dir


def point_to(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    """Make `tensor` external at (location, offset, length); its name, dims, type and doc string stay."""
    for field in _TYPED_FIELDS:
        tensor.ClearField(field)
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)


def set_inline_bytes(tensor: TensorProto, data: bytes) -> None:
    """Make `tensor` inline with `data` as raw_data (the fields an inline tensor never has are cleared)."""
    for field in _TYPED_FIELDS:
        tensor.ClearField(field)
    del tensor.external_data[:]
    tensor.ClearField("data_location")
    tensor.raw_data = data


def inline_bytes(tensor: TensorProto) -> bytes:
    """An inline tensor's bytes in raw_data layout (typed fields converted)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.to_array(tensor).tobytes()


class DataFileWriter:
    """Appends tensors to new data files named by `pattern` (``{n}`` = shard number, from 1).

    With `shard_size`, a file is closed once the next tensor would make it bigger than that (a single larger
    tensor gets a file of its own). Tensors of at least 4 KiB start at 4 KiB-aligned offsets.
    """

    def __init__(self, ctx: Editor, folder: Path, pattern: str, shard_size: int | None = None):
        self.ctx = ctx
        self.folder = folder
        self.pattern = pattern
        self.shard_size = shard_size
        self.files: list[str] = []
        self.oversized: list[str] = []
        self._fd: int | None = None
        self._end = 0
        self._shard = 0

    def _location(self) -> str:
        return self.pattern.replace("{n}", str(self._shard)) if "{n}" in self.pattern else self.pattern

    def _next_file(self) -> None:
        self.close()
        self._shard += 1
        location = self._location()
        if location in self.files:
            raise RewriteError(f"the location pattern {self.pattern!r} needs {{n}} to name more than one shard")
        path = resolve_location(location, self.folder, location)
        if path.exists():
            raise RewriteError(f"{path} already exists; existing data files are never overwritten: pick another name")
        folders = make_dirs(path.parent)  # removed with the file if it is discarded (or moved elsewhere)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            for folder in reversed(folders):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise RewriteError(f"cannot write the data file {path}: {e.strerror or e}") from e
        self.ctx.adopt_data_file(path, folders)
        self.files.append(location)
        self._end = 0

    def _reserve(self, size: int, name: str) -> int:
        offset = self._end
        if size >= ALIGN and offset % ALIGN:
            offset += ALIGN - offset % ALIGN
        full = self.shard_size is not None and self._end > 0 and offset + size > self.shard_size
        if self._fd is None or full:
            self._next_file()
            offset = 0
        if self.shard_size is not None and size > self.shard_size:
            self.oversized.append(name)
        self._end = offset + size
        return offset

    def write(self, tensor: TensorProto, data: bytes | memoryview | np.ndarray) -> None:
        """Append `data` and point `tensor` at it."""
        if isinstance(data, np.ndarray):
            view = memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8).data)
        else:
            view = memoryview(data)
            view = view.cast("B") if view.format != "B" else view
        offset = self._reserve(view.nbytes, tensor.name)
        assert self._fd is not None
        position = offset
        while view.nbytes:
            written = os.pwrite(self._fd, view, position)
            view, position = view[written:], position + written
        point_to(tensor, self._location(), offset, self._end - offset)

    def copy_external(self, tensor: TensorProto, data_dir: Path) -> None:
        """Move an external tensor's bytes into the new file, kernel-side (never through Python memory)."""
        ref = external_ref(tensor)
        source = resolve_location(ref.location, data_dir, tensor.name)
        length = ref.length if ref.length is not None else declared_nbytes(tensor)
        if length is None:
            length = source.stat().st_size - ref.offset
        offset = self._reserve(length, tensor.name)
        assert self._fd is not None
        with open(source, "rb") as f:
            _copy_range(f.fileno(), self._fd, ref.offset, offset, length)
        point_to(tensor, self._location(), offset, length)

    def close(self) -> None:
        if self._fd is not None:
            try:
                if os.fstat(self._fd).st_size < self._end:
                    os.ftruncate(self._fd, self._end)
            finally:
                os.close(self._fd)
                self._fd = None


def _copy_range(fin: int, fout: int, src: int, dst: int, length: int) -> None:
    """copy_file_range, falling back to pread/pwrite in 16 MiB pieces."""
    while length > 0:
        try:
            copied = os.copy_file_range(fin, fout, min(length, 1 << 30), src, dst)
        except (AttributeError, OSError):
            chunk = os.pread(fin, min(length, 16 << 20), src)
            copied = os.pwrite(fout, chunk, dst) if chunk else 0
        if copied <= 0:
            raise RewriteError(f"short read copying external data at byte {src}")
        src, dst, length = src + copied, dst + copied, length - copied


def external_nbytes(tensor: TensorProto) -> int:
    """Bytes an external tensor occupies in its file."""
    ref = external_ref(tensor)
    return ref.length if ref.length is not None else (declared_nbytes(tensor) or 0)


__all__ = [
    "DataFileWriter",
    "data_folder",
    "external_nbytes",
    "inline_bytes",
    "is_external",
    "point_to",
    "set_inline_bytes",
]
