"""Counting what a model holds, from the graph alone (weights are never read): the numbers `inspect`
prints and the before/after summary of every writing verb compares."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from onnx import ModelProto

from graphsurgeon.core.constants import STANDARD_DOMAINS
from graphsurgeon.core.external_data import declared_nbytes, external_ref, is_external
from graphsurgeon.core.walk import model_graphs


@dataclass
class ModelStats:
    nodes_by_op: Counter[str] = field(default_factory=Counter)
    initializer_count: int = 0
    initializer_bytes: int = 0
    external_bytes: int = 0
    external_files: Counter[str] = field(default_factory=Counter)

    @property
    def node_count(self) -> int:
        return sum(self.nodes_by_op.values())


def op_label(domain: str, op_type: str) -> str:
    return op_type if domain in STANDARD_DOMAINS else f"{domain}::{op_type}"


def model_stats(proto: ModelProto) -> ModelStats:
    """Node counts by op (every graph and function body), initializer count and bytes, external files."""
    stats = ModelStats()
    for graph in model_graphs(proto):
        for node in graph.node:
            stats.nodes_by_op[op_label(node.domain, node.op_type)] += 1
        for tensor in graph.initializer:
            stats.initializer_count += 1
            size = declared_nbytes(tensor) or 0
            stats.initializer_bytes += size
            if is_external(tensor):
                stats.external_bytes += size
                stats.external_files[external_ref(tensor).location] += size
    for function in proto.functions:
        for node in function.node:
            stats.nodes_by_op[op_label(node.domain, node.op_type)] += 1
    return stats
