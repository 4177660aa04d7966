"""Reading and writing model files: clear errors on bad input, lazy external data, atomic saves."""

from __future__ import annotations

import bisect
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from onnx import FunctionProto, ModelProto, StringStringEntryProto, TensorProto, numpy_helper

from graphsurgeon.core.external_data import (
    copy_file,
    declared_nbytes,
    external_ref,
    inline_problem,
    is_external,
    open_regular,
    resolve_location,
    stand_ins,
    validate_external_data,
)
from graphsurgeon.core.tempfiles import remove_stale, temp_path
from graphsurgeon.core.utf8 import find_non_utf8, text_is_utf8
from graphsurgeon.core.walk import model_graphs, model_tensors
from graphsurgeon.errors import ExternalDataError, ModelLoadError, SaveError

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
    check_is_onnx(model, what, data)
    return model


def check_is_onnx(model: ModelProto, what: str, data: bytes | None = None) -> None:
    """Refuse protobufs that parse but hold no ONNX model (random bytes often parse as unknown fields), and
    models whose text is not UTF-8 or whose tensors declare what no file could hold (see check_tensors).
    `data`, the bytes `model` was parsed from, lets the UTF-8 check run in C (see text_is_utf8)."""
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelLoadError(f"{what} is not an ONNX model (no IR version or no graph)")
    where = None if data is not None and text_is_utf8(model, data) else find_non_utf8(model)
    if where is not None:
        raise ModelLoadError(f"{what} holds text that is not UTF-8 ({where}); ONNX names and strings must be UTF-8")
    check_tensors(model, what)


def check_tensors(model: ModelProto, what: str) -> None:
    """Refuse what no reader could take, from metadata only: a negative dim, an inline tensor declaring more
    than a protobuf can hold (2^50 elements and no data), and a dense and a sparse initializer of one name."""
    for tensor in model_tensors(model):
        if any(d < 0 for d in tensor.dims):
            raise ModelLoadError(f"{what}: tensor {tensor.name!r} declares a negative dimension {list(tensor.dims)}")
        if not is_external(tensor):
            declared = declared_nbytes(tensor) or 0
            if declared > PROTOBUF_LIMIT and not _holds_data(tensor):  # (data of the wrong size: refused on read)
                raise ModelLoadError(
                    f"{what}: tensor {tensor.name!r} declares shape {list(tensor.dims)} ({declared} bytes) inline, "
                    "more than a protobuf can hold; its data is missing"
                )
    check_function_calls(model, what)
    for graph in model_graphs(model):
        if graph.sparse_initializer:
            dense = {t.name for t in graph.initializer}
            both = next((s.values.name for s in graph.sparse_initializer if s.values.name in dense), None)
            if both is not None:
                raise ModelLoadError(
                    f"{what}: {both!r} is both a dense and a sparse initializer of graph {graph.name!r}"
                )


_DATA_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def _holds_data(tensor: TensorProto) -> bool:
    """Does an inline tensor carry any data at all? (Asked only of tensors declaring over 2 GB.)"""
    return bool(len(tensor.raw_data) or any(len(getattr(tensor, name)) for name in _DATA_FIELDS))


def check_function_calls(model: ModelProto, what: str) -> None:
    """Refuse model-local functions that call themselves, directly or through others (ONNX forbids it, and
    anything expanding them would never end). Linear in the functions' nodes; iterative."""
    if not model.functions:
        return
    Key = tuple[str, str, str]
    keys: dict[Key, FunctionProto] = {(f.domain, f.name, str(getattr(f, "overload", ""))): f for f in model.functions}
    calls: dict[Key, set[Key]] = {}
    for key, function in keys.items():
        called = calls.setdefault(key, set())
        stack = list(function.node)
        while stack:
            node = stack.pop()
            call: Key = (node.domain, node.op_type, str(getattr(node, "overload", "")))
            if call in keys:
                called.add(call)
            for attr in node.attribute:
                stack.extend(n for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs) for n in g.node)
    state: dict[Key, int] = {}  # 1: on the current path, 2: done
    for root in calls:
        if state.get(root):
            continue
        path: list[tuple[Key, Iterator[Key]]] = [(root, iter(sorted(calls[root])))]
        state[root] = 1
        while path:
            key, pending = path[-1]
            callee = next(pending, None)
            if callee is None:
                state[key] = 2
                path.pop()
            elif state.get(callee) == 1:
                cycle = [k for k, _ in path][[k for k, _ in path].index(callee) :] + [callee]
                shown = " -> ".join(f"{d}::{n}" if d else n for d, n, _ in cycle)
                raise ModelLoadError(f"{what}: model-local functions call themselves ({shown}); ONNX forbids recursion")
            elif not state.get(callee):
                state[callee] = 1
                path.append((callee, iter(sorted(calls[callee]))))


