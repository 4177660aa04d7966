"""What simplify's rewrites share, and the two value-numbering passes: common-subexpression elimination and
merging of provably equal shape values.

Every pass works the same way: decide, per scope, which tensors are *aliases* of others (a no-op's output is
its input, see noops.py; a duplicate's output is the original's), rewire every read of an alias — including
reads from inside nested subgraphs — to what it stands for, and drop the nodes that produced aliases. Each pass
is one walk over the nodes in topological order.
"""

from __future__ import annotations

import numpy as np
from onnx import AttributeProto, NodeProto, TensorProto

from graphsurgeon.core.constants import constant_behind
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.verbs.fold.plan import RANDOM_OPS
from graphsurgeon.verbs.fold.shapes import ShapeInfo

_STANDARD = ("", "ai.onnx")


class Aliases:
    """Per scope, alias -> replacement, with chains resolved."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}

    def add(self, alias: str, target: str) -> None:
        self.map[alias] = target

    def resolve(self, name: str) -> str:
        seen = []
        while name in self.map:
            seen.append(name)
            name = self.map[name]
        for s in seen:
            self.map[s] = name
        return name


class NodeOrder:
    """Each scope's nodes in topological order, sorted once and shared by the rewrites of one round.

    The rewrites remove nodes and rewire reads to names defined earlier (a no-op's input, the first of two
    duplicates), which keeps a topological order valid, so one sort serves them all; a node added meanwhile
    (patterns append theirs) is left for the next round. A rebuilt index starts over.
    """

    def __init__(self, model: Editor, known: dict[int, list[NodeProto]] | None = None):
        """`known`: orders already computed for the graph as it is (a ShapeInfo walk's)."""
        self.model = model
        self._index = model.index
        self._orders: dict[int, list[NodeProto]] = dict(known or {})

    def nodes(self, scope: Scope) -> list[NodeProto]:
        index = self.model.index
        if index is not self._index:
            self._index, self._orders = index, {}
        order = self._orders.get(id(scope))
        if order is None:
            order = self._orders[id(scope)] = ordered_nodes(scope)
        alive = index.scope_of_node
        return [n for n in order if alive.get(id(n)) is scope]


def nodes_in_order(scope: Scope, order: NodeOrder | None) -> list[NodeProto]:
    """The scope's nodes in topological order, from the round's shared `order` when there is one."""
    return order.nodes(scope) if order is not None else ordered_nodes(scope)


# -- constants -------------------------------------------------------------------------------------------
def small_constant(model: Editor, scope: Scope, name: str, limit: int = 4096) -> np.ndarray | None:
    """The value of a small constant (initializer not overridable by an input, or Constant node)."""
    tensor = constant_behind(scope, name)
    if tensor is None or is_external(tensor) or tensor.data_type == TensorProto.STRING:
        return None
    size = declared_nbytes(tensor)
    if size is None or size > limit:
        return None
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except Exception:
        return None


def known_equal(a, b) -> bool:
    """Both known (not None) and equal."""
    return a is not None and b is not None and a == b


def _node_key(node: NodeProto, aliases: Aliases) -> tuple | None:
    if node.domain not in _STANDARD and node.domain != "ai.onnx.ml":
        return None
    if node.op_type in RANDOM_OPS or not node.output:
        return None
    attrs = []
    for a in sorted(node.attribute, key=lambda a: a.name):
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            return None
        attrs.append(a.SerializeToString(deterministic=True))
    return (node.domain, node.op_type, tuple(aliases.resolve(i) for i in node.input), tuple(attrs), len(node.output))


_RAW_ONLY = frozenset({"name", "doc_string", "dims", "data_type", "raw_data"})


def _initializer_key(tensor: TensorProto) -> tuple:
    """What makes two initializers equal: everything but the name and doc string (dtype, dims and the bytes
    for the usual raw-data tensor, without copying it; the serialized rest otherwise)."""
    if all(field.name in _RAW_ONLY for field, _ in tensor.ListFields()):
        return (tensor.data_type, tuple(tensor.dims), tensor.raw_data)
    probe = TensorProto()
    probe.CopyFrom(tensor)
    probe.name = ""
    probe.doc_string = ""
    return (probe.SerializeToString(deterministic=True),)


def eliminate_common_subexpressions(
    model: Editor, order: NodeOrder | None = None, counts: dict[str, int] | None = None
) -> int:
    """Merge nodes computing the same op on the same inputs, and identical small initializers.

    `counts["nodes"]` (if given) counts the nodes merged (the rest are initializers)."""
    index = model.index
    merged = 0
    for scope in index.scopes:
        aliases = Aliases()
        protected = set(scope.outputs)
        if not scope.is_function:
            seen_init: dict[tuple, str] = {}
            for tensor in scope.graph.initializer:
                if tensor.name in scope.inputs or tensor.name in protected or is_external(tensor):
                    continue
                if tensor.ByteSize() > 4096 or tensor.data_type == TensorProto.STRING:
                    continue
                init_key = _initializer_key(tensor)
                if init_key in seen_init:
                    aliases.add(tensor.name, seen_init[init_key])
                    merged += 1
                else:
                    seen_init[init_key] = tensor.name
        seen: dict[tuple, NodeProto] = {}
        dead: list[NodeProto] = []
        for node in nodes_in_order(scope, order):
            key = _node_key(node, aliases)
            if key is None:
                continue
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            if any(o in protected for o in node.output if o) or any(
                not f and o for f, o in zip(first.output, node.output, strict=True)
            ):
                continue
            for f, o in zip(first.output, node.output, strict=True):
                if o:
                    aliases.add(o, f)
            dead.append(node)
        if aliases.map:
            model.replace_uses(aliases.map, scope=scope)
        if dead:
            model.remove_nodes(dead, scope=scope)
            merged += len(dead)
            if counts is not None:
                counts["nodes"] = counts.get("nodes", 0) + len(dead)
    return merged


def merge_equal_shape_values(model: Editor, shapes: ShapeInfo, order: NodeOrder | None = None) -> int:
    """Value numbering for shape arithmetic: nodes whose partial values are provably equal (same ints, same
    symbols) compute the same tensor, so later ones read the first one instead (the rest dies in cleanup)."""
    from graphsurgeon.verbs.fold.shapes import Sym

    index = model.index
    merged = 0
    for scope in index.scopes:
        seen: dict[tuple, str] = {}
        aliases = Aliases()
        dead: list[NodeProto] = []
        for node in nodes_in_order(scope, order):
            if len(node.output) != 1 or not node.output[0] or node.domain not in _STANDARD:
                continue
            value = shapes.value(scope, node.output[0])
            if value is None or value.is_static() or any(not isinstance(e, int | Sym) for e in value.elems):
                continue
            key = (value.dtype, value.scalar, value.elems)
            first = seen.get(key)
            if first is None:
                seen[key] = node.output[0]
            elif node.output[0] not in scope.outputs:
                aliases.add(node.output[0], first)
                dead.append(node)
        if dead:
            model.replace_uses(aliases.map, scope=scope)
            model.remove_nodes(dead, scope=scope)
            merged += len(dead)
    return merged
