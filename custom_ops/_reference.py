"""Kernels for onnx's ReferenceEvaluator, derived from each op's FunctionProto."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

if TYPE_CHECKING:
    from ._registry import CustomOp


def make_kernel(op: CustomOp) -> type[OpRun]:
    """An OpRun subclass that runs ``op``'s FunctionProto with the reference evaluator."""
    evaluator = ReferenceEvaluator(op.function_proto)

    def _run(self: OpRun, *inputs: Any, **attributes: Any) -> tuple[Any, ...]:
        feeds = dict(zip(evaluator.input_names, inputs, strict=True))
        return tuple(evaluator.run(None, feeds, attributes=attributes))

    namespace = {"op_domain": op.domain, "_run": _run, "__doc__": f"Reference kernel of {op.qualname}."}
    return type(op.name, (OpRun,), namespace)


def reference_kernels() -> list[type[OpRun]]:
    """Kernels of every registered op, for ``ReferenceEvaluator(model, new_ops=reference_kernels())``."""
    from ._registry import registered_ops

    return [op.reference_kernel for op in registered_ops()]
