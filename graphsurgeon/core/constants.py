"""Constant values in a graph: the ONNX domains, and decoding every form of a Constant node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnx import AttributeProto, NodeProto, TensorProto, helper

if TYPE_CHECKING:
    from graphsurgeon.core.index import Scope

STANDARD_DOMAINS = frozenset({"", "ai.onnx"})  # the default operator set, under both spellings
ONNX_DOMAINS = STANDARD_DOMAINS | {"ai.onnx.ml"}  # everything onnxruntime implements without a custom kernel


def is_standard(node: NodeProto) -> bool:
    return node.domain in STANDARD_DOMAINS


def is_constant_node(node: NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in STANDARD_DOMAINS and len(node.output) == 1


_MAKERS = {
    "value_float": lambda a: (TensorProto.FLOAT, [], [a.f]),
    "value_floats": lambda a: (TensorProto.FLOAT, [len(a.floats)], list(a.floats)),
    "value_int": lambda a: (TensorProto.INT64, [], [a.i]),
    "value_ints": lambda a: (TensorProto.INT64, [len(a.ints)], list(a.ints)),
    "value_string": lambda a: (TensorProto.STRING, [], [a.s]),
    "value_strings": lambda a: (TensorProto.STRING, [len(a.strings)], list(a.strings)),
}


def constant_tensor(node: NodeProto, name: str | None = None) -> TensorProto | None:
    """The value of a Constant node as a TensorProto named `name` (default: its output); None if it is
    not a Constant, holds a sparse value, or refers to a function attribute."""
    if not is_constant_node(node):
        return None
    name = node.output[0] if name is None else name
    for a in node.attribute:
        if a.ref_attr_name:
            return None
        if a.name == "value" and a.type == AttributeProto.TENSOR:
            tensor = TensorProto()
            tensor.CopyFrom(a.t)  # external data: copies the reference, not the bytes
            tensor.name = name
            return tensor
        if a.name in _MAKERS:
            dtype, dims, values = _MAKERS[a.name](a)
            return helper.make_tensor(name, dtype, dims, values)
    return None


def constant_kind(node: NodeProto) -> str:
    """Which attribute holds a Constant's value (for messages)."""
    return ", ".join(a.name for a in node.attribute) or "nothing"


def constant_behind(scope: Scope, name: str) -> TensorProto | None:
    """The constant a name stands for in `scope`: an initializer no graph input overrides, or a Constant
    node's value (dense forms); None otherwise. Reads no weight bytes."""
    if not name:
        return None
    home = scope.resolve(name)
    if home is None or name in home.inputs:
        return None
    tensor = home.initializers.get(name)
    if tensor is not None:
        return tensor
    producer = home.producer.get(name)
    return constant_tensor(producer, name) if producer is not None else None
