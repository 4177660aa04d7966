"""What a view page draws, as JSON-able data: per graph its nodes, edges, tensor types and initializer summaries;
for a diff, the union of both versions with each element's status.

Weights are never read: initializers are summarized by dtype, shape, byte count and (for external data) their
file; only tiny inline constants (at most `SMALL_VALUES` elements) show their values. Graphs are walked with an
explicit work list (no recursion): the main graph is graph 0, then model-local functions, then If/Loop/Scan
bodies as they are found. Types come from the recorded value_info plus onnx's shape inference on a copy of the
model without its large weights.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

from graphsurgeon.core.external_data import declared_nbytes, external_ref, is_external
from graphsurgeon.core.format import dtype_name, format_type
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.walk import node_subgraphs

SMALL_VALUES = 16  # inline tensors with at most this many elements show their values
STATUS = {"added": "a", "removed": "r", "changed": "c"}
_TEXT_LIMIT = 120
Container = GraphProto | FunctionProto


# -- summaries ----------------------------------------------------------------------------------------------
def _short(text: str, limit: int = _TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tensor_summary(tensor: TensorProto) -> dict[str, Any]:
    """dtype[shape], bytes, external file, and the values of a tiny inline tensor; never the weights."""
    summary: dict[str, Any] = {"t": f"{dtype_name(tensor.data_type)}[{', '.join(map(str, tensor.dims))}]"}
    if is_external(tensor):
        ref = external_ref(tensor)
        summary["x"] = ref.location
        summary["b"] = ref.length if ref.length is not None else declared_nbytes(tensor)
        return summary
    summary["b"] = declared_nbytes(tensor)
    count = int(np.prod(tensor.dims)) if tensor.dims else 1
    if count <= SMALL_VALUES and tensor.data_type not in (TensorProto.UNDEFINED,):
        try:
            values = numpy_helper.to_array(tensor)
            summary["v"] = _short(np.array2string(values, separator=", ", threshold=SMALL_VALUES))
        except (ValueError, TypeError, KeyError):
            pass
    return summary


def _attribute_text(attr: AttributeProto) -> str:
    if attr.ref_attr_name:
        return f"(ref {attr.ref_attr_name!r})"
    if attr.type == AttributeProto.GRAPH:
        return f"(subgraph, {len(attr.g.node)} nodes)"
    if attr.type == AttributeProto.GRAPHS:
        return f"({len(attr.graphs)} subgraphs)"
    if attr.type == AttributeProto.TENSOR:
        summary = tensor_summary(attr.t)
        return f"tensor {summary['t']}" + (f" = {summary['v']}" if "v" in summary else "")
    if attr.type == AttributeProto.SPARSE_TENSOR:
        return f"sparse tensor {dtype_name(attr.sparse_tensor.values.data_type)}{list(attr.sparse_tensor.dims)}"
    if attr.type in (AttributeProto.TENSORS, AttributeProto.SPARSE_TENSORS):
        return f"({len(attr.tensors) + len(attr.sparse_tensors)} tensors)"
    if attr.type == AttributeProto.TYPE_PROTO:
        return format_type(attr.tp)
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, list):
        value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return _short(repr(value) if isinstance(value, str) else str(value))


def group_path(node: NodeProto) -> str:
    """The name scope a node belongs to: ``encoder/layer.0`` for ``/encoder/layer.0/MatMul``, or the torch
    exporter's recorded module scopes; empty for a node outside any scope."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            parts = [str(s) for s in scopes if s]
            return "/".join(p.replace("/", "_") for p in parts)
    if node.name.startswith("/") and node.name.count("/") >= 2:
        return node.name[1:].rsplit("/", 1)[0]
    return ""


# -- types ----------------------------------------------------------------------------------------------------
def _types_of(container: Container, inferred: Container | None) -> dict[str, str]:
    types: dict[str, str] = {}
    for source in (inferred, container):
        if isinstance(source, GraphProto):
            for vi in (*source.input, *source.value_info, *source.output):
                if vi.type.WhichOneof("value") is not None:
                    types[vi.name] = format_type(vi.type)
    if isinstance(container, GraphProto):
        for tensor in container.initializer:
            types[tensor.name] = f"{dtype_name(tensor.data_type)}[{', '.join(map(str, tensor.dims))}]"
    return types


