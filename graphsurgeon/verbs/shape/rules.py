"""Forward shape rules: for one op, its output shapes from its inputs' symbolic shapes and values (values.py has
the symbolic values of small integer tensors). Registered per op (and opset range) in an OpRules table.

A rule may demand that an operand follow a symbol (``analysis.demand_axis`` / ``demand_value``) and refuses
(``refuse``) what it cannot follow. Rules see the model's opset: attribute forms before an operand became an
input (Squeeze/Unsqueeze axes until 12, Slice until 9, Split sizes until 12, Reduce axes until 12/17).
"""

from __future__ import annotations

from onnx import NodeProto, TensorProto

from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.shape.analysis import (
    SHAPE_RULES_TABLE as SHAPE_RULES,
)
from graphsurgeon.verbs.shape.analysis import (
    Analysis,
    Shape,
    Value,
    attr,
    refuse,
)
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, add, fmt, fmt_shape, mul, product
from graphsurgeon.verbs.shape.reshape import reshape_rule

__all__ = ["BROADCAST", "SAME_SHAPE", "SHAPE_RULES"]

INT64_MAX = (1 << 63) - 1
SAME_SHAPE = (
    "Identity Cast CastLike Dropout Softmax LogSoftmax Hardmax Relu LeakyRelu Sigmoid Tanh Erf Gelu Exp Log Sqrt "
    "Reciprocal Neg Abs Not IsNaN IsInf Floor Ceil Round Sign Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh "
    "Elu Selu HardSigmoid HardSwish Softplus Softsign Mish Celu ThresholdedRelu Shrink CumSum Trilu LpNormalization "
    "MeanVarianceNormalization BatchNormalization InstanceNormalization LRN GroupNormalization QuantizeLinear "
    "DequantizeLinear Clip BitwiseNot Swish"
).split()
BROADCAST = (
    "Add Sub Mul Div Pow Mod Max Min Sum Mean Equal Less Greater LessOrEqual GreaterOrEqual And Or Xor BitShift "
    "BitwiseAnd BitwiseOr BitwiseXor Where PRelu"
).split()
NCHW = "Conv ConvTranspose MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool MaxRoiPool".split()


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def _static_list(analysis: Analysis, scope: Scope, node: NodeProto, i: int) -> list[int] | None:
    v = analysis.value(scope, node, i)
    if v is None or not v.is_static():
        return None
    return [int(e) for e in v.elems]  # type: ignore[arg-type]


def _axes(analysis: Analysis, scope: Scope, node: NodeProto, input_index: int, since: int) -> list[int] | None:
    """Axes from the attribute (before opset `since`) or the operand (from it); [] when absent."""
    if analysis.opset < since:
        return list(attr(node, "axes", []))
    if input_index >= len(node.input) or not node.input[input_index]:
        return []
    return _static_list(analysis, scope, node, input_index)


