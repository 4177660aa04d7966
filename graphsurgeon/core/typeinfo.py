"""What is known about a tensor's type: declared (inputs, outputs, value_info, initializers), else inferred.

Inference runs at most once per lookup object, on a copy without large weights (never reading external data).
"""

from __future__ import annotations

from onnx import TensorProto, TypeProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.shapes import _inferred_types
from graphsurgeon.core.walk import model_graphs


def _tensor_type(tensor: TensorProto) -> TypeProto:
    return helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))


def _has_shape(type_proto: TypeProto) -> bool:
    return type_proto.HasField("tensor_type") and type_proto.tensor_type.HasField("shape")


class TypeLookup:
    """Tensor types of a model's graph scopes (function bodies have none declared: None there)."""

    def __init__(self, ctx: Editor):
        self._ctx = ctx
        self._inferred: dict[int, dict[str, TypeProto]] | None = None

    def _declared(self, scope: Scope, name: str) -> TypeProto | None:
        if scope.is_function:
            return None
        if name in scope.initializers:
            return _tensor_type(scope.initializers[name])
        for table in (scope.inputs, scope.outputs, scope.value_info):
            info = table.get(name)
            if info is not None and info.HasField("type"):
                return info.type
        return None

    def _inferred_for(self, scope: Scope) -> dict[str, TypeProto]:
        if self._inferred is None:
            self._inferred = {}
            proto = self._ctx.proto
            inferred = _inferred_types(proto, {}) or []
            for graph, types in zip(model_graphs(proto), inferred, strict=False):
                self._inferred[id(graph)] = types
        return self._inferred.get(id(scope.container), {})

    def type_of(self, scope: Scope, name: str) -> TypeProto | None:
        """The tensor's type as seen from `scope` (walking out to where it is defined)."""
        home = scope.resolve(name) or scope
        declared = self._declared(home, name)
        if declared is not None and _has_shape(declared) and declared.tensor_type.elem_type:
            return declared
        if home.is_function:
            return declared
        return self._inferred_for(home).get(name, declared)


def elem_type(type_proto: TypeProto | None) -> int:
    if type_proto is None or not type_proto.HasField("tensor_type"):
        return 0
    return type_proto.tensor_type.elem_type


def static_dims(type_proto: TypeProto | None) -> list[int | str | None] | None:
    """Dims (int, symbol or None) of a tensor type; None when the rank is unknown."""
    if type_proto is None or not _has_shape(type_proto):
        return None
    dims: list[int | str | None] = []
    for d in type_proto.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return dims


def shape_conflict(a: TypeProto | None, b: TypeProto | None) -> str | None:
    """Why values of types `a` and `b` cannot be the same value (None when they may be): a different kind
    (tensor, sequence, optional, map, sparse tensor), element type, rank or static dim."""
    kind_a = a.WhichOneof("value") if a is not None else None
    kind_b = b.WhichOneof("value") if b is not None else None
    if kind_a and kind_b and kind_a != kind_b:
        return f"{kind_a.removesuffix('_type').replace('_', ' ')} vs {kind_b.removesuffix('_type').replace('_', ' ')}"
    if a is not None and b is not None and kind_a in ("sequence_type", "optional_type"):
        inner = shape_conflict(getattr(a, kind_a).elem_type, getattr(b, kind_a).elem_type)
        return None if inner is None else f"{kind_a.removesuffix('_type')} elements: {inner}"
    ea, eb = elem_type(a), elem_type(b)
    if ea and eb and ea != eb:
        from graphsurgeon.core.format import dtype_name

        return f"element type {dtype_name(ea)} vs {dtype_name(eb)}"
    da, db = static_dims(a), static_dims(b)
    if da is None or db is None:
        return None
    if len(da) != len(db):
        return f"rank {len(da)} vs {len(db)}"
    for axis, (x, y) in enumerate(zip(da, db, strict=True)):
        if isinstance(x, int) and isinstance(y, int) and x != y:
            return f"dim {axis}: {x} vs {y}"
    return None
