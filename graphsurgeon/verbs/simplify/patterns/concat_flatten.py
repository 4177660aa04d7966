"""A Concat reading a Concat on the same axis (that feeds nothing else) takes that Concat's inputs in its
place: ``Concat(a, Concat(b, c))`` is ``Concat(a, b, c)`` (exporters build Resize sizes and Reshape targets
this way)."""

from __future__ import annotations

from graphsurgeon.core.editor import Editor
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import STANDARD, alive, attr, nodes_of, pattern, sole_reader


def _axis(shapes: ShapeInfo, scope, node) -> int | None:
    axis = attr(node, "axis")
    if axis is None:
        return None
    if axis < 0:
        dims = shapes.dims(scope, node.output[0])
        return None if dims is None else axis + len(dims)
    return axis


@pattern("concat_flatten", since=4)
def flatten_concats(ctx: Editor, shapes: ShapeInfo) -> int:
    flattened = 0
    for scope, outer in nodes_of(ctx, "Concat"):
        if not alive(ctx, outer) or len(outer.output) != 1:
            continue
        axis = _axis(shapes, scope, outer)
        inputs: list[str] = []
        dead = []
        for name in outer.input:
            inner = scope.producer.get(name) if name else None
            if (
                inner is not None
                and inner.op_type == "Concat"
                and inner.domain in STANDARD
                and axis is not None
                and _axis(shapes, scope, inner) == axis
                and sole_reader(scope, name) is outer
                and list(outer.input).count(name) == 1
            ):
                inputs.extend(inner.input)
                dead.append(inner)
            else:
                inputs.append(name)
        if dead:
            ctx.set_node_inputs(outer, inputs)
            ctx.remove_nodes(dead, scope=scope)
            flattened += len(dead)
    return flattened
