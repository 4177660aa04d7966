"""An open model: the ModelProto (the source of truth), its indexes, its external-data folder, its change log;
loading, saving and the queries. The edits that keep all of it in step are :class:`~graphsurgeon.core.editor.Editor`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from onnx import (
    ModelProto,
    NodeProto,
    TensorProto,
    helper,
)

from graphsurgeon.core import io
from graphsurgeon.core.changes import ChangeLog
from graphsurgeon.core.external_data import (
    add_stand_in,
    drop_stand_in,
    read_tensor,
    stand_ins,
    validate_external_data,
)
from graphsurgeon.core.index import ModelIndex, Scope
from graphsurgeon.core.names import NameAllocator
from graphsurgeon.core.progress import SILENT, Progress
from graphsurgeon.core.select import require_one, select_nodes
from graphsurgeon.core.tempfiles import remove_stale, temp_name
from graphsurgeon.errors import GraphSurgeonError, ModelLoadError, RewriteError, SaveError, SelectorError

if TYPE_CHECKING:
    from graphsurgeon.core.batch_check import ShapeEdit

Source = str | os.PathLike[str] | bytes | ModelProto
DType = int | str | np.dtype[Any] | type


def _open_proto(
    source: Source, external_data_dir: str | os.PathLike[str] | None
) -> tuple[ModelProto, Path | None, Path | None]:
    data_dir = Path(external_data_dir) if external_data_dir is not None else None
    path = None
    if isinstance(source, ModelProto):
        io.check_is_onnx(source, "the given ModelProto")
        proto = source
    elif isinstance(source, bytes | bytearray | memoryview):
        proto = io.parse_model(bytes(source), "the given bytes")
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        proto = io.read_model_file(path)
        data_dir = data_dir if data_dir is not None else path.parent
    else:
        raise ModelLoadError(f"cannot load a model from {type(source).__name__}")
    if data_dir is not None and not data_dir.is_dir():
        raise ModelLoadError(f"external-data folder {data_dir} is not a directory")
    validate_external_data(proto, data_dir)
    return proto, path, data_dir


def tensor_dtype(dtype: DType) -> int:
    """An ONNX element type from a TensorProto enum, a name ("float", "int64") or a numpy dtype."""
    if isinstance(dtype, bool):  # an int to Python, but no element type
        raise GraphSurgeonError(f"unknown element type {dtype!r}")
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str) and hasattr(TensorProto, dtype.upper()):
        return int(getattr(TensorProto, dtype.upper()))
    try:
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    except (TypeError, KeyError, ValueError):
        raise GraphSurgeonError(f"unknown element type {dtype!r}") from None


_State = TypeVar("_State", bound="ModelState")


class ModelState:
    """A model open for editing: the ModelProto, its indexes, its external-data folder and its change log."""

    def __init__(self, proto: ModelProto, *, path: Path | None = None, external_data_dir: Path | None = None):
        self._proto = proto
        self.path = path
        self.external_data_dir = external_data_dir
        self.changes = ChangeLog()
        self.notes: list[str] = []  # why a verb changed nothing, or what it left alone
        # a new graph input -> how to read the value the original model had there (for --verify)
        self.interface_defaults: dict[str, Callable[[], np.ndarray]] = {}
        # a graph input or output renamed: original name -> new name (so --verify pairs them up)
        self.interface_renames: dict[str, str] = {}
        # the input dims a shape edit changed (set-shape, make-dynamic): verify checks a freed batch per slice
        self.shape_edit: ShapeEdit | None = None
        self.progress: Progress = SILENT  # long work reports here (the CLI draws it on stderr)
        self._index: ModelIndex | None = None
        self._quiet = 0
        self._unsaved_data: dict[Path, weakref.finalize] = {}
        # where rewrites write new data files until the save (None: the system's temporary folder); the CLI
        # points it at the output's folder, so the save renames them into place instead of copying
        self.scratch_dir: Path | None = None
        # the graph file the CLI's save will replace, if any: names of its data files are free for new ones
        self.replaced_target: Path | None = None

    @classmethod
    def open(cls: type[_State], source: Source, *, external_data_dir: str | os.PathLike[str] | None = None) -> _State:
        """Open a model from a path, serialized bytes, or a ModelProto (edited in place).

        Weights in external data are not read: their files are only checked (existence, bounds, and that
        they stay inside the model's folder). `external_data_dir` is where they live if not beside the model.

        Raises:
            ModelLoadError: not a readable ONNX model. ExternalDataError: bad external data references.
        """
        proto, path, data_dir = _open_proto(source, external_data_dir)
        return cls(proto, path=path, external_data_dir=data_dir)

    # -- state -------------------------------------------------------------------------------------------
    @property
    def proto(self) -> ModelProto:
        """The ModelProto itself. Edit it through the methods of this class, which keep the indexes valid."""
        return self._proto

    @property
    def index(self) -> ModelIndex:
        """Producer/consumer indexes over every scope; built on first use and kept valid by every edit."""
        if self._index is None:
            self._index = ModelIndex(self._proto)
        return self._index

    def _reindex(self) -> None:
        """After an edit that restructures scopes (subgraphs or functions come or go): rebuild lazily."""
        self._index = None

    def opset_version(self, domain: str = "") -> int | None:
        aliases = ("", "ai.onnx") if domain in ("", "ai.onnx") else (domain,)
        return next((o.version for o in self._proto.opset_import if o.domain in aliases), None)

    def record(self, action: str, kind: str, name: str = "", detail: str = "") -> None:
        """Append a change record (stamped with the running verb); silent inside :meth:`quietly`."""
        if not self._quiet:
            self.changes.record(action, kind, name, detail)

    def note(self, text: str) -> None:
        """Say why something was not done (shown in the summary, e.g. when nothing changed)."""
        if not self._quiet and text not in self.notes:
            self.notes.append(text)

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Edits inside record nothing: a verb that reports its work in its own terms."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    @contextlib.contextmanager
    def running(self, verb: str) -> Iterator[None]:
        previous, self.changes.verb = self.changes.verb, verb
        try:
            yield
        finally:
            self.changes.verb = previous

    # -- queries -----------------------------------------------------------------------------------------
    def find_nodes(self, selector: str | None = None, *, op: str | None = None) -> list[NodeProto]:
        """Nodes (every scope, model order) whose name or op type is `selector` or matches it as a glob;
        `op` keeps those of that op type. No selector: every node (of that op)."""
        if selector is None:
            found = [n for _, n in self.index.find_nodes()]
        else:
            found = [n for _, n in select_nodes(self.index, selector)]
        return [n for n in found if op is None or n.op_type == op]

    def node(self, selector: str) -> NodeProto:
        """The one node `selector` names (name, op type or glob). Raises SelectorError for none or several."""
        scope, node = require_one(select_nodes(self.index, selector), selector)
        return node

    def scope_of(self, node: NodeProto) -> Scope:
        scope = self.index.scope_of_node.get(id(node))
        if scope is None:
            raise SelectorError(f"node {node.name!r} ({node.op_type}) is not in this model")
        return scope

    def find_tensors(self, pattern: str = "*") -> list[str]:
        """Names of tensors of the main graph (inputs, initializers, node outputs) matching a glob."""
        main = self.index.main
        names = dict.fromkeys([*main.inputs, *main.initializers, *main.sparse_initializers, *main.producer])
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def producer(self, tensor: str, scope: Scope | None = None) -> NodeProto | None:
        """The node that computes `tensor` (None for graph inputs, initializers and unknown names)."""
        home = (scope or self.index.main).resolve(tensor)
        return home.producer.get(tensor) if home is not None else None

    def consumers(self, tensor: str, scope: Scope | None = None) -> list[NodeProto]:
        """Nodes of the scope that read `tensor`, directly or from inside their subgraphs."""
        return (scope or self.index.main).readers(tensor)

    @property
    def graph_inputs(self) -> list[str]:
        """The main graph's real inputs (not initializers listed as inputs, as IR < 4 models do)."""
        main = self.index.main
        return [n for n in main.inputs if n not in main.initializers]

    @property
    def graph_outputs(self) -> list[str]:
        return list(self.index.main.outputs)

    def tensor_value(self, name: str) -> np.ndarray:
        """The value of an initializer (or Constant node) of the main graph, reading only that tensor.

        Raises:
            RewriteError: no such constant, or its data cannot be read.
        """
        from graphsurgeon.core.constants import constant_tensor

        main = self.index.main
        tensor = main.initializers.get(name)
        if tensor is None:
            producer = main.producer.get(name)
            tensor = constant_tensor(producer, name) if producer is not None else None
        if tensor is None:
            raise RewriteError(f"{name!r} is not an initializer or Constant of the main graph")
        return read_tensor(tensor, self.external_data_dir)

    def names(self) -> NameAllocator:
        """A fresh-name allocator that knows every name used in the model."""
        return NameAllocator.for_model(self.index)

    # -- scratch data files ------------------------------------------------------------------------------
    def adopt_data_file(self, path: Path, folders: list[Path] | None = None) -> None:
        """Register a new data file a rewrite wrote into :attr:`external_data_dir` (e.g. folded weights).

        Until the model is saved it is scratch: a save to another folder moves it there (instead of copying),
        and it is deleted if the model is discarded unsaved. `folders` are the ones created for it (outermost
        first): they go with it when left empty.
        """
        resolved = Path(path).resolve()
        self._unsaved_data[resolved] = weakref.finalize(self, _discard_scratch, resolved, tuple(folders or ()))

    def scratch_data_file(self, wanted: str) -> tuple[str, Path]:
        """A new data file for a rewrite (folded weights): (its location, the path to write it at).

        The file is written in :attr:`scratch_dir` under a temporary name (core/tempfiles), never beside the
        input (whose folder may be read-only), and stands in for `location` in :attr:`external_data_dir`
        until the save moves it beside the output under that name; discarded unsaved, it is deleted.
        """
        data_dir = self.external_data_dir
        if data_dir is None:
            raise RewriteError("a new external data file needs the model's external-data folder")
        folder = self.scratch_dir if self.scratch_dir is not None else Path(tempfile.gettempdir())
        taken = stand_ins(data_dir)
        replaced = set()
        if self.replaced_target is not None and self.scratch_dir is not None and folder.resolve() != data_dir.resolve():
            replaced = io.data_of_replaced_model(self.replaced_target, folder)

        def free(name: str) -> bool:  # also in the output's folder: a save never overwrites another model's data
            if name in taken:
                return False
            return self.scratch_dir is None or not os.path.lexists(folder / name) or os.path.normpath(name) in replaced

        location = io.unused_location(self._proto, wanted, data_dir)
        stem, n = wanted.removesuffix(".data"), 0
        while not free(location):
            n += 1
            location = io.unused_location(self._proto, f"{stem}.{n}.data", data_dir)
        remove_stale(folder)
        path = (folder / temp_name(location.replace("/", "_"))).resolve()
        add_stand_in(data_dir, location, path)
        self._unsaved_data[path] = weakref.finalize(self, _discard_stand_in, path, data_dir, location)
        return location, path

    # -- saving ------------------------------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        in_place: bool = False,
        external_data: str | None = None,
        external_data_threshold: int | str = 1024,
    ) -> Path:
        """Write the model atomically and return where it went.

        Give `path`, or `in_place=True` to overwrite the file it was loaded from (then only the graph file is
        rewritten; external data stays where it is). Saving to another folder copies the external data files
        along (kernel-side). `external_data` names a new data file for inline initializers of at least
        `external_data_threshold` bytes (a size: ``1024``, ``"1KiB"``); a model over protobuf's 2 GB limit
        gets one automatically.

        Raises:
            SaveError: the target cannot be written, or is the input without `in_place`.
        """
        from graphsurgeon.core.units import parse_size

        threshold = parse_size(external_data_threshold, what="external_data_threshold")
        if in_place:
            if path is not None:
                raise SaveError("give either a path or in_place=True, not both")
            if self.path is None:
                raise SaveError("in_place=True needs a model loaded from a file")
            target = self.path
            out_data_dir = self.external_data_dir or target.parent
        else:
            if path is None:
                raise SaveError("no output path given (pass a path, or in_place=True)")
            target = Path(path)
            if self.path is not None and target.exists() and os.path.samefile(target, self.path):
                raise SaveError(f"{target} is the input model; pass in_place=True to overwrite it")
            out_data_dir = target.parent
        old_dir = self.external_data_dir.resolve() if self.external_data_dir is not None else None
        self.external_data_dir = io.write_model(
            self._proto,
            target,
            data_dir=self.external_data_dir,
            out_data_dir=out_data_dir,
            external_data=external_data,
            external_data_threshold=threshold,
            movable=set(self._unsaved_data),
        )
        new_dir = self.external_data_dir.resolve() if self.external_data_dir is not None else None
        for finalizer in self._unsaved_data.values():
            detached = finalizer.detach()
            if detached is not None and detached[1] is _discard_stand_in:  # moved in (or copied): gone here
                _discard_stand_in(*detached[2])
            elif detached is not None and new_dir != old_dir:  # moved along (or copied, across filesystems)
                _discard_scratch(*detached[2])  # drop what is left behind: the copied scratch, its empty folders
        self._unsaved_data.clear()
        self.path = target
        return target


def _discard_stand_in(path: Path, data_dir: Path, location: str) -> None:
    """Delete a scratch file standing in for `location` (if still there) and forget it."""
    drop_stand_in(data_dir, location)
    try:
        path.unlink()
    except OSError:
        pass


def _discard_scratch(path: Path, folders: tuple[Path, ...]) -> None:
    """Delete a scratch data file, then the folders made for it (innermost first) that are left empty."""
    for item, remove in ((path, Path.unlink), *((folder, Path.rmdir) for folder in reversed(folders))):
        try:
            remove(item)
        except OSError:
            pass


__all__ = ["DType", "ModelState", "Source", "tensor_dtype"]
