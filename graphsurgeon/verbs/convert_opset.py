"""convert-opset: move a model to another default-domain opset (and IR version), weights never loaded.

Two ways, in this order:
1. Every op's schema is the same between the two opsets except for types it now also accepts (most ops, most
   steps): only the opset import changes. That needs no converter and is exact; onnx's version converter
   fails on many such models (no adapter registered for a step that needs none; see bench/convert_opset_bench.py).
2. Otherwise onnx's version converter runs on a weight-free copy (large initializers as typed inputs), and the
   converted nodes and the small constants it made are transplanted into the model: weights, metadata, doc
   strings, value_info and functions stay as they were.
What neither can do is refused, naming the ops.
"""

from __future__ import annotations

from typing import Annotated

import onnx
import onnx.version_converter
from onnx import ModelProto, NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs, node_subgraphs
from graphsurgeon.errors import RewriteError

_SAME_STEP_CACHE: dict[tuple[str, int, int], str | None] = {}


def _signature(schema: onnx.defs.OpSchema) -> tuple:
    formals = lambda params: [(p.name, p.type_str, p.option, p.is_homogeneous) for p in params]  # noqa: E731
    # defaults too: Softmax-13 changed its meaning by its axis' default alone (1 with 2-D coercion -> -1)
    attributes = sorted(
        (name, a.type, a.required, a.default_value.SerializeToString()) for name, a in schema.attributes.items()
    )
    return formals(schema.inputs), formals(schema.outputs), attributes


def _why_not_same(op: str, old: int, new: int) -> str | None:
    """None when `op` means the same at opsets `old` and `new` (only accepting more types), else why not."""
    key = (op, old, new)
    if key in _SAME_STEP_CACHE:
        return _SAME_STEP_CACHE[key]
    reason = None
    try:
        a, b = onnx.defs.get_schema(op, old, ""), onnx.defs.get_schema(op, new, "")
    except onnx.defs.SchemaError:
        reason = f"{op} does not exist at opset {min(old, new) if op else new}"
    else:
        if b.deprecated and not a.deprecated:
            reason = f"{op} is deprecated at opset {b.since_version}"
        elif a.since_version != b.since_version:
            if _signature(a) != _signature(b):
                reason = f"{op} changed between opset {a.since_version} and {b.since_version}"
            elif new < old:
                reason = f"{op} accepts fewer types at opset {new}"
            else:
                types_a = {c.type_param_str: set(c.allowed_type_strs) for c in a.type_constraints}
                types_b = {c.type_param_str: set(c.allowed_type_strs) for c in b.type_constraints}
                if any(not types_a[p] <= types_b.get(p, set()) for p in types_a):
                    reason = f"{op} accepts other types at opset {b.since_version}"
    _SAME_STEP_CACHE[key] = reason
    return reason


