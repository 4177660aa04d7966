"""Reshape: which target entries carry a changed dim, decided by memory layout rather than by value.

A row-major reshape keeps the flat order, so the input is a sequence of *atoms* (its static dims, and each
symbol of a symbolic dim, symbols before a dim's static factor) and every output dim takes the next atoms whose
exported values multiply to its exported size. An output dim that takes a symbol carries it; an output dim
that would need part of a symbol, or a static factor ahead of a symbol in one dim, mixes the dim with others
and is refused. For a dim exported at 2 or more this places it unambiguously (even when 2 is also the number
of heads); a dim exported at 1 can sit on any output dim of size 1, and two adjacent candidates are refused
unless ``leading`` says to take the first.
"""

from __future__ import annotations

from onnx import NodeProto

from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.shape.analysis import Analysis, Shape, attr, refuse
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, fmt, fmt_shape, mul, product


def reshape_rule(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if analysis.opset < 5:
        elems: tuple[MaybeDim, ...] | None = tuple(attr(node, "shape", []))
    else:
        v = analysis.value(scope, node, 1)
        elems = v.elems if v is not None else None
    if x is None or elems is None or any(e is None for e in elems) or any(d is None for d in x):
        if x is not None and analysis.carries_change(x) and elems is None:
            raise refuse(scope, node, _unknown_target(scope, node, x))
        return [analysis.exported_shape(scope, node.output[0]) if not analysis.carries_change(x) else None]
    allowzero = bool(attr(node, "allowzero", 0)) and analysis.opset >= 14
    out = layout(analysis, scope, node, x, elems, allowzero)
    for j, (e, o) in enumerate(zip(elems, out, strict=True)):
        if e == -1 or e == o:
            continue
        if e == 0 and not allowzero:
            if o != x[j]:
                raise refuse(scope, node, f"copies input axis {j} ({fmt(x[j])}) with 0 where {fmt(o)} is needed")
            continue
        if isinstance(e, int) and isinstance(o, Mono):
            if analysis.opset < 5:
                raise refuse(
                    scope, node, f"its shape attribute holds {e} where {fmt(o)} is needed; convert to opset 5+"
                )
            analysis.demand_value((scope, node, 1), j, o)
        elif isinstance(e, Mono) and isinstance(o, int):
            if len(x) == len(elems) and x[j] == o:
                analysis.demand_axis((scope, node, 0), j, e)
                continue
            raise refuse(scope, node, f"its target asks {fmt(e)} where the input only gives {o}")
        else:
            raise refuse(scope, node, f"its target asks {fmt(e)} where the input gives {fmt(o)}")
    return [tuple(out)]


def layout(
    analysis: Analysis, scope: Scope, node: NodeProto, x: Shape, elems: tuple[MaybeDim, ...], allowzero: bool
) -> list[MaybeDim]:
    """Each output dim, symbolic where it takes a symbol of the input (see the module docstring)."""
    atoms: list[tuple[int, str | None]] = []
    for d in x:
        if isinstance(d, Mono):
            unknown = [s for s in d.atoms() if s not in analysis.env]  # an odd dim_param ("-1"): no size known
            if unknown:
                raise refuse(scope, node, f"its input's dim {unknown[0]!r} has no known size to follow through it")
            atoms += [(analysis.env[s], s) for s in d.atoms()]
            if d.coef != 1:
                atoms.append((d.coef, None))
        elif d != 1:
            atoms.append((int(d), None))  # type: ignore[arg-type]
    if any(size == 0 for size, _ in atoms):  # (a zero dim: no element, no layout to follow)
        raise refuse(scope, node, f"its input {fmt_shape(x)} has a dim of 0")
    values: list[int | None] = []
    for j, e in enumerate(elems):
        if e == 0 and not allowzero:
            values.append(analysis.eval(x[j]) if j < len(x) else None)
        elif e == -1:
            values.append(None)
        else:
            values.append(analysis.eval(e))
    if values.count(None) > 1 or (None in values and elems.count(-1) != 1):
        raise refuse(scope, node, f"has an unusable target {fmt_shape(elems)}")
    total = analysis.eval(product(list(x)))
    if None in values:
        rest = 1
        for v in values:
            rest *= v if v is not None else 1
        if not rest or total is None or total % rest:
            raise refuse(scope, node, f"cannot reshape {fmt_shape(x)} to {fmt_shape(elems)}")
        values[values.index(None)] = total // rest
    out: list[MaybeDim] = []
    k = 0
    for j, value in enumerate(values):
        need = int(value)  # type: ignore[arg-type]
        o: MaybeDim = 1
        static_first = False
        while True:
            if need == 1:
                if o == 1 and k < len(atoms) and atoms[k][1] is not None and atoms[k][0] == 1:
                    if j + 1 < len(values) and values[j + 1] == 1 and not analysis.leading:
                        raise refuse(
                            scope,
                            node,
                            f"reshapes {fmt_shape(x)} to {fmt_shape(elems)}: {atoms[k][1]!r} was exported as 1 and "
                            "could be any of its adjacent 1s (export with a size above 1, or pass `leading=True` "
                            "to take the first)",
                        )
                    o = mul(o, Mono.of(atoms[k][1]))  # type: ignore[arg-type]
                    k += 1
                break
            if need == 0 or k >= len(atoms):
                raise refuse(scope, node, _mixing(x, elems))
            size, sym = atoms[k]
            if sym is None:
                if need % size == 0:
                    need //= size
                    o = mul(o, size)
                    k += 1
                elif size % need == 0:
                    atoms[k] = (size // need, None)
                    o = mul(o, need)
                    need = 1
                else:
                    raise refuse(scope, node, _mixing(x, elems))
                static_first = True
            else:
                if need % size or (static_first and sym in analysis.changed):
                    raise refuse(scope, node, _mixing(x, elems))
                need //= size
                o = mul(o, Mono.of(sym))
                k += 1
        out.append(o)
    if any(sym is not None or size != 1 for size, sym in atoms[k:]):
        raise refuse(scope, node, _mixing(x, elems))
    return out


def _mixing(x: Shape, elems: tuple[MaybeDim, ...]) -> str:
    return (
        f"reshapes {fmt_shape(x)} to {fmt_shape(elems)}, which mixes a changing dim with others: at another size "
        "the items would be cut across (if this is intended, fix the dim instead)"
    )


def _unknown_target(scope: Scope, node: NodeProto, x: Shape) -> str:
    name = node.input[1]
    home = scope.resolve(name)
    if home is not None and name in home.inputs and name in home.initializers:
        why = "a graph input with a default value, which a caller may replace (freeze-input makes it a constant)"
    elif home is not None and name in home.inputs:
        why = "a graph input, so the caller decides whether it follows the input"
    else:
        why = "computed in a way graphsurgeon cannot follow"
    return f"reshapes {fmt_shape(x)} to the value of {name!r}, {why}; its output cannot be followed"
