"""A Reshape target computed from shapes with one unknown dim becomes a constant in 0 / -1 form.

``Reshape(x, Concat(Gather(Shape(x), 0), [1], [512]))`` is ``Reshape(x, [-1, 1, 512])``: an element that is
x's own dim at the same position becomes 0 ("copy", unless `allowzero` from opset 14 makes 0 literal), a
single remaining unknown becomes -1 (the element count fixes it), so the shape arithmetic dies. Only when the
target's partial value (shapes.py) knows its length and every element but that one: the unknown may be a
symbol or arithmetic on one (``batch * heads``: a TorchScript attention's ``[seq, batch * 8, 32]`` becomes
``[0, -1, 32]``, or ``[16, -1, 32]`` when seq is static).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.verbs.fold.shapes import Elem, ShapeInfo
from graphsurgeon.verbs.simplify.patterns import Names, add_constant, attr, constant_value, nodes_of, pattern


def constant_target(
    elems: tuple[Elem, ...], dims: list[Elem] | None, allowzero: bool, unnamed: bool = False
) -> list[int] | None:
    """The 0 / -1 spelling of a Reshape target whose elements are ints or symbols (`unnamed`: or one element
    nothing names), or None if there is none."""
    out: list[int] = []
    unknown: list[int] = []
    for i, e in enumerate(elems):
        if isinstance(e, int):
            out.append(e)
        elif e is None and not unnamed:
            return None
        elif e is not None and not allowzero and dims is not None and i < len(dims) and dims[i] == e:
            out.append(0)
        else:
            unknown.append(i)
            out.append(-1)
    if len(unknown) > 1 or (unknown and out.count(-1) > 1):
        return None
    return out


@pattern("reshape_zero_minus_one", since=5)
def constant_reshape_targets(ctx: Editor, shapes: ShapeInfo) -> int:
    """Targets whose elements are all named first; only in a round with none of those left, the ones with an
    unnamed element (a -1 there names nothing downstream, so it waits until the named ones have spread)."""
    return _rewrite(ctx, shapes, unnamed=False) or _rewrite(ctx, shapes, unnamed=True)


def _rewrite(ctx: Editor, shapes: ShapeInfo, *, unnamed: bool) -> int:
    opset = ctx.opset_version() or 0
    names = Names(ctx)
    rewritten = 0
    for scope, node in nodes_of(ctx, "Reshape"):
        if len(node.input) != 2:
            continue
        target = node.input[1]
        partial = shapes.value(scope, target)
        if partial is None or partial.scalar or partial.is_static() or partial.dtype != TensorProto.INT64:
            continue
        if constant_value(ctx, scope, target, limit=1024) is not None:
            continue
        allowzero = opset >= 14 and attr(node, "allowzero", 0) == 1
        new = constant_target(partial.elems, shapes.symbolic_dims(scope, node.input[0]), allowzero, unnamed)
        if new is None:
            continue
        name = add_constant(ctx, scope, f"{node.output[0]}_shape", np.array(new, dtype=np.int64), names)
        ctx.set_node_input(node, 1, name)
        rewritten += 1
    return rewritten
