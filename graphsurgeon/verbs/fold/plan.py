"""Planning a fold: which nodes have all-known inputs, which policy keeps (random ops, QDQ, excluded, the size
limit), and which values must survive as constants. Linear in the graph: scopes outer first, nodes in
topological order, and one backward pass for the size limit."""

from __future__ import annotations

import numpy as np
from onnx import AttributeProto, NodeProto

from graphsurgeon.core.constants import ONNX_DOMAINS, constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.select import select_nodes
from graphsurgeon.core.units import format_bytes
from graphsurgeon.core.walk import graphs_under, node_subgraphs
from graphsurgeon.verbs.fold.evaluate import free_reads
from graphsurgeon.verbs.fold.report import Unfolded
from graphsurgeon.verbs.fold.shapes import ShapeInfo

RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
NON_TENSOR_OPS = frozenset(
    {
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceInsert",
        "SequenceErase",
        "SplitToSequence",
        "SequenceMap",
        "Optional",
        "ZipMap",
    }
)


_NOTHING: frozenset[str] = frozenset()


def scope_label(scope: Scope) -> str:
    return "main" if scope.parent is None and not scope.is_function else scope.name


def _has_ref_attr(node: NodeProto) -> bool:
    if not node.attribute:
        return False
    if any(a.ref_attr_name for a in node.attribute):
        return True
    if not any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
        return False
    subgraphs = (sub for _, g in node_subgraphs(node) for sub in graphs_under(g))
    return any(a.ref_attr_name for sub in subgraphs for n in sub.node for a in n.attribute)


def _subgraph_has_random(node: NodeProto) -> bool:
    return any(n.op_type in RANDOM_OPS for _, g in node_subgraphs(node) for sub in graphs_under(g) for n in sub.node)


