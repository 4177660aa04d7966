"""Indexes over a ModelProto: who produces and who reads every tensor, scope by scope.

The ModelProto stays the source of truth; a :class:`ModelIndex` is built from it in one linear pass and
kept valid by the editing primitives of :class:`Scope` (each one O(1) or O(degree) in the index, never a
re-scan). Bulk rewrites (cleanup, toposort) rebuild the index once when they are done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from onnx import FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto

from graphsurgeon._walk import node_subgraphs
from graphsurgeon.errors import GraphStructureError


class Scope:
    """One graph, subgraph or function body, and the indexes over it.

    A subgraph may read names defined by enclosing scopes (outer-scope references); for the node that holds
    the subgraph such names are *implicit inputs*.
    """

    def __init__(self, container: GraphProto | FunctionProto, parent: Scope | None, owner: NodeProto | None):
        self.container = container
        self.parent = parent
        self.owner = owner
        self.is_function = isinstance(container, FunctionProto)
        self.producer: dict[str, NodeProto] = {}
        self.consumers: dict[str, list[NodeProto]] = defaultdict(list)
        self.implicit_consumers: dict[str, list[NodeProto]] = defaultdict(list)
        self.children: dict[int, list[Scope]] = {}
        self.duplicates: list[str] = []
        self.initializers: dict[str, TensorProto] = {}
        self.sparse_initializers: dict[str, object] = {}
        self.value_info: dict[str, ValueInfoProto] = {}
        self.inputs: dict[str, ValueInfoProto | None] = {}
        self.outputs: dict[str, ValueInfoProto | None] = {}
        self.free_names: set[str] = set()
        if self.is_function:
            self.inputs = dict.fromkeys(container.input)
            self.outputs = dict.fromkeys(container.output)
            self.value_info = {vi.name: vi for vi in getattr(container, "value_info", [])}
        else:
            self.initializers = {t.name: t for t in container.initializer}
            self.sparse_initializers = {s.values.name: s for s in container.sparse_initializer}
            self.value_info = {vi.name: vi for vi in container.value_info}
            self.inputs = {vi.name: vi for vi in container.input}
            self.outputs = {vi.name: vi for vi in container.output}
        for node in container.node:
            self._index_node(node)

    # -- queries -----------------------------------------------------------------------------------------
    @property
    def nodes(self) -> Iterable[NodeProto]:
        return self.container.node

    @property
    def name(self) -> str:
        if self.is_function:
            return f"function {self.container.domain}::{self.container.name}"
        if self.owner is None:
            return f"graph {self.container.name!r}"
        return f"subgraph {self.container.name!r} of node {self.owner.name!r} ({self.owner.op_type})"

    def defines(self, name: str) -> bool:
        return (
            name in self.producer
            or name in self.inputs
            or name in self.initializers
            or name in self.sparse_initializers
        )

    def resolve(self, name: str) -> Scope | None:
        """The innermost scope, from this one outwards, that defines `name`."""
        scope: Scope | None = self
        while scope is not None:
            if scope.defines(name):
                return scope
            scope = None if scope.is_function else scope.parent
        return None

    def implicit_inputs(self, node: NodeProto) -> set[str]:
        """Names the node's subgraphs read from this scope or above."""
        names: set[str] = set()
        for child in self.children.get(id(node), ()):
            names |= child.free_names
        return names

    def readers(self, name: str) -> list[NodeProto]:
        """Nodes of this scope that read `name`, explicitly or from inside their subgraphs."""
        return self.consumers.get(name, []) + self.implicit_consumers.get(name, [])

    # -- editing primitives (keep proto and index in step) -----------------------------------------------
    def set_node_input(self, node: NodeProto, index: int, name: str) -> None:
        """Rewire one input of a node of this scope, keeping outer-scope (implicit) reads up to date."""
        old = node.input[index]
        node.input[index] = name
        if old and old not in node.input:
            readers = self.consumers.get(old, [])
            readers[:] = [n for n in readers if n is not node]
            self._release(old)
        if name and not any(n is node for n in self.consumers[name]):
            self.consumers[name].append(node)
            self._acquire(name)

    def _still_reads(self, name: str) -> bool:
        return bool(self.consumers.get(name)) or bool(self.implicit_consumers.get(name)) or name in self.outputs

    def _release(self, name: str) -> None:
        scope: Scope = self
        while scope.parent is not None and not scope.defines(name) and not scope._still_reads(name):
            scope.free_names.discard(name)
            parent, owner = scope.parent, scope.owner
            if any(name in child.free_names for child in parent.children[id(owner)]):
                return
            readers = parent.implicit_consumers.get(name, [])
            readers[:] = [n for n in readers if n is not owner]
            scope = parent

    def _acquire(self, name: str) -> None:
        scope: Scope = self
        while scope.parent is not None and not scope.defines(name) and name not in scope.free_names:
            scope.free_names.add(name)
            readers = scope.parent.implicit_consumers[name]
            if not any(n is scope.owner for n in readers):
                readers.append(scope.owner)
            scope = scope.parent

    def remove_initializers(self, names: set[str]) -> None:
        """Drop the named initializers in one pass over the repeated field."""
        if not names:
            return
        graph = self.container
        kept = sum(1 for t in graph.initializer if t.name not in names)
        graph.initializer.sort(key=lambda t: t.name in names)
        del graph.initializer[kept:]
        for name in names:
            self.initializers.pop(name, None)

    def remove_nodes(self, nodes: list[NodeProto]) -> None:
        """Drop the given nodes in one pass over the repeated field."""
        if not nodes:
            return
        dead = {id(n) for n in nodes}
        for node in nodes:
            for name in node.output:
                if self.producer.get(name) is node:
                    del self.producer[name]
            for name in set(node.input):
                if name in self.consumers:
                    self.consumers[name] = [n for n in self.consumers[name] if n is not node]
            self.children.pop(id(node), None)
        kept = len(self.container.node) - len(nodes)
        self.container.node.sort(key=lambda n: id(n) in dead)
        del self.container.node[kept:]

    def add_input(self, value_info: ValueInfoProto) -> ValueInfoProto:
        added = self.container.input.add()
        added.CopyFrom(value_info)
        self.inputs[added.name] = added
        return added

    def add_initializer(self, tensor: TensorProto) -> TensorProto:
        added = self.container.initializer.add()
        added.CopyFrom(tensor)
        self.initializers[added.name] = added
        return added

    # -- internals ---------------------------------------------------------------------------------------
    def _index_node(self, node: NodeProto) -> None:
        for name in node.output:
            if not name:
                continue
            if name in self.producer:
                self.duplicates.append(name)
            self.producer[name] = node
        for name in node.input:
            if name:
                self.consumers[name].append(node)


