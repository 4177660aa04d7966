"""insert: a new node between tensors and their readers (a Clip after a Conv, a Cast before an output)."""

from __future__ import annotations

from collections import deque
from typing import Annotated

import onnx
from onnx import AttributeProto, TypeProto, ValueInfoProto, helper

from graphsurgeon.core.attributes import missing_required, op_schema, parse_attributes
from graphsurgeon.core.constants import is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.schema import refused_input_type, type_string
from graphsurgeon.core.typeinfo import TypeLookup
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError


def main_graph_tensor(ctx: Editor, name: str, role: str) -> None:
    """Refuse a name the main graph does not define, saying where it lives if somewhere else."""
    main = ctx.index.main
    if main.resolve(name) is not None:
        return
    elsewhere = next((s for s in ctx.index.scopes if s.defines(name)), None)
    if elsewhere is not None:
        raise RewriteError(f"{role} {name!r} is defined in {elsewhere.name}; only main-graph tensors can be used here")
    raise RewriteError(f"{role} {name!r} is not a tensor of the main graph")


def downstream_of(scope: Scope, names: set[str]) -> set[str]:
    """Every tensor of the scope computed (directly or not) from `names`, `names` included. Linear."""
    seen = set(names)
    queue = deque(names)
    while queue:
        for reader in scope.readers(queue.popleft()):
            for out in reader.output:
                if out and out not in seen:
                    seen.add(out)
                    queue.append(out)
    return seen


def check_arity(op: str, domain: str, opset: int | None, inputs: int, outputs: int) -> None:
    schema = op_schema(op, domain, opset)
    if schema is None:
        if domain in ("", "ai.onnx"):
            raise RewriteError(f"there is no ONNX op {op!r} at opset {opset}; give `domain` for a custom op")
        return
    if not schema.min_input <= inputs <= schema.max_input:
        raise RewriteError(f"{op} (opset {opset}) takes {schema.min_input} to {schema.max_input} inputs, not {inputs}")
    if not schema.min_output <= outputs <= schema.max_output:
        raise RewriteError(
            f"{op} (opset {opset}) has {schema.min_output} to {schema.max_output} outputs, not {outputs}"
        )


@verb(writes=True)
def insert(
    ctx: Editor,
    *,
    op: Annotated[str, Opt("op type of the new node", metavar="OP")],
    inputs: Annotated[list[str], Opt("tensors the new node reads, in order ('' for an omitted input)", metavar="T")],
    outputs: Annotated[list[str], Opt("tensors the new node takes over from their producers", metavar="T")],
    attr: Annotated[list[str], Opt("an attribute, typed by the op's schema (repeatable)", metavar="K=V")] = [],  # noqa: B006
    domain: Annotated[str, Opt("the op's domain (a custom domain is imported at version 1)")] = "",
    name: Annotated[str | None, Opt("name of the new node (default: a fresh name from OP)")] = None,
) -> None:
    """Insert a node that reads `inputs` and takes over the tensors `outputs` from their readers.

    Precisely: for each tensor T of `outputs` (main graph), the new node's output k is named T, so every
    reader of T and a graph output T now get the new node's value; the old T is renamed to a fresh name
    (`T_pre_OP`), which is what the new node reads where `inputs` names T. A T that is a graph input or
    initializer keeps its name (the interface stays): the new node's output gets a fresh name instead and
    T's readers are rewired to it. `insert --op Relu --inputs x --outputs x` puts a Relu between x and
    everything that read it. Attributes are typed by the op's schema at the model's opset (a custom op:
    by their spelling). Refused: unknown tensors, tensors of a subgraph, the wrong input/output count, a
    missing required attribute, and an input computed from one of `outputs` (that would be a cycle).
    """
    index = ctx.index
    index.check_references()
    main = index.main
    if not outputs:
        raise RewriteError("give at least one tensor in `outputs` for the new node to take over")
    if len(set(outputs)) != len(outputs):
        raise RewriteError(f"`outputs` names a tensor twice: {outputs}")
    for tensor in inputs:
        if tensor:
            main_graph_tensor(ctx, tensor, "input")
    for tensor in outputs:
        main_graph_tensor(ctx, tensor, "output")
    standard = domain in ("", "ai.onnx")
    opset = ctx.opset_version(domain) if not standard else ctx.opset_version()
    check_arity(op, domain, opset, len(inputs), len(outputs))
    values = parse_attributes(attr, op_type=op, domain=domain, opset=opset)
    missing = missing_required(op, domain, opset, [v.name for v in values])
    if missing:
        raise RewriteError(f"{op} (opset {opset}) needs the attribute(s) {', '.join(missing)}: give them with `attr`")
    taken = set(outputs)
    reached = downstream_of(main, taken) - taken
    cyclic = [t for t in inputs if t in reached]
    if cyclic:
        raise RewriteError(
            f"the new {op} node would read {cyclic[0]!r}, which is computed from {sorted(taken)}: that is a cycle"
        )
    _check_types(ctx, op, domain if not standard else "", opset, inputs, outputs)
    if name is not None and name in index.by_name:
        raise RewriteError(f"a node named {name!r} already exists; pick another `name`")

    names = ctx.names()
    node_name = name or names.fresh(f"{op}_inserted")
    renamed: dict[str, str] = {}
    new_outputs: list[str] = []
    interface_reads: dict[str, str] = {}
    for tensor in outputs:
        producer = main.producer.get(tensor)
        if producer is None:  # a graph input or initializer: the interface keeps its name
            fresh = names.fresh(f"{tensor}_{op}")
            interface_reads[tensor] = fresh
            new_outputs.append(fresh)
        else:
            renamed[tensor] = names.fresh(f"{tensor}_pre_{op}")
            new_outputs.append(tensor)
    node_inputs = [renamed.get(t, t) for t in inputs]
    if standard and opset is None:
        raise RewriteError("the model imports no ai.onnx opset, so no standard op can be inserted")
    if not standard:
        ctx.add_opset_import(domain, opset or 1)
    for tensor, fresh in renamed.items():
        producer = main.producer[tensor]
        ctx.rename_node_output(producer, list(producer.output).index(tensor), fresh)
        info = main.value_info.get(tensor)
        if info is not None:  # it described the old value: it now names that one
            moved = ValueInfoProto()
            moved.CopyFrom(info)
            moved.name = fresh
            ctx.remove_value_info({tensor})
            ctx.add_value_info(moved)
        elif (declared := main.outputs.get(tensor)) is not None and declared.type.WhichOneof("value"):
            kept = ValueInfoProto()  # the graph output's declared type described the old value too: keep it
            kept.CopyFrom(declared)
            kept.name, kept.doc_string = fresh, ""
            ctx.add_value_info(kept)
    if interface_reads:
        ctx.replace_uses(interface_reads)
    ctx.add_node(
        op,
        node_inputs,
        new_outputs,
        name=node_name,
        domain="" if standard else domain,
        attributes={v.name: v.value for v in values},
    )
    _describe_outputs(ctx, op, opset if standard else None, [t for t in outputs if t in renamed])
    keep_sorted(ctx)