# -- same shape and broadcasting -----------------------------------------------------------------------------------
@SHAPE_RULES.register(*SAME_SHAPE)
def _same(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    s = analysis.shape(scope, node, 0)
    return [s] * len(node.output)


@SHAPE_RULES.register(*BROADCAST)
def _broadcast(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    return [analysis.broadcast(scope, node, list(range(len(node.input))))]


@SHAPE_RULES.register("LayerNormalization")
def _layer_norm(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None] * len(node.output)
    axis = _axis(attr(node, "axis", -1), len(x))
    if analysis.carries_change(x[axis:]):
        raise refuse(scope, node, f"normalizes over {fmt_shape(x[axis:])}, which its scale's static shape fixes")
    stats: Shape = tuple(x[:axis]) + (1,) * (len(x) - axis)
    outputs: list[Shape | None] = [x, stats, stats]
    return outputs[: len(node.output)]


@SHAPE_RULES.register(*NCHW)
def _nchw(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None] * len(node.output)
    if analysis.carries_change(x[1:]):
        what = "channels (its weight's shape fixes them)" if analysis.carries_change(x[1:2]) else "spatial dims"
        raise refuse(scope, node, f"cannot follow a changed dim on its {what}: input is {fmt_shape(x)}")
    w = analysis.shape(scope, node, 1) if len(node.input) > 1 and node.input[1] else None
    if w is not None and analysis.carries_change(w):  # the filters (and output channels) are no batch
        raise refuse(scope, node, f"cannot follow a changed dim of its weight: weight is {fmt_shape(w)}")
    outs = []
    for o in node.output:
        exported = analysis.exported_shape(scope, o) if o else None
        outs.append(None if exported is None else (x[0], *exported[1:]))
    return outs


# -- layout --------------------------------------------------------------------------------------------------------
SHAPE_RULES.register("Reshape")(reshape_rule)


@SHAPE_RULES.register("Flatten")
def _flatten(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    axis = _axis(attr(node, "axis", 1), len(x))
    return [(_merge(analysis, scope, node, x[:axis]), _merge(analysis, scope, node, x[axis:]))]


def _merge(analysis: Analysis, scope: Scope, node: NodeProto, dims: tuple[MaybeDim, ...]) -> MaybeDim:
    """Merging axes keeps symbols major: a static axis (other than 1) before a symbolic one cannot be merged."""
    seen_static = False
    for d in dims:
        if isinstance(d, Mono) and seen_static and analysis.carries_change((d,)):
            raise refuse(scope, node, f"merges {fmt_shape(dims)}: a static axis ahead of a changing one")
        if isinstance(d, int) and d != 1:
            seen_static = True
    return product(list(dims))


@SHAPE_RULES.register("Transpose")
def _transpose(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    perm = attr(node, "perm", list(range(len(x)))[::-1])
    if sorted(perm) != list(range(len(x))):  # an inconsistent model: no shape to follow
        raise refuse(scope, node, f"its perm {list(perm)} does not fit its input {fmt_shape(x)}")
    return [tuple(x[p] for p in perm)]


@SHAPE_RULES.register("Squeeze")
def _squeeze(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    axes = _axes(analysis, scope, node, 1, 13)
    if x is None or axes is None:
        return [None]
    if not axes:
        axes = [i for i, d in enumerate(x) if d == 1 or (isinstance(d, Mono) and analysis.eval(d) == 1)]
    axes = [_axis(a, len(x)) for a in axes]
    for a in axes:
        if isinstance(x[a], Mono) and analysis.carries_change((x[a],)):
            raise refuse(scope, node, f"squeezes axis {a}, which is {fmt(x[a])}: it would have to stay 1")
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


@SHAPE_RULES.register("Unsqueeze")
def _unsqueeze(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    axes = _axes(analysis, scope, node, 1, 13)
    if x is None or axes is None:
        return [None]
    rank = len(x) + len(axes)
    axes = sorted(_axis(a, rank) for a in axes)
    out: list[MaybeDim] = list(x)
    for a in axes:
        out.insert(a, 1)
    return [tuple(out)]


@SHAPE_RULES.register("Concat")
def _concat(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    shapes = [analysis.shape(scope, node, i) for i in range(len(node.input))]
    if any(s is None for s in shapes):
        return [None]
    rank = len(shapes[0])  # type: ignore[arg-type]
    axis = _axis(attr(node, "axis", 0), rank)
    out: list[MaybeDim] = []
    for a in range(rank):
        if a == axis:
            total: MaybeDim = 0
            for s in shapes:
                total = add(total, s[a])  # type: ignore[index]
            out.append(total)
            continue
        out.append(_equal_dims(analysis, scope, node, [(i, a, s[a]) for i, s in enumerate(shapes)]))  # type: ignore
    return [tuple(out)]


def _equal_dims(analysis: Analysis, scope: Scope, node: NodeProto, dims: list[tuple[int, int, MaybeDim]]) -> MaybeDim:
    """Dims that must be equal (no broadcasting): static ones follow a symbolic one."""
    symbolic = [d for _, _, d in dims if isinstance(d, Mono)]
    if not symbolic:
        return next((d for _, _, d in dims if d is not None), None)
    target = symbolic[0]
    for i, a, d in dims:
        if isinstance(d, Mono) and d != target:
            raise refuse(scope, node, f"needs {fmt(target)} and {fmt(d)} to be equal; they cannot both be free")
        if isinstance(d, int):
            if d != analysis.eval(target):
                raise refuse(scope, node, f"needs {fmt(target)} (= {analysis.eval(target)}) and {d} to be equal")
            analysis.demand_axis((scope, node, i), a, target)
    return target


@SHAPE_RULES.register("Split")
def _split(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None] * len(node.output)
    axis = _axis(attr(node, "axis", 0), len(x))
    if isinstance(x[axis], Mono) and analysis.carries_change((x[axis],)):
        raise refuse(scope, node, f"splits axis {axis}, which is {fmt(x[axis])}; split another axis")
    outs = []
    for o in node.output:
        exported = analysis.exported_shape(scope, o) if o else None
        outs.append(None if exported is None else tuple(exported[axis] if a == axis else d for a, d in enumerate(x)))
    return outs


@SHAPE_RULES.register("Slice", until=9)
def _slice_attrs(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    starts, ends = list(attr(node, "starts", [])), list(attr(node, "ends", []))
    axes = list(attr(node, "axes", range(len(starts))))
    return [_slice(analysis, scope, node, x, starts, ends, axes, [1] * len(starts), None)]


@SHAPE_RULES.register("Slice", since=10)
def _slice_inputs(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    starts_v, ends_v = analysis.value(scope, node, 1), analysis.value(scope, node, 2)
    if x is None or starts_v is None or ends_v is None:
        return [None]
    axes = _static_list(analysis, scope, node, 3) if len(node.input) > 3 and node.input[3] else None
    steps = _static_list(analysis, scope, node, 4) if len(node.input) > 4 and node.input[4] else None
    n = len(starts_v.elems)
    if (len(node.input) > 3 and node.input[3] and axes is None) or (
        len(node.input) > 4 and node.input[4] and not steps
    ):
        return [None]
    return [
        _slice(
            analysis,
            scope,
            node,
            x,
            list(starts_v.elems),
            list(ends_v.elems),
            axes or list(range(n)),
            steps or [1] * n,
            2,
        )
    ]


def _slice(
    analysis: Analysis,
    scope: Scope,
    node: NodeProto,
    x: Shape,
    starts: list,
    ends: list,
    axes: list[int],
    steps: list[int],
    ends_input: int | None,
) -> Shape | None:
    out = list(x)
    for k, a in enumerate(axes):
        a = _axis(a, len(x))
        d, start, end, step = x[a], starts[k], ends[k], steps[k]
        if not (isinstance(d, Mono) and analysis.carries_change((d,))):
            exported = analysis.exported_shape(scope, node.output[0])
            if isinstance(start, Mono) or isinstance(end, Mono):
                out[a] = _symbolic_extent(d, start, end, step)
            else:
                out[a] = exported[a] if exported is not None else None
            continue
        size = analysis.eval(d)
        if start == 0 and step == 1 and (end == d or (isinstance(end, int) and size is not None and end >= size)):
            if isinstance(end, int) and end < INT64_MAX // 2:  # the exported extent, baked in: slice to the end
                if ends_input is None:
                    raise refuse(scope, node, f"slices axis {a} ({fmt(d)}) up to {end} in an attribute (opset < 10)")
                analysis.demand_value((scope, node, ends_input), k, INT64_MAX)
            continue
        if isinstance(start, int) and isinstance(end, int) and step == 1 and -1 <= start < end <= 1:
            out[a] = end - start if start >= 0 or end < 0 else None  # the first or last items: any size has them
            if start == -1 and end in (0, INT64_MAX):
                out[a] = 1
            continue
        if isinstance(start, int) and start < 0 and isinstance(end, int) and end >= INT64_MAX // 2 and step == 1:
            out[a] = -start
            continue
        out[a] = _symbolic_extent(d, start, end, step)
        if out[a] is None:
            raise refuse(
                scope,
                node,
                f"slices axis {a} ({fmt(d)}, {size} when exported) from {fmt(start)} to {fmt(end)}: whether those "
                "bounds are fixed or follow the dim cannot be told",
            )
    return tuple(out)


def _symbolic_extent(d: MaybeDim, start, end, step) -> MaybeDim:
    if step != 1:
        return None
    if end == d and start == 0:
        return d
    if isinstance(end, Mono) and isinstance(start, int) and start >= 0:
        return add(end, -start) if start == 0 else None
    return None


@SHAPE_RULES.register("Gather")
def _gather(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    data, idx = analysis.shape(scope, node, 0), analysis.shape(scope, node, 1)
    if data is None or idx is None:
        return [None]
    axis = _axis(attr(node, "axis", 0), len(data))
    return [tuple(data[:axis]) + tuple(idx) + tuple(data[axis + 1 :])]


@SHAPE_RULES.register("GatherElements")
def _gather_elements(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    data, idx = analysis.shape(scope, node, 0), analysis.shape(scope, node, 1)
    if data is None or idx is None:
        return [None]
    axis = _axis(attr(node, "axis", 0), len(data))
    out = list(idx)
    for a in range(len(data)):
        if a != axis and data[a] != idx[a]:
            out[a] = _equal_dims(analysis, scope, node, [(0, a, data[a]), (1, a, idx[a])])
    return [tuple(out)]


@SHAPE_RULES.register("GatherND")
def _gather_nd(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    data, idx = analysis.shape(scope, node, 0), analysis.shape(scope, node, 1)
    if data is None or idx is None or not isinstance(idx[-1], int):
        return [None]
    return [tuple(idx[:-1]) + tuple(data[attr(node, "batch_dims", 0) + idx[-1] :])]


@SHAPE_RULES.register("ScatterND", "ScatterElements", "Scatter")
def _scatter(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    return [analysis.shape(scope, node, 0)]


@SHAPE_RULES.register("MatMul", "MatMulInteger")
def _matmul(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    a, b = analysis.shape(scope, node, 0), analysis.shape(scope, node, 1)
    if a is None or b is None:
        return [None]
    inner = _equal_dims(
        analysis, scope, node, [(0, len(a) - 1, a[-1]), (1, max(0, len(b) - 2), b[-2 if len(b) > 1 else 0])]
    )
    del inner
    batch_a, batch_b = a[:-2], b[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch: list[MaybeDim] = []
    for k in range(rank):
        pa, pb = k - (rank - len(batch_a)), k - (rank - len(batch_b))
        da = batch_a[pa] if pa >= 0 else 1
        db = batch_b[pb] if pb >= 0 else 1
        if da == db or db == 1:
            batch.append(da)
        elif da == 1:
            batch.append(db)
        else:
            batch.append(_equal_dims(analysis, scope, node, [(0, pa, da), (1, pb, db)]))
    tail = ([a[-2]] if len(a) > 1 else []) + ([b[-1]] if len(b) > 1 else [])
    return [tuple(batch) + tuple(tail)]


@SHAPE_RULES.register("Gemm")
def _gemm(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    a, b = analysis.shape(scope, node, 0), analysis.shape(scope, node, 1)
    if a is None or b is None:
        return [None]
    m = a[1] if attr(node, "transA", 0) else a[0]
    n = b[0] if attr(node, "transB", 0) else b[1]
    if analysis.carries_change((n,)):
        raise refuse(scope, node, "its weight's shape fixes its output width")
    return [(m, n)]


@SHAPE_RULES.register("Einsum")
def _einsum(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    equation = attr(node, "equation", b"").decode().replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    letters: dict[str, MaybeDim] = {}
    for i, term in enumerate(terms):
        s = analysis.shape(scope, node, i)
        if s is None or "." in term or len(term) != len(s):
            return [None]
        for letter, d in zip(term, s, strict=True):
            if letter in letters and letters[letter] != d and d != 1 and letters[letter] != 1:
                raise refuse(scope, node, f"needs {fmt(letters[letter])} and {fmt(d)} equal for {letter!r}")
            if letter not in letters or letters[letter] == 1:
                letters[letter] = d
    if not rhs:
        return [None]
    return [tuple(letters[c] for c in rhs)]


# -- shape-valued operands -----------------------------------------------------------------------------------------
@SHAPE_RULES.register("Expand")
def _expand(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x, target = analysis.shape(scope, node, 0), analysis.value(scope, node, 1)
    if x is None or target is None:
        return [None]
    rank = max(len(x), len(target.elems))
    out: list[MaybeDim] = []
    for a in range(rank):
        px, pt = a - (rank - len(x)), a - (rank - len(target.elems))
        dx = x[px] if px >= 0 else 1
        dt = target.elems[pt] if pt >= 0 else 1
        if isinstance(dx, Mono) and analysis.carries_change((dx,)):
            if isinstance(dt, int) and dt != 1 and dt == analysis.eval(dx):
                analysis.demand_value((scope, node, 1), pt, dx)
            elif isinstance(dt, int) and dt not in (1, analysis.eval(dx)):
                raise refuse(scope, node, f"expands {fmt(dx)} (= {analysis.eval(dx)}) to {dt}")
            out.append(dx)
        else:
            out.append(dt if dx == 1 else dx)
    return [tuple(out)]


@SHAPE_RULES.register("ConstantOfShape")
def _constant_of_shape(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    v = analysis.value(scope, node, 0)
    return [None if v is None else tuple(v.elems)]


@SHAPE_RULES.register("Shape")
def _shape(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    from graphsurgeon.verbs.shape.values import shape_value

    v = shape_value(analysis, scope, node)
    return [(len(v.elems),) if v is not None else None]


@SHAPE_RULES.register("Size")
def _size(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    return [()]


@SHAPE_RULES.register("Range")
def _range(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    start, limit, delta = (analysis.value(scope, node, i) for i in range(3))
    if start is None or limit is None or delta is None:
        return [None]
    s, lim, d = start.elems[0], limit.elems[0], delta.elems[0]
    if isinstance(s, int) and isinstance(d, int) and d != 0 and isinstance(lim, int):
        return [(max(0, -(-(lim - s) // d)),)]
    if s == 0 and d == 1:
        return [(lim,)]
    return [(None,)]


@SHAPE_RULES.register("Tile")
def _tile(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x, reps = analysis.shape(scope, node, 0), analysis.value(scope, node, 1)
    if x is None or reps is None:
        return [None]
    return [tuple(mul(d, r) for d, r in zip(x, reps.elems, strict=True))]


@SHAPE_RULES.register("Pad")
def _pad(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    if analysis.opset < 11:
        pads: list = list(attr(node, "pads", attr(node, "paddings", [])))
        axes = list(range(len(x)))
    else:
        v = analysis.value(scope, node, 1)
        if v is None:
            return [None]
        pads = list(v.elems)
        given = _static_list(analysis, scope, node, 3) if len(node.input) > 3 and node.input[3] else list(range(len(x)))
        if given is None:
            return [None]
        axes = given
    out = list(x)
    k = len(axes)
    if len(pads) != 2 * k or any(not -len(x) <= a < len(x) for a in axes):
        raise refuse(scope, node, f"its pads {pads} do not fit axes {axes} of its input {fmt_shape(x)}")
    for j, a in enumerate(axes):
        a = _axis(a, len(x))
        out[a] = add(add(x[a], pads[j]), pads[j + k])
    return [tuple(out)]


@SHAPE_RULES.register("Resize", "Upsample")
def _resize(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    for i in range(1, len(node.input)):  # roi, scales, sizes: one value (or two) per axis, whatever the batch
        if analysis.carries_change(analysis.shape(scope, node, i)):
            raise refuse(
                scope, node, f"its input {i} ({node.input[i]!r}) holds values per axis: its length cannot change"
            )
    exported = analysis.exported_shape(scope, node.output[0])
    sizes_index = 3 if node.op_type == "Resize" and analysis.opset >= 11 else None
    sizes = analysis.value(scope, node, sizes_index) if sizes_index is not None else None
    out: list[MaybeDim] = list(exported) if exported is not None else [None] * len(x)
    for a, d in enumerate(x):
        if not (isinstance(d, Mono) and analysis.carries_change((d,))):
            if sizes is not None and a < len(sizes.elems):
                out[a] = sizes.elems[a]
            continue
        if sizes is None and sizes_index is not None and len(node.input) > sizes_index and node.input[sizes_index]:
            raise refuse(
                scope,
                node,
                f"takes its output size from the run-time value of {node.input[sizes_index]!r}, "
                f"so its axis {a} ({fmt(d)}) would not follow",
            )
        if sizes is not None:
            if sizes.elems[a] != d:
                if sizes.elems[a] != analysis.eval(d):
                    raise refuse(scope, node, f"resizes axis {a} ({fmt(d)}); only unscaled axes can change")
                analysis.demand_value((scope, node, sizes_index), a, d)  # type: ignore[arg-type]
        elif exported is not None and exported[a] != analysis.eval(d):
            raise refuse(scope, node, f"scales axis {a} ({fmt(d)}); only unscaled axes can change")
        out[a] = d
    return [tuple(out)]


@SHAPE_RULES.register(
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare",
)  # fmt: skip
def _reduce(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    since = 13 if node.op_type == "ReduceSum" else 18
    axes = _axes(analysis, scope, node, 1, since)
    if x is None or axes is None:
        return [None]
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            return [x]
        axes = list(range(len(x)))
    axes = [_axis(a, len(x)) for a in axes]
    keep = attr(node, "keepdims", 1)
    return [tuple((1 if a in axes else d) for a, d in enumerate(x) if keep or a not in axes)]


@SHAPE_RULES.register("ArgMax", "ArgMin")
def _arg(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None]
    axis = _axis(attr(node, "axis", 0), len(x))
    keep = attr(node, "keepdims", 1)
    return [tuple((1 if a == axis else d) for a, d in enumerate(x) if keep or a != axis)]


@SHAPE_RULES.register("TopK")
def _topk(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    x = analysis.shape(scope, node, 0)
    if x is None:
        return [None, None]
    axis = _axis(attr(node, "axis", -1), len(x))
    k = analysis.value(scope, node, 1) if analysis.opset >= 10 else Value(TensorProto.INT64, False, (attr(node, "k"),))
    out = tuple((k.elems[0] if k is not None else None) if a == axis else d for a, d in enumerate(x))
    return [out, out]


@SHAPE_RULES.register("NonZero", "Compress", "NonMaxSuppression", "Unique")
def _data_dependent(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    outs: list[Shape | None] = []
    for o in node.output:
        exported = analysis.exported_shape(scope, o) if o else None
        outs.append(None if exported is None else tuple(None for _ in exported))
    return outs


@SHAPE_RULES.register("Constant")
def _constant(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    tensor = analysis.constant(scope, node.output[0])
    return [tuple(int(d) for d in tensor.dims) if tensor is not None else None]
