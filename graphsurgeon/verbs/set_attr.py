"""set-attr: set node attributes, typed by the op's schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from onnx import ModelProto, NodeProto, helper

from graphsurgeon.core.attributes import TypedValue, parse_attributes
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.inference import full_check
from graphsurgeon.core.select import describe, require_one, select_nodes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs
from graphsurgeon.errors import RewriteError


@verb(writes=True)
def set_attr(
    ctx: Editor,
    *,
    node: Annotated[str, Opt("node name, op type, or a glob over either", metavar="SEL")],
    attr: Annotated[list[str], Opt("NAME=VALUE, typed by the op's schema (repeatable)", metavar="NAME=VALUE")],
    all: Annotated[bool, Opt("set it on every matching node")] = False,  # noqa: A002 - the CLI's --all
) -> None:
    """Set attributes of a node (added if absent, replaced if present).

    Values are typed by the op's schema at the model's opset: ``axis=1`` is an INT, ``alpha=1`` a FLOAT,
    ``perm=0,2,1`` INTS, ``mode=linear`` a STRING, ``value=w.npy`` a TENSOR. An attribute the op does not
    have is refused, naming the ones it has. Ops without a schema (custom domains) keep the type the
    attribute already has, else the type the spelling reads as. Several matching nodes need `all`; nodes
    in subgraphs and function bodies are set the same way.
    """
    index = ctx.index
    matches = select_nodes(index, node)
    if not all:
        matches = [require_one(matches, node)]
    if not attr:
        ctx.note("no attribute given: nothing to set")
        return
    plan = [
        (
            target,
            parse_attributes(
                attr,
                op_type=target.op_type,
                domain=target.domain,
                opset=ctx.opset_version(target.domain),
                existing=target,
            ),
        )
        for _, target in matches
    ]
    _refuse_what_the_checker_would(ctx, plan)
    for target, values in plan:
        for value in values:
            ctx.set_attribute(target, value.name, value.value)


def _all_nodes(model: ModelProto) -> Iterator[NodeProto]:
    """Every node of the model's functions and graphs, in an order two copies of a model share."""
    for function in model.functions:
        yield from function.node
    for graph in model_graphs(model):
        yield from graph.node


def _refuse_what_the_checker_would(ctx: Editor, plan: list[tuple[NodeProto, list[TypedValue]]]) -> None:
    """Set the values on a weight-free copy first: when onnx's checker (with strict shape inference) accepts the
    model as it is but not as edited, refuse with its message. A model it refuses already is not judged."""
    light = light_copy(ctx.proto)
    if _checker_problem(light) is not None:
        return
    copies = dict(zip(map(id, _all_nodes(ctx.proto)), _all_nodes(light), strict=True))
    for target, values in plan:
        copy = copies[id(target)]
        for value in values:
            attribute = helper.make_attribute(value.name, value.value)
            existing = next((a for a in copy.attribute if a.name == value.name), None)
            if existing is not None:
                existing.CopyFrom(attribute)
            else:
                copy.attribute.append(attribute)
    problem = _checker_problem(light)
    if problem is not None:
        where = describe(ctx.scope_of(plan[0][0]), plan[0][0]) if len(plan) == 1 else f"{len(plan)} nodes"
        raise RewriteError(
            f"setting {', '.join(attr.name for attr in plan[0][1])} on {where} makes a model "
            f"onnx's checker refuses: {problem}"
        )


def _checker_problem(model: ModelProto) -> str | None:
    try:
        full_check(model, data_prop=True)
    except Exception as e:  # noqa: BLE001 - onnx raises ValidationError and InferenceError alike
        text = str(e).strip()
        return text.splitlines()[0][:300] if text else type(e).__name__
    return None