class ModelIndex:
    """All scopes of a model (main graph, subgraphs, function bodies) with their indexes."""

    def __init__(self, model: ModelProto):
        self.model = model
        self.main = Scope(model.graph, None, None)
        self.functions = {(f.domain, f.name, getattr(f, "overload", "")): Scope(f, None, None) for f in model.functions}
        self.scopes: list[Scope] = [self.main, *self.functions.values()]
        self.scope_of_node: dict[int, Scope] = {}
        self.by_name: dict[str, list[NodeProto]] = defaultdict(list)
        self.by_op: dict[str, list[NodeProto]] = defaultdict(list)
        pending = list(self.scopes)
        while pending:
            scope = pending.pop()
            for node in scope.nodes:
                self.scope_of_node[id(node)] = scope
                self.by_name[node.name].append(node)
                self.by_op[node.op_type].append(node)
                for _, graph in node_subgraphs(node):
                    child = Scope(graph, scope, node)
                    scope.children.setdefault(id(node), []).append(child)
                    self.scopes.append(child)
                    pending.append(child)
        self._compute_free_names()

    def _compute_free_names(self) -> None:
        """Outer-scope references, bottom-up: children were appended after their parents."""
        for scope in reversed(self.scopes):
            free: set[str] = set()
            for node in scope.nodes:
                free.update(n for n in node.input if n)
                for child in scope.children.get(id(node), ()):
                    for name in child.free_names:
                        scope.implicit_consumers[name].append(node)
                    free |= child.free_names
            free.update(scope.outputs)
            scope.free_names = {n for n in free if not scope.defines(n)}

    def graph_scopes(self) -> Iterator[Scope]:
        return (s for s in self.scopes if not s.is_function)

    def find_nodes(self) -> Iterator[tuple[Scope, NodeProto]]:
        for scope in self.scopes:
            for node in scope.nodes:
                yield scope, node

    def check_references(self) -> None:
        """Refuse graphs with dangling references or tensors produced twice (message lists the first few)."""
        problems: list[str] = []
        for scope in self.scopes:
            for name in scope.duplicates:
                problems.append(f"tensor {name!r} is produced more than once in {scope.name}")
            for node in scope.nodes:
                for name in node.input:
                    if name and scope.resolve(name) is None:
                        problems.append(
                            f"node {node.name!r} ({node.op_type}) in {scope.name} reads {name!r}, "
                            "which nothing produces"
                        )
            for name in scope.outputs:
                if scope.resolve(name) is None:
                    problems.append(f"output {name!r} of {scope.name} is produced by nothing")
            if len(problems) > 5:
                break
        if problems:
            more = f" (and more; showing {len(problems[:5])})" if len(problems) > 5 else ""
            raise GraphStructureError("the graph is broken: " + "; ".join(problems[:5]) + more)
