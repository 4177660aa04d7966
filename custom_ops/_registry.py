"""Declare a custom op once; derive every exporter and runtime piece from that declaration.

A declaration is a qualified name ``domain::name``, a torch eager implementation (its type hints are
the torch schema), a fake (shape) function, and an ONNX body written with onnxscript. From it come:
the ``torch.library`` custom op, the ONNX schema (registered with ``onnx.defs``), the FunctionProto,
the dynamo translation, the TorchScript symbolic and a reference-evaluator kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

import onnx
import onnx.defs
import onnx.shape_inference
import onnxscript
import torch
from onnx.defs import OpSchema
from onnxscript import ir

from ._errors import CustomOpError

CUSTOM_DOMAIN_VERSION = 1
"""The opset version every custom domain is declared with."""

# Python type hint of an attribute -> (ONNX attribute type, torch.onnx.symbolic_helper.parse_args descriptor).
_ATTRIBUTE_KINDS: dict[Any, tuple[ir.AttributeType, str]] = {
    bool: (ir.AttributeType.INT, "b"),
    int: (ir.AttributeType.INT, "i"),
    float: (ir.AttributeType.FLOAT, "f"),
    str: (ir.AttributeType.STRING, "s"),
    list[int]: (ir.AttributeType.INTS, "is"),
    list[float]: (ir.AttributeType.FLOATS, "fs"),
}
# The g.op() keyword suffix per ONNX attribute type.
_GOP_SUFFIX = {
    ir.AttributeType.INT: "i",
    ir.AttributeType.FLOAT: "f",
    ir.AttributeType.STRING: "s",
    ir.AttributeType.INTS: "i",
    ir.AttributeType.FLOATS: "f",
}
_SCHEMA_ATTR_TYPE = {
    ir.AttributeType.INT: OpSchema.AttrType.INT,
    ir.AttributeType.FLOAT: OpSchema.AttrType.FLOAT,
    ir.AttributeType.STRING: OpSchema.AttrType.STRING,
    ir.AttributeType.INTS: OpSchema.AttrType.INTS,
    ir.AttributeType.FLOATS: OpSchema.AttrType.FLOATS,
}
_TENSOR_TYPES = [
    f"tensor({t})"
    for t in "float double float16 bfloat16 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool string".split()
]


@dataclasses.dataclass(frozen=True)
class _Param:
    """One parameter of an op, as both torch and ONNX see it."""

    name: str
    is_input: bool  # a tensor input; otherwise an attribute
    py_type: Any = None  # the attribute's Python type (None for inputs)

    @property
    def attr_type(self) -> ir.AttributeType:
        return _ATTRIBUTE_KINDS[self.py_type][0]

    @property
    def parse_descriptor(self) -> str:
        return "v" if self.is_input else _ATTRIBUTE_KINDS[self.py_type][1]


@dataclasses.dataclass(frozen=True, eq=False)
class CustomOp:
    """A registered custom op. Create with :func:`register`; call it like the torch op."""

    qualname: str
    impl: Callable[..., Any]
    fake: Callable[..., Any]
    body: onnxscript.OnnxFunction
    params: tuple[_Param, ...]
    num_outputs: int

    @property
    def domain(self) -> str:
        return self.qualname.split("::")[0]

    @property
    def name(self) -> str:
        return self.qualname.split("::")[1]

    @property
    def inputs(self) -> list[_Param]:
        return [p for p in self.params if p.is_input]

    @property
    def attributes(self) -> list[_Param]:
        return [p for p in self.params if not p.is_input]

    @property
    def torch_op(self) -> torch._ops.OpOverload:
        """The ``torch.ops.<domain>.<name>.default`` overload."""
        return getattr(getattr(torch.ops, self.domain), self.name).default

    @property
    def body_opset(self) -> int:
        """The version of the standard ONNX opset the body is written against."""
        return next(o.version for o in self.function_proto.opset_import if o.domain in ("", "ai.onnx"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.torch_op(*args, **kwargs)

    @functools.cached_property
    def function_proto(self) -> onnx.FunctionProto:
        """The body as a FunctionProto named ``name`` in ``domain``."""
        proto = self.body.to_function_proto()
        proto.domain, proto.name = self.domain, self.name
        return proto

    @functools.cached_property
    def schema(self) -> OpSchema:
        """The ONNX schema of the custom-domain node, with type inference through the body."""
        schema = OpSchema(
            self.name,
            self.domain,
            CUSTOM_DOMAIN_VERSION,
            doc=(self.impl.__doc__ or "").strip(),
            inputs=[OpSchema.FormalParameter(p.name, f"T_{p.name}") for p in self.inputs],
            outputs=[OpSchema.FormalParameter(f"output_{i}", f"T_output_{i}") for i in range(self.num_outputs)],
            type_constraints=[(f"T_{p.name}", _TENSOR_TYPES, "") for p in self.inputs]
            + [(f"T_output_{i}", _TENSOR_TYPES, "") for i in range(self.num_outputs)],
            attributes=[OpSchema.Attribute(p.name, _SCHEMA_ATTR_TYPE[p.attr_type], "") for p in self.attributes],
        )
        schema.set_type_and_shape_inference_function(self._infer_types)
        return schema

    def _infer_types(self, ctx: onnx.shape_inference.InferenceContext) -> None:
        input_types = [ctx.get_input_type(i) for i in range(ctx.get_num_inputs())]
        attributes = [a for a in (ctx.get_attribute(p.name) for p in self.attributes) if a is not None]
        outputs = onnx.shape_inference.infer_function_output_types(self.function_proto, input_types, attributes)
        for i, output_type in enumerate(outputs):
            ctx.set_output_type(i, output_type)

    @functools.cached_property
    def translation(self) -> Callable[..., Any]:
        """The dynamo exporter's translation: emits the custom-domain node (onnxscript tracing)."""
        onnx_op = onnxscript.values.Op(
            onnxscript.values.Opset(self.domain, CUSTOM_DOMAIN_VERSION), self.name, self.schema
        )
        signature = inspect.signature(self.impl)

        def translation(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            attributes = {p.name: _onnx_attribute_value(p, values[p.name]) for p in self.attributes}
            return onnx_op(*(values[p.name] for p in self.inputs), **attributes)

        # The exporter reads the ONNX signature from the annotations: attributes typed, inputs untyped.
        translation.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[q.replace(annotation=inspect.Parameter.empty) for q in signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
        output = onnxscript.onnx_types.TensorType
        translation.__annotations__ = {p.name: p.py_type for p in self.attributes} | {
            "return": output if self.num_outputs == 1 else tuple[(output,) * self.num_outputs]
        }
        translation.__name__ = self.name
        return translation

    @functools.cached_property
    def symbolic(self) -> Callable[..., Any]:
        """The TorchScript exporter's symbolic: emits the custom-domain node."""
        from torch.onnx import symbolic_helper

        descriptors = [p.parse_descriptor for p in self.params]

        def symbolic(g: Any, *args: Any) -> Any:
            inputs = [a for a, p in zip(args, self.params, strict=True) if p.is_input]
            attributes = {
                f"{p.name}_{_GOP_SUFFIX[p.attr_type]}": _onnx_attribute_value(p, a)
                for a, p in zip(args, self.params, strict=True)
                if not p.is_input
            }
            return g.op(f"{self.domain}::{self.name}", *inputs, outputs=self.num_outputs, **attributes)

        # parse_args reads the parameter names from the signature: spell them out.
        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        symbolic.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, positional) for name in ("g", *(p.name for p in self.params))]
        )
        return symbolic_helper.parse_args(*descriptors)(symbolic)

    @functools.cached_property
    def reference_kernel(self) -> type:
        """An ``onnx.reference.op_run.OpRun`` subclass for ``ReferenceEvaluator(new_ops=[...])``.

        It runs the FunctionProto with onnx's ReferenceEvaluator, for models that carry the
        custom-domain node without the function.
        """
        from ._reference import make_kernel

        return make_kernel(self)


