"""Topological order of a scope: a stable, linear, iterative sort, and a linear check that skips it when the
stored order is already valid. Outer-scope reads from a node's subgraphs count as inputs of that node."""

from __future__ import annotations

from collections.abc import Iterator

from onnx import NodeProto

from graphsurgeon.core.index import Scope
from graphsurgeon.errors import GraphStructureError


def _dependencies(scope: Scope, node: NodeProto) -> Iterator[NodeProto]:
    for name in node.input:
        producer = scope.producer.get(name) if name else None
        if producer is not None:
            yield producer
    for name in sorted(scope.implicit_inputs(node)):
        producer = scope.producer.get(name)
        if producer is not None:
            yield producer


def sorted_nodes(scope: Scope) -> list[NodeProto]:
    """The scope's nodes in a valid order, as close to the current one as a depth-first emission keeps."""
    done: set[int] = set()
    active: set[int] = set()
    order: list[NodeProto] = []
    for root in scope.nodes:
        if id(root) in done:
            continue
        stack: list[tuple[NodeProto, Iterator[NodeProto]]] = [(root, _dependencies(scope, root))]
        active.add(id(root))
        while stack:
            node, pending = stack[-1]
            for dep in pending:
                if id(dep) in done:
                    continue
                if id(dep) in active:
                    _raise_cycle(scope, stack, dep)
                active.add(id(dep))
                stack.append((dep, _dependencies(scope, dep)))
                break
            else:
                stack.pop()
                active.discard(id(node))
                done.add(id(node))
                order.append(node)
    return order


def _raise_cycle(scope: Scope, stack: list[tuple[NodeProto, Iterator[NodeProto]]], dep: NodeProto) -> None:
    path = [node for node, _ in stack]
    start = next(i for i, node in enumerate(path) if node is dep)
    cycle = path[start:]
    shown = " -> ".join(f"{n.name or '<unnamed>'} ({n.op_type})" for n in cycle[:12])
    if len(cycle) > 12:
        shown += f" -> ... ({len(cycle)} nodes)"
    raise GraphStructureError(f"{scope.name} has a cycle, so it cannot be sorted: {shown} -> {dep.name or '<unnamed>'}")


def ordered_nodes(scope: Scope) -> list[NodeProto]:
    """The scope's nodes in topological order: as stored when that is already valid (checked linearly)."""
    nodes = list(scope.nodes)
    seen: set[str] = set()
    for node in nodes:
        for name in node.input:
            if name and name not in seen and name in scope.producer:
                return sorted_nodes(scope)
        for child in scope.children.get(id(node), ()):
            if any(name in scope.producer and name not in seen for name in child.free_names):
                return sorted_nodes(scope)
        seen.update(node.output)
    return nodes
