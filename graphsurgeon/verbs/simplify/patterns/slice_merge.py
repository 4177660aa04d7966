"""Consecutive Slices with constant parameters become one Slice.

Slices on different axes just combine. On the same axis, with step 1 and non-negative starts and ends,
``x[a:b][c:d]`` is ``x[a + c : min(b, a + d)]`` (clamping makes both sides agree when the range runs past
the end). When every reader of a Slice is a Slice that merges with it, each reader slices the source
directly and the first Slice goes. Slice-1 (attributes) and Slice-10+ (inputs) are both read; the merged
Slice is written in the form of the model's opset.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import (
    STANDARD,
    Names,
    add_constant,
    alive,
    attr,
    nodes_of,
    pattern,
)

_INT64_MAX = 2**63 - 1
Params = dict[int, tuple[int, int, int]]  # axis -> (start, end, step)


def _params(shapes: ShapeInfo, scope: Scope, node: NodeProto, opset: int, rank: int) -> Params | None:
    if opset < 10:
        starts, ends, axes = attr(node, "starts"), attr(node, "ends"), attr(node, "axes")
        steps = None
        if starts is None or ends is None:
            return None
    else:
        values: list[list[int] | None] = []
        for i in range(1, 5):
            if i >= len(node.input) or not node.input[i]:
                values.append(None)
                continue
            partial = shapes._input(scope, node, i)
            if partial is None or not partial.is_static():
                return None
            values.append([int(e) for e in partial.elems])  # type: ignore[arg-type]
        starts, ends, axes, steps = values
        if starts is None or ends is None:
            return None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        return None
    out: Params = {}
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        axis = a + rank if a < 0 else a
        if not 0 <= axis < rank or axis in out or st == 0:
            return None
        out[axis] = (int(s), int(e), int(st))
    return out


def _combine(first: Params, second: Params) -> Params | None:
    merged = dict(first)
    for axis, (c, d, step) in second.items():
        if axis not in merged:
            merged[axis] = (c, d, step)
            continue
        a, b, step0 = merged[axis]
        if step != 1 or step0 != 1 or min(a, b, c, d) < 0:
            return None
        merged[axis] = (a + c, min(b, a + d, _INT64_MAX), 1)
    return merged


@pattern("slice_merge")
def merge_slices(ctx: Editor, shapes: ShapeInfo) -> int:
    opset = ctx.opset_version() or 0
    names = Names(ctx)
    merged_count = 0
    for scope, first in nodes_of(ctx, "Slice"):
        if not alive(ctx, first) or not first.output or not first.output[0]:
            continue
        readers = scope.readers(first.output[0])
        if not readers or first.output[0] in scope.outputs or scope.implicit_consumers.get(first.output[0]):
            continue
        if any(
            r.op_type != "Slice" or r.domain not in STANDARD or list(r.input).count(first.output[0]) != 1
            for r in readers
        ):
            continue
        if any(r.input[0] != first.output[0] for r in readers):
            continue
        dims = shapes.symbolic_dims(scope, first.input[0])
        if dims is None:
            continue
        p1 = _params(shapes, scope, first, opset, len(dims))
        plans = []
        for second in readers:
            p2 = _params(shapes, scope, second, opset, len(dims))
            merged = _combine(p1, p2) if p1 is not None and p2 is not None else None
            if merged is None:
                break
            plans.append((second, merged))
        if len(plans) != len(readers):
            continue  # every reader merges (the first Slice then goes), or none does
        for second, merged in plans:
            _rewrite(ctx, scope, first, second, merged, opset, names)
        ctx.remove_nodes([first], scope=scope)
        merged_count += len(plans)
    return merged_count


def _rewrite(
    ctx: Editor, scope: Scope, first: NodeProto, second: NodeProto, merged: Params, opset: int, names: Names
) -> None:
    """`second` slices `first`'s input with the merged parameters."""
    axes = sorted(merged)
    starts, ends, steps = ([merged[a][k] for a in axes] for k in range(3))
    if opset < 10:
        ctx.set_node_inputs(second, [first.input[0]])
        ctx.replace_attributes(second, {"starts": starts, "ends": ends, "axes": axes})
    else:
        operands = [first.input[0]]
        for label, values in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)):
            base = f"{second.output[0]}_{label}"
            operands.append(add_constant(ctx, scope, base, np.array(values, dtype=np.int64), names))
        ctx.set_node_inputs(second, operands)
