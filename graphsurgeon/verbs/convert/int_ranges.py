"""What values an integer tensor can hold: an interval per int64 tensor, propagated node by node.

Known for: constants (their values), Casts from narrower integer types, Shape / ArgMax / NonZero / TopK
indices (a tensor dim, or an index into one, is taken to fit int32), and the arithmetic and data movement
between them. Anything else (a graph input, a sum over a tensor, a cast from float) is unknown: None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from onnx import AttributeProto, NodeProto, TensorProto, numpy_helper

Interval = tuple[int, int]
INT32_RANGE: Interval = (-(2**31), 2**31 - 1)
DIM_RANGE: Interval = (0, 2**31 - 1)  # a tensor dim or an index into one
TYPE_RANGES: dict[int, Interval] = {
    TensorProto.INT32: INT32_RANGE,
    TensorProto.INT16: (-(2**15), 2**15 - 1),
    TensorProto.INT8: (-128, 127),
    TensorProto.UINT16: (0, 2**16 - 1),
    TensorProto.UINT8: (0, 255),
    TensorProto.BOOL: (0, 1),
}


def fits_int32(interval: Interval | None) -> bool:
    return interval is not None and INT32_RANGE[0] <= interval[0] and interval[1] <= INT32_RANGE[1]


def _hull(*ranges: Interval | None) -> Interval | None:
    if not ranges or any(r is None for r in ranges):
        return None
    return min(r[0] for r in ranges if r), max(r[1] for r in ranges if r)


def _add(a: Interval, b: Interval) -> Interval:
    return a[0] + b[0], a[1] + b[1]


def _mul(a: Interval, b: Interval) -> Interval:
    products = [x * y for x in a for y in b]
    return min(products), max(products)


def _magnitude(a: Interval) -> int:
    return max(abs(a[0]), abs(a[1]))


def _excludes_zero(a: Interval) -> bool:
    return a[0] > 0 or a[1] < 0


def _div(a: Interval, b: Interval) -> Interval | None:
    return (-_magnitude(a), _magnitude(a)) if _excludes_zero(b) else None


def _mod(a: Interval, b: Interval) -> Interval | None:
    return (-(_magnitude(b) - 1), _magnitude(b) - 1) if _excludes_zero(b) else None


def _range_op(start: Interval, limit: Interval, delta: Interval) -> Interval | None:
    """Range's values lie between start and limit; int32 Range computes limit - start, which must fit too."""
    if not fits_int32((limit[0] - start[1], limit[1] - start[0])):
        return None
    return min(start[0], limit[0]), max(start[1], limit[1])


def _clip(x: Interval, low: Interval | None, high: Interval | None) -> Interval:
    lo, hi = x
    if low is not None:
        lo, hi = max(lo, low[0]), max(hi, low[1])
    if high is not None:
        lo, hi = min(lo, high[0]), min(hi, high[1])
    return lo, hi


_SAME_AS_DATA = frozenset(
    {
        "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Slice", "Expand", "Tile",
        "Gather", "GatherElements", "GatherND", "Compress", "Split", "DepthToSpace", "SpaceToDepth",
        "ReverseSequence",
    }
)  # fmt: skip
_INDEX_OUTPUTS = {"ArgMax": (0,), "ArgMin": (0,), "NonZero": (0,), "TopK": (1,), "NonMaxSuppression": (0,)}

Transfer = Callable[[NodeProto, Sequence["Interval | None"]], "Interval | None"]


