"""remove-node: take a node out of the graph, its readers (and graph outputs) reading one of its inputs."""

from __future__ import annotations

from typing import Annotated

from onnx import NodeProto

from graphsurgeon.core.attributes import op_schema
from graphsurgeon.core.constants import is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.format import format_type
from graphsurgeon.core.index import Scope
from graphsurgeon.core.schema import refused_input_type
from graphsurgeon.core.select import describe, require_one, select_nodes
from graphsurgeon.core.typeinfo import TypeLookup, shape_conflict
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError


def _is_constant(scope: Scope, name: str) -> bool:
    home = scope.resolve(name)
    if home is None:
        return False
    if name in home.initializers and name not in home.inputs:
        return True
    producer = home.producer.get(name)
    return producer is not None and is_constant_node(producer)


def _input_index(ctx: Editor, scope: Scope, node: NodeProto, wanted: str | None) -> int:
    """Which input passes through: a position, the tensor's name, or the operand's schema name; by default
    the first non-empty input that is not a constant (else the first one)."""
    where = describe(scope, node)
    present = [i for i, name in enumerate(node.input) if name]
    if not present:
        raise RewriteError(f"{where} has no input to pass through, so it cannot be bypassed")
    if wanted is None:
        return next((i for i in present if not _is_constant(scope, node.input[i])), present[0])
    if wanted.isdigit():
        position = int(wanted)
        if position not in present:
            raise RewriteError(f"{where} has no input {position} (its inputs: {list(node.input)})")
        return position
    if wanted in node.input:
        return list(node.input).index(wanted)
    schema = op_schema(node.op_type, node.domain, ctx.opset_version(node.domain))
    names = [formal.name for formal in schema.inputs] if schema is not None else []
    if wanted in names and names.index(wanted) in present:
        return names.index(wanted)
    raise RewriteError(
        f"{where} has no input {wanted!r}: give a position, one of its input tensors {list(node.input)}"
        + (f" or an operand name ({', '.join(names)})" if names else "")
    )


def _check(ctx: Editor, types: TypeLookup, scope: Scope, node: NodeProto, position: int) -> None:
    where = describe(scope, node)
    if scope.children.get(id(node)):
        raise RewriteError(f"{where} holds subgraphs; bypassing it would drop them (replace it instead)")
    if not node.output or not node.output[0]:
        raise RewriteError(f"{where} has no output to bypass")
    read_others = [o for o in node.output[1:] if o and (scope.readers(o) or o in scope.outputs)]
    if read_others:
        raise RewriteError(f"cannot remove {where}: its other output(s) {read_others} are still read")
    source, out = node.input[position], node.output[0]
    if out in scope.outputs and ctx.opset_version("") is None:
        raise RewriteError(
            f"cannot remove {where}: graph output {out!r} may need an Identity, but the model imports no ai.onnx opset"
        )
    source_type, out_type = types.type_of(scope, source), types.type_of(scope, out)
    identity = op_schema("Identity", "", ctx.opset_version(""))
    if identity is not None and ctx.bypass_needs_identity(scope, node, position):
        refused = refused_input_type(identity, [source], [source_type])
        if refused is not None:
            raise RewriteError(
                f"cannot remove {where}: graph output {out!r} would need an Identity of {source!r}, and Identity "
                f"(opset {ctx.opset_version('')}) does not take {refused[1]}"
            )
    problem = shape_conflict(source_type, out_type)
    if problem is not None:
        assert source_type is not None and out_type is not None  # shape_conflict needs both types to find one
        raise RewriteError(
            f"cannot remove {where}: its readers expect {out!r} ({format_type(out_type)}) but input {position} "
            f"{source!r} is {format_type(source_type)} ({problem}); pick another input with `input`"
        )


@verb(writes=True)
def remove_node(
    ctx: Editor,
    *,
    node: Annotated[str, Opt("node name, op type, or a glob over either", metavar="SEL")],
    all: Annotated[bool, Opt("remove every matching node")] = False,  # noqa: A002 - the CLI's --all
    input: Annotated[  # noqa: A002 - the CLI's --input
        str | None,
        Opt("the input the readers get instead: a position, a tensor name or an operand name", metavar="I"),
    ] = None,
) -> None:
    """Remove a node by bypassing it: its readers (and graph outputs) read its input instead.

    The input is `input` (a position, the tensor's name or the schema's operand name), by default the first
    input that is not a constant (Dropout, Identity, Cast, Reshape: the data). A graph output keeps its name.
    Refused when that input's element type or static shape differs from the output's (saying which), when
    another output of the node is still read, or when the node holds subgraphs. Works in every scope.
    Removing a no-op (Identity, inference Dropout) keeps the model's meaning; `verify` checks it.
    """
    index = ctx.index
    index.check_references()
    if not index.main.outputs:
        raise RewriteError("the model has no graph outputs, so no node's value is used; add one (add-outputs) first")
    matches = select_nodes(index, node)
    if not all:
        matches = [require_one(matches, node)]
    types = TypeLookup(ctx)
    plan: list[tuple[NodeProto, int]] = []
    for scope, target in matches:
        position = _input_index(ctx, scope, target, input)
        _check(ctx, types, scope, target, position)
        plan.append((target, position))
    for target, position in plan:
        ctx.bypass_node(target, position)
