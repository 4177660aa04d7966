"""promote-input: turn a node's constant operand into a graph input (e.g. Resize's baked-in `scales`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated

from onnx import NodeProto, TensorProto

from graphsurgeon.core.constants import constant_kind, constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import read_tensor
from graphsurgeon.core.format import dtype_name
from graphsurgeon.core.index import Scope
from graphsurgeon.core.schema import operand_index
from graphsurgeon.core.select import describe, require_one, select_nodes
from graphsurgeon.core.shapes import make_downstream_dims_symbolic
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError


@dataclass
class _Operand:
    """One constant tensor to promote, and the node inputs that read it."""

    tensor_name: str
    home: Scope  # the scope that defines the tensor
    value: TensorProto  # its value (for external data: the reference, never the bytes)
    source: str  # "initializer" or "Constant node '...'"
    constant_node: NodeProto | None
    uses: list[tuple[Scope, NodeProto, int]]


def _find_operand(ctx: Editor, scope: Scope, node: NodeProto, attr: str) -> tuple[str, Scope, int]:
    opset = ctx.opset_version(node.domain)
    if opset is None:
        domain = node.domain or "ai.onnx"
        raise RewriteError(f"{describe(scope, node)}: the model imports no opset for domain {domain!r}")
    index = operand_index(node, attr, opset)
    if index >= len(node.input) or not node.input[index]:
        raise RewriteError(f"{describe(scope, node)} does not set its operand {attr!r} (input {index} is empty)")
    tensor = node.input[index]
    home = scope.resolve(tensor)
    if home is None:
        raise RewriteError(f"{describe(scope, node)} reads {tensor!r}, which nothing produces")
    return tensor, home, index


def _classify(tensor: str, home: Scope, where: str) -> tuple[TensorProto, str, NodeProto | None]:
    if tensor in home.inputs:
        raise RewriteError(f"{where}: operand {tensor!r} is already a graph input")
    if tensor in home.initializers:
        return home.initializers[tensor], f"initializer {tensor!r}", None
    if tensor in home.sparse_initializers:
        raise RewriteError(f"{where}: operand {tensor!r} is a sparse initializer, which cannot become an input")
    producer = home.producer[tensor]
    if is_constant_node(producer):
        value = constant_tensor(producer)
        if value is None:
            raise RewriteError(
                f"Constant node {producer.name!r} holds a {constant_kind(producer)}, "
                "which cannot be a tensor graph input"
            )
        return value, f"Constant node {producer.name!r}", producer
    raise RewriteError(
        f"{where}: operand {tensor!r} is computed by {producer.op_type} node {producer.name!r}, not a constant "
        "(fold constants first if it only depends on constants)"
    )


def _in_function(scope: Scope) -> bool:
    while scope.parent is not None:
        scope = scope.parent
    return scope.is_function


@verb(writes=True)
def promote_input(
    ctx: Editor,
    *,
    node: Annotated[str, Opt("node name, op type, or a glob over either", metavar="SEL")],
    attr: Annotated[str, Opt("operand name in the op's schema (Resize: roi, scales, sizes)", metavar="NAME")],
    name: Annotated[str | None, Opt("name of the new graph input (default: NAME)", metavar="INPUT_NAME")] = None,
    keep_default: Annotated[bool, Opt("keep the old value as the input's default")] = False,
    all: Annotated[bool, Opt("promote the operand of every matching node")] = False,  # noqa: A002 - the CLI's --all
) -> None:
    """Turn a node's constant operand (initializer or Constant) into a graph input.

    `attr` is the operand's name in the op's schema at the model's opset; downstream static shapes that
    depended on the value become symbolic. Several matching nodes need `all`; an operand that is an
    attribute at this opset but an input in a later one is refused, naming the opset to convert to.
    """
    index = ctx.index
    index.check_references()
    matches = select_nodes(index, node)
    if not all:
        matches = [require_one(matches, node)]
    operands: dict[tuple[int, str], _Operand] = {}
    for scope, target in matches:
        where = describe(scope, target)
        if _in_function(scope):
            raise RewriteError(f"{where} is inside a function body, whose operands cannot become graph inputs")
        tensor, home, position = _find_operand(ctx, scope, target, attr)
        key = (id(home), tensor)
        if key not in operands:
            value, source, constant = _classify(tensor, home, where)
            operands[key] = _Operand(tensor, home, value, source, constant, [])
        operands[key].uses.append((scope, target, position))

    names = ctx.names()
    if name is not None and name in names.taken - {o.tensor_name for o in operands.values()}:
        raise RewriteError(f"the name {name!r} is already used in the model; pick another name")
    with ctx.quietly():
        # Rewire to placeholder names first, so a constant that dies frees its name for the new input.
        for number, operand in enumerate(operands.values()):
            placeholder = f"\0promoted {number}"
            for scope, target, position in operand.uses:
                scope.set_node_input(target, position, placeholder)
            home, tensor = operand.home, operand.tensor_name
            if not home.readers(tensor) and tensor not in home.outputs:
                if operand.constant_node is not None:
                    ctx.remove_nodes([operand.constant_node], scope=home)
                else:
                    ctx.remove_initializers({tensor}, scope=home)
                ctx.remove_value_info({tensor}, scope=home)
        names = ctx.names()
        rewired: list[tuple[Scope, NodeProto]] = []
        for operand in operands.values():
            input_name = names.fresh(name or attr)
            value = operand.value
            ctx.add_graph_input(input_name, value.data_type, list(value.dims))
            ctx.interface_defaults[input_name] = partial(read_tensor, value, ctx.external_data_dir)
            if keep_default:
                ctx.add_initializer(input_name, value)
            for scope, target, position in operand.uses:
                scope.set_node_input(target, position, input_name)
                rewired.append((scope, target))
            shape = "x".join(str(d) for d in value.dims) or "scalar"
            users = ", ".join(describe(s, n) for s, n, _ in operand.uses)
            ctx.changes.record(
                "promoted",
                "input",
                input_name,
                f"operand {attr!r} of {users} ({operand.source}) is now graph input {input_name!r} "
                f"{dtype_name(value.data_type)}[{shape}]"
                + (" with the old value as its default" if keep_default else ""),
            )
        for line in make_downstream_dims_symbolic(ctx, rewired):
            ctx.changes.record("relaxed", "shapes", "", line)