def read_model_file(path: Path) -> ModelProto:
    """Parse a model file: a regular file only (a FIFO or a device is refused before anything is read)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ModelLoadError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    if stat.S_ISDIR(info.st_mode):
        raise ModelLoadError(f"{path} is a directory, not an ONNX model file")
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(f"{path} is not a regular file (a FIFO, a device or a socket); give a model file")
    if info.st_size > PROTOBUF_LIMIT:
        raise ModelLoadError(
            f"{path} is {info.st_size} bytes: protobuf cannot hold a model over 2 GB in one file "
            "(such models keep their weights in external data)"
        )
    try:
        with open_regular(path, "model file") as f:
            data = f.read()
    except ExternalDataError as e:
        raise ModelLoadError(str(e)) from e
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_model(data, str(path))


def unused_location(model: ModelProto, wanted: str, data_dir: Path | None = None) -> str:
    """`wanted`, or `stem.N.data` when the model already uses that location (or, given `data_dir`, a file of
    that name exists there): a new data file never lands on an existing one."""
    used = {
        entry.value
        for t in model_tensors(model)
        if is_external(t)
        for entry in t.external_data
        if entry.key == "location"
    }

    def taken(name: str) -> bool:
        return name in used or (data_dir is not None and os.path.lexists(data_dir / name))

    if not taken(wanted):
        return wanted
    stem, n = wanted.removesuffix(".data"), 1
    while taken(f"{stem}.{n}.data"):
        n += 1
    return f"{stem}.{n}.data"


MIN_EXTERNAL_BYTES = 1024  # smaller tensors stay inline: onnxruntime reads shape tensors only from inline data


def data_file_location(model: ModelProto, wanted: str, data_dir: Path, target: Path) -> str:
    """Check the data file name `external_data` like an output path; returns the location to write.

    It must stay inside the output's folder, must not be the output model itself, and must not name an
    existing file the save would overwrite (one the model already uses gets a fresh name instead).
    """
    if not isinstance(wanted, str) or not wanted.strip() or "\0" in wanted:
        raise SaveError(f"`external_data` {wanted!r} is not a usable file name")
    if wanted.endswith(("/", "\\")) or os.path.basename(wanted) in ("", ".", ".."):
        raise SaveError(f"`external_data` {wanted!r} names a folder; give a file name")
    try:
        path = resolve_location(wanted, data_dir, "")
    except ExternalDataError:
        raise SaveError(
            f"`external_data` {wanted!r} leaves the output's folder {data_dir}; give a file name inside it"
        ) from None
    if path == target.resolve():
        raise SaveError(f"`external_data` {wanted!r} is the output model file itself; give another name")
    used = {
        entry.value
        for t in model_tensors(model)
        if is_external(t)
        for entry in t.external_data
        if entry.key == "location"
    }
    if os.path.lexists(path) and wanted not in used:
        raise SaveError(
            f"`external_data` {wanted!r}: {path} already exists and is not this model's data; graphsurgeon "
            "never overwrites a file it did not write (pick another name or remove the file)"
        )
    return unused_location(model, wanted, data_dir)


def externalize(model: ModelProto, data_dir: Path, location: str, threshold: int) -> list[Path]:
    """Move inline initializers of at least `threshold` bytes into a new data file `location` in `data_dir`.

    Existing data files are never touched: `location` must be a fresh name (see unused_location). Tensors
    under MIN_EXTERNAL_BYTES (shape tensors) and tensors whose data disagrees with their shape stay inline.
    Returns the files written.
    """
    threshold = max(threshold, MIN_EXTERNAL_BYTES)
    path = data_dir / location
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    moved = 0
    try:
        with open(tmp, "wb") as f:
            for graph in model_graphs(model):
                for tensor in graph.initializer:
                    if is_external(tensor) or tensor.data_type == TensorProto.STRING:
                        continue
                    if (declared_nbytes(tensor) or 0) < threshold or inline_problem(tensor):
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


def check_target(target: Path) -> None:
    """A save target must be a path for a regular file: never a folder, a device, a FIFO or a socket."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        raise SaveError(f"cannot write {target}: {getattr(e, 'strerror', None) or e}") from e
    if stat.S_ISDIR(info.st_mode):
        raise SaveError(f"{target} is a directory; give a file path to save to")
    if not stat.S_ISREG(info.st_mode):
        raise SaveError(f"{target} is not a regular file (a device, a FIFO or a socket); give a file path to save to")


