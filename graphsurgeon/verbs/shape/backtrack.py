"""Following a demand back to the constant that must change.

A *shape demand* says "axis a of the tensor read at this use must be D"; a *value demand* says "element k of the
small integer tensor read at this use must be D". Each step looks at the producer and asks the same of the
operand that decides it (a broadcast operand, the shape operand of Expand / ConstantOfShape / Tile / Range, the
part of a Concat, the Shape it was read from, ...). At a constant the demand becomes a plan for that one use;
at a graph input, or at an op with no step here, it is refused with the node named.
"""

from __future__ import annotations

from onnx import NodeProto

from graphsurgeon.core.index import Scope
from graphsurgeon.core.select import describe
from graphsurgeon.verbs.shape.analysis import Analysis, Use, attr, refuse
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, add, div, fmt
from graphsurgeon.verbs.shape.rules import BROADCAST, SAME_SHAPE

MAX_STEPS = 10_000


def follow(analysis: Analysis, kind: str, use: Use, where: int, dim: MaybeDim) -> None:
    """Follow one demand (``kind`` "axis" or "value") back to the constants it lands on."""
    work: list[tuple[str, Use, int, MaybeDim]] = [(kind, use, where, dim)]
    steps = 0
    while work:
        steps += 1
        if steps > MAX_STEPS:
            raise refuse(use[0], use[1], "a demand on its input did not settle")
        kind, use, where, want = work.pop()
        if kind == "axis":
            work += _axis_step(analysis, use, where, want)
        else:
            work += _value_step(analysis, use, where, want)


Step = list[tuple[str, Use, int, MaybeDim]]


def _producer(analysis: Analysis, use: Use, what: str) -> tuple[Scope, NodeProto] | None:
    scope, node, i = use
    name = node.input[i]
    home = scope.resolve(name)
    if analysis.constant(scope, name) is not None:
        return None
    if home is None or name not in home.producer:
        where = "graph input" if home is not None and home.parent is None and not home.is_function else "input"
        raise refuse(
            scope,
            node,
            f"its operand {name!r} ({where}) would need {what}; include that input in the change "
            "(name it with its new dims), or fix the dim instead",
        )
    return home, home.producer[name]


