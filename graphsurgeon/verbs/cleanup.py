"""cleanup: remove what nothing uses — nodes, initializers, value_info, functions, opset imports.

Liveness flows back from the graph outputs (and, inside a live node's subgraphs, from the subgraph outputs),
across scope boundaries: a subgraph reading an outer-scope value keeps that value's producer alive.
Graph inputs are the model's interface and are never removed. One linear pass.
"""

from __future__ import annotations

from onnx import FunctionProto, ModelProto, NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import ModelIndex, Scope
from graphsurgeon.core.verb import verb
from graphsurgeon.core.walk import graphs_under, model_graphs
from graphsurgeon.errors import RewriteError


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
        self._work: list[tuple[Scope, NodeProto]] = []

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


@verb(writes=True, preserves_meaning=True)
def cleanup(ctx: Editor) -> None:
    """Remove nodes, initializers, value_info, functions and opset imports that nothing uses.

    Liveness flows back from the graph outputs at every depth, honouring outer-scope reads of If/Loop/Scan
    bodies; graph inputs stay.
    """
    index = ctx.index
    index.check_references()
    proto = ctx.proto
    if not index.main.outputs and any(True for _ in index.main.nodes):
        raise RewriteError(
            "the model has no graph output, so every node is unused and nothing would be left; "
            "declare the outputs first (add-outputs)"
        )
    mark = len(ctx.changes)
    live = _Liveness(index)
    live.need_outputs(index.main)
    for name in _training_reads(proto):
        live.need(index.main, name)
    live.run()

    for scope in list(index.scopes):
        if isinstance(scope.container, FunctionProto):
            key = _function_key(scope.container.domain, scope.container.name, getattr(scope.container, "overload", ""))
            if key not in live.used_functions:
                continue
        if not _scope_is_live(scope, live):
            continue
        ctx.remove_nodes([node for node in scope.nodes if id(node) not in live.live_nodes], scope=scope)
        if scope.is_function:
            continue
        unused = {
            name for name in scope.initializers if (id(scope), name) not in live.used_names and name not in scope.inputs
        }
        ctx.remove_initializers(unused, scope=scope)
        ctx.remove_sparse_initializers(
            {
                name
                for name in scope.sparse_initializers
                if (id(scope), name) not in live.used_names and name not in scope.inputs
            },
            scope=scope,
        )
        ctx.remove_value_info(
            {vi.name for vi in scope.container.value_info if scope.resolve(vi.name) is None}, scope=scope
        )

    ctx.remove_functions(
        {
            _function_key(f.domain, f.name, getattr(f, "overload", ""))
            for f in proto.functions
            if _function_key(f.domain, f.name, getattr(f, "overload", "")) not in live.used_functions
        }
    )
    ctx.remove_opset_imports(_unused_domains(proto))
    if len(ctx.changes) == mark:
        ctx.note("nothing unused: every node, initializer, value_info and function feeds a graph output")


def _scope_is_live(scope: Scope, live: _Liveness) -> bool:
    """A subgraph matters only if the node holding it (and every node above) is live."""
    while scope.owner is not None:
        if id(scope.owner) not in live.live_nodes:
            return False
        assert scope.parent is not None  # a scope held by a node is a subgraph
        scope = scope.parent
    return True


def _unused_domains(model: ModelProto) -> set[str]:
    """Domains no remaining node uses (the default ONNX domain always stays)."""
    used = {"", "ai.onnx"}
    for graph in model_graphs(model):
        used.update(node.domain for node in graph.node)
    for function in model.functions:
        used.update(node.domain for node in function.node)
    unused = {o.domain for o in model.opset_import if o.domain not in used}
    if unused and all(o.domain in unused for o in model.opset_import):
        return set()  # the last opset import stays: a model needs one (onnxruntime refuses one without)
    return unused
