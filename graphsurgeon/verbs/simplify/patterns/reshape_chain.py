"""Reshape of a Reshape whose constant targets hold 0 ("copy this dim"): the outer one reads the source.

``Reshape(Reshape(x, [0, 0, -1]), [0, 1024])`` is ``Reshape(x, [0, 1024])``: a 0 in the outer target copies
the inner output's dim, which is x's where the inner target also holds 0 there, or the inner target's own
int. (Targets without zeros are simplify's layout fusion.) Only when the inner output feeds nothing else and
neither Reshape has `allowzero` set.
"""

from __future__ import annotations

import numpy as np

from graphsurgeon.core.editor import Editor
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import (
    STANDARD,
    Names,
    add_constant,
    attr,
    constant_value,
    nodes_of,
    pattern,
    sole_reader,
)


@pattern("reshape_chain", since=5)
def fuse_reshape_chains(ctx: Editor, shapes: ShapeInfo) -> int:
    names = Names(ctx)
    fused = 0
    for scope, outer in nodes_of(ctx, "Reshape"):
        inner = scope.producer.get(outer.input[0]) if len(outer.input) == 2 else None
        if inner is None or inner.op_type != "Reshape" or inner.domain not in STANDARD or len(inner.input) != 2:
            continue
        if sole_reader(scope, inner.output[0]) is not outer:
            continue
        if attr(outer, "allowzero", 0) or attr(inner, "allowzero", 0):
            continue
        t1, t2 = (constant_value(ctx, scope, n.input[1], limit=1024) for n in (inner, outer))
        if t1 is None or t2 is None or t1.ndim != 1 or t2.ndim != 1 or not np.any(t2 == 0):
            continue
        merged = []
        for i, t in enumerate(t2.tolist()):
            if t != 0:
                merged.append(t)
            elif i < len(t1) and t1[i] >= 0:
                merged.append(int(t1[i]))  # 0 (x's dim) or the int the inner Reshape put there
            else:
                break
        if len(merged) != len(t2):
            continue
        target = add_constant(ctx, scope, f"{outer.output[0]}_shape", np.array(merged, dtype=np.int64), names)
        ctx.set_node_inputs(outer, [inner.input[0], target])
        ctx.remove_nodes([inner], scope=scope)
        fused += 1
    return fused
