"""The editing API: a ModelProto (the source of truth), indexes over it, and edits that keep both in step.

Verbs and users' patch scripts edit models through the same methods: each keeps the producer/consumer
indexes valid (O(1) or O(degree) in the index, never a re-scan per edit) and records a
:class:`~graphsurgeon.core.changes.Change`. Everything an edit does not touch stays byte for byte as it was.

    model = graphsurgeon.load("model.onnx")
    relu = model.node("Relu")                          # one node, by name, op type or glob
    model.add_node("Clip", [relu.output[0], "lo", "hi"], ["clipped"], name="clip")
    model.add_graph_output("clipped")
    model.save("patched.onnx")

Nodes are the ModelProto's own NodeProtos: read them freely, but change them through these methods (or the
indexes go stale).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from onnx import (
    FunctionProto,
    GraphProto,
    ModelProto,
    NodeProto,
    SparseTensorProto,
    TensorProto,
    ValueInfoProto,
    helper,
    numpy_helper,
)

from graphsurgeon.core import io
from graphsurgeon.core.index import Scope
from graphsurgeon.core.schema import refuse_old_cast
from graphsurgeon.core.select import describe
from graphsurgeon.core.state import DType, ModelState, Source, tensor_dtype
from graphsurgeon.errors import RewriteError


class Editor(ModelState):
    """The editing API: every method keeps the indexes valid and records a Change."""

    # -- editing: nodes ----------------------------------------------------------------------------------
    def add_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        *,
        name: str | None = None,
        domain: str = "",
        attributes: Mapping[str, Any] | None = None,
        scope: Scope | None = None,
    ) -> NodeProto:
        """Add a node reading `inputs` and producing `outputs` (new names), placed before its first reader.

        Raises:
            RewriteError: an output name is already produced, or an input is not defined.
        """
        scope = scope or self.index.main
        for out in outputs:
            if out and scope.defines(out):
                raise RewriteError(f"cannot add a {op_type} node producing {out!r}: {scope.name} already has it")
        for name_in in inputs:
            if name_in and scope.resolve(name_in) is None:
                raise RewriteError(f"cannot add a {op_type} node reading {name_in!r}: nothing defines it")
        node = helper.make_node(op_type, list(inputs), list(outputs), name=name or None, domain=domain or None)
        for key, value in (attributes or {}).items():
            node.attribute.append(helper.make_attribute(key, value))
        readers = {id(r) for out in outputs if out for r in scope.readers(out)}
        container = scope.container
        position = next((i for i, n in enumerate(container.node) if id(n) in readers), len(container.node))
        with self.quietly():
            added = self.insert_nodes(scope, position, [node])[0]
        self.record("added", "node", added.name, f"{op_type}({', '.join(inputs)}) -> {', '.join(outputs)}")
        return added

    def replace_node(self, node: NodeProto, nodes: Sequence[NodeProto]) -> list[NodeProto]:
        """Put `nodes` where `node` was (e.g. an If by the branch it takes); returns the stored nodes."""
        scope = self.scope_of(node)
        position = next(i for i, n in enumerate(scope.container.node) if n is node)
        with self.quietly():
            self.remove_nodes([node], scope=scope)
            added = self.insert_nodes(scope, position, nodes)
        self.record("replaced", "node", node.name or node.op_type, f"by {len(nodes)} node(s)")
        return added

    def insert_nodes(self, scope: Scope, position: int, nodes: Sequence[NodeProto]) -> list[NodeProto]:
        """Insert copies of `nodes` at `position` of a scope (no checks; returns the stored nodes)."""
        if not nodes:
            return []
        for node in nodes:
            refuse_old_cast(node, self.opset_version(""))
        for node in nodes:
            self.record("added", "node", node.name or node.op_type)
        container = scope.container
        if position >= len(container.node):
            container.node.extend(nodes)
            added = list(container.node[len(container.node) - len(nodes) :])
        else:
            insert = getattr(container.node, "insert", None)
            if insert is not None:  # upb: the stored NodeProtos stay the same objects (callers may hold them)
                for offset, node in enumerate(nodes):
                    insert(position + offset, node)
            else:
                tail = [NodeProto() for _ in range(len(container.node) - position)]
                for copy, original in zip(tail, container.node[position:], strict=True):
                    copy.CopyFrom(original)
                del container.node[position:]
                container.node.extend(nodes)
                container.node.extend(tail)
            self._reindex()
            return list(container.node[position : position + len(nodes)])
        if any(a.type in (a.GRAPH, a.GRAPHS) for n in added for a in n.attribute):
            self._reindex()
        else:
            for node in added:
                scope.add_node_to_index(node)
        return added

    def delete_node(self, node: NodeProto) -> None:
        """Remove a node whose outputs nothing reads any more (else: bypass it, or rewire its readers first).

        Raises:
            RewriteError: an output is still read or is a graph output.
        """
        scope = self.scope_of(node)
        for out in node.output:
            if not out:
                continue
            readers = [r for r in scope.readers(out) if r is not node]
            if readers or out in scope.outputs:
                who = ", ".join(repr(r.name) for r in readers[:5]) or "the graph's outputs"
                raise RewriteError(
                    f"cannot remove {describe(scope, node)}: its output {out!r} is still read by {who} "
                    "(bypass the node instead, or rewire its readers first)"
                )
        self.remove_nodes([node], scope=scope)

    def remove_nodes(self, nodes: Sequence[NodeProto], *, scope: Scope | None = None) -> None:
        """Remove nodes in one pass (no reader check: for verbs that rewired the readers already)."""
        if not nodes:
            return
        by_scope: dict[int, tuple[Scope, list[NodeProto]]] = {}
        for node in nodes:
            home = scope or self.scope_of(node)
            by_scope.setdefault(id(home), (home, []))[1].append(node)
        current = self._index
        stale = False
        for home, group in by_scope.values():
            stale |= any(id(n) in home.children for n in group) or home.model_index is not current
            for node in group:
                self.record("removed", "node", node.name or node.op_type)
            if current is not None and home.model_index is current:
                current.forget_nodes(group)
            home.remove_nodes(group)
        if stale:
            self._reindex()

    def remove_functions(self, keys: set[tuple[str, str, str]]) -> None:
        """Remove model-local functions by (domain, name, overload)."""

        def key(f) -> tuple[str, str, str]:
            return (f.domain, f.name, getattr(f, "overload", ""))

        for f in self._proto.functions:
            if key(f) in keys:
                self.record("removed", "function", f"{f.domain}::{f.name}")
        if io.remove_where(self._proto.functions, lambda f: key(f) in keys):
            self._reindex()

    def remove_opset_imports(self, domains: set[str]) -> None:
        for domain in sorted(domains):
            self.record("removed", "opset import", domain)
        io.remove_where(self._proto.opset_import, lambda o: o.domain in domains)

    def add_opset_import(self, domain: str, version: int) -> None:
        """Import an operator set (a domain already imported at another version is refused)."""
        current = self.opset_version(domain)
        if current == version:
            return
        if current is not None:
            raise RewriteError(f"the model already imports domain {domain or 'ai.onnx'!r} at version {current}")
        self._proto.opset_import.append(helper.make_opsetid(domain, version))
        self.record("added", "opset import", domain or "ai.onnx", f"version {version}")

    def add_function(self, function: FunctionProto) -> None:
        """Add a model-local function (a copy); one with the same domain, name and overload is refused."""
        key = (function.domain, function.name, getattr(function, "overload", ""))
        if key in self.index.functions:
            raise RewriteError(f"the model already has a function {function.domain}::{function.name}")
        self._proto.functions.add().CopyFrom(function)
        self._reindex()
        self.record("added", "function", f"{function.domain}::{function.name}")

    def rename_node_output(self, node: NodeProto, index: int, new: str) -> None:
        """Give a node's output `index` a new name where it is produced, leaving its readers (and graph
        outputs) on the old name: for a caller that makes another node produce the old name next."""
        scope = self.scope_of(node)
        old = node.output[index]
        if not old or scope.resolve(new) is not None:
            raise RewriteError(f"cannot rename output {old!r} of {describe(scope, node)} to {new!r}")
        node.output[index] = new
        if scope.producer.get(old) is node:
            del scope.producer[old]
        scope.producer[new] = node
        self.record("renamed", "tensor", old, f"now {new!r} where {node.name or node.op_type} produces it")

    def remove_value_info(self, names: set[str], *, scope: Scope | None = None) -> None:
        scope = scope or self.index.main
        for name in sorted(names):
            self.record("removed", "value_info", name)
        scope.remove_value_info(names)

    def remove_sparse_initializers(self, names: set[str], *, scope: Scope | None = None) -> None:
        scope = scope or self.index.main
        for name in sorted(names):
            self.record("removed", "sparse initializer", name)
        io.remove_where(scope.graph.sparse_initializer, lambda s: s.values.name in names)
        for name in names:
            scope.sparse_initializers.pop(name, None)

    def bypass_node(self, node: NodeProto, input_index: int = 0, output_index: int = 0) -> None:
        """Remove a node, its readers (and the graph outputs) reading its input `input_index` instead.

        A graph output keeps its name: the bypassed input is renamed to it when a node of the same graph
        produces it; otherwise the node becomes an Identity.
        """
        scope = self.scope_of(node)
        if input_index >= len(node.input) or not node.input[input_index]:
            raise RewriteError(f"{describe(scope, node)} has no input {input_index} to pass through")
        source, out = node.input[input_index], node.output[output_index]
        other = [
            o for i, o in enumerate(node.output) if o and i != output_index and (scope.readers(o) or o in scope.outputs)
        ]
        if other:
            raise RewriteError(f"cannot bypass {describe(scope, node)}: its other output(s) {other} are read")
        with self.quietly():
            if out in scope.outputs:
                if self.bypass_needs_identity(scope, node, input_index, output_index):
                    if self.opset_version("") is None:
                        raise RewriteError(
                            f"cannot bypass {describe(scope, node)}: graph output {out!r} would need an Identity, "
                            "but the model imports no ai.onnx opset"
                        )
                    self.set_node_inputs(node, [source])
                    node.op_type, node.domain = "Identity", ""
                    del node.attribute[:]
                    del node.output[:]  # the others are unread (checked above): an Identity has one output
                    node.output.append(out)
                    self._reindex()
                    self.changes.record(
                        "replaced", "node", node.name, f"by an Identity (its output {out!r} is a graph output)"
                    )
                    return
                self.remove_nodes([node], scope=scope)
                self.rename_tensor(source, out, scope=scope)
            else:
                self.replace_uses({out: source}, scope=scope)
                self.remove_nodes([node], scope=scope)
        self.record("bypassed", "node", node.name or node.op_type, f"its readers now read {source!r}")

    @staticmethod
    def bypass_needs_identity(scope: Scope, node: NodeProto, input_index: int = 0, output_index: int = 0) -> bool:
        """Would bypassing `node` turn it into an Identity (its output is a graph output whose name the input
        cannot take over)?"""
        source, out = node.input[input_index], node.output[output_index]
        if out not in scope.outputs:
            return False
        producer = scope.producer.get(source)
        return producer is None or source in scope.outputs or any(r is not node for r in scope.readers(source))

    def reorder_nodes(self, scope: Scope, order: Sequence[NodeProto]) -> None:
        """Store a scope's nodes in `order` (a permutation of them; the indexes are unaffected)."""
        position = {id(node): i for i, node in enumerate(order)}
        if len(position) != len(scope.container.node) or any(id(n) not in position for n in scope.nodes):
            raise RewriteError(f"reorder_nodes needs a permutation of the nodes of {scope.name}")
        scope.container.node.sort(key=lambda node: position[id(node)])
        self.record("reordered", "graph", scope.display_name, f"{len(order)} nodes")

    def set_node_input(self, node: NodeProto, index: int, tensor: str) -> None:
        """Rewire one input of a node (`index` may be one past the end to append)."""
        scope = self.scope_of(node)
        if tensor and scope.resolve(tensor) is None:
            raise RewriteError(f"cannot rewire {describe(scope, node)} to {tensor!r}: nothing defines it")
        if index == len(node.input):
            node.input.append("")
        old = node.input[index]
        scope.set_node_input(node, index, tensor)
        self.record("rewired", "node", node.name, f"input {index}: {old!r} -> {tensor!r}")

    def set_node_inputs(self, node: NodeProto, tensors: Sequence[str]) -> None:
        """Replace all inputs of a node."""
        scope = self.scope_of(node)
        with self.quietly():
            while len(node.input) > len(tensors):
                scope.set_node_input(node, len(node.input) - 1, "")
                del node.input[-1]
            for i, tensor in enumerate(tensors):
                if i == len(node.input):
                    node.input.append("")
                scope.set_node_input(node, i, tensor)
        self.record("rewired", "node", node.name, f"inputs -> {list(tensors)}")

    def set_node_inputs_bulk(self, edits: Sequence[tuple[NodeProto, int, str]]) -> None:
        """Rewire many node inputs at once (one lazy index rebuild, not one index update per edit: rewiring
        thousands of readers to one new tensor stays linear). Targets must be defined once the caller is done."""
        for node, index, tensor in edits:
            old = node.input[index]
            node.input[index] = tensor
            self.record("rewired", "node", node.name, f"input {index}: {old!r} -> {tensor!r}")
        if edits:
            self._reindex()

    def set_op(self, node: NodeProto, op_type: str, *, domain: str | None = None) -> None:
        """Change what a node computes (its inputs, outputs and attributes stay)."""
        self.index.retag(node, op_type)
        old = node.op_type
        node.op_type = op_type
        if domain is not None:
            node.domain = domain
        self.record("changed", "node", node.name, f"op {old} -> {op_type}")

    def set_attribute(self, node: NodeProto, name: str, value: Any) -> None:
        """Set (add or replace) an attribute; the value's Python type gives the attribute type."""
        attribute = helper.make_attribute(name, value)
        for i, existing in enumerate(node.attribute):
            if existing.name == name:
                node.attribute[i].CopyFrom(attribute)
                break
        else:
            node.attribute.append(attribute)
        if attribute.type in (attribute.GRAPH, attribute.GRAPHS):
            self._reindex()
        self.record(
            "set",
            "attribute",
            f"{node.name}.{name}",
            repr(value) if not isinstance(value, TensorProto | np.ndarray) else "",
        )

    def replace_attributes(self, node: NodeProto, attributes: Mapping[str, Any]) -> None:
        """Replace all attributes of a node."""
        del node.attribute[:]
        for key, value in attributes.items():
            node.attribute.append(helper.make_attribute(key, value))
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            self._reindex()
        self.record("set", "attributes", node.name, ", ".join(attributes))

    def remove_attribute(self, node: NodeProto, name: str) -> None:
        kept = [a for a in node.attribute if a.name != name]
        if len(kept) != len(node.attribute):
            io.remove_where(node.attribute, lambda a: a.name == name)
            self.record("removed", "attribute", f"{node.name}.{name}")

    def rename_node(self, node: NodeProto, new: str) -> None:
        self.index.rename_node(node, new)
        old, node.name = node.name, new
        self.record("renamed", "node", old, f"now {new!r}")

    # -- editing: tensors --------------------------------------------------------------------------------
    def replace_uses(self, mapping: Mapping[str, str], *, scope: Scope | None = None) -> None:
        """Every read of a key (in the scope and in subgraphs reading it from outside) reads its value."""
        scope = scope or self.index.main
        aliases = dict(mapping)
        if not aliases:
            return

        def resolve(name: str) -> str:
            seen = 0
            while name in aliases and seen <= len(aliases):
                name = aliases[name]
                seen += 1
            return name

        for name in list(aliases):
            for reader in list(scope.consumers.get(name, [])):
                for i, current in enumerate(reader.input):
                    if current == name:
                        scope.set_node_input(reader, i, resolve(name))
        stack = [
            (child, scope)
            for owner in list(scope.implicit_consumers_of(aliases))
            for child in scope.children.get(id(owner), ())
            if not child.free_names.isdisjoint(aliases)
        ]
        while stack:
            child, _ = stack.pop()
            local = {n for n in aliases if child.defines(n)}
            for name in aliases.keys() - local:
                for reader in list(child.consumers.get(name, [])):
                    for i, current in enumerate(reader.input):
                        if current == name:
                            child.set_node_input(reader, i, resolve(name))
                if name in child.outputs:
                    child.rename_output(name, resolve(name))
            for owner in list(child.implicit_consumers_of(aliases.keys() - local)):
                for grandchild in child.children.get(id(owner), ()):
                    if not grandchild.free_names.isdisjoint(aliases.keys() - local):
                        stack.append((grandchild, child))
        for old, new in aliases.items():
            self.record("replaced", "tensor", old, f"its readers now read {resolve(new)!r}")

    def rename_tensor(self, old: str, new: str, *, scope: Scope | None = None) -> None:
        """Rename a tensor where it is defined (producer output, graph input, initializer, graph output,
        value_info) and everywhere it is read, including subgraphs that read it from outer scope.

        Raises:
            RewriteError: `old` is not defined there, or `new` is already in use.
        """
        scope = scope or self.index.main
        home = scope.resolve(old)
        if home is None and old not in scope.outputs:
            raise RewriteError(f"cannot rename {old!r}: no tensor of that name in {scope.name}")
        home = home or scope
        if home.resolve(new) is not None or (new in home.outputs and old in home.outputs):
            raise RewriteError(f"cannot rename {old!r} to {new!r}: {new!r} is already used in {home.name}")
        with self.quietly():
            home.rename_definition(old, new)
            self.replace_uses({old: new}, scope=home)
        self.record("renamed", "tensor", old, f"now {new!r}")

    def tensor_names(self, *, function: tuple[str, str, str] | None = None) -> set[str]:
        """Every tensor name of a namespace: the main graph with its subgraphs and training graphs (default),
        or one model-local function (domain, name, overload) with its subgraphs."""
        names: set[str] = set()
        for container in _namespace(self._proto, function):
            names.update(container.input if isinstance(container, FunctionProto) else ())
            names.update(container.output if isinstance(container, FunctionProto) else ())
            for node in container.node:
                names.update(node.input)
                names.update(node.output)
            if isinstance(container, GraphProto):
                names.update(vi.name for vi in (*container.input, *container.output, *container.value_info))
                names.update(t.name for t in container.initializer)
                names.update(s.values.name for s in container.sparse_initializer)
            else:
                names.update(vi.name for vi in getattr(container, "value_info", ()))
        names.discard("")
        return names

    def rename_tensors(self, mapping: Mapping[str, str], *, function: tuple[str, str, str] | None = None) -> None:
        """Rename tensors everywhere in a namespace (see :meth:`tensor_names`) in one linear pass.

        Every occurrence of a name is renamed (definitions, reads, graph inputs and outputs, value_info,
        initializers, quantization annotations, training bindings), so as long as the mapping stays one-to-one
        over the namespace's names (the caller checks: a swap is fine) every read still finds its definition.
        """
        renames = {old: new for old, new in mapping.items() if old and old != new}
        if not renames:
            return

        def fix(repeated: Any) -> None:
            for i, name in enumerate(repeated):
                if name in renames:
                    repeated[i] = renames[name]

        for container in _namespace(self._proto, function):
            for node in container.node:
                fix(node.input)
                fix(node.output)
            if isinstance(container, FunctionProto):
                fix(container.input)
                fix(container.output)
            infos = list(getattr(container, "value_info", ()))
            if isinstance(container, GraphProto):
                infos += [*container.input, *container.output]
                for tensor in (*container.initializer, *(s.values for s in container.sparse_initializer)):
                    tensor.name = renames.get(tensor.name, tensor.name)
                for annotation in container.quantization_annotation:
                    annotation.tensor_name = renames.get(annotation.tensor_name, annotation.tensor_name)
                    for entry in annotation.quant_parameter_tensor_names:
                        entry.value = renames.get(entry.value, entry.value)
            for info in infos:
                info.name = renames.get(info.name, info.name)
        if function is None:
            for training in self._proto.training_info:
                for binding in (*training.initialization_binding, *training.update_binding):
                    binding.key = renames.get(binding.key, binding.key)
                    binding.value = renames.get(binding.value, binding.value)
        self._reindex()
        for old, new in renames.items():
            self.record("renamed", "tensor", old, f"now {new!r}")

    def add_initializer(self, name: str, value: np.ndarray | TensorProto, *, scope: Scope | None = None) -> TensorProto:
        """Add a constant tensor (a TensorProto is copied as it is, external data references included).

        An initializer named like a graph input is that input's default value.
        """
        scope = scope or self.index.main
        if scope.is_function:
            raise RewriteError("function bodies have no initializers (add a Constant node instead)")
        if name in scope.producer or name in scope.initializers or name in scope.sparse_initializers:
            raise RewriteError(f"cannot add initializer {name!r}: {scope.name} already has a tensor of that name")
        tensor = value if isinstance(value, TensorProto) else numpy_helper.from_array(np.asarray(value), name)
        if self._proto.ir_version < 4 and name not in scope.inputs:
            # before IR 4 an initializer must also be a graph input (so a caller could override it): a new
            # constant is a Constant node instead, first in its graph
            constant = TensorProto()
            constant.CopyFrom(tensor)
            constant.name = name
            (node,) = self.insert_nodes(scope, 0, [helper.make_node("Constant", [], [name], value=constant)])
            return node.attribute[0].t
        added = scope.add_initializer(tensor)
        added.name = name
        scope.initializers[name] = added
        if not self._quiet:
            self.record("added", "initializer", name, _shape_text(added))
        return added

    def add_sparse_initializer(self, sparse: SparseTensorProto, *, scope: Scope | None = None) -> None:
        scope = scope or self.index.main
        added = scope.graph.sparse_initializer.add()
        added.CopyFrom(sparse)
        scope.sparse_initializers[added.values.name] = added
        self.record("added", "sparse initializer", added.values.name)

    def add_value_info(self, info: ValueInfoProto, *, scope: Scope | None = None) -> None:
        """Record a tensor's type (replacing what was recorded for that name)."""
        scope = scope or self.index.main
        if scope.is_function:
            return
        kind = info.type.WhichOneof("value") if info.HasField("type") else None
        if kind is None or (kind == "tensor_type" and not info.type.tensor_type.elem_type):
            return  # no type: it would say nothing, and onnxruntime refuses a value_info without one
        scope.remove_value_info({info.name})
        added = scope.container.value_info.add()
        added.CopyFrom(info)
        scope.value_info[added.name] = added

    def remove_initializers(self, names: set[str], *, scope: Scope | None = None) -> None:
        scope = scope or self.index.main
        for name in sorted(names):
            self.record("removed", "initializer", name)
        scope.remove_initializers(names)

    def set_tensor_value(self, name: str, value: np.ndarray, *, scope: Scope | None = None) -> None:
        """Give an initializer (or Constant node output) a new value; dtype and shape may change."""
        scope = scope or self.index.main
        home = scope.resolve(name)
        array = np.asarray(value)
        if home is not None and name in home.initializers:
            tensor = home.initializers[name]
            tensor.CopyFrom(numpy_helper.from_array(array, name))
        elif home is not None and name in home.producer and home.producer[name].op_type == "Constant":
            producer = home.producer[name]
            del producer.attribute[:]
            producer.attribute.append(helper.make_attribute("value", numpy_helper.from_array(array, name)))
        else:
            raise RewriteError(f"{name!r} is not an initializer or Constant output; it has no value to set")
        self.record("set", "value", name, f"{array.dtype}{list(array.shape)}")

    # -- editing: the graph interface --------------------------------------------------------------------
    def add_graph_input(self, name: str, dtype: DType, shape: Sequence[int | str | None] | None) -> ValueInfoProto:
        """Add a graph input (dims: ints, symbol names, or None for unknown)."""
        main = self.index.main
        if main.defines(name):
            raise RewriteError(f"cannot add graph input {name!r}: the main graph already has a tensor of that name")
        info = helper.make_tensor_value_info(name, tensor_dtype(dtype), None if shape is None else list(shape))
        added = main.add_input(info)
        self.record("added", "input", name, _type_text(added))
        return added

    def remove_graph_input(self, name: str) -> None:
        main = self.index.main
        if name not in main.inputs:
            raise RewriteError(f"the model has no graph input {name!r}")
        readers = main.readers(name)
        if readers and name not in main.initializers:
            who = ", ".join(repr(r.name) for r in readers[:5])
            raise RewriteError(f"cannot remove graph input {name!r}: it is read by {who}")
        main.remove_input(name)
        self.record("removed", "input", name)

    def add_graph_output(
        self, name: str, dtype: DType | None = None, shape: Sequence[int | str | None] | None = None
    ) -> ValueInfoProto:
        """Make a tensor of the main graph a graph output (type from value_info unless given; without `dtype`,
        a tensor whose recorded type onnx's checker would refuse as an output is refused)."""
        main = self.index.main
        if main.resolve(name) is None:
            raise RewriteError(f"cannot add graph output {name!r}: no tensor of that name in the main graph")
        if name in main.outputs:
            raise RewriteError(f"{name!r} is already a graph output")
        if dtype is not None:
            info = helper.make_tensor_value_info(name, tensor_dtype(dtype), None if shape is None else list(shape))
        elif name in main.value_info:
            info = ValueInfoProto()
            info.CopyFrom(main.value_info[name])
        else:
            info = ValueInfoProto(name=name)
        problem = None if dtype is not None else io_type_problem(info)
        if problem is not None:
            raise RewriteError(f"cannot add graph output {name!r}: {problem} (give `dtype` and `shape`)")
        added = main.add_output(info)
        self.record("added", "output", name, _type_text(added))
        return added

    def remove_graph_output(self, name: str) -> None:
        main = self.index.main
        if name not in main.outputs:
            raise RewriteError(f"the model has no graph output {name!r}")
        main.remove_output(name)
        self.record("removed", "output", name)


