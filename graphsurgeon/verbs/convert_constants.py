"""convert-constants: Constant nodes <-> initializers, scope by scope, meaning preserved."""

from __future__ import annotations

from typing import Annotated

from onnx import NodeProto, TensorProto, helper

from graphsurgeon.core.constants import constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.names import NameAllocator
from graphsurgeon.core.verb import Opt, verb


def _training_names(ctx: Editor) -> set[str]:
    """Initializers a training algorithm updates or initializes: they must stay initializers."""
    names: set[str] = set()
    for info in ctx.proto.training_info:
        names.update(b.key for b in (*info.initialization_binding, *info.update_binding))
    return names


def _to_initializers(ctx: Editor) -> int:
    skipped_functions = skipped_other = converted = 0
    if ctx.proto.ir_version < 4:
        ctx.note(f"IR version {ctx.proto.ir_version}: initializers must also be graph inputs there; nothing converted")
        return 0
    for scope in list(ctx.index.scopes):
        constants = [n for n in scope.nodes if is_constant_node(n)]
        if not constants:
            continue
        if scope.is_function:
            skipped_functions += len(constants)
            continue
        plan: list[tuple[NodeProto, TensorProto]] = []
        for node in constants:
            tensor = constant_tensor(node)
            if tensor is None:  # sparse_value, or a function attribute reference
                skipped_other += 1
                continue
            plan.append((node, tensor))
        if not plan:
            continue
        with ctx.quietly():
            ctx.remove_nodes([node for node, _ in plan], scope=scope)
            for node, tensor in plan:
                ctx.add_initializer(node.output[0], tensor, scope=scope)
        converted += len(plan)
        ctx.changes.record(
            "converted", "constants", scope.display_name, f"{len(plan)} Constant node(s) -> initializer(s)"
        )
    if skipped_functions:
        ctx.note(f"{skipped_functions} Constant node(s) in function bodies stay: functions have no initializers")
    if skipped_other:
        ctx.note(f"{skipped_other} Constant node(s) holding a sparse value or an attribute reference stay")
    return converted


def _to_nodes(ctx: Editor) -> int:
    training = _training_names(ctx)
    external = converted = 0
    node_names = NameAllocator({n for n in ctx.index.by_name if n})
    for scope in [s for s in ctx.index.scopes if not s.is_function]:
        names = [
            name
            for name, tensor in scope.initializers.items()
            if name not in scope.inputs and name not in training and not is_external(tensor)
        ]
        external += sum(1 for t in scope.initializers.values() if is_external(t) and t.name not in scope.inputs)
        if not names:
            continue
        nodes = [_constant_node(scope, name, node_names) for name in names]
        with ctx.quietly():
            ctx.remove_initializers(set(names), scope=scope)
            ctx.insert_nodes(scope, 0, nodes)
        converted += len(nodes)
        ctx.changes.record("converted", "initializers", scope.display_name, f"{len(nodes)} initializer(s) -> Constant")
    if external:
        ctx.note(f"{external} initializer(s) in external data stay: a Constant node would hold their bytes inline")
    if training:
        ctx.note(f"{len(training)} initializer(s) bound by training_info stay initializers")
    return converted


def _constant_node(scope: Scope, name: str, node_names: NameAllocator) -> NodeProto:
    tensor = scope.initializers[name]
    node = helper.make_node("Constant", [], [name], name=node_names.fresh(f"{name}_constant"))
    value = node.attribute.add()
    value.name = "value"
    value.type = value.TENSOR
    value.t.CopyFrom(tensor)
    return node


@verb(writes=True, preserves_meaning=True)
def convert_constants(
    ctx: Editor,
    *,
    to: Annotated[str, Opt("what constants become", choices=("initializers", "nodes"))] = "initializers",
) -> None:
    """Turn Constant nodes into initializers, or initializers into Constant nodes (`to`).

    Scope by scope: a Constant in an If/Loop/Scan body becomes an initializer of that body (subgraphs
    have their own), and back. Names stay, so every reader (subgraphs reading from outer scope too)
    reads the same value. Left as they are, with a note: Constants in function bodies (functions have
    no initializers), sparse Constants, initializers that are graph inputs (overridable defaults),
    initializers bound by training_info, and initializers in external data (not read into a node).
    """
    index = ctx.index
    index.check_references()
    converted = _to_initializers(ctx) if to == "initializers" else _to_nodes(ctx)
    if not converted:
        ctx.note(f"nothing to convert to {to}")