def inferred_model(model: ModelProto) -> ModelProto | None:
    """The model's types as onnx's shape inference sees them (large weights left out); None if it fails."""
    try:
        return infer_shapes(light_copy(model), strict_mode=False)
    except Exception:  # noqa: BLE001  -- a model inference cannot handle still gets a page, with recorded types
        return None


# -- building ---------------------------------------------------------------------------------------------------
@dataclass
class Item:
    """One node of a drawn graph: the node, its diff status, its former self when changed, and its twin in the
    shape-inferred copy (whose bodies carry inferred types)."""

    node: NodeProto
    status: str | None = None
    before: NodeProto | None = None
    details: list[str] = field(default_factory=list)
    twin: NodeProto | None = None


def items_of(container: Container, inferred: Container | None) -> list[Item]:
    """A container's nodes as unchanged items, each with its inferred twin."""
    twins = list(inferred.node) if inferred is not None else []
    nodes = list(container.node)
    if len(twins) != len(nodes):
        twins = []
    return [Item(node, twin=twins[i] if twins else None) for i, node in enumerate(nodes)]


@dataclass
class _Pending:
    gid: int
    container: Container
    inferred: Container | None
    kind: str
    title: str
    parent: list[int] | None


class GraphBuilder:
    """Collects the page's graphs: the main graph (or a diff's union), functions, and nested bodies."""

    def __init__(self, functions: Iterable[FunctionProto] = ()):
        self.graphs: list[dict[str, Any] | None] = [None]  # graph 0, the main graph, is set by the caller
        self.pending: list[_Pending] = []
        self.functions: dict[tuple[str, str], int] = {}
        for function in functions:
            key = (function.domain, function.name)
            if key not in self.functions:
                self.functions[key] = self._reserve(function, None, "function", f"function {function.name}", None)

    def _reserve(self, container: Container, inferred: Container | None, kind: str, title: str, parent) -> int:
        gid = len(self.graphs)
        self.graphs.append(None)
        self.pending.append(_Pending(gid, container, inferred, kind, title, parent))
        return gid

    def finish(self) -> list[dict[str, Any]]:
        """Build every reserved graph (bodies found while building reserve their own), in order."""
        while self.pending:
            job = self.pending.pop(0)
            self.graphs[job.gid] = self.entry(
                job.gid,
                job.container,
                job.kind,
                job.title,
                job.parent,
                items_of(job.container, job.inferred),
                types=_types_of(job.container, job.inferred),
            )
        return [g for g in self.graphs if g is not None]

    def entry(
        self,
        gid: int,
        container: Container,
        kind: str,
        title: str,
        parent: list[int] | None,
        items: Sequence[Item],
        *,
        types: dict[str, str],
        inputs: list[tuple[str, str | None]] | None = None,
        outputs: list[tuple[str, str | None]] | None = None,
        initializers: list[tuple[TensorProto, str | None]] | None = None,
        old_producers: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """One graph's nodes (graph inputs first, then ops, then graph outputs), edges, types and initializers.

        In a diff, removed items and former wiring (``Item.before``) are drawn from `old_producers`: tensor ->
        node index as the old version produced it; inputs, outputs and initializers carry their own status.
        """
        if initializers is None:
            initializers = [(t, None) for t in getattr(container, "initializer", ())]
        init_names = {t.name for t, _ in initializers}
        if inputs is None:
            inputs = [(_io_name(v), None) for v in container.input if _io_name(v) not in init_names]
        if outputs is None:
            outputs = [(_io_name(v), None) for v in container.output]
        nodes: list[dict[str, Any]] = []
        producers: dict[str, int] = {}
        for name, status in inputs:
            if status != "r":
                producers.setdefault(name, len(nodes))
            nodes.append(_compact({"k": "i", "n": name, "op": "input", "s": status}))
        first_op = len(nodes)
        for item in items:
            if item.status != "r":
                for out in item.node.output:
                    if out:
                        producers.setdefault(out, len(nodes))
            nodes.append(self._node_record(gid, len(nodes), item))
        _adopt_constants(nodes, first_op, producers)
        old = old_producers if old_producers is not None else producers
        edges: list[list[Any]] = []
        seen: set[tuple[int, int, str]] = set()

        def edge(source: int | None, target: int, tensor: str, status: str | None) -> None:
            if source is None or (source, target, tensor) in seen:
                return
            seen.add((source, target, tensor))
            edges.append([source, target, tensor] + ([status] if status else []))

        for offset, item in enumerate(items):
            target = first_op + offset
            status = item.status if item.status in ("a", "r") else None
            wired = old if item.status == "r" else producers
            new_inputs = list(item.node.input)
            old_inputs = list(item.before.input) if item.before is not None else new_inputs
            for i, tensor in enumerate(new_inputs):
                rewired = item.before is not None and (i >= len(old_inputs) or old_inputs[i] != tensor)
                if tensor:
                    edge(wired.get(tensor), target, tensor, "a" if rewired else status)
            for i, tensor in enumerate(old_inputs):
                if tensor and (i >= len(new_inputs) or new_inputs[i] != tensor):
                    edge(old.get(tensor), target, tensor, "r")
        for name, status in outputs:
            target = len(nodes)
            nodes.append(_compact({"k": "o", "n": name, "op": "output", "s": status}))
            edge((old if status == "r" else producers).get(name), target, name, status)
        used = {t for n in nodes for t in (*n.get("in", ()), *n.get("out", ()))} | {n["n"] for n in nodes}
        return {
            "id": gid,
            "kind": kind,
            "title": title,
            "parent": parent,
            "nodes": nodes,
            "edges": edges,
            "types": {name: t for name, t in types.items() if name in used},
            "inits": {t.name: _compact({**tensor_summary(t), "s": status}) for t, status in initializers},
        }

    def _node_record(self, gid: int, index: int, item: Item) -> dict[str, Any]:
        node = item.node
        record: dict[str, Any] = {"k": "n", "n": node.name, "op": node.op_type}
        if node.domain and node.domain != "ai.onnx":
            record["dom"] = node.domain
        record["in"] = list(node.input)
        record["out"] = list(node.output)
        if node.attribute:
            record["at"] = [[a.name, _attribute_text(a)] for a in node.attribute]
        scope = group_path(node)
        if scope:
            record["g"] = scope
        twin = item.twin if item.twin is not None and item.twin.op_type == node.op_type else None
        twin_bodies = [body for _, body in node_subgraphs(twin)] if twin is not None else []
        bodies = []
        for j, (attr_name, body) in enumerate(node_subgraphs(node)):
            inferred = twin_bodies[j] if j < len(twin_bodies) else None
            title = f"{node.name or node.op_type} · {attr_name}"
            bodies.append([attr_name, self._reserve(body, inferred, "body", title, [gid, index])])
        if bodies:
            record["sub"] = bodies
        function = self.functions.get((node.domain, node.op_type))
        if function is not None:
            record["fn"] = function
        if item.status:
            record["s"] = item.status
        if item.before is not None:
            record["was"] = {
                "in": list(item.before.input),
                "at": [[a.name, _attribute_text(a)] for a in item.before.attribute],
            }
        if item.details:
            record["dd"] = item.details
        return record


def single_graphs(model: ModelProto) -> list[dict[str, Any]]:
    """Every graph of one model, ready to draw."""
    inferred = inferred_model(model)
    inferred_graph = inferred.graph if inferred is not None else None
    builder = GraphBuilder(model.functions)
    graph = model.graph
    builder.graphs[0] = builder.entry(
        0,
        graph,
        "main",
        graph.name or "main graph",
        None,
        items_of(graph, inferred_graph),
        types=_types_of(graph, inferred_graph),
    )
    return builder.finish()


def _adopt_constants(nodes: list[dict[str, Any]], first_op: int, producers: dict[str, int]) -> None:
    """An unscoped node computed from constants alone (Constant, Identity of a weight) joins the scope of its
    first reader, so exporters' shared-weight nodes sit beside their use instead of in one long row."""
    first_reader: dict[str, int] = {}
    for index in range(first_op, len(nodes)):
        for tensor in nodes[index].get("in", ()):
            first_reader.setdefault(tensor, index)
    for index in range(first_op, len(nodes)):
        record = nodes[index]
        if "g" in record or any(t in producers for t in record["in"] if t):
            continue
        readers = [first_reader[t] for t in record["out"] if t in first_reader]
        if readers and "g" in nodes[min(readers)]:
            record["g"] = nodes[min(readers)]["g"]


def _io_name(value: Any) -> str:
    return value if isinstance(value, str) else value.name


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}