def _describe_outputs(ctx: Editor, op: str, opset: int | None, tensors: list[str]) -> None:
    """A taken-over tensor's value_info went with the old value; describe the new value where the op's own
    inference can tell (a standard op whose inputs have known types), so no shape knowledge is lost."""
    main = ctx.index.main
    node = main.producer.get(tensors[0]) if tensors and opset is not None else None
    schema = op_schema(op, "", opset) if node is not None else None
    if node is None or schema is None:
        return
    lookup = TypeLookup(ctx)
    found_types = {name: lookup.type_of(main, name) for name in node.input if name}
    types = {name: t for name, t in found_types.items() if t is not None}
    if len(types) < len(found_types):
        return
    try:
        inferred = onnx.shape_inference.infer_node_outputs(
            schema, node, types, opset_imports=list(ctx.proto.opset_import), ir_version=ctx.proto.ir_version
        )
    except Exception:  # noqa: BLE001 -- onnx raises several kinds; an op it cannot infer stays undescribed
        return
    for tensor in tensors:
        found = inferred.get(tensor)
        if (
            found is not None
            and found.WhichOneof("value")
            and tensor not in main.value_info
            and tensor not in main.outputs
        ):
            ctx.add_value_info(helper.make_value_info(tensor, found))


def _check_types(ctx: Editor, op: str, domain: str, opset: int | None, inputs: list[str], outputs: list[str]) -> None:
    """Refuse an input type the op's schema does not accept, and an output whose type (bound by an input's
    through a shared type variable) differs from what the taken-over tensor's readers expect."""
    schema = op_schema(op, domain, opset)
    if schema is None:
        return
    lookup, main = TypeLookup(ctx), ctx.index.main
    types = [(_constant_type(main, t) or lookup.type_of(main, t)) if t else None for t in inputs]
    refused = refused_input_type(schema, inputs, types)
    if refused is not None:
        tensor, spelled, operand, allowed = refused
        shown = ", ".join(allowed[:6]) + (", ..." if len(allowed) > 6 else "")
        raise RewriteError(f"{op} (opset {opset}) cannot read {tensor!r} ({spelled}) as `{operand}`: it takes {shown}")
    formals = list(schema.inputs)
    bound: dict[str, str] = {}
    for position, (tensor, type_proto) in enumerate(zip(inputs, types, strict=True)):
        known = type_string(type_proto)
        if tensor and formals and known is not None:
            bound.setdefault(formals[min(position, len(formals) - 1)].type_str, known)
    out_formals = list(schema.outputs)
    for k, tensor in enumerate(outputs):
        if not out_formals:
            break
        made = bound.get(out_formals[min(k, len(out_formals) - 1)].type_str)
        expected = type_string(lookup.type_of(main, tensor))
        if made is not None and expected is not None and made != expected:
            raise RewriteError(
                f"the new {op} node's output {k} would be {made}, but the readers of {tensor!r} expect {expected}"
            )


def _constant_type(scope: Scope, tensor: str) -> TypeProto | None:
    """The type a Constant node's value really has (a declaration saying otherwise is wrong, and onnxruntime
    forgives that for a Constant feeding a graph output, not for the node put after it)."""
    producer = scope.producer.get(tensor)
    if producer is None or not is_constant_node(producer):
        return None
    value = next((a.t for a in producer.attribute if a.name == "value" and a.type == AttributeProto.TENSOR), None)
    return helper.make_tensor_type_proto(value.data_type, list(value.dims)) if value is not None else None


def keep_sorted(ctx: Editor) -> None:
    """add_node puts a node before its first reader; if an input is produced later, re-sort the main graph."""
    scope = ctx.index.main  # fresh: an insertion may have rebuilt the index
    order = ordered_nodes(scope)
    if any(a is not b for a, b in zip(order, scope.nodes, strict=True)):
        with ctx.quietly():
            ctx.reorder_nodes(scope, order)