def make_dirs(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first), so a failed save can remove them."""
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _quietly(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Clean-up after a failed save: best effort, never masking the error being raised."""
    try:
        action(*args, **kwargs)
    except OSError:
        pass


def _inline_bytes(model: ModelProto) -> int:
    """What the inline tensors declare (metadata only: cheap, unlike ByteSize, which encodes)."""
    return sum(declared_nbytes(t) or 0 for t in model_tensors(model) if not is_external(t))


_DEAD_SLACK = 1 << 20  # dead bytes a saved copy may carry along (alignment padding, tiny leftovers)
_Undo = tuple[TensorProto, list[tuple[str, str]]]


def _live_copy(model: ModelProto, location: str, src: Path, dst: Path) -> list[_Undo]:
    """Copy the data file `src` to `dst`; when over 1 MiB and 5% of it is dead (no tensor references those
    bytes, e.g. after fold or extract), only the referenced ranges are copied, each keeping its offset modulo
    4 KiB (shared ranges stay shared), and the model's offsets are rewritten. Returns (tensor, old entries)
    to undo that if the save fails."""
    size = src.stat().st_size
    refs = [(t, external_ref(t)) for t in model_tensors(model) if is_external(t)]
    refs = [(t, r) for t, r in refs if r.location == location]
    spans = sorted({(r.offset, r.offset + (r.length if r.length is not None else size - r.offset)) for _, r in refs})
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if size - sum(end - start for start, end in merged) <= max(_DEAD_SLACK, size // 20):
        copy_file(src, dst)
        return []
    tmp = temp_path(dst)
    moved_to: list[int] = []
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            end_out = 0
            for start, end in merged:
                new = end_out + (start - end_out) % 4096
                moved_to.append(new)
                pos, out = start, new
                while pos < end:
                    try:
                        n = os.copy_file_range(fin.fileno(), fout.fileno(), min(end - pos, 1 << 30), pos, out)
                    except OSError:  # no kernel-side copy across these files: through a buffer
                        n = os.pwrite(fout.fileno(), os.pread(fin.fileno(), min(end - pos, 16 << 20), pos), out)
                    if n <= 0:
                        raise OSError(f"short copy of {src}")
                    pos, out = pos + n, out + n
                end_out = new + end - start
            os.ftruncate(fout.fileno(), end_out)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    starts = [start for start, _ in merged]
    undo = []
    for tensor, ref in refs:
        i = bisect.bisect_right(starts, ref.offset) - 1
        undo.append((tensor, [(e.key, e.value) for e in tensor.external_data]))
        entries = {e.key: e for e in tensor.external_data}
        if "offset" not in entries:
            entries["offset"] = tensor.external_data.add(key="offset")
        entries["offset"].value = str(moved_to[i] + ref.offset - starts[i])
    return undo


def data_of_replaced_model(target: Path, data_dir: Path) -> set[str]:
    """The data files (locations in `data_dir`) of the graph file a save to `target` replaces: a new data file
    of the same name may take their place (rerunning a command does not pile up copies). Only a regular
    graph file of at most 64 MiB that parses; anything else keeps the rule that no existing file is
    overwritten."""
    try:
        info = target.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 64 << 20 or target.parent.resolve() != data_dir.resolve():
            return set()
        model = ModelProto.FromString(target.read_bytes())
    except (OSError, DecodeError, ValueError, RuntimeError):
        return set()
    found = set()
    for tensor in model_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value and "\0" not in entry.value:
                found.add(os.path.normpath(entry.value))
    return found


def _relocate(model: ModelProto, old: str, new: str) -> list[_Undo]:
    """Point every tensor stored in data file `old` at `new` instead; returns how to undo it."""
    undo: list[_Undo] = []
    for tensor in model_tensors(model):
        if is_external(tensor) and external_ref(tensor).location == old:
            undo.append((tensor, [(e.key, e.value) for e in tensor.external_data]))
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = new
    return undo


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
    check_target(target)
    created: list[Path] = []
    made_dirs: list[Path] = []
    moved: list[tuple[Path, Path]] = []
    undo: list[_Undo] = []  # offsets a compacting copy rewrote
    saved = False
    displaced: list[tuple[Path, Path]] = []  # (aside, where): the replaced model's data, restored on failure
    tmp = temp_path(target)
    for folder in {target.parent, out_data_dir}:  # what a killed save left there (see core/tempfiles)
        remove_stale(folder)
    try:
        made_dirs = make_dirs(target.parent) + make_dirs(out_data_dir)
        files = validate_external_data(model, data_dir)
        location = None
        if external_data:
            location = data_file_location(model, external_data, out_data_dir, target)
        elif _inline_bytes(model) > PROTOBUF_LIMIT - (64 << 20):  # too big for one protobuf: move weights out
            location = unused_location(model, f"{target.name}.data", out_data_dir)
        in_folder = data_dir is not None and out_data_dir.resolve() == data_dir.resolve()
        if files and data_dir is not None and (not in_folder or stand_ins(data_dir)):
            resolved_target = target.resolve()
            scratch = stand_ins(data_dir)
            replaced = data_of_replaced_model(target, out_data_dir) if scratch and not in_folder else set()
            for name, src in files.items():
                dst = out_data_dir / name
                if name in scratch and os.path.normpath(name) in replaced and dst.is_file() and not dst.is_symlink():
                    aside = temp_path(dst)  # the data of the model this save replaces: back if the save fails
                    os.replace(dst, aside)
                    displaced.append((aside, dst))
                elif name in scratch and os.path.lexists(dst):  # a new data file never lands on another one
                    fresh = unused_location(model, name, out_data_dir)
                    undo += _relocate(model, name, fresh)
                    name, dst = fresh, out_data_dir / fresh
                if dst.resolve() == resolved_target:
                    raise SaveError(f"the model's external data {name!r} would be copied onto the output {target}")
                if dst.exists() and os.path.samefile(src, dst):
                    continue
                existed = dst.exists()
                made_dirs += make_dirs(dst.parent)  # a location in a subfolder: made here, removed on failure
                if movable and src in movable and not existed:
                    try:
                        os.replace(src, dst)
                        moved.append((src, dst))
                        continue
                    except OSError:  # another filesystem: copy below
                        pass
                undo += _live_copy(model, name, src, dst)
                if not existed:
                    created.append(dst)
        copied = len(created)
        if location is not None:
            folders = make_dirs((out_data_dir / location).parent)
            written = externalize(model, out_data_dir, location, external_data_threshold)
            created += written
            if written:
                made_dirs += folders
            for folder in [] if written else reversed(folders):  # nothing moved out: leave no empty folder
                _quietly(folder.rmdir)
        moved_out = len(created) > copied
        data = model.SerializeToString()
        if len(data) > PROTOBUF_LIMIT:
            raise SaveError(f"the model's graph alone is {len(data)} bytes, over protobuf's 2 GB limit")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        saved = True
        created.clear()
        moved.clear()
        for aside, _ in displaced:
            _quietly(aside.unlink, missing_ok=True)
        displaced.clear()
    except OSError as e:
        raise SaveError(f"cannot write {target}: {e.strerror or e}") from e
    finally:
        _quietly(tmp.unlink, missing_ok=True)
        for path in created:  # only on failure: leave nothing half-done behind
            _quietly(path.unlink, missing_ok=True)
        for src, dst in moved:
            _quietly(os.replace, dst, src)
        for aside, dst in displaced:
            _quietly(os.replace, aside, dst)
        if not saved:
            for tensor, entries in undo:
                del tensor.external_data[:]
                tensor.external_data.extend(StringStringEntryProto(key=k, value=v) for k, v in entries)
            for folder in reversed(made_dirs):
                _quietly(folder.rmdir)
    return out_data_dir if (files or moved_out) else data_dir
