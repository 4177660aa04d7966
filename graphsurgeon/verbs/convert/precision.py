"""Planning a float32 -> float16/bfloat16 conversion from the operator schemas' type constraints.

A node computes in the low precision when its op is standard, not blocked, fully typed, and every type
parameter bound to float32 also allows the low type; then those inputs want the low type and those outputs
become it. Formals of a fixed type (Resize's ``scales``) keep float32. Everything else keeps its types.
"Flexible" producers (initializers, float Constants, ConstantOfShape and Cast to float) take the type most
of their readers want, so a Cast is only needed where a reader disagrees. Function bodies are typed by
inference from a call site; a node whose types cannot be known keeps float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx
from onnx import AttributeProto, FunctionProto, NodeProto, TensorProto, TypeProto, helper

from graphsurgeon.core.constants import STANDARD_DOMAINS
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.schema import formal_at, standard_schema
from graphsurgeon.core.typeinfo import TypeLookup, elem_type, static_dims
from graphsurgeon.core.walk import node_subgraphs

FLOAT = TensorProto.FLOAT
_ATTRIBUTE_TYPED = {"dtype", "output_dtype"}  # ops whose output type an attribute chooses (RandomNormal, ...)


@dataclass
class Plan:
    """What the conversion does: per tensor its new type, per node whether it converts, reads to re-type."""

    target: int
    converted: set[int] = field(default_factory=set)  # id(node) of nodes computing in the low type
    flexible: dict[tuple[int, str], NodeProto | TensorProto] = field(default_factory=dict)
    storage: dict[tuple[int, str], int] = field(default_factory=dict)  # (id(defining scope), name) -> new type
    reads: list[tuple[Scope, NodeProto, int, int]] = field(default_factory=list)  # (scope, node, input, wanted)
    output_wants: list[tuple[Scope, str, int]] = field(default_factory=list)  # graph / subgraph / function outputs
    types: dict[int, dict[str, int]] = field(default_factory=dict)  # id(scope) -> name -> original elem type
    untyped_functions: list[str] = field(default_factory=list)
    blocked_ops: dict[str, int] = field(default_factory=dict)  # op -> count of float nodes kept in float32


def _function_types(ctx: Editor, scope: Scope, lookup: TypeLookup) -> dict[str, int] | None:
    """Element types inside a function body, inferred from the first call site with typed inputs."""
    function = scope.container
    assert isinstance(function, FunctionProto)
    calls = [
        (s, n)
        for s in ctx.index.scopes
        if not s.is_function
        for n in s.nodes
        if n.op_type == function.name and n.domain == function.domain
    ]
    for call_scope, call in calls:
        inputs = []
        for formal, actual in zip(function.input, call.input, strict=False):
            t = elem_type(lookup.type_of(call_scope, actual)) if actual else 0
            if not t:
                break
            inputs.append(helper.make_tensor_value_info(formal, t, None))
        else:
            graph = helper.make_graph(
                list(function.node), "body", inputs, [helper.make_value_info(o, TypeProto()) for o in function.output]
            )
            model = helper.make_model(graph, opset_imports=list(function.opset_import))
            model.ir_version = ctx.proto.ir_version
            model.functions.extend(ctx.proto.functions)
            try:
                inferred = infer_shapes(model, strict_mode=False)
            except Exception:
                return None
            return {
                vi.name: elem_type(vi.type)
                for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
            }
    return None


def _types(ctx: Editor, scope: Scope, lookup: TypeLookup, plan: Plan) -> dict[str, int]:
    """name -> element type for the names `scope` defines (0 = unknown)."""
    if scope.is_function:
        types = _function_types(ctx, scope, lookup)
        if types is None:
            plan.untyped_functions.append(scope.name)
            types = {}
        return types
    names = {*scope.inputs, *scope.initializers, *scope.outputs}
    names.update(o for n in scope.nodes for o in n.output if o)
    return {name: elem_type(lookup.type_of(scope, name)) for name in names}


def _type_of(plan: Plan, scope: Scope, name: str) -> int:
    home = scope.resolve(name)
    return plan.types.get(id(home), {}).get(name, 0) if home is not None else 0


def _is_flexible(node: NodeProto) -> bool:
    """Constant / ConstantOfShape / Cast producing float32 from what an attribute says."""
    if node.domain not in STANDARD_DOMAINS:
        return False
    if node.op_type == "Cast":
        return any(a.name == "to" and a.i == FLOAT for a in node.attribute)
    if node.op_type == "Constant":
        return any(
            a.name == "value" and a.type == AttributeProto.TENSOR and a.t.data_type == FLOAT for a in node.attribute
        )
    if node.op_type == "ConstantOfShape":
        values = [a for a in node.attribute if a.name == "value"]
        return not values or (values[0].type == AttributeProto.TENSOR and values[0].t.data_type == FLOAT)
    return False


def _no_low_kernel(node: NodeProto) -> bool:
    """Measured: onnxruntime's CPU provider has no float16 Scatter with a reduction (add, mul, max, min)."""
    if node.op_type not in ("ScatterND", "ScatterElements"):
        return False
    return any(a.name == "reduction" and a.s not in (b"", b"none") for a in node.attribute)


def _undefined_axis(scope: Scope, node: NodeProto, lookup: TypeLookup) -> bool:
    """An `axis` outside [-rank, rank) of the first input: what the node computes is undefined, and onnxruntime
    takes it in a float32 kernel but refuses it in the function body its float16 path inlines (LogSoftmax).
    Such a node keeps float32, as it is."""
    axis = next((a.i for a in node.attribute if a.name == "axis" and a.type == AttributeProto.INT), None)
    if axis is None or not node.input or not node.input[0]:
        return False
    dims = static_dims(lookup.type_of(scope, node.input[0]))
    return dims is not None and not -len(dims) <= axis < max(len(dims), 1)