def _attribute(node: NodeProto, name: str) -> AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _binary(op: Callable[[Interval, Interval], Interval | None]) -> Transfer:
    def transfer(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
        a, b = (ins[0], ins[1]) if len(ins) == 2 else (None, None)
        return op(a, b) if a is not None and b is not None else None

    return transfer


def _sum(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    if not ins or any(r is None for r in ins):
        return None
    return sum(r[0] for r in ins if r), sum(r[1] for r in ins if r)


def _elementwise(pick: Callable[..., int]) -> Transfer:
    def transfer(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
        if not ins or any(r is None for r in ins):
            return None
        return pick(r[0] for r in ins if r), pick(r[1] for r in ins if r)

    return transfer


def _neg(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    return (-ins[0][1], -ins[0][0]) if ins and ins[0] is not None else None


def _abs(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    x = ins[0] if ins else None
    if x is None:
        return None
    return (0 if x[0] <= 0 <= x[1] else min(abs(x[0]), abs(x[1]))), _magnitude(x)


def _clip_op(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    present = [i < len(node.input) and bool(node.input[i]) for i in range(3)]
    if ins[0] is None or any(p and ins[i] is None for i, p in enumerate(present)):
        return None
    return _clip(ins[0], ins[1] if present[1] else None, ins[2] if present[2] else None)


def _pad(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    given = len(node.input) > 2 and bool(node.input[2])
    return _hull(ins[0], ins[2] if given else (0, 0))


def _scatter(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    reduction = _attribute(node, "reduction")
    if reduction is not None and reduction.s not in (b"", b"none"):
        return None
    return _hull(ins[0], ins[2]) if len(ins) > 2 else None


def _range(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    if len(ins) != 3 or any(r is None for r in ins):
        return None
    start, limit, delta = ins
    assert start is not None and limit is not None and delta is not None
    return _range_op(start, limit, delta)


def _constant_of_shape(node: NodeProto, ins: Sequence[Interval | None]) -> Interval | None:
    value = _attribute(node, "value")
    if value is None or value.t.data_type != TensorProto.INT64:
        return None
    values = numpy_helper.to_array(value.t).reshape(-1)
    return (int(values.min()), int(values.max())) if values.size else (0, 0)


_TRANSFERS: dict[str, Transfer] = {
    "Add": _binary(_add),
    "Sub": _binary(lambda a, b: (a[0] - b[1], a[1] - b[0])),
    "Mul": _binary(_mul),
    "Div": _binary(_div),
    "Mod": _binary(_mod),
    "Sum": _sum,
    "Max": _elementwise(max),
    "Min": _elementwise(min),
    "Neg": _neg,
    "Abs": _abs,
    "Sign": lambda node, ins: (-1, 1),
    "Clip": _clip_op,
    "Concat": lambda node, ins: _hull(*ins),
    "Where": lambda node, ins: _hull(*ins[1:3]) if len(ins) == 3 else None,
    "Pad": _pad,
    "Trilu": lambda node, ins: _hull(ins[0], (0, 0)),
    "ScatterND": _scatter,
    "ScatterElements": _scatter,
    "Range": _range,
    "ConstantOfShape": _constant_of_shape,
}


def _shape(dims: list[int | str | None] | None, node: NodeProto) -> Interval:
    """Shape's values: the dims it selects when all are known, else any dim."""
    if dims is None:
        return DIM_RANGE
    start = _attribute(node, "start")
    end = _attribute(node, "end")
    rank = len(dims)
    lo = start.i if start is not None else 0
    hi = end.i if end is not None else rank
    lo, hi = (lo + rank if lo < 0 else lo), (hi + rank if hi < 0 else hi)
    chosen = dims[max(0, min(lo, rank)) : max(0, min(hi, rank))]
    if not all(isinstance(d, int) for d in chosen):
        return DIM_RANGE
    known = [d for d in chosen if isinstance(d, int)]
    return (min(known), max(known)) if known else (0, 0)


def output_ranges(
    node: NodeProto, ins: Sequence[Interval | None], input_dims: list[int | str | None] | None
) -> list[Interval | None]:
    """The interval of each output of a standard-domain node (None: unknown), given its inputs' intervals
    (None for an unknown or absent input) and, for Shape and Size, the dims of its input."""
    outputs: list[Interval | None] = [None] * len(node.output)
    op = node.op_type
    if op in _SAME_AS_DATA:
        outputs = [ins[0] if ins else None] * len(node.output)
    elif op in _INDEX_OUTPUTS:
        for i in _INDEX_OUTPUTS[op]:
            if i < len(outputs):
                outputs[i] = DIM_RANGE
    elif op == "Shape":
        outputs[0] = _shape(input_dims, node)
    elif op == "Size" and input_dims is not None and all(isinstance(d, int) for d in input_dims):
        count = 1
        for d in input_dims:
            count *= int(d or 0)
        outputs[0] = (count, count)
    elif op in _TRANSFERS and outputs:
        outputs[0] = _TRANSFERS[op](node, ins)
    return outputs


__all__ = ["DIM_RANGE", "INT32_RANGE", "TYPE_RANGES", "Interval", "fits_int32", "output_ranges"]
