"""strip: what users remove before shipping — doc strings, metadata, value_info, Dropout, training parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from onnx import AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, numpy_helper

from graphsurgeon.core.constants import constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs, node_subgraphs

TRAINING_DOMAIN = "ai.onnx.preview.training"


def _all_nodes(model: ModelProto) -> Iterator[NodeProto]:
    for function in model.functions:
        yield from function.node
    for graph in model_graphs(model):
        yield from graph.node


def _annotated(model: ModelProto) -> Iterator[object]:
    """Every message of the model that carries a doc_string or metadata_props (functions' graphs included)."""
    yield model
    yield from model.functions
    for graph in model_graphs(model):
        yield graph
        yield from (*graph.input, *graph.output, *graph.value_info, *graph.initializer)
        yield from (s.values for s in graph.sparse_initializer)
    for node in _all_nodes(model):
        yield node
        yield from node.attribute
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t


def _strip_doc_strings(model: ModelProto) -> int:
    count = 0
    for message in _annotated(model):
        if getattr(message, "doc_string", ""):
            message.ClearField("doc_string")  # type: ignore[attr-defined]
            count += 1
    return count


def _clear_metadata(message: object) -> int:
    props = getattr(message, "metadata_props", None)
    if not props:
        return 0
    count = len(props)
    del props[:]
    return count


def _strip_metadata(model: ModelProto) -> int:
    """Model-, graph- and function-level metadata_props."""
    containers: list[object] = [model, *model.functions, *model_graphs(model)]
    return sum(_clear_metadata(m) for m in containers)


def _strip_node_metadata(model: ModelProto) -> int:
    """metadata_props of nodes, and of the tensors and value_infos that carry it (exporters' stack traces)."""
    count = 0
    for message in _annotated(model):
        if isinstance(message, ModelProto | GraphProto | FunctionProto):
            continue
        count += _clear_metadata(message)
    return count


def _dropout_removable(scope: Scope, node: NodeProto) -> bool:
    """An inference Dropout: standard domain, mask unread, training_mode absent or a constant false."""
    if node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
        return False
    if len(node.output) > 1 and node.output[1] and (scope.readers(node.output[1]) or node.output[1] in scope.outputs):
        return False
    if any(a.name == "is_test" and a.i == 0 for a in node.attribute):  # opset < 7: training
        return False
    if len(node.input) > 2 and node.input[2]:
        home = scope.resolve(node.input[2])
        tensor = None
        if home is not None and node.input[2] in home.initializers and node.input[2] not in home.inputs:
            tensor = home.initializers[node.input[2]]
        elif home is not None and node.input[2] in home.producer:
            tensor = constant_tensor(home.producer[node.input[2]])
        if tensor is None or tensor.external_data:
            return False
        return not bool(numpy_helper.to_array(tensor).any())
    return True


def _strip_dropout(ctx: Editor) -> tuple[int, int]:
    removed = kept = 0
    cache: dict[str, Any] = {}
    for node in [n for _, n in ctx.index.find_nodes() if n.op_type == "Dropout"]:
        scope = ctx.scope_of(node)  # fresh: a bypass may have rebuilt the index
        if not _dropout_removable(scope, node):
            kept += 1
            continue
        homes = [(name, home.container) for name in node.input[1:] if name and (home := scope.resolve(name))]
        ctx.bypass_node(node, 0)
        _drop_if_unread(ctx, homes, cache)
        removed += 1
    return removed, kept


def _drop_if_unread(ctx: Editor, homes: list[tuple[str, GraphProto | FunctionProto]], cache: dict[str, Any]) -> None:
    """Remove the ratio/training_mode constants that only the removed Dropout read."""
    if not homes:
        return
    if cache.get("index") is not ctx.index:  # scopes by container, rebuilt only when the index was
        cache["index"] = ctx.index
        cache["scopes"] = {id(s.container): s for s in ctx.index.scopes}
    by_container = cache["scopes"]
    for name, container in homes:
        home = by_container.get(id(container))
        if home is None or home.readers(name) or name in home.outputs or name in home.free_names:
            continue
        if name in home.initializers and name not in home.inputs:
            ctx.remove_initializers({name}, scope=home)
        elif name in home.producer and is_constant_node(home.producer[name]):
            ctx.remove_nodes([home.producer[name]], scope=home)


def _strip_training(ctx: Editor) -> int:
    proto = ctx.proto
    count = len(proto.training_info)
    if count:
        del proto.training_info[:]
    dead = [
        node
        for scope in ctx.index.scopes
        for node in scope.nodes
        if node.domain == TRAINING_DOMAIN
        and not any(scope.readers(o) or o in scope.outputs for o in node.output if o)
        and not list(node_subgraphs(node))
    ]
    if dead:
        ctx.remove_nodes(dead)
    if not any(n.domain == TRAINING_DOMAIN for n in _all_nodes(proto)) and ctx.opset_version(TRAINING_DOMAIN):
        ctx.remove_opset_imports({TRAINING_DOMAIN})
    return count + len(dead)


@verb(writes=True, preserves_meaning=True)
def strip(
    ctx: Editor,
    *,
    doc_strings: Annotated[bool, Opt("doc strings everywhere (model, graphs, nodes, tensors, functions)")] = False,
    metadata: Annotated[bool, Opt("metadata_props of the model, its graphs and functions")] = False,
    node_metadata: Annotated[bool, Opt("metadata_props of nodes and tensors (exporters' stack traces)")] = False,
    value_info: Annotated[bool, Opt("value_info (recorded intermediate types) of every graph")] = False,
    dropout: Annotated[bool, Opt("inference Dropout nodes (bypassed)")] = False,
    training_ops: Annotated[bool, Opt("training_info and unread ai.onnx.preview.training nodes")] = False,
) -> None:
    """Strip what does not change what the model computes at inference, to ship it smaller.

    With no option: doc strings and node metadata (the dynamo exporter's stack traces live there) — what
    never changes the computation nor the interface. Model metadata, value_info, Dropout and training
    parts only when asked. Dropout is removed only where it is an identity (training_mode absent or a
    constant false, mask unread); the ratio constants it alone read go too. Every depth is covered:
    If/Loop/Scan bodies and function bodies.
    """
    if not any((doc_strings, metadata, node_metadata, value_info, dropout, training_ops)):
        doc_strings = node_metadata = True
    proto = ctx.proto
    mark = len(ctx.changes)
    if dropout:
        removed, kept = _strip_dropout(ctx)
        if removed:
            ctx.record("stripped", "Dropout", "", f"{removed} node(s) bypassed")
        if kept:
            ctx.note(f"{kept} Dropout node(s) stay: in training mode, or their mask is read")
    if training_ops:
        count = _strip_training(ctx)
        if count:
            ctx.record("stripped", "training", "", f"{count} training_info entr(ies) and training node(s)")
    if value_info:
        count = 0
        for scope in [s for s in ctx.index.scopes if not s.is_function]:
            names = set(scope.value_info)
            count += len(names)
            with ctx.quietly():
                ctx.remove_value_info(names, scope=scope)
        for function in proto.functions:
            count += len(getattr(function, "value_info", []))
            if getattr(function, "value_info", None):
                del function.value_info[:]
        if count:
            ctx.record("stripped", "value_info", "", f"{count} entr(ies)")
    for wanted, what, strip_fn in (
        (doc_strings, "doc strings", _strip_doc_strings),
        (metadata, "metadata", _strip_metadata),
        (node_metadata, "node metadata", _strip_node_metadata),
    ):
        if wanted:
            count = strip_fn(proto)
            if count:
                ctx.record("stripped", what, "", f"{count} field(s)")
    if len(ctx.changes) == mark:
        ctx.note("nothing to strip: none of the chosen fields is set")
