"""inspect: what a model holds, read from the graph alone (weights are never read)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from onnx import TypeProto, ValueInfoProto, helper

from graphsurgeon._external_data import declared_nbytes, external_ref, is_external
from graphsurgeon._walk import model_graphs, node_subgraphs
from graphsurgeon.model import Model


@dataclass
class ValueSummary:
    name: str
    type: str


@dataclass
class ModelReport:
    """The summary `inspect` prints; `to_dict()` gives it as plain data (the CLI's --json)."""

    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[ValueSummary]
    outputs: list[ValueSummary]
    node_count: int
    nodes_by_op: dict[str, int]
    initializer_count: int
    initializer_bytes: int
    external_bytes: int
    external_files: dict[str, int]
    functions: list[str]
    subgraphs: list[str]
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items())
        lines = [f"IR version {self.ir_version}; opsets: {opsets}; producer: {self.producer or '-'}"]
        lines.append(f"inputs ({len(self.inputs)}):")
        lines += [f"  {v.name}: {v.type}" for v in self.inputs]
        lines.append(f"outputs ({len(self.outputs)}):")
        lines += [f"  {v.name}: {v.type}" for v in self.outputs]
        ops = ", ".join(f"{op} {n}" for op, n in self.nodes_by_op.items())
        lines.append(f"nodes: {self.node_count} in all graphs ({ops})")
        lines.append(
            f"initializers: {self.initializer_count}, {_size(self.initializer_bytes)} "
            f"({_size(self.external_bytes)} in external data)"
        )
        for location, size in self.external_files.items():
            lines.append(f"  external data file {location}: {_size(size)} referenced")
        lines.append(f"functions ({len(self.functions)}): {', '.join(self.functions) or '-'}")
        lines.append(f"subgraphs ({len(self.subgraphs)}): {', '.join(self.subgraphs[:20]) or '-'}")
        if self.metadata:
            lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in self.metadata.items()))
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_type(type_proto: TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type" or kind == "sparse_tensor_type":
        t = getattr(type_proto, kind)
        dtype = helper.tensor_dtype_to_string(t.elem_type).removeprefix("TensorProto.").lower()
        if not t.HasField("shape"):
            return f"{dtype}[unknown rank]"
        dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        return f"{dtype}[{', '.join(dims)}]"
    if kind in ("sequence_type", "optional_type"):
        return f"{kind.removesuffix('_type')}<{format_type(getattr(type_proto, kind).elem_type)}>"
    if kind == "map_type":
        key = helper.tensor_dtype_to_string(type_proto.map_type.key_type).removeprefix("TensorProto.").lower()
        return f"map<{key}, {format_type(type_proto.map_type.value_type)}>"
    return "unknown type"


def _summaries(values: list[ValueInfoProto]) -> list[ValueSummary]:
    return [ValueSummary(v.name, format_type(v.type)) for v in values]


def inspect(model: Model) -> ModelReport:
    proto = model.proto
    ops: Counter[str] = Counter()
    node_count = 0
    subgraphs: list[str] = []
    init_count = init_bytes = ext_bytes = 0
    external_files: Counter[str] = Counter()
    for graph in model_graphs(proto):
        node_count += len(graph.node)
        for node in graph.node:
            ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"] += 1
            subgraphs += [f"{node.op_type} {node.name!r}.{attr}" for attr, _ in node_subgraphs(node)]
        for tensor in graph.initializer:
            init_count += 1
            size = declared_nbytes(tensor) or 0
            init_bytes += size
            if is_external(tensor):
                ext_bytes += size
                external_files[external_ref(tensor).location] += size
    for function in proto.functions:
        node_count += len(function.node)
        for node in function.node:
            ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"] += 1
    initializer_names = {t.name for t in proto.graph.initializer}
    return ModelReport(
        ir_version=proto.ir_version,
        producer=" ".join(p for p in (proto.producer_name, proto.producer_version) if p),
        opsets={o.domain: o.version for o in proto.opset_import},
        inputs=_summaries([v for v in proto.graph.input if v.name not in initializer_names]),
        outputs=_summaries(list(proto.graph.output)),
        node_count=node_count,
        nodes_by_op=dict(ops.most_common()),
        initializer_count=init_count,
        initializer_bytes=init_bytes,
        external_bytes=ext_bytes,
        external_files=dict(external_files),
        functions=[f"{f.domain}::{f.name} ({len(f.node)} nodes)" for f in proto.functions],
        subgraphs=subgraphs,
        metadata={p.key: p.value for p in proto.metadata_props},
    )
