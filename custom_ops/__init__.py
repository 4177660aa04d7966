"""custom_ops: define a custom op once, export it from torch to ONNX with either exporter.

One declaration (torch eager implementation, fake function, onnxscript body) gives the
``torch.library`` op, the TorchScript symbolic, the dynamo translation, the ONNX schema, the
FunctionProto and a reference-evaluator kernel. :func:`export` lowers the ops ``standard`` (the
body's standard ONNX ops, inline) or ``function`` (a custom-domain node plus its FunctionProto).
"""

from ._errors import CustomOpError
from ._export import Lowering, export
from ._reference import reference_kernels
from ._registry import CustomOp, get, register, registered_ops
from .ops import cumprod, dynamic_resize, searchsorted

__all__ = [
    "CustomOp",
    "CustomOpError",
    "Lowering",
    "cumprod",
    "dynamic_resize",
    "export",
    "get",
    "reference_kernels",
    "register",
    "registered_ops",
    "searchsorted",
]
