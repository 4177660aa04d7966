"""diff: a structural diff of two models (A = the model the verb runs on, B = `other`).

Compared: graph inputs and outputs (by name, with their types), opset imports, nodes of the main graph
(matched by name when names are unique and non-empty, else by op type and outputs; compared on op type,
domain, attributes and wiring), initializers (dtype, shape and content, read in windows so big weights are
never held whole), sparse initializers, model-local functions, and model-level metadata (IR version,
producer, doc string, metadata_props).

Not walked: subgraphs (If/Loop/Scan bodies) and function bodies are compared as a whole and reported as
"subgraph changed" / "body changed", without detail.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from io import BufferedReader
from pathlib import Path
from typing import Annotated, Any

from onnx import AttributeProto, FunctionProto, NodeProto, TensorProto, helper, numpy_helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import external_ref, is_external, resolve_location
from graphsurgeon.core.format import dtype_name, format_type
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import ExternalDataError, ModelLoadError

SECTIONS = ("input", "output", "opset", "node", "initializer", "function", "metadata")
WINDOW = 8 << 20  # bytes compared at a time, per side
_SIGNS = {"added": "+", "removed": "-", "changed": "~"}
_MODEL_FIELDS = ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string")


@dataclass(frozen=True)
class Difference:
    """One difference: `section` (input, output, opset, node, ...), `action` (added, removed, changed)."""

    section: str
    action: str
    name: str
    detail: str = ""

    def __str__(self) -> str:
        head = f"{_SIGNS[self.action]} {self.section} {self.name!r}"
        if not self.detail:
            return head
        return f"{head}: {self.detail}" if self.action == "changed" else f"{head} {self.detail}"


@dataclass
class DiffReport:
    """What differs between A and B, in section order then model order; `exit_code` is 1 when anything does."""

    a: str
    b: str
    differences: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences

    @property
    def exit_code(self) -> int:
        return 0 if self.same else 1

    def counts(self) -> dict[str, int]:
        return {action: sum(d.action == action for d in self.differences) for action in _SIGNS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same": self.same,
            "counts": self.counts(),
            "differences": [asdict(d) for d in self.differences],
        }

    def __str__(self) -> str:
        if self.same:
            return f"no structural differences between {self.a} and {self.b}"
        counts = ", ".join(f"{n} {action}" for action, n in self.counts().items() if n)
        return "\n".join([*(str(d) for d in self.differences), f"{len(self.differences)} difference(s): {counts}"])


class _Collector:
    def __init__(self) -> None:
        self.found: list[Difference] = []

    def add(self, section: str, action: str, name: str, detail: str = "") -> None:
        self.found.append(Difference(section, action, name, detail))

    def keyed(self, section: str, a: dict[str, Any], b: dict[str, Any], describe, compare) -> None:
        """Removed and changed entries in A's order, then added ones in B's order."""
        for key, value in a.items():
            if key not in b:
                self.add(section, "removed", key, describe(value))
            else:
                for detail in compare(value, b[key]):
                    self.add(section, "changed", key, detail)
        for key, value in b.items():
            if key not in a:
                self.add(section, "added", key, describe(value))


# -- values -----------------------------------------------------------------------------------------------
def _short(value: Any, limit: int = 60) -> str:
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tensor_type(tensor: TensorProto) -> str:
    return f"{dtype_name(tensor.data_type)}[{', '.join(map(str, tensor.dims))}]"


def _serialized(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


# -- nodes --------------------------------------------------------------------------------------------------
def _node_label(node: NodeProto) -> str:
    return node.name or f"{node.op_type} -> {', '.join(node.output)}"


def _nodes_by_key(nodes: Iterable[NodeProto]) -> dict[str, NodeProto]:
    """Unique non-empty names are the key; other nodes are keyed by op type and outputs."""
    nodes = list(nodes)
    names: dict[str, int] = {}
    for node in nodes:
        names[node.name] = names.get(node.name, 0) + 1
    keyed: dict[str, NodeProto] = {}
    for node in nodes:
        if node.name and names[node.name] == 1:
            keyed[node.name] = node
        else:
            keyed.setdefault(f"{node.op_type} -> {', '.join(node.output)}", node)
    return keyed


def node_keys(nodes: Iterable[NodeProto]) -> list[tuple[str, str]]:
    """Per node, in order: the key diff matches it by (as `_nodes_by_key`) and the label diff reports it as."""
    nodes = list(nodes)
    names: dict[str, int] = {}
    for node in nodes:
        names[node.name] = names.get(node.name, 0) + 1
    return [
        (node.name if node.name and names[node.name] == 1 else f"{node.op_type} -> {', '.join(node.output)}",)
        + (_node_label(node),)
        for node in nodes
    ]


def _attribute_value(attr: AttributeProto) -> str:
    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        return "(subgraph)"
    if attr.type in (AttributeProto.TENSOR, AttributeProto.SPARSE_TENSOR):
        tensor = attr.t if attr.type == AttributeProto.TENSOR else attr.sparse_tensor.values
        return f"(tensor {_tensor_type(tensor)})"
    if attr.ref_attr_name:
        return f"(ref {attr.ref_attr_name!r})"
    return _short(helper.get_attribute_value(attr))


def _attribute_changes(a: NodeProto, b: NodeProto) -> Iterator[str]:
    attrs_a = {attr.name: attr for attr in a.attribute}
    attrs_b = {attr.name: attr for attr in b.attribute}
    for name, attr in attrs_a.items():
        other = attrs_b.get(name)
        if other is None:
            yield f"attribute {name!r} removed ({_attribute_value(attr)})"
        elif _serialized(attr) != _serialized(other):
            if AttributeProto.GRAPH in (attr.type, other.type) or AttributeProto.GRAPHS in (attr.type, other.type):
                yield f"attribute {name!r}: subgraph changed"
            elif attr.type in (AttributeProto.TENSOR, AttributeProto.SPARSE_TENSOR) and attr.type == other.type:
                yield f"attribute {name!r}: tensor changed {_attribute_value(attr)} -> {_attribute_value(other)}"
            else:
                yield f"attribute {name!r} {_attribute_value(attr)} -> {_attribute_value(other)}"
    for name, attr in attrs_b.items():
        if name not in attrs_a:
            yield f"attribute {name!r} added ({_attribute_value(attr)})"


def _wiring_changes(kind: str, a: list[str], b: list[str]) -> Iterator[str]:
    for i in range(max(len(a), len(b))):
        old = a[i] if i < len(a) else None
        new = b[i] if i < len(b) else None
        if old != new:
            yield f"{kind} {i} {'(none)' if old is None else repr(old)} -> {'(none)' if new is None else repr(new)}"


def _node_changes(a: NodeProto, b: NodeProto) -> Iterator[str]:
    if a.op_type != b.op_type:
        yield f"op_type {a.op_type} -> {b.op_type}"
    if a.domain != b.domain:
        yield f"domain {a.domain!r} -> {b.domain!r}"
    yield from _attribute_changes(a, b)
    yield from _wiring_changes("input", list(a.input), list(b.input))
    yield from _wiring_changes("output", list(a.output), list(b.output))


# -- initializer content ------------------------------------------------------------------------------------
class _Bytes:
    """A tensor's bytes, read `WINDOW` bytes at a time: a range of an external data file, or inline data."""

    def __init__(self, tensor: TensorProto, data_dir: Path | None):
        self.file: BufferedReader | None = None
        self.inline: memoryview | None = None
        self.where: tuple[Path, int, int] | None = None
        if is_external(tensor):
            if data_dir is None:
                raise ExternalDataError(f"tensor {tensor.name!r} is external, but no external-data folder is known")
            ref = external_ref(tensor)
            path = resolve_location(ref.location, data_dir, tensor.name)
            length = ref.length if ref.length is not None else path.stat().st_size - ref.offset
            self.where, self.size = (path, ref.offset, length), length
        else:
            data = tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()
            self.inline, self.size = memoryview(data), len(data)
        self.position = 0

    def __enter__(self) -> _Bytes:
        if self.where is not None:
            self.file = open(self.where[0], "rb")  # closed by __exit__
            self.file.seek(self.where[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()

    def read(self, buffer: bytearray) -> memoryview:
        """The next window (at most len(buffer) bytes); empty at the end."""
        n = min(len(buffer), self.size - self.position)
        start, self.position = self.position, self.position + n
        if self.inline is not None:
            return self.inline[start : start + n]
        view = memoryview(buffer)[:n]
        assert self.file is not None and self.where is not None  # a file is opened only for an external range
        got = self.file.readinto(view)
        if got != n:
            raise ExternalDataError(f"external data file {self.where[0]} ended early")
        return view


def _same_content(a: TensorProto, a_dir: Path | None, b: TensorProto, b_dir: Path | None) -> bool:
    if a.data_type == TensorProto.STRING:
        return list(a.string_data) == list(b.string_data)
    left, right = _Bytes(a, a_dir), _Bytes(b, b_dir)
    if left.size != right.size:
        return False
    if left.where and right.where and left.where[1:] == right.where[1:] and _same_file(left.where[0], right.where[0]):
        return True  # the very same bytes on disk
    window = min(WINDOW, left.size)
    buffers = bytearray(window), bytearray(window)
    with left, right:
        while True:
            chunk_a, chunk_b = left.read(buffers[0]), right.read(buffers[1])
            if not chunk_a:
                return True
            if chunk_a != chunk_b:
                return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _initializer_changes(a: TensorProto, a_dir: Path | None, b: TensorProto, b_dir: Path | None) -> Iterator[str]:
    if a.data_type != b.data_type:
        yield f"dtype {dtype_name(a.data_type)} -> {dtype_name(b.data_type)}"
    elif list(a.dims) != list(b.dims):
        yield f"shape {list(a.dims)} -> {list(b.dims)}"
    elif not _same_content(a, a_dir, b, b_dir):
        yield f"content differs ({_tensor_type(a)})"


# -- functions and metadata ---------------------------------------------------------------------------------
def _function_key(f: FunctionProto) -> str:
    overload = getattr(f, "overload", "")
    return f"{f.domain}::{f.name}" + (f"::{overload}" if overload else "")


def _function_changes(a: FunctionProto, b: FunctionProto) -> Iterator[str]:
    if _serialized(a) == _serialized(b):
        return
    parts = ("input", "output", "attribute", "attribute_proto", "opset_import", "node", "value_info", "doc_string")
    changed = [p for p in parts if hasattr(a, p) and _field_bytes(a, p) != _field_bytes(b, p)]
    others = [p for p in changed if p != "node"]
    if "node" in changed:
        yield "body changed" + (f" (and {', '.join(others)})" if others else "")
    else:
        yield f"{', '.join(others) or 'definition'} changed"


def _field_bytes(message: Any, name: str) -> Any:
    value = getattr(message, name)
    if isinstance(value, str | bytes | int):
        return value
    return [_serialized(v) if hasattr(v, "SerializeToString") else v for v in value]


# -- the verb -----------------------------------------------------------------------------------------------
def _open_other(other: Any) -> Editor:
    if isinstance(other, Editor):
        return other
    if isinstance(other, str | os.PathLike):
        return Editor.open(other)
    raise ModelLoadError(f"diff compares with a model path or a loaded model, not {type(other).__name__}")


def _label(editor: Editor, fallback: str) -> str:
    return str(editor.path) if editor.path is not None else fallback


@verb(writes=False)
def diff(
    ctx: Editor,
    *,
    other: Annotated[str, Opt("the model to compare with", metavar="B", positional=True)],
) -> DiffReport:
    """Show what differs between two models: inputs, outputs, opsets, nodes, initializers, functions, metadata.

    Nodes of the main graph are compared one by one (subgraphs and function bodies as a whole); weights are
    compared in windows, straight from their data files. Exit code 1 when the models differ, as diff(1).
    From Python, `other` may also be a loaded model.
    """
    b_model = _open_other(other)
    a, b = ctx.proto, b_model.proto
    out = _Collector()

    def value_infos(editor: Editor, values) -> dict[str, Any]:
        skip = {t.name for t in editor.proto.graph.initializer}
        return {v.name: v for v in values if v.name not in skip}

    def type_changes(x, y) -> Iterator[str]:
        if _serialized(x.type) != _serialized(y.type):
            yield f"type {format_type(x.type)} -> {format_type(y.type)}"

    def value_type(v) -> str:
        return format_type(v.type)

    out.keyed("input", value_infos(ctx, a.graph.input), value_infos(b_model, b.graph.input), value_type, type_changes)
    outputs_a, outputs_b = {v.name: v for v in a.graph.output}, {v.name: v for v in b.graph.output}
    out.keyed("output", outputs_a, outputs_b, value_type, type_changes)
    out.keyed(
        "opset",
        {o.domain or "ai.onnx": o.version for o in a.opset_import},
        {o.domain or "ai.onnx": o.version for o in b.opset_import},
        lambda version: f"version {version}",
        lambda x, y: [f"version {x} -> {y}"] if x != y else [],
    )
    nodes_a, nodes_b = _nodes_by_key(a.graph.node), _nodes_by_key(b.graph.node)
    for key, node in nodes_a.items():
        if key not in nodes_b:
            out.add("node", "removed", _node_label(node), f"({node.op_type})")
        else:
            for detail in _node_changes(node, nodes_b[key]):
                out.add("node", "changed", _node_label(node), detail)
    for key, node in nodes_b.items():
        if key not in nodes_a:
            out.add("node", "added", _node_label(node), f"({node.op_type})")
    out.keyed(
        "initializer",
        {t.name: t for t in a.graph.initializer},
        {t.name: t for t in b.graph.initializer},
        _tensor_type,
        lambda x, y: _initializer_changes(x, ctx.external_data_dir, y, b_model.external_data_dir),
    )
    out.keyed(
        "initializer",
        {s.values.name: s for s in a.graph.sparse_initializer},
        {s.values.name: s for s in b.graph.sparse_initializer},
        lambda s: f"sparse {dtype_name(s.values.data_type)}{list(s.dims)}",
        lambda x, y: ["sparse tensor changed"] if _serialized(x) != _serialized(y) else [],
    )
    out.keyed(
        "function",
        {_function_key(f): f for f in a.functions},
        {_function_key(f): f for f in b.functions},
        lambda f: f"({len(f.node)} nodes)",
        _function_changes,
    )
    for name in _MODEL_FIELDS:
        old, new = getattr(a, name), getattr(b, name)
        if old != new:
            out.add("metadata", "changed", name, f"{_short(old)} -> {_short(new)}")
    out.keyed(
        "metadata",
        {p.key: p.value for p in a.metadata_props},
        {p.key: p.value for p in b.metadata_props},
        _short,
        lambda x, y: [f"{_short(x)} -> {_short(y)}"] if x != y else [],
    )
    order = {section: i for i, section in enumerate(SECTIONS)}
    found = sorted(out.found, key=lambda d: order[d.section])  # stable: model order within a section
    return DiffReport(_label(ctx, "A"), _label(b_model, str(other) if not isinstance(other, Editor) else "B"), found)
