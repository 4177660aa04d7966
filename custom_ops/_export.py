"""``custom_ops.export``: torch.onnx.export with the registered custom ops applied, for either exporter."""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, get_args

import onnx
import onnx.checker
import onnx.defs
import onnx.inliner
import onnx.shape_inference
import torch

from ._errors import CustomOpError
from ._registry import CUSTOM_DOMAIN_VERSION, CustomOp, find, registered_ops

Lowering = Literal["standard", "function"]
"""``standard``: the body's standard ONNX ops, inline. ``function``: a custom-domain node plus its FunctionProto."""

DEFAULT_OPSET = 18
"""The standard opset exported when none is asked for and no op body needs another one."""
MAX_IR_VERSION = 10
"""The newest ONNX IR version every onnxruntime >= 1.20 loads."""

DynamicAxes = Mapping[str, Mapping[int, str] | Sequence[int]]


def export(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    f: str | os.PathLike[str] | None = None,
    *,
    dynamo: bool = True,
    lowering: Lowering = "standard",
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: DynamicAxes | None = None,
    opset_version: int | None = None,
    **kwargs: Any,
) -> onnx.ModelProto:
    """Export ``model`` with ``torch.onnx.export``, lowering every registered custom op as asked.

    Works for both exporters (``dynamo=True``: the translation table; ``dynamo=False``: the
    TorchScript symbolics and custom opsets). ``dynamic_axes`` is accepted by both; for dynamo it is
    translated to ``dynamic_shapes``. The result has an IR version onnxruntime loads, passes onnx's
    full checker, is saved to ``f`` when given (weights inline, external data only past 2 GB) and
    returned. Other keyword arguments go to ``torch.onnx.export`` unchanged.
    """
    if lowering not in get_args(Lowering):
        raise CustomOpError(f"unknown lowering {lowering!r}; choose one of {', '.join(get_args(Lowering))}")
    ops = registered_ops()
    if opset_version is None:
        opset_version = max([DEFAULT_OPSET, *(op.body_opset for op in ops)])
    common = dict(input_names=input_names, output_names=output_names, opset_version=opset_version, **kwargs)
    if dynamo:
        proto = _export_dynamo(model, args, ops, dynamic_axes, **common)
    else:
        proto = _export_torchscript(model, args, ops, dynamic_axes, **common)

    proto = _lower(proto, lowering)
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    try:
        if f is None:
            onnx.checker.check_model(proto, full_check=True)
        else:
            onnx.save_model(proto, f, save_as_external_data=proto.ByteSize() > onnx.checker.MAXIMUM_PROTOBUF)
            onnx.checker.check_model(os.fspath(f), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise CustomOpError(f"the exported model fails onnx's full checker: {e}") from e
    return proto


def _export_dynamo(
    model: torch.nn.Module, args: tuple[Any, ...], ops: list[CustomOp], dynamic_axes: DynamicAxes | None, **kwargs: Any
) -> onnx.ModelProto:
    if "custom_translation_table" not in inspect.signature(torch.onnx.export).parameters:
        raise CustomOpError(
            f"torch {torch.__version__}: torch.onnx.export has no custom_translation_table; "
            "the dynamo route needs torch>=2.6 (or export with dynamo=False)"
        )
    table = {op.torch_op: op.translation for op in ops} | kwargs.pop("custom_translation_table", {})
    if dynamic_axes and "dynamic_shapes" not in kwargs:
        kwargs["dynamic_shapes"] = _dynamic_shapes(model, args, kwargs.get("input_names"), dynamic_axes)
    kwargs.setdefault("verbose", False)
    program = _run_exporter("dynamo", model, args, None, dynamo=True, custom_translation_table=table, **kwargs)
    return program.model_proto


def _export_torchscript(
    model: torch.nn.Module, args: tuple[Any, ...], ops: list[CustomOp], dynamic_axes: DynamicAxes | None, **kwargs: Any
) -> onnx.ModelProto:
    if not hasattr(torch.onnx, "register_custom_op_symbolic"):
        raise CustomOpError(
            f"torch {torch.__version__} has no TorchScript exporter (torch.onnx.register_custom_op_symbolic); "
            "export with dynamo=True"
        )
    for op in ops:
        # Opset 1: the symbolic serves every standard opset. Re-registering replaces, so this is idempotent.
        torch.onnx.register_custom_op_symbolic(op.qualname, op.symbolic, 1)
    custom_opsets = {op.domain: CUSTOM_DOMAIN_VERSION for op in ops} | kwargs.pop("custom_opsets", {})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        _run_exporter(
            "TorchScript",
            model,
            args,
            path,
            dynamo=False,
            dynamic_axes=dynamic_axes,
            custom_opsets=custom_opsets,
            **kwargs,
        )
        return onnx.load(path)


def _run_exporter(label: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return torch.onnx.export(*args, **kwargs)
    except CustomOpError:
        raise
    except Exception as e:
        message = str(e).strip()
        message = message if len(message) < 3000 else message[:3000] + " [...]"
        raise CustomOpError(f"torch.onnx.export ({label} exporter) failed: {type(e).__name__}: {message}") from e


def _dynamic_shapes(
    model: torch.nn.Module, args: tuple[Any, ...], input_names: Sequence[str] | None, dynamic_axes: DynamicAxes
) -> tuple[Any, ...]:
    """``dynamic_axes`` (by input name) as torch.export ``dynamic_shapes`` (by position, named dims)."""
    names = list(input_names or inspect.signature(model.forward).parameters)[: len(args)]
    shapes = []
    for name in names:
        axes = dynamic_axes.get(name)
        if axes is not None and not isinstance(axes, Mapping):
            axes = {axis: f"{name}_dim_{axis}" for axis in axes}
        shapes.append(dict(axes) if axes else None)
    return tuple(shapes) + (None,) * (len(args) - len(names))


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _nodes(sub)


def _lower(model: onnx.ModelProto, lowering: Lowering) -> onnx.ModelProto:
    """Attach the FunctionProto of every custom op the graph uses; inline them for ``standard``."""
    used = {op.qualname: op for n in _nodes(model.graph) if (op := find(n.domain, n.op_type))}
    if not used:
        return model
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    attached = {(fn.domain, fn.name) for fn in model.functions}
    for op in used.values():
        if (op.domain, op.name) not in attached:
            model.functions.append(op.function_proto if lowering == "standard" else _function_at(op, opset))
    imported = {o.domain for o in model.opset_import}
    for domain in sorted({op.domain for op in used.values()} - imported):
        model.opset_import.append(onnx.helper.make_opsetid(domain, CUSTOM_DOMAIN_VERSION))

    if lowering == "standard":
        model = onnx.inliner.inline_local_functions(model, convert_version=True)
        remaining = {n.domain for n in _nodes(model.graph)} | {fn.domain for fn in model.functions}
        kept = [o for o in model.opset_import if o.domain in remaining or o.domain in ("", "ai.onnx")]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return model


def _function_at(op: CustomOp, opset: int) -> onnx.FunctionProto:
    """``op``'s FunctionProto importing the model's standard opset, if its ops mean the same there."""
    proto = copy.deepcopy(op.function_proto)
    if op.body_opset == opset:
        return proto

    def since(op_type: str, version: int) -> int:
        return onnx.defs.get_schema(op_type, version, "").since_version

    changed = sorted({n.op_type for n in proto.node if since(n.op_type, op.body_opset) != since(n.op_type, opset)})
    if changed:
        raise CustomOpError(
            f"{op.qualname}: its body is written for ONNX opset {op.body_opset} and uses {', '.join(changed)}, "
            f"which differ at opset {opset}; export with opset_version={op.body_opset} or lowering='standard'"
        )
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    return proto
