"""Conv (or ConvTranspose) followed by an inference-mode BatchNormalization becomes one Conv with scaled
weights and a bias.

BN(Conv(x, W, b)) = s * (Conv(x, W, b) - mean) + beta with s = scale / sqrt(var + eps), i.e.
Conv(x, W * s[:, None, ...], (b - mean) * s + beta); a ConvTranspose's output channels are W's axis 1
(with one group). Computed in float64, stored in W's type. Only when the
Conv's output is read by the BatchNormalization alone, every operand is a constant, and W is not shared
with another node (else the model would grow by a second copy of it).
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
    only_output_used,
    pattern,
    sole_reader,
    take_over_output,
)


def _inference_mode(node: NodeProto, opset: int) -> bool:
    """Does this BatchNormalization normalize with its running statistics (opset-dependent spelling)?"""
    if sum(1 for o in node.output if o) != 1 or len(node.input) != 5:
        return False
    if opset < 7 and attr(node, "is_test", 0) != 1:
        return False  # BatchNormalization-6 computes batch statistics unless is_test
    if opset < 9 and attr(node, "spatial", 1) != 1:
        return False
    return not attr(node, "training_mode", 0)


@pattern("conv_bn", since=6)
def fuse_conv_bn(ctx: Editor, shapes: ShapeInfo) -> int:
    opset = ctx.opset_version() or 0
    names = Names(ctx)
    fused = 0
    for scope, bn in nodes_of(ctx, "BatchNormalization"):
        if not _inference_mode(bn, opset):
            continue
        conv = scope.producer.get(bn.input[0])
        if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or conv.domain not in STANDARD:
            continue
        transposed = conv.op_type == "ConvTranspose"
        if len(conv.output) != 1 or (transposed and attr(conv, "group", 1) != 1):
            continue
        if sole_reader(scope, conv.output[0]) is not bn or not only_output_used(scope, bn):
            continue
        if len(conv.input) < 2 or any(a.ref_attr_name for a in conv.attribute):
            continue
        if scope.resolve(conv.input[1]) is not scope or sole_reader(scope, conv.input[1]) is not conv:
            continue  # a shared weight would be stored twice
        weight = constant_value(ctx, scope, conv.input[1])
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        bias = constant_value(ctx, scope, conv.input[2]) if has_bias else None
        operands = [constant_value(ctx, scope, name, limit=1 << 24) for name in bn.input[1:]]
        if weight is None or weight.ndim < 3 or weight.dtype.kind != "f" or (has_bias and bias is None):
            continue
        channels = weight.shape[1 if transposed else 0]
        if any(v is None or v.shape != (channels,) for v in operands):
            continue
        scale, beta, mean, var = (np.asarray(v, dtype=np.float64) for v in operands)
        if bias is not None and bias.shape != (channels,):
            continue
        s = scale / np.sqrt(var + float(attr(bn, "epsilon", 1e-5)))
        along = (1, -1) if transposed else (-1,)
        factor = s.reshape(*along, *[1] * (weight.ndim - len(along)))
        new_weight = (weight.astype(np.float64) * factor).astype(weight.dtype)
        old_bias = bias.astype(np.float64) if bias is not None else 0.0
        new_bias = ((old_bias - mean) * s + beta).astype(weight.dtype)
        w_name = add_constant(ctx, scope, f"{conv.input[1]}_bn", new_weight, names)
        b_name = add_constant(ctx, scope, f"{conv.output[0]}_bias", new_bias, names)
        ctx.set_node_inputs(conv, [conv.input[0], w_name, b_name])
        take_over_output(ctx, scope, conv, bn, names)
        fused += 1
    return fused
