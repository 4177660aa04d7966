"""Operand names from ONNX operator schemas (`--attr scales` -> input 2 of Resize)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import onnx.defs
from onnx import NodeProto

from graphsurgeon.errors import RewriteError


def _schema(op_type: str, domain: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None


def standard_schema(node: NodeProto, opset: int | None) -> onnx.defs.OpSchema | None:
    """The schema of a default-domain node at `opset`; None for other domains, no opset or no such op."""
    if node.domain not in ("", "ai.onnx") or opset is None:
        return None
    return _schema(node.op_type, "", opset)


def formal_at(
    formals: Sequence[onnx.defs.OpSchema.FormalParameter], index: int
) -> onnx.defs.OpSchema.FormalParameter | None:
    """The formal parameter the `index`-th input (or output) binds to: the last one when it is variadic."""
    if index < len(formals):
        return formals[index]
    if formals and formals[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return formals[-1]
    return None


@cache
def _history(op_type: str, domain: str) -> tuple[onnx.defs.OpSchema, ...]:
    schemas = [s for s in onnx.defs.get_all_schemas_with_history() if s.name == op_type and s.domain == domain]
    return tuple(sorted(schemas, key=lambda s: s.since_version))


def operand_index(node: NodeProto, operand: str, opset: int) -> int:
    """The input index of the operand named `operand` in the node's schema at `opset`.

    An operand that is an attribute at this opset but an input in a later one is refused with the opset
    to convert to: moving it means converting the whole model's opset, which this verb does not guess at.
    """
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    schema = _schema(node.op_type, domain, opset)
    if schema is None:
        raise RewriteError(
            f"no ONNX schema for {domain or 'ai.onnx'}::{node.op_type} at opset {opset}, "
            "so its operands have no names to select by"
        )
    names = [formal.name for formal in schema.inputs]
    if operand in names:
        return names.index(operand)
    if operand in schema.attributes:
        later = next(
            (
                s
                for s in _history(node.op_type, domain)
                if s.since_version > opset and operand in [f.name for f in s.inputs]
            ),
            None,
        )
        if later is None:
            raise RewriteError(
                f"{node.op_type} (opset {opset}) has {operand!r} as an attribute, and no later opset makes it "
                "an input, so it cannot become a graph input"
            )
        raise RewriteError(
            f"{node.op_type} node {node.name!r}: {operand!r} is an attribute at opset {opset}; it became an "
            f"input in opset {later.since_version}. Convert the model to opset >= {later.since_version} first "
            f"(onnx.version_converter.convert_version), then promote it"
        )
    raise RewriteError(
        f"{node.op_type} (opset {opset}) has no operand named {operand!r}; its inputs are: {', '.join(names)}"
    )


def type_string(type_proto: onnx.TypeProto | None) -> str | None:
    """The schema spelling of a value type ("tensor(float)", "seq(tensor(bool))"), None when not fully known."""
    if type_proto is None:
        return None
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        elem = getattr(type_proto, kind).elem_type
        if not elem or elem not in onnx.TensorProto.DataType.values():  # 0 (unknown) or a value onnx does not define
            return None
        name = onnx.TensorProto.DataType.Name(elem).lower()
        return f"{'tensor' if kind == 'tensor_type' else 'sparse_tensor'}({name})"
    if kind in ("sequence_type", "optional_type"):
        inner = type_string(getattr(type_proto, kind).elem_type)
        return None if inner is None else f"{'seq' if kind == 'sequence_type' else 'optional'}({inner})"
    return None


def refused_input_type(
    schema: onnx.defs.OpSchema, inputs: list[str], types: list[onnx.TypeProto | None]
) -> tuple[str, str, str, list[str]] | None:
    """The first input whose known type the schema's type constraints refuse, as (tensor, its type string,
    the operand name, the allowed type strings); None when every known type is allowed. Unknown types pass."""
    allowed = {c.type_param_str: list(c.allowed_type_strs) for c in schema.type_constraints}
    formals = list(schema.inputs)
    for position, (name, type_proto) in enumerate(zip(inputs, types, strict=True)):
        if not name or not formals:
            continue
        formal = formals[min(position, len(formals) - 1)]
        spelled = type_string(type_proto)
        options = allowed.get(formal.type_str, [formal.type_str])
        if spelled is not None and spelled not in options:
            return name, spelled, formal.name, options
    return None


def refuse_old_cast(node: NodeProto, opset: int | None) -> None:
    """Refuse a Cast a rewrite makes in a model below ai.onnx opset 6: Cast named its target type as a string
    then ("FLOAT16"), which onnx's checker takes but onnxruntime has no kernel for."""
    if node.op_type == "Cast" and node.domain in ("", "ai.onnx") and opset is not None and opset < 6:
        raise RewriteError(
            f"this edit needs a Cast, and the model imports ai.onnx opset {opset}, where onnxruntime runs no Cast "
            "(convert-opset to 6 or later first)"
        )