def _onnx_attribute_value(param: _Param, value: Any) -> Any:
    return int(value) if param.py_type is bool else value


_REGISTRY: dict[str, CustomOp] = {}


def registered_ops() -> list[CustomOp]:
    """Every op declared so far, in declaration order."""
    return list(_REGISTRY.values())


def get(qualname: str) -> CustomOp:
    """The op declared as ``domain::name``."""
    try:
        return _REGISTRY[qualname]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise CustomOpError(f"unknown custom op {qualname!r} (registered: {known})") from None


def find(domain: str, name: str) -> CustomOp | None:
    """The op that an ONNX node of ``domain``/``name`` stands for, if any."""
    return _REGISTRY.get(f"{domain}::{name}")


def register(
    qualname: str, *, fake: Callable[..., Any], body: onnxscript.OnnxFunction
) -> Callable[[Callable[..., Any]], CustomOp]:
    """Declare a custom op: decorate its torch eager implementation.

    ``qualname`` is ``domain::name``, both identifiers: the torch namespace and the ONNX domain.
    The implementation's type hints are the op's signature: ``torch.Tensor`` parameters become ONNX
    inputs, ``bool``/``int``/``float``/``str``/``list[int]``/``list[float]`` become ONNX attributes. ``fake``
    computes output metadata (see ``torch.library.register_fake``; use
    ``torch.library.get_ctx().new_dynamic_size()`` for data-dependent sizes). ``body`` is an
    ``@onnxscript.script()`` function over standard ONNX ops with the same parameters, in order.
    """

    def decorate(impl: Callable[..., Any]) -> CustomOp:
        return _register(qualname, impl, fake, body)

    return decorate


