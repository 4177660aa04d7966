"""``searchsorted``: insertion indices of values in a sorted sequence.

Neither exporter handles ``torch.searchsorted`` (measured with torch 2.13: TorchScript "operator
'aten::searchsorted' ... is not supported", dynamo "No ONNX function found for aten.searchsorted").
It is the core of inverse-CDF sampling (e.g. NeRF hierarchical sampling), bucketing by boundaries
that arrive at run time, and piecewise-linear calibration tables.
"""

from __future__ import annotations

import torch
from onnxscript import BOOL, INT64, script
from onnxscript import opset18 as op

from .._registry import register


@script(default_opset=op)
def _body(sorted_sequence, values, right: bool):
    # Count, for each value, the sequence entries below it (or not above it, when right).
    sequence = op.Unsqueeze(sorted_sequence, [-2])  # (..., 1, M)
    value = op.Unsqueeze(values, [-1])  # (..., K, 1)
    ties_count = op.Cast(op.Constant(value_int=right), to=BOOL.dtype)
    below = op.Or(op.Less(sequence, value), op.And(ties_count, op.Equal(sequence, value)))
    return op.ReduceSum(op.Cast(below, to=INT64.dtype), [-1], keepdims=0)


def _fake(sorted_sequence: torch.Tensor, values: torch.Tensor, right: bool) -> torch.Tensor:
    return values.new_empty(values.shape, dtype=torch.int64)


@register("graphsurgeon::searchsorted", fake=_fake, body=_body)
def _searchsorted(sorted_sequence: torch.Tensor, values: torch.Tensor, right: bool) -> torch.Tensor:
    """torch.searchsorted(sorted_sequence, values, right=right), int64 indices."""
    return torch.searchsorted(sorted_sequence, values, right=right)


def searchsorted(sorted_sequence: torch.Tensor, values: torch.Tensor, *, right: bool = False) -> torch.Tensor:
    """Indices where ``values`` would be inserted into ``sorted_sequence`` (its last dim) to keep it sorted.

    Same as ``torch.searchsorted(sorted_sequence, values, right=right)``: ``sorted_sequence`` is 1-D,
    or has the leading dims of ``values``. The ONNX body compares every value with every boundary:
    memory grows with len(values) x len(sorted_sequence) (fine for tables of up to a few thousand).
    """
    return _searchsorted(sorted_sequence, values, right)
