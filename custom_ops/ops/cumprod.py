"""``cumprod``: cumulative product along a dim.

Neither exporter handles ``torch.cumprod`` (measured with torch 2.13: TorchScript "operator
'aten::cumprod' ... is not supported", dynamo "No ONNX function found for prims.prod"), and ONNX has
CumSum but no CumProd. Deployment needs it for volume-rendering transmittance (NeRF), diffusion
noise schedules computed in the graph, and survival / chained probabilities.
"""

from __future__ import annotations

import torch
from onnxscript import INT64, script
from onnxscript import opset18 as op

from .._errors import CustomOpError
from .._registry import register


@script(default_opset=op)
def _body(x, dim: int):
    # prod = sign * exp(cumsum(log|x|)), zero from the first zero on: linear in the length of dim.
    axis = op.Constant(value_int=dim)
    zero = op.CastLike(0.0, x)
    is_zero = op.Equal(x, zero)
    magnitude = op.Exp(op.CumSum(op.Log(op.Where(is_zero, op.CastLike(1.0, x), op.Abs(x))), axis))
    negatives = op.CumSum(op.Cast(op.Less(x, zero), to=INT64.dtype), axis)
    sign = op.Sub(op.CastLike(1.0, x), op.CastLike(op.Mul(op.Mod(negatives, 2), 2), x))
    zeros_so_far = op.CumSum(op.Cast(is_zero, to=INT64.dtype), axis)
    return op.Where(op.Greater(zeros_so_far, 0), zero, op.Mul(sign, magnitude))


def _fake(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.empty_like(x)


@register("graphsurgeon::cumprod", fake=_fake, body=_body)
def _cumprod(x: torch.Tensor, dim: int) -> torch.Tensor:
    """torch.cumprod(x, dim) for floating-point x."""
    return torch.cumprod(x, dim)


def cumprod(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Cumulative product of floating-point ``x`` along ``dim``, as ``torch.cumprod(x, dim)``.

    The ONNX body computes it in log space (exact sign and zeros; relative error grows like the
    length of ``dim`` times the float epsilon), so integer inputs are refused.
    """
    if not x.is_floating_point():
        raise CustomOpError(f"cumprod: x must be floating point, got {x.dtype}")
    return _cumprod(x, dim)
