"""What a shape edit tells verify: the input dims it changed, and whether they are one freed batch.

Slicing is a valid check only where the changed dim is a batch: the leading axis of every changed input, one
exported size, every graph output carrying it on one axis of its own, no unchanged input still holding that
many items, and nothing counting the items (a Range up to the batch, a constant that counts along it). Other
edits (a sequence length, an image size, a named dim fixed) are checked at one shape, and the report says so.
"""

from __future__ import annotations

from graphsurgeon.core.batch_check import BatchAxes, ResizedDim, ShapeEdit
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.select import describe
from graphsurgeon.verbs.shape.analysis import Analysis, Shape, affine_along
from graphsurgeon.verbs.shape.dims import Mono, symbols


def shape_edit(ctx: Editor, dims: list[ResizedDim], analysis: Analysis | None, seeds: dict[str, Shape]) -> ShapeEdit:
    """The edit as verify sees it; call it before rewiring (it reads the analysis' scopes)."""
    reason = _why_not_batch(ctx, dims, analysis, seeds) if analysis is not None else "a named dim is fixed"
    if isinstance(reason, BatchAxes):
        return ShapeEdit(list(dims), reason)
    return ShapeEdit(list(dims), None, reason)


def record_edit(ctx: Editor, edit: ShapeEdit) -> None:
    """Put the edit on `ctx.shape_edit`, merged with an earlier one (the two no longer claim a batch)."""
    earlier = ctx.shape_edit
    if earlier is not None and earlier.dims:
        edit = ShapeEdit(earlier.dims + edit.dims, None, "several shape edits were made")
    ctx.shape_edit = edit


def _why_not_batch(ctx: Editor, dims: list[ResizedDim], analysis: Analysis, seeds: dict[str, Shape]) -> BatchAxes | str:
    """The batch's axes when the changed dims are one freed batch, else why they are not."""
    if not dims:
        return "no input dim changed"
    if any(d.axis != 0 for d in dims):
        return "only a leading (batch) axis is checked per slice"
    if len({d.input for d in dims}) != len(dims):
        return "an input changed on several axes"
    d0 = dims[0].before
    if not isinstance(d0, int) or any(d.before != d0 for d in dims):
        return "the changed axes were not one exported size"
    if len({d.after for d in dims}) != 1:
        return "the changed axes do not share one new dim"
    first = seeds[dims[0].input][0]
    symbol = first.symbol if isinstance(first, Mono) else None
    if symbol is None:
        return "the changed axes do not share one new dim"
    main = ctx.index.main
    changed = {d.input for d in dims}
    for name, info in main.inputs.items():
        if name in changed or info is None or name in main.initializers:
            continue
        declared = info.type.tensor_type.shape.dim if info.type.HasField("tensor_type") else ()
        if declared and declared[0].HasField("dim_value") and declared[0].dim_value == d0:
            return f"input {name!r} keeps {d0} items on axis 0"
    outputs: dict[str, int] = {}
    for name in main.outputs:
        shape = analysis.tensor_shape(main, name)
        axes = [a for a, d in enumerate(shape or ()) if symbol in symbols(d)]
        if shape is None or len(axes) != 1 or shape[axes[0]] != Mono.of(symbol):
            return f"output {name!r} does not carry the batch on one axis of its own"
        outputs[name] = axes[0]
    counting = _counts_items(ctx, analysis, symbol)
    if counting:
        return f"{counting} counts the items, so they are not independent"
    after = dims[0].after
    return BatchAxes(d0, {d.input: d.axis for d in dims}, outputs, (after,) if isinstance(after, int) else ())


def _counts_items(ctx: Editor, analysis: Analysis, symbol: str) -> str:
    """A node whose values depend on the items' positions: a Range up to the batch, a counting constant."""
    for node in ctx.index.by_op.get("Range", ()):
        scope = ctx.scope_of(node)
        limit = analysis.value(scope, node, 1)
        if limit is not None and any(symbol in symbols(e) for e in limit.elems):
            return describe(scope, node)
    for key, plan in analysis.use_tensors.items():
        arr = analysis.read(plan.tensor)
        for axis in plan.axes:
            found = affine_along(arr, axis)
            if found is not None and found[1].any():
                scope, node, _ = analysis.uses[key]
                return describe(scope, node)
    return ""