def _axis_step(analysis: Analysis, use: Use, axis: int, dim: MaybeDim) -> Step:
    scope, node, i = use
    current = analysis.shape(scope, node, i)
    if current is not None and axis < len(current) and current[axis] == dim:
        return []  # already follows (an earlier demand planned it)
    found = _producer(analysis, use, f"{fmt(dim)} on axis {axis}")
    if found is None:
        analysis.plan_tensor(use, axis, dim)
        return []
    home, p = found
    op = p.op_type
    out = analysis.tensor_shape(home, node.input[i])
    rank = len(out) if out is not None else None

    def on(k: int, a: int) -> tuple[str, Use, int, MaybeDim]:
        return ("axis", (home, p, k), a, dim)

    if op in SAME_SHAPE or (op == "LayerNormalization" and node.input[i] == p.output[0]):
        return [on(0, axis)]
    if op in BROADCAST or op == "Expand" or op == "MatMul":
        steps: Step = []
        satisfied = False
        indices = [0] if op == "Expand" else list(range(len(p.input))) if op != "MatMul" else [0, 1]
        for k in indices:
            s = analysis.shape(home, p, k)
            if s is None or rank is None:
                continue
            pos = axis - (rank - len(s))
            if op == "MatMul" and ((k == 0 and pos == len(s) - 1) or (k == 1 and pos == len(s) - 2)):
                continue
            if op == "MatMul" and ((k == 0 and axis == rank - 1) or (k == 1 and axis == rank - 2)):
                continue
            if pos >= 0 and s[pos] == dim:
                satisfied = True
            elif pos >= 0 and isinstance(s[pos], int) and s[pos] != 1:
                steps.append(on(k, pos))
        if op == "Expand" and not steps:
            target = analysis.value(home, p, 1)
            if target is None or rank is None:
                raise refuse(home, p, f"expands to a computed shape whose axis {axis} would need {fmt(dim)}")
            return [("value", (home, p, 1), axis - (rank - len(target.elems)), dim)]
        if not steps and not satisfied:
            raise refuse(home, p, f"makes {node.input[i]!r} whose axis {axis} would need {fmt(dim)}")
        return steps
    if op == "ConstantOfShape":
        return [("value", (home, p, 0), axis, dim)]
    if op == "Transpose":
        perm = attr(p, "perm", list(range(rank or 0))[::-1])
        return [on(0, perm[axis])]
    if op in ("Unsqueeze", "Squeeze") and rank is not None:
        x = analysis.shape(home, p, 0)
        if x is None:
            raise refuse(home, p, "its input's rank is unknown")
        from graphsurgeon.verbs.shape.rules import _axes

        axes = _axes(analysis, home, p, 1, 13) or []
        if op == "Unsqueeze":
            inserted = sorted(a + rank if a < 0 else a for a in axes)
            if axis in inserted:
                raise refuse(home, p, f"inserts axis {axis}, which would need {fmt(dim)}")
            return [on(0, axis - sum(1 for a in inserted if a < axis))]
        removed = sorted(a + len(x) if a < 0 else a for a in axes)
        kept = [a for a in range(len(x)) if a not in removed]
        return [on(0, kept[axis])]
    if op == "Gather" and rank is not None:
        data, idx = analysis.shape(home, p, 0), analysis.shape(home, p, 1)
        if data is None or idx is None:
            raise refuse(home, p, "its operands' shapes are unknown")
        g = attr(p, "axis", 0)
        g = g + len(data) if g < 0 else g
        if axis < g:
            return [on(0, axis)]
        if axis < g + len(idx):
            return [on(1, axis - g)]
        return [on(0, axis - len(idx) + 1)]
    if op == "GatherND" and rank is not None:
        idx = analysis.shape(home, p, 1)
        if idx is not None and isinstance(idx[-1], int):
            if axis < len(idx) - 1:
                return [on(1, axis)]
            return [on(0, axis - (len(idx) - 1) + attr(p, "batch_dims", 0) + idx[-1])]
    if op == "Tile":
        x = analysis.shape(home, p, 0)
        if x is not None and x[axis] == 1:
            return [("value", (home, p, 1), axis, dim)]
        return [on(0, axis)]
    if op == "Range":
        start, delta = analysis.value(home, p, 0), analysis.value(home, p, 2)
        if start is None or delta is None or start.elems[0] != 0 or delta.elems[0] != 1:
            raise refuse(home, p, f"counts from {start} by {delta}; its length would need {fmt(dim)}")
        return [("value", (home, p, 1), 0, dim)]
    if op == "Slice" and analysis.opset >= 10:
        slice_starts = analysis.value(home, p, 1)
        slice_axes = analysis.value(home, p, 3) if len(p.input) > 3 and p.input[3] else None
        axis_list = (
            list(slice_axes.elems)
            if slice_axes is not None
            else list(range(len(slice_starts.elems) if slice_starts else 0))
        )
        normalized = [a + rank if isinstance(a, int) and a < 0 and rank else a for a in axis_list]
        if axis not in normalized:
            return [on(0, axis)]
        k = normalized.index(axis)
        if slice_starts is None or slice_starts.elems[k] != 0:
            raise refuse(home, p, f"slices axis {axis} from {slice_starts}; its extent would need {fmt(dim)}")
        return [("value", (home, p, 2), k, dim)]
    if op == "Reshape" and analysis.opset >= 5:
        target = analysis.value(home, p, 1)
        if target is not None and axis < len(target.elems):
            e = target.elems[axis]
            if e == 0 and not attr(p, "allowzero", 0):
                return [on(0, axis)]
            if isinstance(e, int) and e > 0:
                return [("value", (home, p, 1), axis, dim)]
    if op == "Concat" and rank is not None:
        a = attr(p, "axis", 0)
        if (a + rank if a < 0 else a) != axis:
            return [on(k, axis) for k in range(len(p.input))]
    raise refuse(
        home,
        p,
        f"makes {node.input[i]!r} with a fixed axis {axis} that would need {fmt(dim)} for "
        f"{describe(scope, node)}, and graphsurgeon cannot make it follow",
    )


