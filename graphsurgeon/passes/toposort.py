"""toposort: order every graph so each tensor is produced before it is read.

Iterative depth-first emission in the existing order: a node is emitted right after the producers it waits
for. Linear in nodes + edges, no recursion, and stable: an order that is already valid is kept as it is.
Outer-scope reads from a node's subgraphs count as inputs of that node.
"""

from __future__ import annotations

from collections.abc import Iterator

from onnx import NodeProto

from graphsurgeon._index import Scope
from graphsurgeon.errors import GraphStructureError
from graphsurgeon.model import Model


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


def toposort(model: Model) -> None:
    index = model.index
    index.check_references()
    moved = 0
    for scope in index.scopes:
        order = sorted_nodes(scope)
        if all(a is b for a, b in zip(order, scope.nodes, strict=True)):
            continue
        position = {id(node): i for i, node in enumerate(order)}
        moved += sum(1 for i, node in enumerate(scope.nodes) if position[id(node)] != i)
        scope.container.node.sort(key=lambda node: position[id(node)])
        model.note(f"reordered {scope.name} ({len(order)} nodes)")
    if not moved:
        model.note("toposort: already in topological order, nothing moved")
