"""set-shape: give graph inputs new dims (static, symbolic or unknown) and make the model follow them."""

from __future__ import annotations

from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.verbs.shape import change_shapes, parse_dim_assignment, parse_name_dims
from graphsurgeon.verbs.shape.dims import Spec


@verb(writes=True, preserves_meaning=True)
def set_shape(
    ctx: Editor,
    *,
    input: Annotated[  # noqa: A002 - the CLI's --input
        dict[str, list[Spec]],
        Opt("an input's new dims: ints, symbols or ? (repeatable)", metavar="NAME:DIMS", entry=parse_name_dims),
    ] = {},  # noqa: B006 - never mutated
    graph_output: Annotated[
        dict[str, list[Spec]],
        Opt("declare a graph output's dims (repeatable)", metavar="NAME:DIMS", entry=parse_name_dims),
    ] = {},  # noqa: B006
    dim: Annotated[
        dict[str, Spec],
        Opt(
            "fix a named dim everywhere (batch=1), or rename it (batch=N)",
            metavar="PARAM=VALUE",
            entry=parse_dim_assignment,
        ),
    ] = {},  # noqa: B006
    leading: Annotated[
        bool, Opt("a dim exported as 1 that could sit on several adjacent 1s of a Reshape takes the first")
    ] = False,
    simplify: Annotated[bool, Opt("then simplify: fold everything that became static")] = False,
) -> None:
    """Set input dims and re-batch every constant that carried the old ones.

    A static dim made symbolic (or given another value) is followed through the graph: Reshape targets,
    Expand / Tile / ConstantOfShape / Range / Slice / Resize operands and baked masks that held its exported
    value are rewritten (0 / -1 where legal, else computed from Shape), and the shapes declared downstream are
    recomputed. Where that cannot be proven, the node is named and nothing is written. `dim` fixes or renames
    a named dim wherever it is declared; `simplify` then folds what became static.
    """
    if not (input or graph_output or dim):
        ctx.note("nothing to set: give `input`, `graph_output` or `dim`")
        return
    ctx.index.check_references()  # dangling names and cycles are refused before any analysis
    change_shapes(ctx, inputs=input, outputs=graph_output, dims=dim, leading=leading)
    if simplify:
        from graphsurgeon.verbs.simplify import simplify as run_simplify

        run_simplify.__verb__.run(ctx)  # type: ignore[attr-defined]
