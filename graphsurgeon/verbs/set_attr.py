"""set-attr: set node attributes, typed by the op's schema."""

from __future__ import annotations

from typing import Annotated

from graphsurgeon.core.attributes import parse_attributes
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.select import require_one, select_nodes
from graphsurgeon.core.verb import Opt, verb


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
    for target, values in plan:
        for value in values:
            ctx.set_attribute(target, value.name, value.value)
