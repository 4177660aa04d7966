"""cleanup: remove what nothing uses — nodes, initializers, value_info, functions, opset imports.

Liveness flows back from the graph outputs (and, inside a live node's subgraphs, from the subgraph outputs),
across scope boundaries: a subgraph reading an outer-scope value keeps that value's producer alive.
Graph inputs are the model's interface and are never removed. One linear pass, then one rebuild.
"""

from __future__ import annotations

from onnx import ModelProto

from graphsurgeon._index import ModelIndex, Scope
from graphsurgeon._walk import graphs_under, model_graphs
from graphsurgeon.model import Model


def _function_key(domain: str, name: str, overload: str = "") -> tuple[str, str, str]:
    return (domain, name, overload)


def _training_reads(model: ModelProto) -> set[str]:
    """Names read by training graphs (they update main-graph initializers, so those stay)."""
    names: set[str] = set()
    for info in model.training_info:
        for root in (info.initialization, info.algorithm):
            for graph in graphs_under(root):
                for node in graph.node:
                    names.update(node.input)
                names.update(vi.name for vi in graph.output)
        names.update(binding.value for binding in (*info.initialization_binding, *info.update_binding))
    return names


class _Liveness:
    """Which nodes and names are needed, found by a worklist from the roots."""

    def __init__(self, index: ModelIndex):
        self.index = index
        self.live_nodes: set[int] = set()
        self.used_names: set[tuple[int, str]] = set()  # (id of the defining scope, name)
        self.used_functions: set[tuple[str, str, str]] = set()
        self._work: list[tuple[Scope, object]] = []

    def need(self, scope: Scope, name: str) -> None:
        if not name:
            return
        home = scope.resolve(name)
        if home is None:
            return
        self.used_names.add((id(home), name))
        producer = home.producer.get(name)
        if producer is not None and id(producer) not in self.live_nodes:
            self.live_nodes.add(id(producer))
            self._work.append((home, producer))

    def need_outputs(self, scope: Scope) -> None:
        for name in scope.outputs:
            self.need(scope, name)

    def run(self) -> None:
        functions = self.index.functions
        while self._work:
            scope, node = self._work.pop()
            for name in node.input:
                self.need(scope, name)
            for child in scope.children.get(id(node), ()):
                self.need_outputs(child)
            key = _function_key(node.domain, node.op_type, getattr(node, "overload", ""))
            if key in functions and key not in self.used_functions:
                self.used_functions.add(key)
                self.need_outputs(functions[key])


def cleanup(model: Model) -> None:
    index = model.index
    index.check_references()
    proto = model.proto
    live = _Liveness(index)
    live.need_outputs(index.main)
    for name in _training_reads(proto):
        live.need(index.main, name)
    live.run()

    removed_nodes = removed_initializers = removed_value_info = 0
    for scope in index.scopes:
        if scope.is_function:
            key = _function_key(scope.container.domain, scope.container.name, getattr(scope.container, "overload", ""))
            if key not in live.used_functions:
                continue
        if not _scope_is_live(scope, live):
            continue
        dead = [node for node in scope.nodes if id(node) not in live.live_nodes]
        removed_nodes += len(dead)
        scope.remove_nodes(dead)
        if scope.is_function:
            continue
        unused = {
            name for name in scope.initializers if (id(scope), name) not in live.used_names and name not in scope.inputs
        }
        removed_initializers += len(unused)
        scope.remove_initializers(unused)
        removed_initializers += _remove_sparse(scope, live)
        removed_value_info += _remove_stale_value_info(scope)

    removed_functions = _remove_functions(proto, live.used_functions)
    removed_domains = _remove_opset_imports(proto)
    model.invalidate()
    parts = [
        f"{count} {what}"
        for count, what in (
            (removed_nodes, "node(s)"),
            (removed_initializers, "initializer(s)"),
            (removed_value_info, "value_info entr(y/ies)"),
            (removed_functions, "function(s)"),
        )
        if count
    ]
    if removed_domains:
        parts.append("opset import(s) " + ", ".join(removed_domains))
    model.note("cleanup: removed " + ", ".join(parts) if parts else "cleanup: nothing unused, nothing removed")


def _scope_is_live(scope: Scope, live: _Liveness) -> bool:
    """A subgraph matters only if the node holding it (and every node above) is live."""
    while scope.owner is not None:
        if id(scope.owner) not in live.live_nodes:
            return False
        scope = scope.parent
    return True


def _remove_sparse(scope: Scope, live: _Liveness) -> int:
    graph = scope.container
    unused = {
        name
        for name in scope.sparse_initializers
        if (id(scope), name) not in live.used_names and name not in scope.inputs
    }
    if unused:
        kept = len(graph.sparse_initializer) - len(unused)
        graph.sparse_initializer.sort(key=lambda s: s.values.name in unused)
        del graph.sparse_initializer[kept:]
    return len(unused)


def _remove_stale_value_info(scope: Scope) -> int:
    """value_info describing a tensor that no longer exists in its scope."""
    graph = scope.container
    stale = {vi.name for vi in graph.value_info if scope.resolve(vi.name) is None}
    if stale:
        kept = sum(1 for vi in graph.value_info if vi.name not in stale)
        graph.value_info.sort(key=lambda vi: vi.name in stale)
        del graph.value_info[kept:]
    return len(stale)


def _remove_functions(model: ModelProto, used: set[tuple[str, str, str]]) -> int:
    def unused(f) -> bool:
        return _function_key(f.domain, f.name, getattr(f, "overload", "")) not in used

    count = sum(1 for f in model.functions if unused(f))
    if count:
        model.functions.sort(key=unused)
        del model.functions[len(model.functions) - count :]
    return count


def _remove_opset_imports(model: ModelProto) -> list[str]:
    """Domains no remaining node uses (the default ONNX domain always stays)."""
    used = {"", "ai.onnx"}
    for graph in model_graphs(model):
        used.update(node.domain for node in graph.node)
    for function in model.functions:
        used.update(node.domain for node in function.node)
    dropped = [o.domain for o in model.opset_import if o.domain not in used]
    if dropped:
        model.opset_import.sort(key=lambda o: o.domain not in used)
        del model.opset_import[len(model.opset_import) - len(dropped) :]
    return dropped
