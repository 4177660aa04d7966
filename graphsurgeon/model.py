"""The model editor: a ModelProto (the source of truth), lazy indexes over it, and every verb as a method."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from onnx import ModelProto

from graphsurgeon import _io
from graphsurgeon._external_data import read_tensor, validate_external_data
from graphsurgeon._index import ModelIndex
from graphsurgeon.errors import ModelLoadError, SaveError

if TYPE_CHECKING:
    from graphsurgeon.passes.check import CheckReport
    from graphsurgeon.passes.inspect import ModelReport

Source = str | os.PathLike | bytes | ModelProto


def load(source: Source, *, external_data_dir: str | os.PathLike | None = None) -> Model:
    """Open a model for editing, from a path, serialized bytes, or a ModelProto (edited in place).

    Weights in external data are not read: their files are only checked (existence, bounds, and that they
    stay inside the model's folder). `external_data_dir` is where they live if not beside the model.
    """
    data_dir = Path(external_data_dir) if external_data_dir is not None else None
    path = None
    if isinstance(source, ModelProto):
        _io.check_is_onnx(source, "the given ModelProto")
        proto = source
    elif isinstance(source, bytes | bytearray | memoryview):
        proto = _io.parse_model(bytes(source), "the given bytes")
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        proto = _io.read_model_file(path)
        data_dir = data_dir if data_dir is not None else path.parent
    else:
        raise ModelLoadError(f"cannot load a model from {type(source).__name__}")
    if data_dir is not None and not data_dir.is_dir():
        raise ModelLoadError(f"external-data folder {data_dir} is not a directory")
    validate_external_data(proto, data_dir)
    return Model(proto, path=path, external_data_dir=data_dir)


class Model:
    """An ONNX model being edited.

    Verbs are methods named as the CLI verbs (snake_case) taking the same options as keyword arguments;
    those that rewrite return the model, so calls chain:
    ``load("srcnn.onnx").promote_input(node="Resize", attr="scales").save("out.onnx")``.
    What each rewrite changed is appended to :attr:`changes`.
    """

    def __init__(self, proto: ModelProto, *, path: Path | None = None, external_data_dir: Path | None = None):
        self._proto = proto
        self.path = path
        self.external_data_dir = external_data_dir
        self.changes: list[str] = []
        self._index: ModelIndex | None = None
        self._unsaved_data: dict[Path, weakref.finalize] = {}

    # -- state -------------------------------------------------------------------------------------------
    @property
    def proto(self) -> ModelProto:
        """The ModelProto itself. If you mutate it directly, call :meth:`invalidate` before the next verb."""
        return self._proto

    @property
    def index(self) -> ModelIndex:
        """Producer/consumer indexes over every scope; built on first use, kept valid by the rewrites."""
        if self._index is None:
            self._index = ModelIndex(self._proto)
        return self._index

    def invalidate(self) -> None:
        """Forget the indexes (after a direct edit of :attr:`proto`, or a bulk rewrite)."""
        self._index = None

    def note(self, change: str) -> None:
        self.changes.append(change)

    def opset_version(self, domain: str = "") -> int | None:
        aliases = ("", "ai.onnx") if domain in ("", "ai.onnx") else (domain,)
        return next((o.version for o in self._proto.opset_import if o.domain in aliases), None)

    def tensor_value(self, name: str) -> np.ndarray:
        """The value of an initializer of the main graph, reading only that tensor from disk."""
        tensor = self.index.main.initializers.get(name)
        if tensor is None:
            raise KeyError(f"no initializer named {name!r}")
        return read_tensor(tensor, self.external_data_dir)

    def adopt_data_file(self, path: Path) -> None:
        """Register a new data file a rewrite wrote into :attr:`external_data_dir` (e.g. folded weights).

        Until the model is saved it is scratch: a save to another folder moves it there (instead of copying),
        and it is deleted if the model is discarded unsaved.
        """
        path = Path(path).resolve()
        self._unsaved_data[path] = weakref.finalize(self, _unlink_quietly, path)

    # -- saving ------------------------------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike | None = None,
        *,
        in_place: bool = False,
        external_data: str | None = None,
        external_data_threshold: int = 1024,
    ) -> Path:
        """Write the model atomically and return where it went.

        Give `path`, or `in_place=True` to overwrite the file it was loaded from (then only the graph file is
        rewritten; external data stays where it is). Saving to another folder copies the external data files
        along (kernel-side). `external_data` names a new data file for inline initializers of at least
        `external_data_threshold` bytes; a model over protobuf's 2 GB limit gets one automatically.
        """
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
                raise SaveError(f"{target} is the input model; pass in_place=True (--in-place) to overwrite it")
            out_data_dir = target.parent
        self.external_data_dir = _io.write_model(
            self._proto,
            target,
            data_dir=self.external_data_dir,
            out_data_dir=out_data_dir,
            external_data=external_data,
            external_data_threshold=external_data_threshold,
            movable=set(self._unsaved_data),
        )
        new_dir = self.external_data_dir.resolve() if self.external_data_dir is not None else None
        for scratch, finalizer in self._unsaved_data.items():
            finalizer.detach()
            if new_dir is not None and scratch.parent != new_dir:
                _unlink_quietly(scratch)  # copied rather than moved (another filesystem): drop the scratch
        self._unsaved_data.clear()
        self.path = target
        return target

    # -- verbs -------------------------------------------------------------------------------------------
    def promote_input(
        self,
        *,
        node: str,
        attr: str,
        name: str | None = None,
        keep_default: bool = False,
        all: bool = False,  # noqa: A002 - mirrors the CLI's --all
    ) -> Model:
        """Turn a node's constant operand (`attr`, named as in the op's schema) into a graph input."""
        from graphsurgeon.passes.promote_input import promote_input

        promote_input(self, node=node, attr=attr, name=name, keep_default=keep_default, all=all)
        return self

    def cleanup(self) -> Model:
        """Remove nodes, initializers, value_info, functions and opset imports that nothing uses."""
        from graphsurgeon.passes.cleanup import cleanup

        cleanup(self)
        return self

    def toposort(self) -> Model:
        """Order nodes so every tensor is produced before it is read (stable, linear, subgraph-aware)."""
        from graphsurgeon.passes.toposort import toposort

        toposort(self)
        return self

    def fold_constants(
        self,
        *,
        size_limit: int = 1 << 20,
        exclude: list[str] | tuple[str, ...] = (),
        strict: bool = False,
        fold_qdq: bool = False,
    ) -> Model:
        """Evaluate every node whose inputs are all known and replace its outputs with initializers."""
        from graphsurgeon.passes.fold_constants import fold_constants

        fold_constants(self, size_limit=size_limit, exclude=exclude, strict=strict, fold_qdq=fold_qdq)
        return self

    def simplify(self, *, input_shape: list[str] | tuple[str, ...] = (), size_limit: int = 1 << 20) -> Model:
        """Shape inference, constant folding, dead code, no-op elimination and CSE, repeated to a fixed point."""
        from graphsurgeon.passes.simplify import simplify

        simplify(self, input_shape=input_shape, size_limit=size_limit)
        return self

    def inspect(self) -> ModelReport:
        """A summary: inputs/outputs, opsets, IR version, op counts, initializers, external data, functions."""
        from graphsurgeon.passes.inspect import inspect

        return inspect(self)

    def check(self) -> CheckReport:
        """onnx's full checker plus an onnxruntime session load."""
        from graphsurgeon.passes.check import check

        return check(self)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
