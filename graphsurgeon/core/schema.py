"""Operand names from ONNX operator schemas (`--attr scales` -> input 2 of Resize)."""

from __future__ import annotations

from functools import cache

import onnx.defs
from onnx import NodeProto

from graphsurgeon.errors import RewriteError


def _schema(op_type: str, domain: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
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
