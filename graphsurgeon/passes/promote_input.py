"""promote-input: turn a node's constant operand into a graph input (e.g. Resize's baked-in `scales`)."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import AttributeProto, NodeProto, TensorProto, helper

from graphsurgeon._index import Scope
from graphsurgeon._schema import operand_index
from graphsurgeon._select import describe, require_one, select_nodes
from graphsurgeon.errors import RewriteError
from graphsurgeon.model import Model
from graphsurgeon.passes._shapes import make_downstream_dims_symbolic


@dataclass
class _Operand:
    """One constant tensor to promote, and the node inputs that read it."""

    tensor_name: str
    home: Scope  # the scope that defines the tensor
    value: TensorProto  # its value (for external data: the reference, never the bytes)
    source: str  # "initializer" or "Constant node '...'"
    constant_node: NodeProto | None
    uses: list[tuple[Scope, NodeProto, int]]


_CONSTANT_SCALARS = {
    "value_float": lambda v: helper.make_tensor("", TensorProto.FLOAT, [], [v]),
    "value_floats": lambda v: helper.make_tensor("", TensorProto.FLOAT, [len(v)], v),
    "value_int": lambda v: helper.make_tensor("", TensorProto.INT64, [], [v]),
    "value_ints": lambda v: helper.make_tensor("", TensorProto.INT64, [len(v)], v),
}


def _constant_value(node: NodeProto) -> TensorProto:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == AttributeProto.TENSOR:
            return attr.t
        if attr.name in _CONSTANT_SCALARS:
            return _CONSTANT_SCALARS[attr.name](helper.get_attribute_value(attr))
    kinds = ", ".join(a.name for a in node.attribute)
    raise RewriteError(f"Constant node {node.name!r} holds a {kinds}, which cannot be a tensor graph input")


def _find_operand(model: Model, scope: Scope, node: NodeProto, attr: str) -> tuple[str, Scope, int]:
    opset = model.opset_version(node.domain)
    if opset is None:
        raise RewriteError(f"{describe(scope, node)}: the model imports no opset for domain {node.domain!r}")
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
    if producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
        return _constant_value(producer), f"Constant node {producer.name!r}", producer
    raise RewriteError(
        f"{where}: operand {tensor!r} is computed by {producer.op_type} node {producer.name!r}, not a constant "
        "(fold constants first if it only depends on constants)"
    )


def _used_names(model: Model) -> set[str]:
    names: set[str] = set()
    for scope in model.index.scopes:
        names.update(scope.producer, scope.inputs, scope.initializers, scope.sparse_initializers)
        names.update(scope.value_info, scope.outputs)
    return names


def _unique(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    n = 1
    while f"{wanted}_{n}" in taken:
        n += 1
    return f"{wanted}_{n}"


def _is_read(scope: Scope, name: str) -> bool:
    return bool(scope.readers(name)) or name in scope.outputs


def promote_input(
    model: Model,
    *,
    node: str,
    attr: str,
    name: str | None = None,
    keep_default: bool = False,
    all: bool = False,  # noqa: A002
) -> None:
    index = model.index
    index.check_references()
    matches = select_nodes(index, node)
    if not all:
        matches = [require_one(matches, node)]
    operands: dict[tuple[int, str], _Operand] = {}
    for scope, target in matches:
        where = describe(scope, target)
        if index.scope_of_node[id(target)].is_function or _in_function(scope):
            raise RewriteError(f"{where} is inside a function body, whose operands cannot become graph inputs")
        tensor, home, position = _find_operand(model, scope, target, attr)
        key = (id(home), tensor)
        if key not in operands:
            value, source, constant = _classify(tensor, home, where)
            operands[key] = _Operand(tensor, home, value, source, constant, [])
        operands[key].uses.append((scope, target, position))

    if name is not None and name in _used_names(model) - {o.tensor_name for o in operands.values()}:
        raise RewriteError(f"the name {name!r} is already used in the model; pick another --name")
    # Rewire to placeholder names first, so a constant that dies frees its name for the new input.
    dead_initializers: dict[int, set[str]] = {}
    dead_constants: dict[int, list[NodeProto]] = {}
    rewired: list[tuple[Scope, NodeProto]] = []
    values: list[TensorProto] = []
    for number, operand in enumerate(operands.values()):
        value = TensorProto()
        value.CopyFrom(operand.value)  # external data: copies the reference, not the bytes
        values.append(value)
        for scope, target, position in operand.uses:
            scope.set_node_input(target, position, f"\0promoted {number}")
            rewired.append((scope, target))
        home, tensor = operand.home, operand.tensor_name
        if not _is_read(home, tensor):
            if operand.constant_node is not None:
                dead_constants.setdefault(id(home), []).append(operand.constant_node)
            else:
                dead_initializers.setdefault(id(home), set()).add(tensor)
            _drop_value_info(home, tensor)
    for scope in index.scopes:
        scope.remove_initializers(dead_initializers.get(id(scope), set()))
        scope.remove_nodes(dead_constants.get(id(scope), []))

    taken = _used_names(model)
    for operand, value in zip(operands.values(), values, strict=True):
        input_name = _unique(name or attr, taken)
        taken.add(input_name)
        index.main.add_input(helper.make_tensor_value_info(input_name, value.data_type, list(value.dims)))
        if keep_default:
            value.name = input_name
            index.main.add_initializer(value)
        for scope, target, position in operand.uses:
            scope.set_node_input(target, position, input_name)
        shape = "x".join(str(d) for d in value.dims) or "scalar"
        dtype = helper.tensor_dtype_to_string(value.data_type).removeprefix("TensorProto.").lower()
        users = ", ".join(describe(s, n) for s, n, _ in operand.uses)
        model.note(
            f"promoted operand {attr!r} of {users} ({operand.source}) to graph input {input_name!r} "
            f"{dtype}[{shape}]" + (" with the old value as its default" if keep_default else "")
        )
    for dims in make_downstream_dims_symbolic(model, rewired):
        model.note(dims)


def _in_function(scope: Scope) -> bool:
    while scope.parent is not None:
        scope = scope.parent
    return scope.is_function


def _drop_value_info(scope: Scope, name: str) -> None:
    if scope.is_function or name not in scope.value_info:
        return
    graph = scope.container
    kept = [vi for vi in graph.value_info if vi.name != name]
    graph.value_info.sort(key=lambda vi: vi.name == name)
    del graph.value_info[len(kept) :]
    del scope.value_info[name]
