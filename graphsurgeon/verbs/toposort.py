"""toposort: order every graph so each tensor is produced before it is read.

Iterative depth-first emission in the existing order: a node is emitted right after the producers it waits
for. Linear in nodes + edges, no recursion, and stable: an order that is already valid is kept as it is.
Outer-scope reads from a node's subgraphs count as inputs of that node.
"""

from __future__ import annotations

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.order import sorted_nodes
from graphsurgeon.core.verb import verb


@verb(writes=True, preserves_meaning=True)
def toposort(ctx: Editor) -> None:
    """Sort nodes topologically (stable, linear, subgraph-aware); a cycle is reported with its nodes."""
    index = ctx.index
    index.check_references()
    moved = False
    for scope in index.scopes:
        order = sorted_nodes(scope)
        if all(a is b for a, b in zip(order, scope.nodes, strict=True)):
            continue
        ctx.reorder_nodes(scope, order)
        moved = True
    if not moved:
        ctx.note("already in topological order, nothing moved")
