"""inspect: what a model holds, read from the graph alone (weights are never read)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from onnx import ValueInfoProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.format import format_type
from graphsurgeon.core.stats import model_stats
from graphsurgeon.core.units import format_bytes
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs, node_subgraphs
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.verbs._inspect_listing import SHOW_CHOICES, Listing, listing


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
    shown: Listing | None = None  # what `show` asked for: nodes, tensors or initializers, one row each

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.shown is not None:
            return "\n".join(self.shown.lines())
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items())
        lines = [f"IR version {self.ir_version}; opsets: {opsets}; producer: {self.producer or '-'}"]
        lines.append(f"inputs ({len(self.inputs)}):")
        lines += [f"  {v.name}: {v.type}" for v in self.inputs]
        lines.append(f"outputs ({len(self.outputs)}):")
        lines += [f"  {v.name}: {v.type}" for v in self.outputs]
        ops = ", ".join(f"{op} {n}" for op, n in self.nodes_by_op.items())
        lines.append(f"nodes: {self.node_count} in all graphs ({ops})")
        lines.append(
            f"initializers: {self.initializer_count}, {format_bytes(self.initializer_bytes)} "
            f"({format_bytes(self.external_bytes)} in external data)"
        )
        for location, size in self.external_files.items():
            lines.append(f"  external data file {location}: {format_bytes(size)} referenced")
        lines.append(f"functions ({len(self.functions)}): {', '.join(self.functions) or '-'}")
        lines.append(f"subgraphs ({len(self.subgraphs)}): {', '.join(self.subgraphs[:20]) or '-'}")
        if self.metadata:
            lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in self.metadata.items()))
        return "\n".join(lines)


def _summaries(values: list[ValueInfoProto]) -> list[ValueSummary]:
    return [ValueSummary(v.name, format_type(v.type)) for v in values]


@verb(writes=False)
def inspect(
    ctx: Editor,
    *,
    show: Annotated[str | None, Opt("list one row per node, tensor or initializer", choices=SHOW_CHOICES)] = None,
    op: Annotated[
        str | None, Opt("with `show`: only nodes matching SEL (name, op type or glob), or their tensors", metavar="SEL")
    ] = None,
) -> ModelReport:
    """Summarize inputs, outputs, opsets, ops, weights, functions and subgraphs (weights are not read).

    `show` lists the names to pick for rename, add-outputs, extract and the like: every node (all scopes,
    with op, inputs and outputs), every main-graph tensor (type from shape inference, producer, readers) or
    every initializer (type, size, where its data is); `op` keeps the matching nodes, or the tensors they
    read or write.
    """
    if op is not None and show is None:
        raise GraphSurgeonError("`op` filters a listing: give `show` too (nodes, tensors or initializers)")
    if show is not None and show not in SHOW_CHOICES:
        raise GraphSurgeonError(f"`show` is one of {', '.join(SHOW_CHOICES)}, not {show!r}")
    proto = ctx.proto
    stats = model_stats(proto)
    subgraphs = [
        f"{node.op_type} {node.name!r}.{attr}"
        for graph in model_graphs(proto)
        for node in graph.node
        if node.attribute
        for attr, _ in node_subgraphs(node)
    ]
    initializer_names = {t.name for t in proto.graph.initializer}
    return ModelReport(
        ir_version=proto.ir_version,
        producer=" ".join(p for p in (proto.producer_name, proto.producer_version) if p),
        opsets={o.domain: o.version for o in proto.opset_import},
        inputs=_summaries([v for v in proto.graph.input if v.name not in initializer_names]),
        outputs=_summaries(list(proto.graph.output)),
        node_count=stats.node_count,
        nodes_by_op=dict(stats.nodes_by_op.most_common()),
        initializer_count=stats.initializer_count,
        initializer_bytes=stats.initializer_bytes,
        external_bytes=stats.external_bytes,
        external_files=dict(stats.external_files),
        functions=[f"{f.domain}::{f.name} ({len(f.node)} nodes)" for f in proto.functions],
        subgraphs=subgraphs,
        metadata={p.key: p.value for p in proto.metadata_props},
        shown=listing(ctx, show, op) if show is not None else None,
    )
