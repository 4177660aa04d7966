"""An If inside a branch of an If on the same condition: inside the then-branch the condition is true,
inside the else-branch false, so the inner If's condition becomes that constant and folding inlines the
branch it takes (exporters nest such Ifs when a traced shape check repeats). Conditions that shape
knowledge fixes outright (``Equal(Shape(x)[0], Shape(x)[0])``) fold through shapes.py's rules instead.
"""

from __future__ import annotations

import numpy as np

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import STANDARD, Names, add_constant, pattern

Known = dict[tuple[int, str], bool]  # (id(scope defining the condition), its name) -> its value here


def _branch_value(scope: Scope) -> bool | None:
    """True inside an If's then-branch, False inside its else-branch, None for any other subgraph."""
    owner = scope.owner
    if owner is None or owner.op_type != "If" or owner.domain not in STANDARD:
        return None
    for a in owner.attribute:
        if a.g is scope.container:
            return {"then_branch": True, "else_branch": False}.get(a.name)
    return None


@pattern("nested_if")
def fix_nested_if_conditions(ctx: Editor, shapes: ShapeInfo) -> int:
    names = Names(ctx)
    if not ctx.index.by_op.get("If"):
        return 0
    known_in: dict[int, Known] = {}
    fixed = 0
    for scope in ctx.index.scopes:  # outer scopes first
        known: Known = dict(known_in.get(id(scope.parent), {})) if scope.parent is not None else {}
        value = _branch_value(scope)
        if value is not None and scope.owner is not None and scope.parent is not None:
            cond = scope.owner.input[0]
            home = scope.parent.resolve(cond)
            if home is not None:
                known[(id(home), cond)] = value
        known_in[id(scope)] = known
        if not known:
            continue
        for node in ordered_nodes(scope):
            if node.op_type != "If" or node.domain not in STANDARD or not node.input or not node.input[0]:
                continue
            home = scope.resolve(node.input[0])
            fact = known.get((id(home), node.input[0])) if home is not None else None
            if fact is None:
                continue
            ctx.set_node_input(node, 0, add_constant(ctx, scope, "known_condition", np.array(fact), names))
            fixed += 1
    return fixed
