"""``dynamic_resize``: resize by factors held in a tensor, so the factor stays a graph input.

torch's ``F.interpolate`` takes Python numbers: the dynamo exporter fails on a tensor-valued scale
(``SymFloat``) and the TorchScript exporter freezes it into a constant. This op lowers to ONNX
``Resize`` with its ``scales`` input fed by the tensor, with attributes that match torch's maths.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from onnxscript import opset18 as op
from onnxscript import script

from .._errors import CustomOpError
from .._registry import register

ResizeMode = Literal["cubic", "linear", "nearest"]
_TORCH_MODES = {"cubic": "bicubic", "linear": "bilinear", "nearest": "nearest"}
# (mode, coordinate_transformation_mode) pairs that torch's interpolate computes.
_TORCH_EXPRESSIBLE = {
    ("cubic", "half_pixel"),
    ("cubic", "align_corners"),
    ("linear", "half_pixel"),
    ("linear", "align_corners"),
    ("nearest", "asymmetric"),
}


@script(default_opset=op)
def _body(x, scales, mode: str, coordinate_transformation_mode: str):
    return op.Resize(
        x,
        None,
        scales,
        mode=mode,
        coordinate_transformation_mode=coordinate_transformation_mode,
        cubic_coeff_a=-0.75,  # torch's bicubic kernel
        nearest_mode="floor",  # torch's "nearest"
    )


def _fake(x: torch.Tensor, scales: torch.Tensor, mode: str, coordinate_transformation_mode: str) -> torch.Tensor:
    ctx = torch.library.get_ctx()
    return x.new_empty((x.shape[0], x.shape[1], ctx.new_dynamic_size(), ctx.new_dynamic_size()))


@register("graphsurgeon::dynamic_resize", fake=_fake, body=_body)
def _dynamic_resize(
    x: torch.Tensor, scales: torch.Tensor, mode: str, coordinate_transformation_mode: str
) -> torch.Tensor:
    """ONNX Resize of an NCHW tensor by ``scales`` (N, C, H, W), computed with torch's interpolate."""
    if (mode, coordinate_transformation_mode) not in _TORCH_EXPRESSIBLE:
        raise CustomOpError(
            f"dynamic_resize: torch has no resize for mode={mode!r} with "
            f"coordinate_transformation_mode={coordinate_transformation_mode!r}"
        )
    if x.dim() != 4 or scales.shape != (4,):
        raise CustomOpError(
            f"dynamic_resize needs a 4-D x and 4 scales, got x {tuple(x.shape)}, scales {tuple(scales.shape)}"
        )
    n, c, h, w = scales.tolist()
    if n != 1 or c != 1:
        raise CustomOpError(f"dynamic_resize resizes H and W only: the N and C factors must be 1, got {n} and {c}")
    align_corners = None if mode == "nearest" else coordinate_transformation_mode == "align_corners"
    return F.interpolate(x, scale_factor=(h, w), mode=_TORCH_MODES[mode], align_corners=align_corners)


def dynamic_resize(
    x: torch.Tensor, scales: torch.Tensor, mode: ResizeMode = "cubic", align_corners: bool = False
) -> torch.Tensor:
    """Resize NCHW ``x`` by ``scales``, a float tensor of 4 factors (N, C, H, W) as in ONNX Resize.

    Eager results equal ``F.interpolate(x, scale_factor=(h, w), mode=...)`` with ``mode`` cubic
    (torch's "bicubic"), linear ("bilinear") or nearest, and ``align_corners`` as in torch (not with
    nearest). The output is ``floor(size * factor)``. N and C factors must be 1.
    """
    if mode not in _TORCH_MODES:
        raise CustomOpError(f"dynamic_resize: unknown mode {mode!r}; choose cubic, linear or nearest")
    if mode == "nearest":
        if align_corners:
            raise CustomOpError("dynamic_resize: align_corners=True needs mode 'linear' or 'cubic' (as in torch)")
        transform = "asymmetric"
    else:
        transform = "align_corners" if align_corners else "half_pixel"
    return _dynamic_resize(x, scales, mode, transform)
