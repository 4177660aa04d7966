"""Symbolic values of small integer tensors (what ``Shape`` arithmetic computes). Value rules are registered per op
in an OpRules table; a rule returns None when it cannot tell. Subgraphs and function bodies: subgraphs.py."""

from __future__ import annotations

import onnx
from onnx import NodeProto, TensorProto

from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.shape.analysis import VALUE_RULES_TABLE as VALUE_RULES
from graphsurgeon.verbs.shape.analysis import Analysis, Value, attr
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, add, div, mul, neg, product
from graphsurgeon.verbs.shape.rules import INT64_MAX, SHAPE_RULES, _static_list

__all__ = ["SHAPE_RULES", "VALUE_RULES", "shape_value"]
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE)
VALUE_TYPES = (TensorProto.INT64, TensorProto.INT32, *FLOAT_TYPES)


# -- values --------------------------------------------------------------------------------------------------------
@VALUE_RULES.register("Shape")
def shape_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return None
    rank = len(x)
    start, end = attr(node, "start", 0), attr(node, "end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return Value(TensorProto.INT64, False, tuple(x[start:end]))


@VALUE_RULES.register("Size")
def _size_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    x = analysis.shape(scope, node, 0)
    return None if x is None else Value(TensorProto.INT64, True, (product(list(x)),))


@VALUE_RULES.register("Identity")
def _identity_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    return analysis.value(scope, node, 0)


@VALUE_RULES.register("Cast")
def _cast_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    """Shape arithmetic may pass through floats (exporters cast dims to float and back): values stay exact."""
    v, to = analysis.value(scope, node, 0), attr(node, "to")
    return None if v is None or to not in VALUE_TYPES else Value(to, v.scalar, v.elems)


@VALUE_RULES.register("Gather")
def _gather_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    data, idx = analysis.value(scope, node, 0), analysis.value(scope, node, 1)
    if data is None or idx is None or data.scalar or attr(node, "axis", 0) not in (0, -1) or not idx.is_static():
        return None
    n = len(data.elems)
    return Value(data.dtype, idx.scalar, tuple(data.elems[int(i) + n if int(i) < 0 else int(i)] for i in idx.elems))  # type: ignore[arg-type]


@VALUE_RULES.register("Slice", since=10)
def _slice_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    data = analysis.value(scope, node, 0)
    lists = [
        _static_list(analysis, scope, node, i) if i < len(node.input) and node.input[i] else [] for i in (1, 2, 3, 4)
    ]
    if data is None or data.scalar:
        return None
    known = [x for x in lists if x is not None]
    if len(known) != 4:
        return None
    starts, ends, axes, steps = known
    if len(starts) != 1 or axes not in ([], [0], [-1]):
        return None
    step = steps[0] if steps else 1
    return Value(data.dtype, False, tuple(data.elems[slice(starts[0], min(ends[0], INT64_MAX), step)]))


@VALUE_RULES.register("Concat")
def _concat_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    parts = [analysis.value(scope, node, i) for i in range(len(node.input))]
    if not parts or any(p is None or p.scalar for p in parts):
        return None
    return Value(parts[0].dtype, False, tuple(e for p in parts for e in p.elems))  # type: ignore[union-attr]


@VALUE_RULES.register("Unsqueeze", "Reshape", "Squeeze", "Flatten")
def _reshaped_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    """The same elements in a rank 0 or 1 tensor (the output's rank tells which)."""
    v = analysis.value(scope, node, 0)
    if v is None:
        return None
    out = analysis.shapes.get((id(scope), node.output[0]))
    if out is None or len(out) > 1:
        return None
    if out == () and len(v.elems) != 1:
        return None
    return Value(v.dtype, out == (), v.elems)


@VALUE_RULES.register("Add", "Sub", "Mul", "Div")
def _arith_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    a, b = analysis.value(scope, node, 0), analysis.value(scope, node, 1)
    if a is None or b is None:
        return None
    n = max(len(a.elems), len(b.elems))
    if len(a.elems) not in (1, n) or len(b.elems) not in (1, n):
        return None
    out: list[MaybeDim] = []
    for k in range(n):
        x, y = a.elems[k if len(a.elems) > 1 else 0], b.elems[k if len(b.elems) > 1 else 0]
        if node.op_type == "Add":
            out.append(add(x, y))
        elif node.op_type == "Sub":
            out.append(add(x, neg(y)))
        elif node.op_type == "Mul":
            out.append(mul(x, y))
        elif isinstance(x, int) and isinstance(y, int) and a.dtype in FLOAT_TYPES:
            out.append(x // y if y and x % y == 0 else None)  # an inexact float quotient is no dim
        elif isinstance(x, int) and isinstance(y, int):
            out.append(int(x / y) if y else None)
        else:
            out.append(div(x, y))
    return Value(a.dtype, a.scalar and b.scalar, tuple(out))


@VALUE_RULES.register("Where")
def _where_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    cond, a, b = (analysis.value(scope, node, i) for i in range(3))
    if cond is None or a is None or b is None:
        return None
    n = max(len(cond.elems), len(a.elems), len(b.elems))
    pick = [cond.elems[k if len(cond.elems) > 1 else 0] for k in range(n)]
    if any(not isinstance(p, int) for p in pick):
        return None
    return Value(
        a.dtype,
        a.scalar and b.scalar and cond.scalar,
        tuple(
            a.elems[k if len(a.elems) > 1 else 0] if pick[k] else b.elems[k if len(b.elems) > 1 else 0]
            for k in range(n)
        ),
    )


@VALUE_RULES.register("Equal")
def _equal_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    a, b = analysis.value(scope, node, 0), analysis.value(scope, node, 1)
    if a is None or b is None:
        return None
    n = max(len(a.elems), len(b.elems))
    out: list[MaybeDim] = []
    for k in range(n):
        x, y = a.elems[k if len(a.elems) > 1 else 0], b.elems[k if len(b.elems) > 1 else 0]
        if isinstance(x, int) and isinstance(y, int):
            out.append(int(x == y))
        elif (isinstance(x, Mono) and isinstance(y, int) and y <= 0) or (
            isinstance(y, Mono) and isinstance(x, int) and x <= 0
        ):
            out.append(0)  # a dim is positive
        elif x == y and x is not None:
            out.append(1)
        else:
            return None
    return Value(TensorProto.BOOL, a.scalar and b.scalar, tuple(out))


@VALUE_RULES.register("ConstantOfShape")
def _constant_of_shape_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    shape = analysis.value(scope, node, 0)
    if shape is None or len(shape.elems) != 1 or not isinstance(shape.elems[0], int) or shape.elems[0] > 64:
        return None
    fill = attr(node, "value")
    if fill is None:
        return Value(TensorProto.FLOAT, False, (0,) * shape.elems[0])
    arr = onnx.numpy_helper.to_array(fill).reshape(-1)
    if arr.dtype.kind not in "iub":
        return None
    return Value(fill.data_type, False, (int(arr[0]),) * shape.elems[0])


@VALUE_RULES.register("ReduceProd")
def _reduce_prod_value(analysis: Analysis, scope: Scope, node: NodeProto) -> Value | None:
    """The product of a shape: a scalar, or a 1-element vector with `keepdims` (the default)."""
    v = analysis.value(scope, node, 0)
    axes = attr(node, "axes", []) if analysis.opset < 18 else _static_list(analysis, scope, node, 1)
    if len(node.input) > 1 and node.input[1] and analysis.opset >= 18 and axes is None:
        return None
    if v is None or v.scalar or axes not in ([], [0], [-1], None):
        return None
    if not axes and attr(node, "noop_with_empty_axes", 0):
        return None
    return Value(v.dtype, not attr(node, "keepdims", 1), (product(list(v.elems)),))