def _namespace(model: ModelProto, function: tuple[str, str, str] | None) -> Iterator[GraphProto | FunctionProto]:
    """The containers sharing one tensor namespace: the main graph, its subgraphs and the training graphs;
    or a function body and its subgraphs."""
    from graphsurgeon.core.walk import graphs_under, node_subgraphs

    if function is None:
        yield from graphs_under(model.graph)
        for info in model.training_info:
            yield from graphs_under(info.initialization, info.algorithm)
        return
    body = next(f for f in model.functions if (f.domain, f.name, getattr(f, "overload", "")) == function)
    yield body
    yield from graphs_under(*(g for node in body.node for _, g in node_subgraphs(node)))


def io_type_problem(info: ValueInfoProto) -> str | None:
    """Why onnx's checker would refuse `info` as a main-graph input or output (no type, a tensor type without
    element type or shape, ...), or None when it is complete enough."""
    import onnx.checker

    if not info.HasField("type") or info.type.WhichOneof("value") is None:
        return "its type is unknown"
    try:
        onnx.checker.check_value_info(info)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "the checker refuses it"
        return f"its type is incomplete ({first.rstrip('.')})"
    return None


def _type_text(info: ValueInfoProto) -> str:
    from graphsurgeon.core.format import format_type

    return format_type(info.type) if info.HasField("type") else "type unknown"


def _shape_text(tensor: TensorProto) -> str:
    from graphsurgeon.core.format import dtype_name

    return f"{dtype_name(tensor.data_type)}[{', '.join(str(d) for d in tensor.dims)}]"


__all__ = ["DType", "Editor", "Source", "tensor_dtype"]