def _register(
    qualname: str, impl: Callable[..., Any], fake: Callable[..., Any], body: onnxscript.OnnxFunction
) -> CustomOp:
    domain, _, name = qualname.partition("::")
    if not (domain.isidentifier() and name.isidentifier()):
        raise CustomOpError(f"custom op name must be 'domain::name' (two identifiers), got {qualname!r}")
    if qualname in _REGISTRY:
        raise CustomOpError(f"custom op {qualname!r} is already registered")
    if not isinstance(body, onnxscript.OnnxFunction):
        raise CustomOpError(
            f"{qualname}: body must be an onnxscript function (decorate it with @onnxscript.script()), "
            f"got {type(body).__name__}"
        )
    for feature in ("custom_op", "register_fake", "get_ctx"):
        if not hasattr(torch.library, feature):
            raise CustomOpError(f"torch {torch.__version__} lacks torch.library.{feature}; custom_ops needs torch>=2.6")

    params, num_outputs = _check_signatures(qualname, impl, body)
    op = CustomOp(qualname, impl, fake, body, params, num_outputs)
    foreign = sorted({n.domain for n in op.function_proto.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise CustomOpError(f"{qualname}: the body must use standard ONNX ops only, it uses domains {foreign}")

    try:
        torch_op = torch.library.custom_op(qualname, impl, mutates_args=())
    except Exception as e:  # torch reports name clashes and unsupported annotations here
        raise CustomOpError(f"{qualname}: torch.library.custom_op refused the declaration: {e}") from e
    torch_op.register_fake(fake)
    onnx.defs.register_schema(op.schema)
    _REGISTRY[qualname] = op
    return op


def _check_signatures(
    qualname: str, impl: Callable[..., Any], body: onnxscript.OnnxFunction
) -> tuple[tuple[_Param, ...], int]:
    """The op's parameters, after checking that the torch impl and the ONNX body agree."""
    hints = typing.get_type_hints(impl)
    torch_params: list[_Param] = []
    for p in inspect.signature(impl).parameters.values():
        hint = hints.get(p.name)
        if hint is torch.Tensor:
            torch_params.append(_Param(p.name, True))
        elif hint in _ATTRIBUTE_KINDS:
            torch_params.append(_Param(p.name, False, hint))
        else:
            raise CustomOpError(
                f"{qualname}: parameter {p.name!r} of the torch implementation needs a type hint: "
                f"torch.Tensor or one of bool, int, float, str, list[int], list[float]"
            )
    returns = hints.get("return")
    if returns is torch.Tensor:
        num_outputs = 1
    elif typing.get_origin(returns) is tuple and all(a is torch.Tensor for a in typing.get_args(returns)):
        num_outputs = len(typing.get_args(returns))
    else:
        raise CustomOpError(
            f"{qualname}: the torch implementation must return torch.Tensor or tuple[torch.Tensor, ...]"
        )

    def describe(params: Sequence[tuple[str, Any]]) -> str:
        return "(" + ", ".join(f"{n}: {'input' if k is None else k.name}" for n, k in params) + ")"

    torch_view = [(p.name, None if p.is_input else p.attr_type) for p in torch_params]
    body_view = [
        (p.name, p.type if isinstance(p, ir.schemas.AttributeParameter) else None) for p in body.op_signature.params
    ]
    body_outputs = len(body.to_function_proto().output)
    if torch_view != body_view or body_outputs != num_outputs:
        raise CustomOpError(
            f"{qualname}: the ONNX body's signature does not match the torch implementation:\n"
            f"  torch: {describe(torch_view)} -> {num_outputs} output(s)\n"
            f"  body:  {describe(body_view)} -> {body_outputs} output(s)\n"
            "Tensors must be body inputs and other parameters body attributes, with the same names in the same order."
        )
    return tuple(torch_params), num_outputs