def _value_step(analysis: Analysis, use: Use, elem: int, dim: MaybeDim) -> Step:
    scope, node, i = use
    found = _producer(analysis, use, f"{fmt(dim)} at element {elem}")
    if found is None:
        analysis.plan_value(use, elem, dim)
        return []
    home, p = found
    op = p.op_type

    def on(k: int, e: int, want: MaybeDim = dim) -> tuple[str, Use, int, MaybeDim]:
        return ("value", (home, p, k), e, want)

    def at(k: int) -> int:
        v = analysis.value(home, p, k)
        return elem if v is not None and len(v.elems) > 1 else 0

    if op in ("Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten"):
        return [on(0, elem)]
    if op == "Concat":
        offset = 0
        for k in range(len(p.input)):
            v = analysis.value(home, p, k)
            if v is None:
                break
            if elem < offset + len(v.elems):
                return [on(k, elem - offset)]
            offset += len(v.elems)
    if op == "Gather":
        data, idx = analysis.value(home, p, 0), analysis.value(home, p, 1)
        if data is not None and idx is not None and idx.is_static():
            j = int(idx.elems[elem if len(idx.elems) > 1 else 0])  # type: ignore[arg-type]
            return [on(0, j + len(data.elems) if j < 0 else j)]
    if op == "Slice":
        lists = [analysis.value(home, p, k) if k < len(p.input) and p.input[k] else None for k in (0, 1, 4)]
        data, starts, steps = lists
        if data is not None and starts is not None and starts.is_static():
            s = int(starts.elems[0])  # type: ignore[arg-type]
            s = s + len(data.elems) if s < 0 else s
            step = int(steps.elems[0]) if steps is not None and steps.is_static() else 1  # type: ignore[arg-type]
            return [on(0, s + elem * step)]
    if op == "Where":
        cond = analysis.value(home, p, 0)
        if cond is not None and cond.is_static():
            pick = cond.elems[elem if len(cond.elems) > 1 else 0]
            return [on(1, at(1))] if pick else [on(2, at(2))]
    if op in ("Mul", "Add", "Sub", "Div"):
        a, b = analysis.value(home, p, 0), analysis.value(home, p, 1)
        for k, other in ((0, b), (1, a)):
            if other is None:
                continue
            c = other.elems[elem if len(other.elems) > 1 else 0]
            if not isinstance(c, int):
                continue
            want: MaybeDim = None
            if op == "Mul":
                want = div(dim, c)
            elif op == "Add":
                want = add(dim, -c)
            elif op == "Sub":
                want = add(dim, c) if k == 0 else add(c, -dim if isinstance(dim, int) else None)
            elif op == "Div" and k == 0:
                want = dim * c if isinstance(dim, int) else (Mono(dim.coef * c, dim.syms) if dim is not None else None)
            if want is not None:
                return [on(k, at(k), want)]
    if op == "Shape":
        x = analysis.shape(home, p, 0)
        start = attr(p, "start", 0)
        if x is not None:
            start = start + len(x) if start < 0 else start
            return [("axis", (home, p, 0), start + elem, dim)]
    raise refuse(
        home,
        p,
        f"computes {node.input[i]!r}, whose element {elem} would need {fmt(dim)} for {describe(scope, node)}, "
        "and graphsurgeon cannot make it follow",
    )
