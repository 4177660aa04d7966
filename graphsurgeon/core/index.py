"""Indexes over a ModelProto: who produces and who reads every tensor, scope by scope.

The ModelProto stays the source of truth; a :class:`ModelIndex` is built from it in one linear pass and
kept valid by the editing primitives of :class:`Scope` (each one O(1) or O(degree) in the index, never a
re-scan). Bulk rewrites (cleanup, toposort) rebuild the index once when they are done.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import cache
from typing import cast

from onnx import (
    AttributeProto,
    FunctionProto,
    GraphProto,
    ModelProto,
    NodeProto,
    SparseTensorProto,
    TensorProto,
    ValueInfoProto,
)

from graphsurgeon.core.io import remove_where
from graphsurgeon.core.walk import node_subgraphs
from graphsurgeon.errors import GraphStructureError


class Scope:
    """One graph, subgraph or function body, and the indexes over it.

    A subgraph may read names defined by enclosing scopes (outer-scope references); for the node that holds
    the subgraph such names are *implicit inputs*.
    """

    def __init__(self, container: GraphProto | FunctionProto, parent: Scope | None, owner: NodeProto | None):
        self.model_index: ModelIndex | None = None  # set by the ModelIndex that holds this scope
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
        self.sparse_initializers: dict[str, SparseTensorProto] = {}
        self.value_info: dict[str, ValueInfoProto] = {}
        self.inputs: dict[str, ValueInfoProto | None] = {}
        self.outputs: dict[str, ValueInfoProto | None] = {}
        self.free_names: set[str] = set()
        if isinstance(container, FunctionProto):
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
    def graph(self) -> GraphProto:
        """The container of a graph scope (main graph or subgraph), for what a function body does not have
        (initializers, sparse initializers, inputs and outputs as ValueInfoProto): check :attr:`is_function` first."""
        return cast(GraphProto, self.container)

    @property
    def name(self) -> str:
        if isinstance(self.container, FunctionProto):
            return f"function {self.container.domain}::{self.container.name}"
        if self.owner is None:
            return f"graph {self.container.name!r}"
        return f"subgraph {self.container.name!r} of node {self.owner.name!r} ({self.owner.op_type})"

    @property
    def display_name(self) -> str:
        """ "main graph" for the main graph, else :attr:`name`."""
        return "main graph" if self.parent is None and not self.is_function else self.name

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
            owner = scope.owner
            assert owner is not None  # a scope with a parent is a subgraph, held by a node
            readers = scope.parent.implicit_consumers[name]
            if not any(n is owner for n in readers):
                readers.append(owner)
            scope = scope.parent

    def remove_initializers(self, names: set[str]) -> None:
        """Drop the named initializers in one pass over the repeated field."""
        if not names:
            return
        remove_where(self.graph.initializer, lambda t: t.name in names)
        for name in names:
            self.initializers.pop(name, None)

    def remove_nodes(self, nodes: list[NodeProto]) -> None:
        """Drop the given nodes in one pass over the repeated field."""
        if not nodes:
            return
        dead = {id(n) for n in nodes}
        released: set[str] = set()
        implicit: set[str] = set()
        for node in nodes:
            for name in node.output:
                if self.producer.get(name) is node:
                    del self.producer[name]
            released.update(name for name in node.input if name in self.consumers)
            for child in self.children.pop(id(node), ()):
                implicit.update(child.free_names)
        # each reader list filtered once (a tensor read by thousands of removed nodes stays linear)
        for name in released:
            self.consumers[name] = [n for n in self.consumers[name] if id(n) not in dead]
        for name in implicit:
            readers = self.implicit_consumers.get(name, [])
            readers[:] = [n for n in readers if id(n) not in dead]
        released |= implicit
        remove_where(self.container.node, lambda n: id(n) in dead)
        for name in released:
            self._release(name)

    def add_input(self, value_info: ValueInfoProto) -> ValueInfoProto:
        added = self.graph.input.add()
        added.CopyFrom(value_info)
        self.inputs[added.name] = added
        return added

    def add_initializer(self, tensor: TensorProto) -> TensorProto:
        added = self.graph.initializer.add()
        added.CopyFrom(tensor)
        self.initializers[added.name] = added
        return added

    def add_output(self, value_info: ValueInfoProto) -> ValueInfoProto:
        added = self.graph.output.add()
        added.CopyFrom(value_info)
        self.outputs[added.name] = added
        self._acquire(added.name)
        return added

    def remove_output(self, name: str) -> None:
        remove_where(self.container.output, lambda vi: vi.name == name)
        self.outputs.pop(name, None)
        self._release(name)

    def remove_input(self, name: str) -> None:
        remove_where(self.container.input, lambda vi: vi.name == name)
        self.inputs.pop(name, None)

    def remove_value_info(self, names: set[str]) -> int:
        if self.is_function or not names:
            return 0
        removed = remove_where(self.container.value_info, lambda vi: vi.name in names)
        for name in names:
            self.value_info.pop(name, None)
        return removed

    def implicit_consumers_of(self, names) -> list[NodeProto]:
        """Nodes whose subgraphs read any of `names` from this scope or above (each once)."""
        owners: dict[int, NodeProto] = {}
        for name in names:
            for node in self.implicit_consumers.get(name, ()):
                owners[id(node)] = node
        return list(owners.values())

    def rename_output(self, old: str, new: str) -> None:
        """A subgraph output that named an outer value now names `new` (the outer value was renamed)."""
        for vi in self.graph.output:
            if vi.name == old:
                vi.name = new
        if old in self.outputs:
            self.outputs[new] = self.outputs.pop(old)
        self._release(old)
        self._acquire(new)

    def rename_definition(self, old: str, new: str) -> None:
        """Rename where `old` is defined or declared in this scope (not its readers)."""
        producer = self.producer.pop(old, None)
        if producer is not None:
            for i, out in enumerate(producer.output):
                if out == old:
                    producer.output[i] = new
            self.producer[new] = producer
        if old in self.inputs:
            self.inputs = {(new if k == old else k): v for k, v in self.inputs.items()}
        for table in (self.initializers, self.sparse_initializers):
            if old in table:
                table[new] = table.pop(old)  # type: ignore[assignment]
        if isinstance(self.container, FunctionProto):
            for repeated in (self.container.input, self.container.output):
                for i, n in enumerate(repeated):
                    if n == old:
                        repeated[i] = new
            self.outputs = {(new if k == old else k): v for k, v in self.outputs.items()}
            return
        graph = self.container
        for vi in graph.input:
            if vi.name == old:
                vi.name = new
        if old in self.value_info and new not in self.value_info:
            self.value_info[old].name = new
        for tensor in graph.initializer:
            if tensor.name == old:
                tensor.name = new
        for sparse in graph.sparse_initializer:
            if sparse.values.name == old:
                sparse.values.name = new
        if old in self.value_info:
            if new in self.value_info:  # the new name is already described (a dangling graph output's entry)
                self.remove_value_info({old})
            else:
                self.value_info[new] = self.value_info.pop(old)
        if old in self.outputs:
            for vi in graph.output:
                if vi.name == old:
                    vi.name = new
            self.outputs = {(new if k == old else k): v for k, v in self.outputs.items()}
            self._release(old)
            self._acquire(new)

    def add_node_to_index(self, node: NodeProto) -> None:
        """Index a node just appended to this scope's container (no subgraphs: those need a rebuild)."""
        self._index_node(node)
        for name in node.input:
            if name:
                self._acquire(name)
        if self.model_index is not None:
            self.model_index.add_node(self, node)

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
        for scope in self.scopes:
            scope.model_index = self
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
                    child.model_index = self
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
                children = scope.children.get(id(node), ())
                read = set().union(*(child.free_names for child in children)) if children else set()
                for name in read:
                    scope.implicit_consumers[name].append(node)
                free |= read
            free.update(scope.outputs)
            scope.free_names = {n for n in free if not scope.defines(n)}

    # -- keeping the model-wide maps in step (called by the editor) --------------------------------------
    def add_node(self, scope: Scope, node: NodeProto) -> None:
        self.scope_of_node[id(node)] = scope
        self.by_name[node.name].append(node)
        self.by_op[node.op_type].append(node)

    def forget_nodes(self, nodes: list[NodeProto]) -> None:
        dead = {id(n) for n in nodes}
        for key_index, keys in ((self.by_name, {n.name for n in nodes}), (self.by_op, {n.op_type for n in nodes})):
            for key in keys:
                kept = [n for n in key_index.get(key, ()) if id(n) not in dead]
                if kept:
                    key_index[key] = kept
                else:
                    key_index.pop(key, None)
        for node in nodes:
            self.scope_of_node.pop(id(node), None)

    def retag(self, node: NodeProto, op_type: str) -> None:
        self._move(self.by_op, node, node.op_type, op_type)

    def rename_node(self, node: NodeProto, name: str) -> None:
        self._move(self.by_name, node, node.name, name)

    @staticmethod
    def _move(key_index: dict[str, list[NodeProto]], node: NodeProto, old: str, new: str) -> None:
        kept = [n for n in key_index.get(old, ()) if n is not node]
        if kept:
            key_index[old] = kept
        else:
            key_index.pop(old, None)
        key_index[new].append(node)

    def snapshot(self) -> list[object]:
        """A comparable picture of every scope's indexes (tests check an edited index against a fresh one)."""
        picture: list[object] = []
        for scope in self.scopes:
            picture.append(
                (
                    scope.name,
                    sorted((k, id(v)) for k, v in scope.producer.items()),
                    sorted((k, sorted(id(n) for n in v)) for k, v in scope.consumers.items() if v),
                    sorted((k, sorted(id(n) for n in v)) for k, v in scope.implicit_consumers.items() if v),
                    sorted(scope.free_names),
                    sorted(scope.initializers),
                    sorted(scope.inputs),
                    sorted(scope.outputs),
                    sorted(scope.value_info),
                )
            )
        picture.append(sorted((k, len(v)) for k, v in self.by_op.items() if v))
        picture.append(sorted((k, len(v)) for k, v in self.by_name.items() if v))
        return sorted(picture, key=repr)

    def graph_scopes(self) -> Iterator[Scope]:
        return (s for s in self.scopes if not s.is_function)

    def find_nodes(self) -> Iterator[tuple[Scope, NodeProto]]:
        for scope in self.scopes:
            for node in scope.nodes:
                yield scope, node

    def check_references(self) -> None:
        """Refuse graphs with dangling references, tensors produced twice (message lists the first few), or a
        cycle (message names its nodes)."""
        problems: list[str] = []
        opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), None)
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
                if node.domain in ("", "ai.onnx") and opset is not None:
                    wrong = _arity_problem(node, opset) or (node.attribute and _mistyped_attribute(node, opset))
                    if wrong:
                        problems.append(f"node {node.name!r} ({node.op_type}) in {scope.name}: {wrong}")
            for name in scope.outputs:
                if scope.resolve(name) is None:
                    problems.append(f"output {name!r} of {scope.name} is produced by nothing")
            if len(problems) > 5:
                break
        if problems:
            more = f" (and more; showing {len(problems[:5])})" if len(problems) > 5 else ""
            raise GraphStructureError("the graph is broken: " + "; ".join(problems[:5]) + more)
        from graphsurgeon.core.order import ordered_nodes  # (order builds on this module)

        for scope in self.scopes:
            ordered_nodes(scope)  # linear when already sorted; raises GraphStructureError naming a cycle


