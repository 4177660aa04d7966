"""DIM_RULES for network ops: MatMul, Gemm, reductions, ArgMax/ArgMin, Split, Conv and pooling (see dims.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnx import NodeProto, TensorProto

from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.fold.dims import DIM_RULES, Out, _axes, _elem, _fresh, _in, _ints, _norm, broadcast

if TYPE_CHECKING:
    from graphsurgeon.verbs.fold.shapes import Elem, ShapeInfo


@DIM_RULES.register("MatMul")
def _matmul(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    a, b = _in(info, scope, node, 0), _in(info, scope, node, 1)
    if a is None or b is None or not a or not b:
        return None
    a2 = [1, *a] if len(a) == 1 else a
    b2 = [*b, 1] if len(b) == 1 else b
    batch = broadcast(info, scope, node, [a2[:-2], b2[:-2]]) if len(a2) > 2 or len(b2) > 2 else []
    if batch is None:
        return None
    out = [*batch, a2[-2], b2[-1]]
    if len(a) == 1:
        del out[-2]
    if len(b) == 1:
        del out[-1]
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("Gemm")
def _gemm(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    a, b = _in(info, scope, node, 0), _in(info, scope, node, 1)
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m = a[1] if _attr(node, "transA", 0) else a[0]
    n = b[0] if _attr(node, "transB", 0) else b[1]
    return [(_elem(info, scope, node), [m, n])]


_REDUCE = "ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp"
_REDUCE_OPS = (*_REDUCE.split(), "ReduceSumSquare")


@DIM_RULES.register(*_REDUCE_OPS)
def _reduce(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    since = 13 if node.op_type == "ReduceSum" else 18  # axes became an input
    axes = _axes(info, scope, node, since=since)
    if axes is None:
        return None
    if not axes:
        if (info.opset or 0) >= since and _attr(node, "noop_with_empty_axes", 0):
            return [(_elem(info, scope, node), list(dims))]
        axes = list(range(len(dims)))
    where = {_norm(a, len(dims)) for a in axes}
    if None in where:
        return None
    keep = _attr(node, "keepdims", 1)
    out = [1 if i in where else d for i, d in enumerate(dims) if keep or i not in where]
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("ArgMax", "ArgMin")
def _arg(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    axis = _norm(_attr(node, "axis", 0), len(dims))
    if axis is None:
        return None
    keep = _attr(node, "keepdims", 1)
    out = [1 if i == axis else d for i, d in enumerate(dims) if keep or i != axis]
    return [(TensorProto.INT64, out)]


@DIM_RULES.register("Split")
def _split(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None:
        return None
    axis = _norm(_attr(node, "axis", 0), len(dims))
    if axis is None:
        return None
    if (info.opset or 0) < 13:
        split = _attr(node, "split")
        sizes = None if split is None else [int(s) for s in split]
    else:
        sizes = _ints(info, scope, node, 1) if len(node.input) > 1 and node.input[1] else None
        if len(node.input) > 1 and node.input[1] and sizes is None:
            return None
    d = dims[axis]
    n = len(node.output)
    if sizes is None:
        if not isinstance(d, int) or d % n or _attr(node, "num_outputs") is not None:
            return None
        sizes = [d // n] * n
    if len(sizes) != n:
        return None
    elem = _elem(info, scope, node)
    return [(elem, [*dims[:axis], s, *dims[axis + 1 :]]) for s in sizes]


def _spatial(d: Elem, k: int, s: int, dil: int, pad: int, ceil: bool) -> int | None:
    if not isinstance(d, int):
        return None
    span = d + pad - dil * (k - 1) - 1
    if span < 0 or (ceil and span % s):
        return None  # ceil mode's last-window rule: left to onnx's inference
    return span // s + 1


@DIM_RULES.register("Conv", "MaxPool", "AveragePool")
def _window(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    """Explicit pads only (auto_pad NOTSET); static spatial dims, or each unknown one becomes a new symbol."""
    from graphsurgeon.verbs.fold.shapes import _attr

    dims = _in(info, scope, node, 0)
    if dims is None or len(dims) < 3 or _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        return None
    if len(node.output) > 1 and any(node.output[1:]):
        return None
    n = len(dims) - 2
    if node.op_type == "Conv":
        w = _in(info, scope, node, 1)
        if w is None or len(w) != len(dims) or not all(isinstance(k, int) for k in w[2:]):
            return None
        kernel = [int(k) for k in w[2:]]  # type: ignore[arg-type]
        channels: Elem = w[0]
    else:
        kernel = list(_attr(node, "kernel_shape", []))
        channels = dims[1]
    if len(kernel) != n:
        return None
    strides = list(_attr(node, "strides", [1] * n))
    dilations = list(_attr(node, "dilations", [1] * n))
    pads = list(_attr(node, "pads", [0] * 2 * n))
    ceil = bool(_attr(node, "ceil_mode", 0))
    out: list[Elem] = [dims[0], channels]
    for i in range(n):
        size = _spatial(dims[2 + i], kernel[i], strides[i], dilations[i], pads[i] + pads[i + n], ceil)
        out.append(size if size is not None else _fresh(info, scope, node, 2 + i))
    return [(_elem(info, scope, node), out)]


@DIM_RULES.register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(info: ShapeInfo, scope: Scope, node: NodeProto) -> list[Out | None] | None:
    dims = _in(info, scope, node, 0)
    if dims is None or len(dims) < 3:
        return None
    return [(_elem(info, scope, node), [dims[0], dims[1], *[1] * (len(dims) - 2)])]
