"""add-outputs: intermediate tensors of the main graph become graph outputs, typed by shape inference."""

from __future__ import annotations

from typing import Annotated

from graphsurgeon.core.editor import Editor, io_type_problem
from graphsurgeon.core.format import format_type
from graphsurgeon.core.select import select_nodes
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError, SelectorError
from graphsurgeon.verbs._main_tensors import inferred_types, require_main_tensor, value_info


def _outputs_of_selected_nodes(ctx: Editor, selector: str) -> list[str]:
    matches = select_nodes(ctx.index, selector)
    main = ctx.index.main
    in_main = [node for scope, node in matches if scope is main]
    if not in_main:
        if matches:
            scope, node = matches[0]
            raise RewriteError(
                f"`op` {selector!r} matches only nodes inside subgraphs or functions (first: {node.name!r} in "
                f"{scope.name}); their tensors cannot be graph outputs"
            )
        raise SelectorError(f"`op` {selector!r} matches no node (give a node name, an op type, or a glob)")
    return [out for node in in_main for out in node.output if out]


@verb(writes=True, preserves_meaning=True)
def add_outputs(
    ctx: Editor,
    *,
    tensors: Annotated[
        list[str], Opt("tensors of the main graph to make graph outputs", metavar="TENSOR", positional=True)
    ] = [],  # noqa: B006
    all_intermediate: Annotated[bool, Opt("make every node output of the main graph a graph output")] = False,
    op: Annotated[
        str | None, Opt("make the outputs of the matching nodes graph outputs (name, op type or glob)", metavar="SEL")
    ] = None,
) -> None:
    """Make intermediate tensors graph outputs, with dtype and shape from shape inference.

    Name the tensors, or pick them with `op` (every output of the matching main-graph nodes) or
    `all_intermediate` (every node output of the main graph). The model's own outputs stay first and
    unchanged; the new ones follow (named ones in the order given, then graph order). A tensor that exists
    only inside a subgraph or a function body is refused: add it as an output of that body first. Weights
    are never read.
    """
    if not (tensors or all_intermediate or op):
        raise RewriteError("nothing to add: name tensors, or give `op` SEL or `all_intermediate=True`")
    main = ctx.index.main
    wanted: dict[str, None] = {}
    for name in tensors:
        require_main_tensor(ctx, name, "tensors")
        wanted[name] = None
    if op is not None:
        wanted.update(dict.fromkeys(_outputs_of_selected_nodes(ctx, op)))
    if all_intermediate:
        wanted.update(dict.fromkeys(out for node in main.nodes for out in node.output if out))
    already = [name for name in wanted if name in main.outputs]
    new = [name for name in wanted if name not in main.outputs]
    if already and tensors:
        named = [n for n in already if n in tensors]
        if named:
            ctx.note(f"already graph outputs: {', '.join(map(repr, named[:10]))}")
    if not new:
        ctx.note("every tensor asked for is already a graph output")
        return
    types = inferred_types(ctx, new)
    infos = {name: value_info(name, types.get(name)) for name in new}
    untyped = {name: problem for name in new if (problem := io_type_problem(infos[name])) is not None}
    named = [name for name in untyped if name in tensors]
    if named:
        raise RewriteError(
            f"cannot make {named[0]!r} a graph output: {untyped[named[0]]}, even after shape inference; "
            "give the model's value_info a complete type for it (set-shape) or leave it out"
        )
    for name in new:
        if name not in untyped:
            main.add_output(infos[name])
            ctx.record("added", "output", name, format_type(infos[name].type))
    if untyped:
        more = f" and {len(untyped) - 5} more" if len(untyped) > 5 else ""
        shown = ", ".join(map(repr, list(untyped)[:5]))
        ctx.note(f"skipped {shown}{more}: shape inference found no complete type (an output needs one)")
