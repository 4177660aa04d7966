"""Output shapes where onnx's inference stops: one small rule per op and opset range (DIM_RULES).

onnx's inference resolves a Reshape target only through its own data propagation, which exists for some ops
at some opsets (``Shape`` propagates from opset 15, ``Unsqueeze`` from 13): at opset 11 or 13 a
Shape→Gather→Unsqueeze→Concat→Reshape chain leaves the Reshape, and everything after it, without a shape.
These rules compute dims (ints, or symbols that are equal only to themselves) from the input dims and the
partial values of shape operands (see shapes.py), node by node in the same walk, so one pass reaches the end
of the graph at every opset. A rule returns None when it is not sure: a wrong dim would fold a wrong constant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from onnx import NodeProto, TensorProto

from graphsurgeon.core.index import Scope
from graphsurgeon.core.rules import OpRules

if TYPE_CHECKING:
    from graphsurgeon.verbs.fold.shapes import Elem, ShapeInfo

Out = tuple["int | None", "list[Elem]"]  # (element type or None, dims)
DimRule = Callable[["ShapeInfo", Scope, NodeProto], "list[Out | None] | None"]
DIM_RULES: OpRules[DimRule] = OpRules()
_INT_MAX = 2**62


def _fresh(info: ShapeInfo, scope: Scope, node: NodeProto, axis: int, output: int = 0) -> Elem:
    from graphsurgeon.verbs.fold.shapes import Sym

    return Sym(("anon", id(scope.container), node.output[output], axis))


def _in(info: ShapeInfo, scope: Scope, node: NodeProto, i: int) -> list[Elem] | None:
    if i >= len(node.input) or not node.input[i]:
        return None
    return info.symbolic_dims(scope, node.input[i])


def _elem(info: ShapeInfo, scope: Scope, node: NodeProto, i: int = 0) -> int | None:
    if i >= len(node.input) or not node.input[i]:
        return None
    return info.elem_type(scope, node.input[i])


def _ints(info: ShapeInfo, scope: Scope, node: NodeProto, i: int) -> list[int] | None:
    """A static int operand (constant or partial value) as a list, or None."""
    value = info._input(scope, node, i)
    if value is None or not value.is_static():
        return None
    return [int(e) for e in value.elems]  # type: ignore[arg-type]


def _axes(info: ShapeInfo, scope: Scope, node: NodeProto, since: int, index: int = 1) -> list[int] | None:
    """Axes from the attribute before opset `since`, from input `index` from then on ([] when absent)."""
    from graphsurgeon.verbs.fold.shapes import _attr

    if (info.opset or 0) < since:
        value = _attr(node, "axes")
        return [] if value is None else [int(a) for a in value]
    if index >= len(node.input) or not node.input[index]:
        return []
    return _ints(info, scope, node, index)


def _norm(axis: int, rank: int) -> int | None:
    axis = axis + rank if axis < 0 else axis
    return axis if 0 <= axis < rank else None


def broadcast(info: ShapeInfo, scope: Scope, node: NodeProto, shapes: list[list[Elem]]) -> list[Elem] | None:
    first = shapes[0]
    if None not in first and all(s == first for s in shapes):  # the common case: equal shapes
        return list(first)
    rank = max(len(s) for s in shapes)
    out: list[Elem] = []
    for axis in range(rank):
        dims = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        known = {d for d in dims if d != 1}
        ints = {d for d in known if isinstance(d, int)}
        if len(ints) > 1:
            return None  # not broadcastable: the model is invalid, say nothing
        if ints:
            out.append(ints.pop())
        elif not known:
            out.append(1)
        elif len(known) == 1 and None not in known:
            out.append(known.pop())
        else:
            out.append(_fresh(info, scope, node, axis))
    return out


# -- same shape as input 0 -------------------------------------------------------------------------------
_UNARY = (
    "Identity Relu Sigmoid Tanh Exp Log Neg Abs Sqrt Reciprocal Erf Gelu LeakyRelu Elu Selu Celu HardSigmoid "
    "HardSwish Softplus Softsign Clip Floor Ceil Round Sign Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh "
    "Atanh Softmax LogSoftmax Hardmax Mish ThresholdedRelu Shrink CumSum Trilu Not BitwiseNot LRN "
    "InstanceNormalization MeanVarianceNormalization LpNormalization Dropout LayerNormalization "
    "BatchNormalization GroupNormalization RMSNormalization CastLike"
).split()
_BOOL_UNARY = ("IsNaN", "IsInf")


@DIM_RULES.register(*_UNARY)
def _same(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    elem = _elem(info, scope, node, 1) if node.op_type == "CastLike" else _elem(info, scope, node, 0)
    return [(elem, list(dims))]


@DIM_RULES.register(*_BOOL_UNARY)
def _same_bool(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    return None if dims is None else [(TensorProto.BOOL, list(dims))]


@DIM_RULES.register("Cast")
def _cast(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    return None if dims is None else [(_attr(node, "to"), list(dims))]


# -- broadcasting -----------------------------------------------------------------------------------------
_BROADCAST = "Add Sub Mul Div Pow Max Min Sum Mean Mod PRelu BitShift BitwiseAnd BitwiseOr BitwiseXor".split()
_COMPARE = "Equal Less Greater LessOrEqual GreaterOrEqual And Or Xor".split()


@DIM_RULES.register(*_BROADCAST, *_COMPARE, "Where")
def _broadcast(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    shapes = [_in(info, scope, node, i) for i in range(len(node.input))]
    if not shapes or any(s is None for s in shapes):
        return None
    out = broadcast(info, scope, node, [s for s in shapes if s is not None])
    if out is None:
        return None
    if node.op_type in _COMPARE:
        elem: int | None = TensorProto.BOOL
    else:
        elem = _elem(info, scope, node, 1 if node.op_type == "Where" else 0)
    return [(elem, out)]


# -- shape ops --------------------------------------------------------------------------------------------
@DIM_RULES.register("Shape")
def _shape(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    value = info.value(scope, node.output[0])
    if value is not None:
        return [(TensorProto.INT64, [len(value.elems)])]
    return None


@DIM_RULES.register("Size")
def _size(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    return [(TensorProto.INT64, [])]


def _product(dims: list[Elem]) -> tuple[int, Counter] | None:
    coef = 1
    syms: Counter = Counter()
    for d in dims:
        if d is None:
            return None
        if isinstance(d, int):
            coef *= d
        else:
            syms[d] += 1
    return coef, syms


@DIM_RULES.register("Reshape", since=5)
def _reshape(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    target = info._input(scope, node, 1)
    if target is None or target.scalar:
        return None
    allowzero = (info.opset or 0) >= 14 and _attr(node, "allowzero", 0) == 1
    out: list[Elem] = []
    minus = None
    for axis, t in enumerate(target.elems):
        if t == 0 and not allowzero:
            if dims is None or axis >= len(dims):
                return None
            out.append(dims[axis])
        elif t == -1:
            if minus is not None:
                return None
            minus = axis
            out.append(None)
        elif isinstance(t, int) and t < -1:
            return None
        else:
            out.append(t if t is not None else _fresh(info, scope, node, axis))
    if minus is not None:
        out[minus] = _fresh(info, scope, node, minus)
        whole = _product(dims) if dims is not None else None
        known = _product([d for i, d in enumerate(out) if i != minus])
        if whole is not None and known is not None:
            (wc, ws), (kc, ks) = whole, known
            if not ks - ws and not ws - ks and kc and wc % kc == 0:
                out[minus] = wc // kc
    return [(_elem(info, scope, node, 0), out)]


@DIM_RULES.register("Flatten")
def _flatten(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    axis = _attr(node, "axis", 1)
    axis = axis + len(dims) if axis < 0 else axis
    halves = [dims[:axis], dims[axis:]]
    out: list[Elem] = []
    for i, half in enumerate(halves):
        prod = _product(half)
        if prod is not None and not prod[1]:
            out.append(prod[0])
        elif prod is not None and prod[0] == 1 and sum(prod[1].values()) == 1:
            out.append(next(iter(prod[1])))
        else:
            out.append(_fresh(info, scope, node, i))
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("Unsqueeze")
def _unsqueeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    axes = _axes(info, scope, node, since=13)
    if dims is None or not axes:
        return None
    rank = len(dims) + len(axes)
    where = {_norm(a, rank) for a in axes}
    if None in where or len(where) != len(axes):
        return None
    it = iter(dims)
    return [(_elem(info, scope, node), [1 if i in where else next(it) for i in range(rank)])]


@DIM_RULES.register("Squeeze")
def _squeeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    axes = _axes(info, scope, node, since=13)
    if dims is None or axes is None:
        return None
    if not axes:
        if any(not isinstance(d, int) for d in dims):
            return None  # which unknown dims are 1 is unknown
        return [(_elem(info, scope, node), [d for d in dims if d != 1])]
    drop = {_norm(a, len(dims)) for a in axes}
    if None in drop:
        return None
    return [(_elem(info, scope, node), [d for i, d in enumerate(dims) if i not in drop])]


@DIM_RULES.register("Transpose")
def _transpose(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    perm = _attr(node, "perm")
    perm = list(range(len(dims)))[::-1] if perm is None else list(perm)
    if sorted(perm) != list(range(len(dims))):
        return None
    return [(_elem(info, scope, node), [dims[p] for p in perm])]


@DIM_RULES.register("Concat")
def _concat(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    shapes = [_in(info, scope, node, i) for i in range(len(node.input)) if node.input[i]]
    if not shapes or any(s is None or len(s) != len(shapes[0] or ()) for s in shapes):
        return None
    first = shapes[0]
    assert first is not None
    axis = _norm(_attr(node, "axis", 0), len(first))
    if axis is None:
        return None
    out = list(first)
    along = [s[axis] for s in shapes if s is not None]
    nonzero = [d for d in along if d != 0]
    if all(isinstance(d, int) for d in along):
        out[axis] = sum(along)  # type: ignore[arg-type]
    elif len(nonzero) == 1:
        out[axis] = nonzero[0]
    else:
        out[axis] = _fresh(info, scope, node, axis)
    for i in range(len(out)):
        if i != axis and not isinstance(out[i], int):
            ints = {s[i] for s in shapes if s is not None and isinstance(s[i], int)}
            if len(ints) == 1:
                out[i] = ints.pop()
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("Gather")
def _gather(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    data, indices = _in(info, scope, node, 0), _in(info, scope, node, 1)
    if data is None or indices is None:
        return None
    axis = _norm(_attr(node, "axis", 0), len(data))
    if axis is None:
        return None
    return [(_elem(info, scope, node), [*data[:axis], *indices, *data[axis + 1 :]])]


@DIM_RULES.register("Expand", since=8)
def _expand(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    target = info._input(scope, node, 1)
    if dims is None or target is None or target.scalar:
        return None
    elems = [e if e is not None else _fresh(info, scope, node, i) for i, e in enumerate(target.elems)]
    out = broadcast(info, scope, node, [dims, elems])
    return None if out is None else [(_elem(info, scope, node), out)]


@DIM_RULES.register("ConstantOfShape")
def _constant_of_shape(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    target = info._input(scope, node, 0)
    if target is None or target.scalar:
        return None
    value = _attr(node, "value")
    elem = value.data_type if value is not None else TensorProto.FLOAT
    return [(elem, [e if e is not None else _fresh(info, scope, node, i) for i, e in enumerate(target.elems)])]


@DIM_RULES.register("Tile", since=6)
def _tile(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims, reps = _in(info, scope, node, 0), _ints(info, scope, node, 1)
    if dims is None or reps is None or len(reps) != len(dims):
        return None
    out: list[Elem] = []
    for axis, (d, r) in enumerate(zip(dims, reps, strict=True)):
        out.append(d * r if isinstance(d, int) else d if r == 1 else _fresh(info, scope, node, axis))
    return [(_elem(info, scope, node), out)]


def _slice_dims(info, scope, node, dims, starts, ends, axes, steps) -> list[Out | None] | None:
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        return None
    out = list(dims)
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        axis = _norm(a, len(dims))
        if axis is None or st == 0:
            return None
        d = dims[axis]
        if isinstance(d, int):
            out[axis] = len(range(*slice(s, e, st).indices(d)))
        elif s == 0 and st == 1 and e >= _INT_MAX:
            out[axis] = d
        else:
            out[axis] = _fresh(info, scope, node, axis)
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("Slice", until=9)
def _slice_attributes(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    starts, ends = _attr(node, "starts"), _attr(node, "ends")
    if dims is None or starts is None or ends is None:
        return None
    axes = _attr(node, "axes")
    return _slice_dims(info, scope, node, dims, list(starts), list(ends), None if axes is None else list(axes), None)


@DIM_RULES.register("Slice", since=10)
def _slice_inputs(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    if dims is None or len(node.input) < 3:
        return None
    operands = [_ints(info, scope, node, i) for i in range(1, 5)]
    given = [i < len(node.input) and bool(node.input[i]) for i in range(1, 5)]
    if any(g and o is None for g, o in zip(given, operands, strict=True)):
        return None
    starts, ends, axes, steps = operands
    if starts is None or ends is None:
        return None
    return _slice_dims(info, scope, node, dims, starts, ends, axes, steps)


from graphsurgeon.verbs.fold import dims_nn  # noqa: E402 - the rules of network ops register on import

__all__ = ["DIM_RULES", "broadcast", "dims_nn"]