def _standard_nodes(model: ModelProto) -> list[NodeProto]:
    nodes, stack = [], [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            if node.domain in ("", "ai.onnx"):
                nodes.append(node)
            stack.extend(g for _, g in node_subgraphs(node))
    return nodes


def convert_in_place(ctx: Editor, opset: int) -> str:
    """Bring the default-domain opset to `opset`; returns how ("same schemas" or "onnx converter")."""
    current = ctx.opset_version("")
    if current is None:
        return "no ai.onnx"
    latest = onnx.defs.onnx_opset_version()
    if not 1 <= opset <= latest:
        raise RewriteError(f"`opset` {opset} is not an ai.onnx opset (1 to {latest} with this onnx)")
    if opset == current:
        return "unchanged"
    nodes = _standard_nodes(ctx.proto)
    reasons = sorted({r for n in nodes if (r := _why_not_same(n.op_type, current, opset))})
    if not reasons:
        _set_opset(ctx, opset)
        return "same schemas"
    if any(f.opset_import and any(o.domain in ("", "ai.onnx") for o in f.opset_import) for f in ctx.proto.functions):
        raise RewriteError(
            f"{'; '.join(reasons[:3])}, and the model's functions import ai.onnx too: onnx's converter "
            "does not convert function bodies (inline them first)"
        )
    placeholders: set[str] = set()
    light = light_copy(ctx.proto, placeholders)
    if current >= 13 > opset:
        _refuse_softmax_down(light, nodes, opset)
    try:
        converted = onnx.version_converter.convert_version(light, opset)
    except Exception as e:  # the converter raises RuntimeError / ConvertError / IndexError...
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RewriteError(
            f"cannot convert from opset {current} to {opset}: {'; '.join(reasons[:3])}, "
            f"and onnx's version converter failed ({first})"
        ) from None
    _drop_attributes_the_target_lacks(converted, current, opset)
    _require_checker_pass(light, converted, current, opset)
    _transplant(ctx, converted, placeholders, opset)
    return "onnx converter"


_NORMALIZERS = ("Softmax", "LogSoftmax", "Hardmax")


def _refuse_softmax_down(light: ModelProto, nodes: list[NodeProto], opset: int) -> None:
    """Before opset 13 a Softmax normalizes over every axis from its axis on (the input seen as 2-D); onnx's
    converter keeps `axis` as it is, which means the same only on the last axis. Refused otherwise."""
    found = [n for n in nodes if n.op_type in _NORMALIZERS]
    if not found:
        return
    try:
        inferred = infer_shapes(light, strict_mode=False)
    except Exception:  # noqa: BLE001 - no ranks known: each node below is refused
        inferred = light
    ranks = {}
    for graph in model_graphs(inferred):
        for info in (*graph.input, *graph.value_info, *graph.output):
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                ranks[info.name] = len(info.type.tensor_type.shape.dim)
    for node in found:
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        rank = ranks.get(node.input[0]) if node.input else None
        if rank is None or (axis + rank if axis < 0 else axis) != rank - 1:
            shown = "an unknown rank" if rank is None else f"rank {rank}"
            raise RewriteError(
                f"{node.op_type} node {node.name or '(unnamed)'!r} normalizes over axis {axis} of {shown}; before "
                f"opset 13 it normalized over every axis from that one on, so at opset {opset} only the last axis "
                "means the same"
            )


def _drop_attributes_the_target_lacks(converted: ModelProto, old: int, new: int) -> None:
    """onnx's converter keeps attributes the target opset doesn't know (Cast's round_mode going below 24).
    One set to the default it had at the source opset means what the older op always did: dropped. Any other
    value cannot be expressed at the target: refused, naming the node and the attribute."""
    for node in _standard_nodes(converted):
        try:
            target = onnx.defs.get_schema(node.op_type, new, "")
        except onnx.defs.SchemaError:
            continue  # the checker gate below names it
        unknown = [a for a in node.attribute if a.name not in target.attributes]
        for attr in unknown:
            if not _is_source_default(node.op_type, old, attr):
                value = onnx.helper.get_attribute_value(attr)
                shown = value.decode(errors="replace") if isinstance(value, bytes) else value
                raise RewriteError(
                    f"cannot convert from opset {old} to {new}: {node.op_type} node {node.name or '(unnamed)'!r} "
                    f"sets {attr.name}={shown!r}, which {node.op_type} does not have at opset {new}"
                )
            node.attribute.remove(attr)


def _is_source_default(op: str, old: int, attr: onnx.AttributeProto) -> bool:
    try:
        declared = onnx.defs.get_schema(op, old, "").attributes.get(attr.name)
    except onnx.defs.SchemaError:
        return False
    if declared is None or not declared.default_value.name:
        return False
    return onnx.helper.get_attribute_value(declared.default_value) == onnx.helper.get_attribute_value(attr)


def _check_error(model: ModelProto) -> str | None:
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - ValidationError and friends: the first line says what
        return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    return None


def _require_checker_pass(light: ModelProto, converted: ModelProto, old: int, new: int) -> None:
    """Never write what onnx's checker refuses when the input passed it (weight-free copies: cheap)."""
    problem = _check_error(converted)
    if problem is not None and _check_error(light) is None:
        raise RewriteError(
            f"cannot convert from opset {old} to {new}: onnx's version converter made a model onnx's checker "
            f"refuses ({problem})"
        )


def _set_opset(ctx: Editor, opset: int) -> None:
    for entry in ctx.proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            old, entry.version = entry.version, opset
            ctx.record("changed", "opset import", "ai.onnx", f"{old} -> {opset}")


def _transplant(ctx: Editor, converted: ModelProto, placeholders: set[str], opset: int) -> None:
    """The converted nodes (and the constants the converter added) into the model; everything else stays."""
    graph, new = ctx.proto.graph, converted.graph
    doc = {(n.name, n.op_type): n.doc_string for n in graph.node if n.name and n.doc_string}
    del graph.node[:]
    graph.node.extend(new.node)
    for node in graph.node:
        if not node.doc_string and (node.name, node.op_type) in doc:
            node.doc_string = doc[(node.name, node.op_type)]
    known = {t.name for t in graph.initializer}
    for tensor in new.initializer:
        if tensor.name not in known and tensor.name not in placeholders:
            graph.initializer.add().CopyFrom(tensor)
    ctx._reindex()
    _set_opset(ctx, opset)
    ctx.record("converted", "graph", "main graph", f"{len(graph.node)} nodes by onnx's version converter")


@verb(writes=True, preserves_meaning=True)
def convert_opset(
    ctx: Editor,
    *,
    opset: Annotated[int, Opt("the ai.onnx opset to convert to", metavar="N")],
    ir_version: Annotated[int | None, Opt("also set the IR version", metavar="V")] = None,
) -> None:
    """Convert the model to another ai.onnx opset (and IR version), keeping weights, names and metadata.

    Ops whose schema only widened between the two opsets need nothing but the new opset import (exact, no
    converter); other models go through onnx's version converter on a weight-free copy, whose nodes are
    transplanted back. Refused, naming the ops, when neither can do it.
    """
    if ir_version is not None:
        if not 3 <= ir_version <= onnx.IR_VERSION:
            raise RewriteError(
                f"`ir_version` {ir_version} is not an IR version (3 to {onnx.IR_VERSION} with this onnx)"
            )
        needed = _min_ir_for_opset(opset)
        if ir_version < needed:
            raise RewriteError(f"opset {opset} needs IR version {needed} or later, not {ir_version}")
    how = convert_in_place(ctx, opset)
    if how == "no ai.onnx":
        ctx.note("the model imports no ai.onnx opset (only other domains): nothing to convert")
        return
    if how == "unchanged":
        ctx.note(f"the model is at opset {opset} already")
    elif how == "same schemas":
        ctx.note("no op changed meaning between the two opsets: only the opset import changed")
    if ir_version is not None and ir_version != ctx.proto.ir_version:
        old, ctx.proto.ir_version = ctx.proto.ir_version, ir_version
        ctx.record("changed", "IR version", "", f"{old} -> {ir_version}")
    elif how != "unchanged" and ctx.proto.ir_version < _min_ir_for_opset(opset):
        old, ctx.proto.ir_version = ctx.proto.ir_version, _min_ir_for_opset(opset)
        ctx.record("changed", "IR version", "", f"{old} -> {ctx.proto.ir_version} (opset {opset} needs it)")


def _min_ir_for_opset(opset: int) -> int:
    """The lowest IR version that may import ai.onnx `opset` (onnx's release table)."""
    best = None
    for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx >= opset and (best is None or ir < best):
            best = ir
    return best if best is not None else onnx.IR_VERSION