@cache
def _schema(op_type: str, opset: int):  # -> onnx.defs.OpSchema | None
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


@cache
def _attribute_types(op_type: str, opset: int) -> dict[str, int]:
    """Attribute name -> AttributeProto type in the standard op's schema at `opset` (empty: no schema)."""
    schema = _schema(op_type, opset)
    if schema is None:
        return {}
    return {name: int(a.type.value) for name, a in schema.attributes.items()}


def _arity_problem(node: NodeProto, opset: int) -> str | None:
    """Too few or too many inputs for the op's schema, or a required one left empty (onnxruntime may crash on
    those instead of refusing them)."""
    import onnx.defs

    schema = _schema(node.op_type, opset)
    if schema is None or not schema.inputs:
        return None
    count = len(node.input)
    if count < schema.min_input or count > schema.max_input:
        return f"{count} input(s), but {node.op_type} takes {schema.min_input} to {schema.max_input}"
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for i, name in enumerate(node.input):
        formal = schema.inputs[min(i, len(schema.inputs) - 1)]
        if not name and formal.option != optional:
            return f"input {i} ({formal.name}) is empty, but {node.op_type} requires it"
    return None


def _mistyped_attribute(node: NodeProto, opset: int | None) -> str | None:
    """Why an attribute of a standard-domain node has the wrong type for its schema (None when all fit).

    Rewrites read attributes by their schema type; one of another type is refused up front, clearly."""
    if opset is None:
        return None
    types = _attribute_types(node.op_type, opset)
    for attr in node.attribute:
        expected = types.get(attr.name)
        if expected is not None and attr.type != expected and not attr.ref_attr_name:
            names = AttributeProto.AttributeType
            given = names.Name(attr.type) if attr.type in names.values() else str(attr.type)
            return f"attribute {attr.name!r} is {given}, but {node.op_type} takes {names.Name(expected)}"
    return None
