"""replace: the subgraph between some tensors becomes one node (a fused op, a TensorRT plugin, a custom op)."""

from __future__ import annotations

from typing import Annotated, Any

from onnx import FunctionProto, NodeProto

from graphsurgeon.core.attributes import TypedValue, missing_required, parse_attributes
from graphsurgeon.core.constants import is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.select import describe
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.insert import check_arity, keep_sorted, main_graph_tensor


def region_between(scope: Scope, inputs: list[str], outputs: list[str]) -> list[NodeProto]:
    """The nodes that compute `outputs` from `inputs` (walking back from the outputs, stopping at the inputs
    and at constants), in model order. Refused: a graph input reached that is not among `inputs`, an input
    the region never reads, and a region node whose result is read outside other than through `outputs`."""
    stop = set(inputs)
    found: dict[int, NodeProto] = {}
    reached: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set(outputs)
    while stack:
        name = stack.pop()
        producer = scope.producer.get(name)
        if producer is None:
            home = scope.resolve(name)
            if home is not None and name in home.inputs and name not in home.initializers:
                raise RewriteError(
                    f"the outputs depend on graph input {name!r}, which is not among `inputs`: add it to `inputs`"
                )
            continue  # an initializer (or an outer value): stays outside the region
        if id(producer) in found:
            continue
        found[id(producer)] = producer
        for read in [*producer.input, *sorted(scope.implicit_inputs(producer))]:
            if not read:
                continue
            if read in stop:
                reached.add(read)
            elif read not in seen:
                seen.add(read)
                stack.append(read)
    unread = [t for t in inputs if t not in reached]
    if unread:
        raise RewriteError(f"input {unread[0]!r} is not read by the subgraph that computes {outputs}")
    if not found:
        raise RewriteError(f"no node computes {outputs} from {inputs}: nothing to replace")
    nodes = [n for n in scope.nodes if id(n) in found]
    wanted = set(outputs)
    for node in nodes:
        for out in node.output:
            if not out or out in wanted:
                continue
            outside = [r for r in scope.readers(out) if id(r) not in found]
            if outside or out in scope.outputs:
                who = describe(scope, outside[0]) if outside else "a graph output"
                raise RewriteError(
                    f"{describe(scope, node)} inside the subgraph also feeds {who} through {out!r}: add {out!r} "
                    "to `outputs`, or choose other boundaries"
                )
    return nodes


def _custom_op(qualname: str, opset: int) -> tuple[str, str, FunctionProto, Any]:
    """(domain, name, FunctionProto at the model's opset, the op) from the custom_ops registry (needs torch)."""
    try:
        import custom_ops
        from custom_ops._export import _function_at
    except ImportError as e:
        raise RewriteError(
            f"`custom_op` needs the custom_ops package and torch (pip install graphsurgeon[torch]): {e}"
        ) from None
    try:
        op = custom_ops.get(qualname)
        function = _function_at(op, opset)
    except custom_ops.CustomOpError as e:
        raise RewriteError(str(e)) from None
    return op.domain, op.name, function, op


def _dead_constants(scope: Scope, removed: list[NodeProto], kept: list[str]) -> tuple[set[str], list[NodeProto]]:
    """Initializers and Constant nodes that only the removed nodes read (not those the new node reads)."""
    gone = {id(n) for n in removed}
    initializers: set[str] = set()
    constants: list[NodeProto] = []
    for node in removed:
        for name in node.input:
            if not name or name in kept or any(id(r) not in gone for r in scope.readers(name)) or name in scope.outputs:
                continue
            if name in scope.initializers and name not in scope.inputs:
                initializers.add(name)
            producer = scope.producer.get(name)
            if producer is not None and id(producer) not in gone and is_constant_node(producer):
                if all(id(n) in gone for n in scope.readers(name)):
                    constants.append(producer)
    return initializers, list({id(n): n for n in constants}.values())


