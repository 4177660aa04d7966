"""Conv (or ConvTranspose) followed by the Add of a per-channel constant (how Paddle exports biases) becomes
its bias.

Add(Conv(x, W[, b]), c) = Conv(x, W, b + c) when c broadcasts onto the output along the channel axis only
(shape [C], [C, 1, ...] or [1, C, 1, ...] with as many trailing ones as spatial dims, or a single value),
has Conv's element type, and the Conv's output is read by the Add alone.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

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
    take_over_output,
)


def _channel_vector(value: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """The per-channel vector `value` adds to a [N, C, spatial...] tensor, or None if it adds anything else."""
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape  # aligned to the output's rank
    if shape[0] != 1 or any(d != 1 for d in shape[2:]) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)) if value.size == 1 else value.reshape(channels)


@pattern("conv_add_bias")
def fuse_conv_add_bias(ctx: Editor, shapes: ShapeInfo) -> int:
    names = Names(ctx)
    fused = 0
    for scope, add in nodes_of(ctx, "Add"):
        if len(add.input) == 2 and len(add.output) == 1:
            for side in (0, 1):
                conv = scope.producer.get(add.input[side])
                if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or conv.domain not in STANDARD:
                    continue
                if len(conv.output) != 1:
                    continue
                if sole_reader(scope, conv.output[0]) is not add or add.input[0] == add.input[1]:
                    continue
                if _fuse(ctx, shapes, scope, conv, add, add.input[1 - side], names):
                    fused += 1
                    break
    return fused


def _fuse(ctx: Editor, shapes: ShapeInfo, scope, conv: NodeProto, add: NodeProto, other: str, names: Names) -> bool:
    weight_shape = shapes.static_dims(scope, conv.input[1]) if len(conv.input) > 1 else None
    out_dims = shapes.dims(scope, conv.output[0])
    if weight_shape is None or len(weight_shape) < 3:
        return False
    rank = len(weight_shape)
    if out_dims is not None and len(out_dims) != rank:
        return False
    value = constant_value(ctx, scope, other, limit=1 << 22)
    elem = shapes.elem_type(scope, conv.input[1])
    if value is None or elem is None or shapes.elem_type(scope, other) != elem:
        return False
    channels = weight_shape[1] * attr(conv, "group", 1) if conv.op_type == "ConvTranspose" else weight_shape[0]
    vector = _channel_vector(value, channels, rank)
    if vector is None:
        return False
    has_bias = len(conv.input) > 2 and bool(conv.input[2])
    bias = constant_value(ctx, scope, conv.input[2], limit=1 << 22) if has_bias else np.zeros(channels, value.dtype)
    if bias is None or bias.shape != (channels,) or bias.dtype != value.dtype:
        return False
    new_bias = (bias + vector).astype(value.dtype)
    name = add_constant(ctx, scope, f"{conv.output[0]}_bias", new_bias, names)
    ctx.set_node_inputs(conv, [conv.input[0], conv.input[1], name])
    take_over_output(ctx, scope, conv, add, names)
    return True