class Plan:
    """Which nodes fold, how their values are obtained, and what must be kept."""

    def __init__(
        self,
        model: Editor,
        shapes: ShapeInfo,
        *,
        size_limit: int,
        exclude: set[int],
        fold_qdq: bool,
        orders: dict[int, list[NodeProto]] | None = None,
    ):
        """`orders`: id(scope) -> its nodes in topological order, if already known for the graph as it is."""
        self.model = model
        self.index = model.index
        self.shapes = shapes
        self.size_limit = size_limit
        self.exclude = exclude
        self.fold_qdq = fold_qdq
        self.fold: dict[int, tuple[Scope, NodeProto, str]] = {}  # id(node) -> (scope, node, kind)
        self.kept: set[int] = set()  # planned (evaluated) but staying in the graph
        self.order: dict[int, list[NodeProto]] = {}  # id(scope) -> planned nodes in topological order
        self.unfolded: list[Unfolded] = []
        self.dead_scopes: set[int] = set()
        self.functions = {(k[0], k[1]) for k in self.index.functions}
        self.implicit_cache: dict[int, set[str]] = {}
        self.orders = orders or {}
        self._nbytes: dict[tuple[int, str], int | None] = {}
        # before IR 4 every initializer is also a graph input (overridable): constants stay Constant nodes
        self.constant_nodes_everywhere = model.proto.ir_version < 4

    def keeps_constant_nodes(self, scope: Scope) -> bool:
        """Does this scope hold its constants as Constant nodes (functions; every graph before IR 4)?"""
        return scope.is_function or self.constant_nodes_everywhere

    def implicit(self, scope: Scope, node: NodeProto) -> frozenset[str] | set[str]:
        key = id(node)
        if key not in scope.children:  # no subgraph: nothing read implicitly
            return _NOTHING
        if key not in self.implicit_cache:
            self.implicit_cache[key] = scope.implicit_inputs(node)
        return self.implicit_cache[key]

    # -- knowledge ---------------------------------------------------------------------------------------
    def known(self, scope: Scope, name: str) -> bool:
        home = scope.resolve(name)
        if home is None:
            return False
        if name in home.inputs:
            return False
        if name in home.initializers:
            return True
        producer = home.producer.get(name)
        if producer is None:
            return False
        if id(producer) in self.fold:
            return True
        return (
            self.keeps_constant_nodes(home)
            and is_constant_node(producer)
            and constant_tensor(producer, name) is not None
        )

    def is_removed(self, node: NodeProto) -> bool:
        return id(node) in self.fold and id(node) not in self.kept

    def _reject(self, scope: Scope, node: NodeProto, reason: str, policy: bool) -> None:
        self.unfolded.append(Unfolded(node.op_type, node.name, scope_label(scope), reason, policy))

    # -- planning ----------------------------------------------------------------------------------------
    def build(self) -> None:
        for scope in self.index.scopes:
            if scope.owner is not None and (id(scope.parent) in self.dead_scopes or id(scope.owner) in self.fold):
                self.dead_scopes.add(id(scope))
                continue
            planned: list[NodeProto] = []
            known_order = self.orders.get(id(scope))
            for node in known_order if known_order is not None else ordered_nodes(scope):
                kind = self._classify(scope, node)
                if kind is not None:
                    self.fold[id(node)] = (scope, node, kind)
                    planned.append(node)
            self.order[id(scope)] = planned
        self._apply_size_limit()

    def _classify(self, scope: Scope, node: NodeProto) -> str | None:
        outputs = [o for o in node.output if o]
        if not outputs:
            return None
        if is_constant_node(node):
            if self.keeps_constant_nodes(scope) or constant_tensor(node, node.output[0]) is None:
                return None  # functions keep their Constants; sparse Constants fold through onnxruntime below
            return "const"
        if _has_ref_attr(node):
            return None  # depends on the attributes of the function's call site
        partial = self.shapes.value(scope, outputs[0]) if len(node.output) == 1 else None
        if partial is not None and partial.is_static():  # computed here, no session needed
            if id(node) in self.exclude:
                self._reject(scope, node, "excluded by `exclude`", True)
                return None
            return "partial"
        if not all(self.known(scope, r) for r in free_reads(node, self.implicit(scope, node))):
            return None
        if id(node) in self.exclude:
            self._reject(scope, node, "excluded by `exclude`", True)
            return None
        if node.op_type in RANDOM_OPS or _subgraph_has_random(node):
            self._reject(scope, node, "random op: never folded", True)
            return None
        if node.op_type in QDQ_OPS and not self.fold_qdq:
            self._reject(scope, node, "quantization op: kept by default (fold_qdq=True to fold)", True)
            return None
        if node.domain not in ONNX_DOMAINS and (node.domain, node.op_type) not in self.functions:
            self._reject(scope, node, f"custom op {node.domain}::{node.op_type}: no implementation to run", False)
            return None
        if node.op_type in NON_TENSOR_OPS or any(self.shapes.is_tensor(scope, o) is False for o in outputs):
            self._reject(scope, node, "produces a sequence, map or optional, not a tensor", True)
            return None
        return "eval"

    # -- the size limit ----------------------------------------------------------------------------------
    def readers(self, scope: Scope, name: str) -> list[NodeProto]:
        return scope.readers(name)

    def is_frontier(self, scope: Scope, name: str) -> bool:
        """Must this planned value be kept as a constant (something that stays reads it, or it is an output)?"""
        if name in scope.outputs:
            return True
        fold, kept = self.fold, self.kept
        for readers in (scope.consumers.get(name, ()), scope.implicit_consumers.get(name, ())):
            for r in readers:
                if id(r) not in fold or id(r) in kept:
                    return True
        return False

    def value_nbytes(self, scope: Scope, node: NodeProto, kind: str, name: str) -> int | None:
        if kind == "const":
            t = constant_tensor(node, name)
            return declared_nbytes(t) if t is not None else None
        if kind == "partial":
            return 8 * 64
        key = (id(scope), name)
        if key not in self._nbytes:
            self._nbytes[key] = self.shapes.nbytes(scope, name)
        return self._nbytes[key]

    def initializer_reads_nbytes(self, scope: Scope, node: NodeProto) -> int:
        total = 0
        for r in free_reads(node, self.implicit(scope, node)):
            home = scope.resolve(r)
            if home is not None and r in home.initializers:
                total += declared_nbytes(home.initializers[r]) or 0
        return total

    def _leaf_nbytes(self, home: Scope, name: str) -> int:
        t = home.initializers.get(name)
        if t is not None:
            return declared_nbytes(t) or 0
        producer = home.producer.get(name)
        if producer is not None and is_constant_node(producer):
            t = constant_tensor(producer, name)
            return (declared_nbytes(t) or 0) if t is not None else 0
        return 0

    def _freed_by(self, scope: Scope, node: NodeProto, claimed: set[tuple[int, str]]) -> list[tuple[int, str, int]]:
        """Unclaimed tensors that disappear when the cone of planned nodes ending at `node` folds away."""
        found: list[tuple[int, str, int]] = []
        seen: set[int] = {id(node)}
        stack = [(scope, node)]
        while stack:
            s, n = stack.pop()
            for r in free_reads(n, self.implicit(s, n)):
                home = s.resolve(r)
                if home is None:
                    continue
                producer = home.producer.get(r)
                key = (id(home), r)
                if producer is not None and id(producer) in self.fold and not is_constant_node(producer):
                    if self.is_removed(producer) and id(producer) not in seen:
                        seen.add(id(producer))
                        stack.append((home, producer))
                    continue
                if key in claimed or r in home.outputs or r in home.inputs:
                    continue
                if all(self.is_removed(reader) for reader in home.readers(r)):
                    found.append((id(home), r, self._leaf_nbytes(home, r)))
        return found

    def _apply_size_limit(self) -> None:
        claimed: set[tuple[int, str]] = set()
        work: list[int] = []
        for key, (_, _, kind) in self.fold.items():
            if kind == "eval":
                work.append(key)
        work.reverse()
        while work:
            key = work.pop()
            scope, node, kind = self.fold[key]
            if key in self.kept or kind != "eval":
                continue
            too_big = []
            for out in node.output:
                if not out or not self.is_frontier(scope, out):
                    continue
                size = self.value_nbytes(scope, node, kind, out)
                if size is not None and size > self.size_limit:
                    too_big.append((out, size))
            if not too_big:
                continue
            need = sum(size for _, size in too_big)
            freed = self._freed_by(scope, node, claimed)
            if sum(size for _, _, size in freed) >= need:
                claimed.update((home, name) for home, name, _ in freed)
                continue
            self.kept.add(key)
            shown = ", ".join(f"{name!r} ({format_bytes(size)})" for name, size in too_big)
            self._reject(
                scope, node, f"size limit: {shown} above {format_bytes(self.size_limit)} and would grow the model", True
            )
            for r in free_reads(node, self.implicit(scope, node)):
                home = scope.resolve(r)
                producer = home.producer.get(r) if home is not None else None
                if producer is not None and id(producer) in self.fold:
                    work.append(id(producer))


def select_excluded(model: Editor, selectors: list[str] | tuple[str, ...]) -> set[int]:
    if not selectors:
        return set()

    ids: set[int] = set()
    for selector in selectors:
        ids.update(id(node) for _, node in select_nodes(model.index, selector))
    return ids


def _partial_value(plan: Plan, scope: Scope, name: str) -> np.ndarray:
    value = plan.shapes.value(scope, name)
    assert value is not None and value.is_static()
    return value.array()
