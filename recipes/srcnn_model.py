"""The super-resolution net the recipes patch: SRCNN (Dong et al., 2014).

A bicubic upsample by a fixed factor, then three convolutions (9x9 -> 64, 1x1 -> 32, 5x5 -> channels).
Weights are random (seeded): the recipes are about export and graph surgery, not image quality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRCNNBody(nn.Module):
    """The three convolutions that follow the upsample."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=9, padding=4)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=1)
        self.conv3 = nn.Conv2d(32, channels, kernel_size=5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)


class SRCNN(nn.Module):
    """SRCNN with the upscale factor baked in, as users write it (and as exporters then freeze it)."""

    def __init__(self, upscale: float = 3, channels: int = 1) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=upscale, mode="bicubic", align_corners=False)
        self.body = SRCNNBody(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(x))


def make_srcnn(upscale: float = 3, channels: int = 1, seed: int = 0) -> SRCNN:
    """A seeded, eval-mode SRCNN."""
    torch.manual_seed(seed)
    return SRCNN(upscale, channels).eval()


@torch.no_grad()
def reference_upscale(model: SRCNN | SRCNNBody, x: torch.Tensor, factor: float) -> torch.Tensor:
    """What the network computes at an arbitrary factor: torch's bicubic upsample, then the convs."""
    body = model.body if isinstance(model, SRCNN) else model
    up = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    return body(up)
