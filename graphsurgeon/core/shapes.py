"""Keeping recorded shapes honest after a rewrite: what a changed node feeds may no longer be static."""

from __future__ import annotations

import onnx
from onnx import ModelProto, NodeProto, TypeProto, ValueInfoProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, is_external
from graphsurgeon.core.index import ModelIndex, Scope
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.walk import model_graphs

_INLINE_LIMIT = 4096  # initializers above this are given to shape inference as typed inputs, not values


def downstream(index: ModelIndex, starts: list[tuple[Scope, NodeProto]]) -> list[tuple[Scope, str]]:
    """Every tensor computed from the outputs of `starts`, across subgraph boundaries, in discovery order."""
    found: list[tuple[Scope, str]] = []
    seen: set[tuple[int, str]] = set()
    work: list[tuple[Scope, str]] = []

    def push(scope: Scope, name: str) -> None:
        if name and (id(scope), name) not in seen:
            seen.add((id(scope), name))
            found.append((scope, name))
            work.append((scope, name))

    for scope, node in starts:
        for name in node.output:
            push(scope, name)
    while work:
        scope, name = work.pop()
        for reader in scope.consumers.get(name, []):
            for out in reader.output:
                push(scope, out)
        for reader in scope.implicit_consumers.get(name, []):
            for out in reader.output:
                push(scope, out)
            for child in scope.children.get(id(reader), []):
                if name in child.free_names:
                    push(child, name)
        if name in scope.outputs and scope.owner is not None and scope.parent is not None:
            for out in scope.owner.output:
                push(scope.parent, out)
    return found


def light_copy(model: ModelProto, placeholders: set[str] | None = None) -> ModelProto:
    """The model without large or external initializer values (typed graph inputs instead): enough for shape
    inference and converters that never read weights. `placeholders` collects the names made inputs."""
    light = ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(light, field, getattr(model, field))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, out = model.graph, light.graph
    out.name = graph.name
    out.node.extend(graph.node)
    out.input.extend(graph.input)
    out.output.extend(graph.output)
    out.value_info.extend(graph.value_info)
    out.sparse_initializer.extend(graph.sparse_initializer)
    inputs = {vi.name for vi in graph.input}
    for tensor in graph.initializer:
        size = declared_nbytes(tensor)
        if not is_external(tensor) and size is not None and size <= _INLINE_LIMIT:
            out.initializer.add().CopyFrom(tensor)
        elif tensor.name not in inputs:
            out.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
            if placeholders is not None:
                placeholders.add(tensor.name)
    return light


def _inferred_types(model: ModelProto, forget: dict[int, set[str]]) -> list[dict[str, TypeProto]] | None:
    """Per graph (in `model_graphs` order), the types onnx's shape inference finds; None if it fails.

    `forget` names, per graph position, the tensors whose recorded shapes must be derived afresh.
    """
    light = light_copy(model)
    for position, graph in enumerate(model_graphs(light)):
        for vi in (*graph.value_info, *graph.output):
            if vi.name in forget.get(position, ()) and vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")
    try:
        inferred = infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:  # inference is advisory here: without it every affected static dim becomes symbolic
        return None
    result = []
    for graph in model_graphs(inferred):
        types: dict[str, TypeProto] = {}
        for vi in (*graph.input, *graph.value_info, *graph.output):
            types[vi.name] = vi.type
        result.append(types)
    return result


def _symbolic_dim_name(tensor: str, axis: int) -> str:
    return f"{tensor}_dim{axis}"


def _relax(value_info: ValueInfoProto, inferred: TypeProto | None) -> bool:
    """Make static dims the inference no longer confirms symbolic. Returns whether anything changed."""
    tensor_type = value_info.type.tensor_type if value_info.type.HasField("tensor_type") else None
    if tensor_type is None or not tensor_type.HasField("shape"):
        return False
    known: list[int | None] = []
    if inferred is not None and inferred.HasField("tensor_type") and inferred.tensor_type.HasField("shape"):
        known = [d.dim_value if d.HasField("dim_value") else None for d in inferred.tensor_type.shape.dim]
    if known and len(known) != len(tensor_type.shape.dim):
        known = []
    changed = False
    for axis, dim in enumerate(tensor_type.shape.dim):
        if not dim.HasField("dim_value"):
            continue
        known_value = known[axis] if known else None
        if known_value is not None:
            if known_value != dim.dim_value:
                dim.dim_value = known_value
                changed = True
            continue
        dim.dim_param = _symbolic_dim_name(value_info.name, axis)
        changed = True
    return changed


def make_downstream_dims_symbolic(model: Editor, changed: list[tuple[Scope, NodeProto]]) -> list[str]:
    """After `changed` nodes got new operands, relax recorded shapes downstream of them.

    A static dim stays only where onnx's shape inference still derives that same value; otherwise it
    becomes a named symbolic dim, so runtimes accept the new shapes. Returns what was changed.
    """
    index = model.index
    affected = downstream(index, changed)
    if not affected:
        return []
    graphs = list(model_graphs(model.proto))  # held, so the ids below stay unique
    position = {id(g): i for i, g in enumerate(graphs)}
    forget: dict[int, set[str]] = {}
    for scope, name in affected:
        if id(scope.container) in position:
            forget.setdefault(position[id(scope.container)], set()).add(name)
    inferred = _inferred_types(model.proto, forget)
    relaxed_outputs: list[str] = []
    relaxed_info = 0
    for scope, name in affected:
        if scope.is_function:
            continue
        types = None
        if inferred is not None and position.get(id(scope.container), len(inferred)) < len(inferred):
            types = inferred[position[id(scope.container)]]
        target_type = types.get(name) if types is not None else None
        info = scope.value_info.get(name)
        if info is not None and _relax(info, target_type):
            relaxed_info += 1
        output = scope.outputs.get(name)
        if output is not None and _relax(output, target_type):
            relaxed_outputs.append(f"{name}{_format_shape(output)}")
    changes = []
    if relaxed_outputs:
        changes.append("graph outputs now symbolic where they depend on it: " + ", ".join(relaxed_outputs))
    if relaxed_info:
        changes.append(f"relaxed {relaxed_info} downstream value_info shape(s)")
    return changes


def _format_shape(value_info: ValueInfoProto) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?" for d in dims) + "]"
