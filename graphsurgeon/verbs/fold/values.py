"""Partial-value rules, one per op and opset range (PARTIAL_RULES): how Shape / Gather / Slice / Concat /
Unsqueeze / Squeeze / Cast / Identity / arithmetic / comparisons carry the small integer tensors of shape
arithmetic along, each element an int or a symbol (see shapes.py). A rule returns None when it is not sure."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import NodeProto, TensorProto

from graphsurgeon.core.index import Scope
from graphsurgeon.core.rules import OpRules
from graphsurgeon.verbs.fold.shapes import _INT_TYPES, Elem, Partial, ShapeInfo, Sym, _attr

# -- partial-value rules, one per op ---------------------------------------------------------------------------
PartialRule = Callable[[ShapeInfo, Scope, NodeProto], "Partial | None"]
PARTIAL_RULES: OpRules[PartialRule] = OpRules()


@PARTIAL_RULES.register("Shape")
def _shape(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    dims = info.symbolic_dims(scope, node.input[0])
    if dims is None:
        return None
    rank = len(dims)
    start, end = _attr(node, "start", 0), _attr(node, "end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return Partial(TensorProto.INT64, False, tuple(dims[start:end]))


@PARTIAL_RULES.register("Size")
def _size(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    dims = info.static_dims(scope, node.input[0])
    if dims is None:
        return None
    return Partial(TensorProto.INT64, True, (int(np.prod(dims, dtype=np.int64)),))


@PARTIAL_RULES.register("Identity")
def _identity(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    return info._input(scope, node, 0)


@PARTIAL_RULES.register("Cast")
def _cast(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src, to = info._input(scope, node, 0), _attr(node, "to")
    if src is None or to not in _INT_TYPES:
        return None
    return Partial(to, src.scalar, src.elems)


@PARTIAL_RULES.register("Gather")
def _gather(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data, idx = info._input(scope, node, 0), info._input(scope, node, 1)
    if data is None or idx is None or data.scalar or _attr(node, "axis", 0) not in (0, -1) or not idx.is_static():
        return None
    n = len(data.elems)
    indices = [i for i in idx.elems if isinstance(i, int)]
    return Partial(data.dtype, idx.scalar, tuple(data.elems[i + n if i < 0 else i] for i in indices))


@PARTIAL_RULES.register("Slice", until=9)
def _slice_attributes(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data = info._input(scope, node, 0)
    if data is None or data.scalar:
        return None
    starts, ends = tuple(_attr(node, "starts", [])), tuple(_attr(node, "ends", []))
    return _slice_1d(data, starts, ends, tuple(_attr(node, "axes", [0])), (1,))


@PARTIAL_RULES.register("Slice", since=10)
def _slice_inputs(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data = info._input(scope, node, 0)
    if data is None or data.scalar or len(node.input) < 3:
        return None
    operands = [info._input(scope, node, i) if i < len(node.input) and node.input[i] else None for i in range(1, 5)]
    starts, ends, axes, steps = operands
    given = [i < len(node.input) and bool(node.input[i]) for i in range(1, 5)]
    if any(g and p is None for g, p in zip(given, operands, strict=True)):
        return None
    if starts is None or ends is None or not all(p is None or p.is_static() for p in operands):
        return None
    return _slice_1d(
        data,
        starts.elems,
        ends.elems,
        axes.elems if axes is not None else (0,),
        steps.elems if steps is not None else (1,),
    )


def _slice_1d(data: Partial, s: tuple, e: tuple, ax: tuple, st: tuple) -> Partial | None:
    if len(s) != 1 or len(e) != 1 or tuple(ax) not in ((0,), (-1,)) or len(st) != 1 or st[0] == 0:
        return None
    return Partial(data.dtype, False, tuple(data.elems[slice(s[0], e[0], st[0])]))


@PARTIAL_RULES.register("Concat")
def _concat(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    parts = [info._input(scope, node, i) for i in range(len(node.input))]
    if any(p is None or p.scalar for p in parts) or _attr(node, "axis", 0) not in (0, -1):
        return None
    elems: tuple[Elem, ...] = ()
    for p in parts:
        assert p is not None
        elems += p.elems
    first = parts[0]
    assert first is not None
    return Partial(first.dtype, False, elems)


@PARTIAL_RULES.register("Unsqueeze")
def _unsqueeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src = info._input(scope, node, 0)
    return None if src is None or not src.scalar else Partial(src.dtype, False, src.elems)


@PARTIAL_RULES.register("Squeeze")
def _squeeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src = info._input(scope, node, 0)
    return None if src is None or src.scalar or len(src.elems) != 1 else Partial(src.dtype, True, src.elems)


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}


@PARTIAL_RULES.register("Add", "Sub", "Mul", "Div")
def _arithmetic(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    a, b = info._input(scope, node, 0), info._input(scope, node, 1)
    if a is None or b is None or TensorProto.BOOL in (a.dtype, b.dtype):
        return None
    if a.is_static() and b.is_static():
        arr = _ARITHMETIC.get(node.op_type, _int_div)(a.array(), b.array())
        return Partial(a.dtype, arr.ndim == 0, tuple(int(v) for v in np.asarray(arr).reshape(-1)))
    if len(a.elems) != len(b.elems) and 1 not in (len(a.elems), len(b.elems)):
        return None
    n = max(len(a.elems), len(b.elems))
    pairs = zip(a.elems * (n // len(a.elems)), b.elems * (n // len(b.elems)), strict=True)
    return Partial(a.dtype, a.scalar and b.scalar, tuple(_symbolic(node.op_type, x, y) for x, y in pairs))


def _symbolic(op: str, x: Elem, y: Elem) -> Elem:
    """One element of symbolic arithmetic: what the neutral element (x+0, x*1, x/1...) or zero (x*0) fixes."""
    if isinstance(x, int) and isinstance(y, int):
        return int(_ARITHMETIC.get(op, _int_div)(np.array(x), np.array(y)))
    if op == "Mul" and 0 in (x, y):
        return 0
    if (op in ("Add", "Sub") and y == 0) or (op in ("Mul", "Div") and y == 1):
        return x
    if (op == "Add" and x == 0) or (op == "Mul" and x == 1):
        return y
    return None


_COMPARISONS = {
    "Equal": np.equal,
    "Less": np.less,
    "Greater": np.greater,
    "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
}


@PARTIAL_RULES.register(*_COMPARISONS)
def _compare(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    """Comparisons of shape values (an If's condition on dims): static operands, or Equal of one symbol."""
    a, b = info._input(scope, node, 0), info._input(scope, node, 1)
    if a is None or b is None or TensorProto.BOOL in (a.dtype, b.dtype):
        return None
    if a.is_static() and b.is_static():
        arr = np.asarray(_COMPARISONS[node.op_type](a.array(), b.array()))
        return Partial(TensorProto.BOOL, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))
    if node.op_type in ("Equal", "LessOrEqual", "GreaterOrEqual") and a.scalar == b.scalar and a.elems == b.elems:
        if all(isinstance(e, Sym) for e in a.elems):
            return Partial(TensorProto.BOOL, a.scalar, (1,) * len(a.elems))  # the same symbol is equal to itself
    return None


@PARTIAL_RULES.register("Not", "And", "Or", "Xor")
def _logic(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    values = [info._input(scope, node, i) for i in range(len(node.input))]
    if not values or any(v is None or v.dtype != TensorProto.BOOL or not v.is_static() for v in values):
        return None
    arrays = [v.array() for v in values if v is not None]
    if node.op_type == "Not":
        arr = np.logical_not(arrays[0])
    else:
        arr = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}[node.op_type](*arrays)
    arr = np.asarray(arr)
    return Partial(TensorProto.BOOL, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.any(b == 0):
        raise ValueError("division by zero")
    return np.trunc(a / b).astype(a.dtype)
