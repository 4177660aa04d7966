"""make-dynamic: one axis of the graph inputs becomes a symbol, and everything that depended on it follows."""

from __future__ import annotations

from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.shape import change_shapes, real_inputs
from graphsurgeon.verbs.shape.dims import Spec


@verb(writes=True, preserves_meaning=True)
def make_dynamic(
    ctx: Editor,
    *,
    axis: Annotated[int, Opt("the axis that becomes dynamic", metavar="N")] = 0,
    name: Annotated[str, Opt("the symbol it becomes", metavar="SYMBOL")] = "batch",
    input: Annotated[list[str], Opt("only these inputs (default: every input)", metavar="NAME")] = [],  # noqa: A002, B006
    leading: Annotated[
        bool, Opt("a dim exported as 1 that could sit on several adjacent 1s of a Reshape takes the first")
    ] = False,
) -> None:
    """Make one axis of the inputs dynamic (the batch, by default) and re-batch the constants that carried it.

    The shorthand of set-shape: axis `axis` of every input (or of each `input`) becomes the symbol `name`;
    Reshape targets, Expand / Tile / ConstantOfShape / Range / Slice / Resize operands and masks built for the
    exported size follow it. Inputs must agree on the axis' exported size; a model that cannot run at another
    size there (a weight-shaped axis, a reshape that mixes it with other dims) is refused, naming the node.
    """
    ctx.index.check_references()  # dangling names and cycles are refused before any analysis
    available = real_inputs(ctx)
    if not available:
        raise RewriteError("the model has no graph inputs, so there is nothing to make dynamic")
    unknown = [n for n in input if n not in available]
    if unknown:
        raise RewriteError(f"input: the model has no input {unknown[0]!r}; its inputs: {', '.join(available)}")
    chosen = input or list(available)
    specs: dict[str, list[Spec]] = {}
    sizes: dict[str, int] = {}
    for input_name in chosen:
        info = available[input_name]
        tensor_type = info.type.tensor_type if info.type.HasField("tensor_type") else None
        if tensor_type is None or not tensor_type.HasField("shape"):
            if input:
                raise RewriteError(f"input: {input_name!r} has no declared shape; use set-shape with its dims")
            continue
        dims = tensor_type.shape.dim
        if not -len(dims) <= axis < len(dims):
            if input:
                raise RewriteError(f"axis: {input_name!r} has rank {len(dims)}, so it has no axis {axis}")
            continue
        a = axis + len(dims) if axis < 0 else axis
        spec: list[Spec] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]
        if spec[a] == name:
            continue
        if isinstance(spec[a], int):
            sizes[input_name] = spec[a]  # type: ignore[assignment]
        spec[a] = name
        specs[input_name] = spec
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} ({v})" for n, v in sizes.items())
        raise RewriteError(f"axis {axis} differs between inputs: {listed}; name the inputs that share it with `input`")
    if not specs:
        if not any(len(available[n].type.tensor_type.shape.dim) > axis for n in chosen):
            raise RewriteError(f"axis: no input has an axis {axis}")
        ctx.note(f"axis {axis} is already {name!r} on every input: nothing to do")
        return
    change_shapes(ctx, inputs=specs, leading=leading)