@verb(writes=True)
def replace(
    ctx: Editor,
    *,
    inputs: Annotated[list[str], Opt("tensors where the subgraph starts (the new node's inputs)", metavar="T")],
    outputs: Annotated[list[str], Opt("tensors where it ends (the new node's outputs)", metavar="T")],
    op: Annotated[str | None, Opt("op type of the new node", metavar="OP")] = None,
    domain: Annotated[str, Opt("the op's domain (a custom domain is imported at version 1)")] = "",
    attr: Annotated[list[str], Opt("an attribute of the new node (repeatable)", metavar="K=V")] = [],  # noqa: B006
    custom_op: Annotated[
        str | None, Opt("a custom_ops op (domain::name): its function comes along", metavar="QUALNAME")
    ] = None,
    name: Annotated[str | None, Opt("name of the new node (default: a fresh name from OP)")] = None,
) -> None:
    """Replace the subgraph between `inputs` and `outputs` with one node.

    The subgraph is every node that computes `outputs` from `inputs` (constants it reads stay outside; an
    initializer or Constant only it read is removed with it). The new node reads `inputs` and produces
    `outputs` (same names, in order). Refused: a graph input the outputs need that is not in `inputs`, an
    input the subgraph never reads, a node inside whose result is read outside other than through
    `outputs`, tensors of subgraphs (main graph only). With `custom_op` (e.g. graphsurgeon::dynamic_resize)
    the op comes from the custom_ops registry (torch needed): its FunctionProto and opset import are added
    so onnxruntime still runs the model, and `verify` proves it unchanged when the body computes what the
    replaced subgraph did.
    """
    index = ctx.index
    index.check_references()
    main = index.main
    if not inputs or not outputs:
        raise RewriteError("give both `inputs` and `outputs` for the subgraph to replace")
    for tensor in inputs:
        main_graph_tensor(ctx, tensor, "input")
    for tensor in outputs:
        main_graph_tensor(ctx, tensor, "output")
        if tensor in inputs:
            raise RewriteError(f"{tensor!r} is among both `inputs` and `outputs`; the subgraph between would be empty")
        if tensor in main.inputs or tensor in main.initializers:
            raise RewriteError(f"output {tensor!r} is a graph input or initializer; no node computes it")
    function = custom = None
    if custom_op is not None:
        model_opset = ctx.opset_version()
        if model_opset is None:
            raise RewriteError("the model imports no ai.onnx opset, which the custom op's function needs")
        if ctx.proto.ir_version < 8:
            raise RewriteError(f"the model's IR version {ctx.proto.ir_version} predates model-local functions (8)")
        custom_domain, custom_name, function, custom = _custom_op(custom_op, model_opset)
        if (op is not None and op != custom_name) or (domain and domain != custom_domain):
            raise RewriteError(f"`custom_op` {custom_op!r} is op {custom_domain}::{custom_name}; drop `op`/`domain`")
        op, domain = custom_name, custom_domain
    if op is None:
        raise RewriteError("give `op` (the new node's op type) or `custom_op`")
    standard = domain in ("", "ai.onnx")
    opset = ctx.opset_version() if standard else (ctx.opset_version(domain) or 1)
    check_arity(op, domain, opset, len(inputs), len(outputs))
    values: list[TypedValue] = parse_attributes(attr, op_type=op, domain=domain, opset=opset)
    given = [v.name for v in values]
    missing = missing_required(op, domain, opset, given)
    if custom is not None:
        missing = sorted({p.name for p in custom.attributes} - set(given))
    if missing:
        raise RewriteError(f"{op} needs the attribute(s) {', '.join(missing)}: give them with `attr`")
    region = region_between(main, inputs, outputs)
    if name is not None and any(n not in region for n in index.by_name.get(name, ())):
        raise RewriteError(f"a node named {name!r} already exists outside the subgraph; pick another `name`")
    existing = None
    if function is not None:
        existing = index.functions.get((domain, op, ""))
        if existing is not None and existing.container.SerializeToString() != function.SerializeToString():
            raise RewriteError(f"the model already has a different function {domain}::{op}")

    dead_initializers, dead_constants = _dead_constants(main, region, inputs)
    if not standard:
        assert opset is not None  # a custom domain's version defaults to 1 above
        ctx.add_opset_import(domain, opset)
    if function is not None and existing is None:
        ctx.add_function(function)
        main = ctx.index.main
    with ctx.quietly():
        ctx.remove_nodes(region, scope=main)
        ctx.remove_nodes(dead_constants, scope=main)
        ctx.remove_initializers(dead_initializers, scope=main)
        added = ctx.add_node(
            op,
            inputs,
            outputs,
            name=name or ctx.names().fresh(op),
            domain="" if standard else domain,
            attributes={v.name: v.value for v in values},
            scope=main,
        )
        keep_sorted(ctx)
    ctx.record(
        "replaced",
        "subgraph",
        added.name,
        f"{len(region)} node(s) ({', '.join(sorted({n.op_type for n in region}))}) by "
        f"{domain + '::' if not standard else ''}{op}({', '.join(inputs)}) -> {', '.join(outputs)}",
    )
    if dead_initializers or dead_constants:
        ctx.record("removed", "constants", "", f"{len(dead_initializers) + len(dead_constants)} only the subgraph read")
