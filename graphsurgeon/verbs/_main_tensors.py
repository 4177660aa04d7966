"""Shared by add-outputs and extract: naming main-graph tensors, and their types from inference (no weights read)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import onnx
from onnx import TypeProto, ValueInfoProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.errors import RewriteError


def require_main_tensor(ctx: Editor, name: str, option: str) -> None:
    """Refuse a name the main graph does not define, saying where it lives if it is local to a subgraph or function.

    Raises:
        RewriteError: not a tensor of the main graph.
    """
    main = ctx.index.main
    if main.defines(name):
        return
    for scope in ctx.index.scopes:
        if scope is not main and (scope.defines(name) or name in scope.outputs):
            raise RewriteError(
                f"`{option}` names {name!r}, which exists only inside {scope.name}; "
                "only tensors of the main graph can be used (add an output to that body first)"
            )
    known = [*main.inputs, *main.initializers, *main.producer]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise RewriteError(f"`{option}` names {name!r}, which is not a tensor of the main graph{hint}")


def inferred_types(ctx: Editor, names: Iterable[str]) -> dict[str, TypeProto]:
    """Types of main-graph tensors: onnx shape inference over a weight-free copy, else what value_info records.

    A name with neither is left out (the caller notes that its type is unknown).
    """
    wanted = set(names)
    main = ctx.index.main
    types: dict[str, TypeProto] = {}
    for name in wanted:
        recorded = main.value_info.get(name) or main.outputs.get(name) or main.inputs.get(name)
        if recorded is not None and recorded.HasField("type"):
            types[name] = recorded.type
        elif name in main.initializers:
            tensor = main.initializers[name]
            types[name] = onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
    try:
        inferred = infer_shapes(light_copy(ctx.proto), strict_mode=False, data_prop=True)
    except Exception:  # inference is advisory: the recorded types stand
        return types
    for info in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input):
        if info.name in wanted and _is_better(info, types.get(info.name)):
            types[info.name] = info.type
    return types


def _is_better(info: ValueInfoProto, recorded: TypeProto | None) -> bool:
    """Inference wins over a recorded type unless it knows less (no element type, or fewer known dims)."""
    found = info.type
    if recorded is None:
        return found.WhichOneof("value") is not None
    if found.WhichOneof("value") != "tensor_type" or recorded.WhichOneof("value") != "tensor_type":
        return False
    if found.tensor_type.elem_type == 0:
        return False
    if not recorded.tensor_type.HasField("shape"):
        return True
    if not found.tensor_type.HasField("shape"):
        return False
    return _known_dims(found) >= _known_dims(recorded)


def _known_dims(type_proto: TypeProto) -> int:
    return sum(d.HasField("dim_value") or bool(d.dim_param) for d in type_proto.tensor_type.shape.dim)


def value_info(name: str, type_proto: TypeProto | None) -> ValueInfoProto:
    info = ValueInfoProto(name=name)
    if type_proto is not None:
        info.type.CopyFrom(type_proto)
    return info
