"""extract: the subgraph that computes given tensors from given tensors, as a model of its own.

Only the graph is edited: nodes, initializers and value_info the subgraph does not need are dropped, weights
stay where they are (external data stays referenced, never read), so a model above 2 GB is cut in the time it
takes to parse its graph. Everything else (metadata, doc strings, opset imports, used functions) is kept.
"""

from __future__ import annotations

from typing import Annotated

from onnx import NodeProto, TypeProto, ValueInfoProto

from graphsurgeon.core.editor import Editor, io_type_problem
from graphsurgeon.core.format import format_type
from graphsurgeon.core.index import Scope
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import node_subgraphs
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs._main_tensors import inferred_types, require_main_tensor, value_info


def _needed(main: Scope, outputs: list[str], inputs: set[str], given_inputs: bool) -> tuple[set[int], set[str]]:
    """Walk back from `outputs` to `inputs`: the ids of the nodes to keep and the tensors they read.

    Raises:
        RewriteError: a tensor needed is a graph input not among `inputs` (named, with the output needing it).
    """
    kept: set[int] = set()
    seen: set[str] = set()
    stack = [(name, name) for name in reversed(outputs)]
    while stack:
        name, wanted_by = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in inputs or name in main.initializers or name in main.sparse_initializers:
            continue
        producer = main.producer.get(name)
        if producer is None:
            if given_inputs:
                raise RewriteError(
                    f"output {wanted_by!r} needs {name!r}, a graph input that is not among `inputs` "
                    "(add it, or a tensor computed from it that the output depends on)"
                )
            continue  # an original graph input: it stays one
        if id(producer) in kept:
            continue
        kept.add(id(producer))
        reads = [n for n in producer.input if n] + sorted(main.implicit_inputs(producer))
        stack.extend((read, wanted_by) for read in reversed(reads) if read not in seen)
    return kept, seen


def _used_functions(ctx: Editor, nodes: list[NodeProto]) -> set[tuple[str, str, str]]:
    """Model-local functions the kept nodes call, directly, from their subgraphs, or from other functions."""
    functions = ctx.index.functions
    used: set[tuple[str, str, str]] = set()
    pending = list(nodes)
    while pending:
        node = pending.pop()
        key = (node.domain, node.op_type, getattr(node, "overload", ""))
        if key in functions and key not in used:
            used.add(key)
            pending.extend(functions[key].nodes)
        for _, graph in node_subgraphs(node):
            pending.extend(graph.node)  # its own subgraphs are pushed when each node is popped
    return used


@verb(writes=True)
def extract(
    ctx: Editor,
    *,
    outputs: Annotated[list[str], Opt("tensors the extracted model computes (its graph outputs)", metavar="T")],
    inputs: Annotated[list[str], Opt("tensors it starts from (default: the graph inputs it needs)", metavar="T")] = [],  # noqa: B006
) -> None:
    """Cut out the subgraph that computes `outputs` from `inputs` as a model of its own.

    Inputs may be intermediate tensors: they become graph inputs, typed by shape inference. Only the nodes,
    initializers and value_info the outputs need are kept; a needed graph input that is not among `inputs`
    is refused, naming it. Weights are never read: external data stays referenced, so models above 2 GB
    are cut quickly (save beside the model to share its data file; saving elsewhere copies it).
    """
    if not outputs:
        raise RewriteError("`outputs` is empty: name the tensors the extracted model computes")
    main = ctx.index.main
    outputs, inputs = list(dict.fromkeys(outputs)), list(dict.fromkeys(inputs))
    for name in outputs:
        require_main_tensor(ctx, name, "outputs")
    for name in inputs:
        require_main_tensor(ctx, name, "inputs")
        if name in main.initializers or name in main.sparse_initializers:
            raise RewriteError(
                f"`inputs` names {name!r}, an initializer (a constant): name graph inputs or computed tensors"
            )
    kept_ids, reached = _needed(main, outputs, set(inputs), bool(inputs))
    kept_nodes = [node for node in main.nodes if id(node) in kept_ids]
    unused = [name for name in inputs if name not in reached]
    if unused:
        ctx.note(f"`inputs` {', '.join(map(repr, unused))} are not needed by the outputs (kept as unused inputs)")
    dead_nodes = [node for node in main.nodes if id(node) not in kept_ids]

    # -- the interface: inputs in the order given (else the original's), outputs in the order given ----------
    original_inputs = ctx.graph_inputs
    new_inputs = inputs or [name for name in original_inputs if name in reached]
    intermediate = [name for name in new_inputs if name not in main.inputs]
    types = inferred_types(ctx, [*intermediate, *(n for n in outputs if n not in main.outputs)])
    input_infos = [_interface_info(main.inputs, name, types) for name in new_inputs]
    output_infos = [_interface_info(main.outputs, name, types) for name in outputs]
    untyped = {
        info.name: problem
        for info in (*input_infos, *output_infos)
        if info.name not in main.inputs
        and info.name not in main.outputs
        and (problem := io_type_problem(info)) is not None
    }
    if untyped:
        first = next(iter(untyped))
        raise RewriteError(
            f"shape inference finds no complete type for {', '.join(map(repr, list(untyped)[:5]))} "
            f"({first!r}: {untyped[first]}), which a graph input or output needs; record their types in "
            "value_info first"
        )
    input_infos = [_copy(info) for info in input_infos]
    output_infos = [_copy(info) for info in output_infos]

    # -- edit --------------------------------------------------------------------------------------------------
    present = reached | {out for node in kept_nodes for out in node.output if out}
    ctx.remove_nodes(dead_nodes, scope=main)
    old_outputs = list(main.outputs)
    if old_outputs != outputs:
        for name in old_outputs:
            main.remove_output(name)
        for info in output_infos:
            main.add_output(info)
        for name in old_outputs:
            if name not in outputs:
                ctx.record("removed", "output", name)
        for info in output_infos:
            if info.name not in old_outputs:
                ctx.record("added", "output", info.name, format_type(info.type))
    if original_inputs != new_inputs:
        for name in original_inputs:
            main.remove_input(name)
        for info in input_infos:
            main.add_input(info)
        for name in original_inputs:
            if name not in new_inputs:
                ctx.record("removed", "input", name)
        for info in input_infos:
            if info.name not in original_inputs:
                ctx.record("added", "input", info.name, format_type(info.type))
    dead_constants = {n for n in (*main.initializers, *main.sparse_initializers) if n not in present}
    for name in dead_constants & set(main.inputs):  # IR < 4: an initializer listed as an input too
        main.remove_input(name)
    ctx.remove_value_info({n for n in main.value_info if n not in present or n in intermediate}, scope=main)
    ctx.remove_initializers(dead_constants & set(main.initializers), scope=main)
    ctx.remove_sparse_initializers(dead_constants & set(main.sparse_initializers), scope=main)
    used = _used_functions(ctx, kept_nodes)
    unused_functions = set(ctx.index.functions) - used
    if unused_functions:
        ctx.remove_functions(unused_functions)


def _interface_info(
    recorded: dict[str, ValueInfoProto | None], name: str, types: dict[str, TypeProto]
) -> ValueInfoProto:
    """The main graph's own ValueInfoProto for `name` (a graph scope always records one), else one typed by
    shape inference (untyped when inference found nothing)."""
    info = recorded.get(name)
    return info if info is not None else value_info(name, types.get(name))


def _copy(info: ValueInfoProto) -> ValueInfoProto:
    copy = ValueInfoProto()
    copy.CopyFrom(info)
    return copy
