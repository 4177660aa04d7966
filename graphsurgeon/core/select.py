"""Node selectors: an exact node name, an exact op type, or a glob over names and op types."""

from __future__ import annotations

import fnmatch

from onnx import NodeProto

from graphsurgeon.core.index import ModelIndex, Scope
from graphsurgeon.errors import SelectorError

_GLOB_CHARS = set("*?[")


def select_nodes(index: ModelIndex, selector: str) -> list[tuple[Scope, NodeProto]]:
    """Every node whose name or op type equals `selector`, or matches it as a glob; in model order."""
    if not selector:
        raise SelectorError("empty node selector")
    wanted: set[int] = {id(n) for n in index.by_name.get(selector, ())}
    wanted |= {id(n) for n in index.by_op.get(selector, ())}
    if _GLOB_CHARS & set(selector):
        for key_index in (index.by_name, index.by_op):
            for key, nodes in key_index.items():
                if fnmatch.fnmatchcase(key, selector):
                    wanted |= {id(n) for n in nodes}
    matches = [(scope, node) for scope, node in index.find_nodes() if id(node) in wanted]
    if not matches:
        ops = sorted(index.by_op)
        shown = ", ".join(ops[:20]) + (", ..." if len(ops) > 20 else "")
        raise SelectorError(
            f"node selector {selector!r} matches no node (by name, op type or glob); op types in the model: {shown}"
        )
    return matches


def describe(scope: Scope, node: NodeProto) -> str:
    where = "" if scope.parent is None and not scope.is_function else f" in {scope.name}"
    return f"{node.op_type} node {node.name!r}{where}"


def require_one(matches: list[tuple[Scope, NodeProto]], selector: str) -> tuple[Scope, NodeProto]:
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(describe(s, n) for s, n in matches[:10]) + ("; ..." if len(matches) > 10 else "")
    raise SelectorError(
        f"node selector {selector!r} matches {len(matches)} nodes: {listed}. "
        "Select one by its name, or pass `all=True` to apply to every match"
    )