def _holds_float_container(schema: onnx.defs.OpSchema, allowed: Mapping[str, Sequence[str]], node: NodeProto) -> bool:
    """Whether a formal the node uses may be a sequence or optional of floats (SequenceInsert, SequenceAt,
    OptionalGetElement...): the container's element type is tied to the tensor formals' by the op, not by a
    type parameter, and containers are never converted, so such a node keeps float32."""
    for formals, names in ((schema.inputs, node.input), (schema.outputs, node.output)):
        for i, name in enumerate(names):
            formal = formal_at(formals, i)
            if not name or formal is None:
                continue
            types = allowed.get(formal.type_str, [formal.type_str])
            if any(t.startswith(("seq(", "optional(")) and "float" in t for t in types):
                return True
    return False


def _plan_node(ctx: Editor, scope: Scope, node: NodeProto, plan: Plan, blocked: set[str], lookup: TypeLookup) -> None:
    """Decide whether `node` converts; record what each input wants and what each output becomes."""
    target = plan.target
    key = id(scope)
    in_types = [_type_of(plan, scope, name) if name else 0 for name in node.input]
    out_types = [plan.types.get(key, {}).get(name, 0) if name else 0 for name in node.output]
    if _is_flexible(node):
        plan.flexible[(key, node.output[0])] = node
        if node.op_type == "Cast":
            return  # reads any type as it is
    schema = standard_schema(node, ctx.opset_version(""))
    converts = (
        schema is not None
        and node.op_type not in blocked
        and not _no_low_kernel(node)
        and not any(
            a.name in _ATTRIBUTE_TYPED or a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
            for a in node.attribute
        )
    )
    params: dict[str, bool] = {}  # type param -> converts
    if converts and schema is not None:
        allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        converts = not _holds_float_container(schema, allowed, node) and not _undefined_axis(scope, node, lookup)
        low = f"tensor({helper.tensor_dtype_to_string(target).removeprefix('TensorProto.').lower()})"
        for formals, names, types in ((schema.inputs, node.input, in_types), (schema.outputs, node.output, out_types)):
            for i, name in enumerate(names):
                formal = formal_at(formals, i)
                if not name or formal is None or formal.type_str not in allowed:
                    continue
                unread = names is node.output and not scope.readers(name) and name not in scope.outputs
                if not types[i] and not unread and any(s.startswith("tensor(float") for s in allowed[formal.type_str]):
                    converts = False  # unknown type where a float may flow
                if types[i] == FLOAT:
                    params[formal.type_str] = low in allowed[formal.type_str]
                    converts = converts and params[formal.type_str]
    if any(t == FLOAT for t in (*in_types, *out_types)) and not converts:
        plan.blocked_ops[node.op_type] = plan.blocked_ops.get(node.op_type, 0) + 1
    if converts:
        plan.converted.add(id(node))
    for i, name in enumerate(node.input):
        if name and in_types[i] == FLOAT:
            formal = formal_at(schema.inputs, i) if schema is not None else None
            low_here = converts and formal is not None and params.get(formal.type_str, False)
            plan.reads.append((scope, node, i, target if low_here else FLOAT))
    if node.op_type in ("Constant", "ConstantOfShape") and (key, node.output[0]) in plan.flexible:
        return
    for i, name in enumerate(node.output):
        if name and out_types[i] == FLOAT and converts:
            formal = formal_at(schema.outputs, i) if schema is not None else None
            if formal is not None and params.get(formal.type_str, False):
                plan.storage[(key, name)] = target


def make_plan(ctx: Editor, target: int, blocked: set[str], keep_io: bool) -> Plan:
    """The whole conversion, decided before anything is edited."""
    plan = Plan(target=target)
    lookup = TypeLookup(ctx)
    main = ctx.index.main
    for scope in ctx.index.scopes:  # parents before children
        plan.types[id(scope)] = _types(ctx, scope, lookup, plan)
        if scope.is_function and scope.name in plan.untyped_functions:
            continue
        overridable = scope is main and keep_io and ctx.proto.ir_version >= 4  # IR 3 lists every initializer
        for name, tensor in scope.initializers.items():
            if tensor.data_type == FLOAT and not (overridable and name in scope.inputs):
                plan.flexible[(id(scope), name)] = tensor
        if scope is main and not keep_io:
            for name in scope.inputs:
                if plan.types[id(scope)].get(name) == FLOAT:
                    plan.storage[(id(scope), name)] = target
        for node in scope.nodes:
            _plan_node(ctx, scope, node, plan, blocked, lookup)
        for name in scope.outputs:
            if name and _type_of(plan, scope, name) == FLOAT:
                wanted = target if scope is main and not keep_io else FLOAT
                plan.output_wants.append((scope, name, wanted))
    _settle_flexible(plan)
    return plan


def _settle_flexible(plan: Plan) -> None:
    """A flexible producer takes the low type when any reader (or output) wants it."""
    wants: dict[tuple[int, str], set[int]] = {}
    for scope, node, i, wanted in plan.reads:
        home = scope.resolve(node.input[i])
        if home is not None:
            wants.setdefault((id(home), node.input[i]), set()).add(wanted)
    for scope, name, wanted in plan.output_wants:
        wants.setdefault((id(scope), name), set()).add(wanted)
    for key in plan.flexible:
        if plan.target in wants.get(key, ()):
            plan.storage[key] = plan.target


def subgraph_owner(node: NodeProto) -> bool:
    return any(True for _ in node_subgraphs(node))
