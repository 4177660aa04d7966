"""Reading constant values (memory-mapped external data, prefetched) and writing folded ones (inline, or
appended by a background thread to a new external data file), and compacting mostly-dead data files."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from onnx import TensorProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, external_ref, is_external, read_tensor, resolve_location
from graphsurgeon.core.walk import model_tensors
from graphsurgeon.errors import SaveError
from graphsurgeon.verbs.fold.evaluate import tensor_from_array

_EXTERNAL_THRESHOLD = 1024


class ValueReader:
    """Reads initializer values, memory-mapping large external tensors instead of copying them."""

    def __init__(self, data_dir: Path | None):
        self.data_dir = data_dir

    def prefetch(self, tensor: TensorProto) -> None:
        """Ask the kernel to start reading an external tensor now (the next batch's, while this one runs)."""
        if not is_external(tensor) or self.data_dir is None or not hasattr(os, "posix_fadvise"):
            return
        try:
            ref = external_ref(tensor)
            path = resolve_location(ref.location, self.data_dir, tensor.name)
            length = ref.length if ref.length is not None else (declared_nbytes(tensor) or 0)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, ref.offset, length, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        except OSError:
            pass  # only a hint

    def read(self, tensor: TensorProto) -> np.ndarray:
        if is_external(tensor) and self.data_dir is not None and tensor.data_type not in (TensorProto.STRING,):
            try:
                dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
            except Exception:
                dtype = None
            nbytes = declared_nbytes(tensor)
            if dtype is not None and nbytes and dtype.kind in "biufc" and nbytes >= (1 << 16):
                ref = external_ref(tensor)
                path = resolve_location(ref.location, self.data_dir, tensor.name)
                if ref.length is not None and ref.length != nbytes:
                    return read_tensor(tensor, self.data_dir)  # raises the clear error
                return np.memmap(path, dtype=dtype, mode="r", offset=ref.offset, shape=tuple(tensor.dims))
        return read_tensor(tensor, self.data_dir)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Materializer:
    """Turns folded values into TensorProtos: inline, or appended to a new external data file."""

    # set by _open(), on the first append
    _pool: ThreadPoolExecutor
    _pending: list[Future[None]]
    _end: int

    def __init__(self, model: Editor):
        self.model = model
        proto = model.proto
        self.external = model.external_data_dir is not None and any(is_external(t) for t in model_tensors(proto))
        self._file: BinaryIO | None = None
        self._location: str | None = None
        self._path: Path | None = None

    def tensor(self, name: str, value: np.ndarray) -> TensorProto:
        if value.dtype != object and not value.flags.c_contiguous:  # (ascontiguousarray makes a scalar [1])
            value = np.array(value, order="C")
        if not self.external or value.dtype == object or value.dtype.kind in "US" or value.nbytes < _EXTERNAL_THRESHOLD:
            return tensor_from_array(name, np.asarray(value))
        try:
            offset = self.append_bytes(value.data.cast("B"))  # value.data is memoryview(value)
        except (TypeError, ValueError):
            offset = self.append_bytes(value.tobytes())
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        tensor.dims.extend(value.shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, val in (("location", self._location), ("offset", offset), ("length", value.nbytes)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(val)
        return tensor

    @property
    def location(self) -> str | None:
        return self._location

    def append_bytes(self, data) -> int:
        """Append to the new data file (4 KiB-aligned when large); returns the offset.

        Writes happen on a background thread (positional writes), overlapping the next evaluation; at most
        two are in flight, so memory stays bounded by about two batches.
        """
        if self._file is None:
            self._open()
        assert self._file is not None
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        offset = self._end
        if size >= 4096 and offset % 4096:
            offset += 4096 - offset % 4096
        self._end = offset + size
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(_pwrite_all, self._file.fileno(), data, offset))
        return offset

    def _open(self) -> None:
        model = self.model
        stem = model.path.name.removesuffix(".onnx") if model.path is not None else "model"
        # a scratch file beside the save target (never beside the input), moved in under `location` on save
        self._location, self._path = model.scratch_data_file(f"{stem}.folded.data")
        try:
            self._file = open(self._path, "xb")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise SaveError(
                f"cannot write {self._path} (the folded values' scratch data file, in the output's folder or the "
                f"system's temporary folder): {e.strerror or e}"
            ) from e

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphsurgeon-fold-writer")
        self._pending = []
        self._end = 0

    def flush(self) -> None:
        if self._file is not None:
            while self._pending:
                self._pending.pop(0).result()

    def close(self) -> None:
        if self._file is not None:
            try:
                self.flush()
                if self._end > os.fstat(self._file.fileno()).st_size:
                    os.ftruncate(self._file.fileno(), self._end)
            finally:
                self._pool.shutdown(wait=True)
                self._file.close()
                self._file = None


def relocate_survivors(model: Editor, writer: Materializer) -> int:
    """Move what is left of mostly-dead data files (under a quarter still used) into the new data file.

    Existing files are never modified; this only spares a save from copying gigabytes of weights that
    folding made dead for the sake of a few small survivors (biases next to transposed weights).
    """
    data_dir = model.external_data_dir
    if data_dir is None:
        return 0
    by_location: dict[str, list[TensorProto]] = {}
    for tensor in model_tensors(model.proto):
        if is_external(tensor):
            by_location.setdefault(external_ref(tensor).location, []).append(tensor)
    moved = 0
    for location, tensors in by_location.items():
        if location == writer.location:
            continue
        path = resolve_location(location, data_dir, tensors[0].name)
        live = sum(declared_nbytes(t) or 0 for t in tensors)
        if live * 4 > path.stat().st_size:
            continue
        for tensor in tensors:
            ref = external_ref(tensor)
            length = ref.length if ref.length is not None else declared_nbytes(tensor)
            if length is None:
                continue
            with open(path, "rb") as f:
                f.seek(ref.offset)
                data = f.read(length)
            offset = writer.append_bytes(data)
            entries = {e.key: e for e in tensor.external_data}
            for key, value in (("location", writer.location), ("offset", offset), ("length", length)):
                if key in entries:
                    entries[key].value = str(value)
                else:
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, str(value)
            moved += 1
    return moved
