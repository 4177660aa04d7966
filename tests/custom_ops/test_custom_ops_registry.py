"""The declaration API (one op declared in a test) and the clear errors."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from onnxscript import opset18 as op
from onnxscript import script

import custom_ops
from custom_ops import CustomOpError


@script(default_opset=op)
def scaled_add_body(x, y, alpha: float):
    return op.Add(x, op.Mul(op.CastLike(alpha, y), y))


def scaled_add_fake(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.empty_like(x)


def scaled_add(x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    return x + alpha * y


@pytest.fixture(scope="module")
def declared() -> custom_ops.CustomOp:
    return custom_ops.register("cotest::scaled_add", fake=scaled_add_fake, body=scaled_add_body)(scaled_add)


class AddHalf(torch.nn.Module):
    def __init__(self, op: custom_ops.CustomOp) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.op(x, y, 0.5) * 2


def export_quietly(*args, **kwargs) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return custom_ops.export(*args, **kwargs)


def test_one_declaration_yields_every_piece(declared):
    assert declared is custom_ops.get("cotest::scaled_add")
    assert declared.torch_op is torch.ops.cotest.scaled_add.default
    x, y = torch.rand(2, 3), torch.rand(2, 3)
    assert torch.equal(declared(x, y, 0.5), x + 0.5 * y)
    assert onnx.defs.get_schema("scaled_add", 1, "cotest").attributes["alpha"].type == onnx.defs.OpSchema.AttrType.FLOAT
    assert (declared.function_proto.domain, declared.function_proto.name) == ("cotest", "scaled_add")
    assert list(declared.function_proto.attribute) == ["alpha"]
    assert callable(declared.translation) and callable(declared.symbolic)
    assert declared.reference_kernel.op_domain == "cotest"
    assert "x" in inspect.signature(declared.translation).parameters


@pytest.mark.parametrize("lowering", ["standard", "function"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_declared_op_exports_and_runs(declared, dynamo, lowering, tmp_path):
    x, y = torch.rand(2, 3), torch.rand(2, 3)
    path = tmp_path / "add.onnx"
    proto = export_quietly(
        AddHalf(declared),
        (x, y),
        path,
        dynamo=dynamo,
        lowering=lowering,
        input_names=["x", "y"],
        dynamic_axes={"x": [0, 1], "y": [0, 1]},
    )
    assert ("scaled_add" in [n.op_type for n in proto.graph.node]) == (lowering == "function")
    assert all(d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim)
    x2, y2 = torch.rand(4, 5), torch.rand(4, 5)
    (output,) = ort.InferenceSession(str(path)).run(None, {"x": x2.numpy(), "y": y2.numpy()})
    np.testing.assert_allclose(output, (x2 + 0.5 * y2).numpy() * 2, rtol=1e-6)
    (reference,) = ReferenceEvaluator(proto).run(None, {"x": x2.numpy(), "y": y2.numpy()})
    np.testing.assert_allclose(reference, output, rtol=1e-6)


def test_export_without_f_returns_the_checked_model(declared):
    proto = export_quietly(AddHalf(declared), (torch.rand(2), torch.rand(2)), lowering="function")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.functions[0].name == "scaled_add"


@script(default_opset=op)
def min_max_body(x, keep: bool):
    return op.ReduceMin(x, [-1], keepdims=keep), op.ReduceMax(x, [-1], keepdims=keep)


def min_max_fake(x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (*x.shape[:-1], 1) if keep else x.shape[:-1]
    return x.new_empty(shape), x.new_empty(shape)


def min_max(x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return x.amin(-1, keepdim=keep), x.amax(-1, keepdim=keep)


@pytest.fixture(scope="module")
def min_max_op() -> custom_ops.CustomOp:
    return custom_ops.register("cotest::min_max", fake=min_max_fake, body=min_max_body)(min_max)


@pytest.mark.parametrize("lowering", ["standard", "function"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_op_with_two_outputs_and_a_bool_attribute(min_max_op, dynamo, lowering):
    class Spread(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            low, high = min_max_op(x, True)
            return high - low, min_max_op(x, False)[0]

    proto = export_quietly(Spread(), (torch.rand(3, 4),), dynamo=dynamo, lowering=lowering, input_names=["x"])
    x = torch.rand(3, 4)
    spread, low = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(spread, (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)).numpy())
    np.testing.assert_allclose(low, x.amin(-1).numpy())


@script(default_opset=op)
def weighted_transpose_body(x, perm: list[int], weights: list[float]):
    return op.Mul(op.Transpose(x, perm=perm), op.CastLike(op.Constant(value_floats=weights), x))


def weighted_transpose_fake(x: torch.Tensor, perm: list[int], weights: list[float]) -> torch.Tensor:
    return x.permute(perm).contiguous()


def weighted_transpose(x: torch.Tensor, perm: list[int], weights: list[float]) -> torch.Tensor:
    return x.permute(perm) * torch.tensor(weights, dtype=x.dtype)


@pytest.fixture(scope="module")
def weighted_transpose_op() -> custom_ops.CustomOp:
    return custom_ops.register(
        "cotest::weighted_transpose", fake=weighted_transpose_fake, body=weighted_transpose_body
    )(weighted_transpose)


@pytest.mark.parametrize("lowering", ["standard", "function"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_op_with_list_attributes(weighted_transpose_op, dynamo, lowering):
    declared = weighted_transpose_op

    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return declared(x, [1, 0], [1.0, 2.0, 3.0])

    x = torch.rand(3, 2)
    assert torch.equal(declared(x, [1, 0], [1.0, 2.0, 3.0]), x.T * torch.tensor([1.0, 2.0, 3.0]))
    proto = export_quietly(Model(), (x,), dynamo=dynamo, lowering=lowering, input_names=["x"])
    (output,) = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x.numpy()})
    np.testing.assert_allclose(output, (x.T * torch.tensor([1.0, 2.0, 3.0])).numpy())


# --- errors --------------------------------------------------------------------------------------


def test_unknown_op():
    with pytest.raises(CustomOpError, match=r"unknown custom op 'graphsurgeon::nope' \(registered: .*dynamic_resize"):
        custom_ops.get("graphsurgeon::nope")


@script(default_opset=op)
def renamed_body(x, z, alpha: float):
    return op.Add(x, z)


@script(default_opset=op)
def attribute_as_input_body(x, y, alpha):
    return op.Add(x, op.Mul(alpha, y))


@script(default_opset=op)
def two_outputs_body(x, y, alpha: float):
    return op.Add(x, y), op.Sub(x, y)


@pytest.mark.parametrize(
    "body, shown",
    [(renamed_body, "z: input"), (attribute_as_input_body, "alpha: input"), (two_outputs_body, "-> 2 output")],
    ids=["renamed", "attribute-as-input", "two-outputs"],
)
def test_body_signature_must_match_torch_op(body, shown):
    with pytest.raises(CustomOpError, match="does not match the torch implementation") as caught:
        custom_ops.register("cotest::mismatched", fake=scaled_add_fake, body=body)(scaled_add)
    assert "alpha: FLOAT" in str(caught.value) and shown in str(caught.value)
    assert "cotest::mismatched" not in [o.qualname for o in custom_ops.registered_ops()]
    assert not hasattr(torch.ops.cotest, "mismatched")  # nothing half-registered


def test_body_must_be_onnxscript():
    with pytest.raises(CustomOpError, match=r"@onnxscript.script\(\)"):
        custom_ops.register("cotest::plain", fake=scaled_add_fake, body=scaled_add)(scaled_add)


def test_parameters_need_type_hints():
    def untyped(x: torch.Tensor, y, alpha: float) -> torch.Tensor:
        return x

    with pytest.raises(CustomOpError, match="parameter 'y' .* needs a type hint"):
        custom_ops.register("cotest::untyped", fake=scaled_add_fake, body=scaled_add_body)(untyped)


@pytest.mark.parametrize("qualname", ["scaled_add", "co.test::scaled_add", "cotest::"])
def test_qualname_must_be_domain_and_name(qualname):
    with pytest.raises(CustomOpError, match="domain::name"):
        custom_ops.register(qualname, fake=scaled_add_fake, body=scaled_add_body)(scaled_add)


def test_duplicate_declaration(declared):
    with pytest.raises(CustomOpError, match="already registered"):
        custom_ops.register("cotest::scaled_add", fake=scaled_add_fake, body=scaled_add_body)(scaled_add)


def test_unknown_lowering(declared):
    with pytest.raises(CustomOpError, match="unknown lowering 'inline'; choose one of standard, function"):
        custom_ops.export(AddHalf(declared), (torch.rand(2), torch.rand(2)), lowering="inline")


def test_missing_torchscript_exporter(declared, monkeypatch):
    monkeypatch.delattr(torch.onnx, "register_custom_op_symbolic")
    with pytest.raises(CustomOpError, match="has no TorchScript exporter.*export with dynamo=True"):
        custom_ops.export(AddHalf(declared), (torch.rand(2), torch.rand(2)), dynamo=False)


def test_missing_dynamo_translation_table(declared, monkeypatch):
    def old_export(model, args, f=None, *, dynamo=True, input_names=None, output_names=None, opset_version=None):
        raise AssertionError("must not be reached")

    monkeypatch.setattr(torch.onnx, "export", old_export)
    with pytest.raises(CustomOpError, match="has no custom_translation_table"):
        custom_ops.export(AddHalf(declared), (torch.rand(2), torch.rand(2)), dynamo=True)


def test_missing_torch_library_custom_op(monkeypatch):
    monkeypatch.delattr(torch.library, "custom_op")
    with pytest.raises(CustomOpError, match="lacks torch.library.custom_op"):
        custom_ops.register("cotest::old_torch", fake=scaled_add_fake, body=scaled_add_body)(scaled_add)


def test_exporter_failure_is_a_custom_op_error():
    class Unsupported(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumprod(x, 0)  # plain torch: no exporter handles it

    with pytest.raises(CustomOpError, match=r"torch.onnx.export \(dynamo exporter\) failed"):
        export_quietly(Unsupported(), (torch.rand(3),), dynamo=True)


def test_function_lowering_needs_the_body_opset_for_changed_ops():
    class Resize(torch.nn.Module):
        def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
            return custom_ops.dynamic_resize(x, factor)

    args = (torch.rand(1, 1, 4, 4), torch.tensor([1.0, 1.0, 2.0, 2.0]))
    with pytest.raises(CustomOpError, match="written for ONNX opset 18 and uses Resize, which differ at opset 20"):
        export_quietly(Resize(), args, dynamo=False, lowering="function", opset_version=20)
    proto = export_quietly(Resize(), args, dynamo=False, lowering="standard", opset_version=20)
    feeds = {i.name: a.numpy() for i, a in zip(proto.graph.input, args, strict=True)}
    (output,) = ort.InferenceSession(proto.SerializeToString()).run(None, feeds)
    expected = torch.nn.functional.interpolate(args[0], scale_factor=2.0, mode="bicubic")
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5)


def test_op_argument_errors():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(CustomOpError, match="unknown mode 'area'"):
        custom_ops.dynamic_resize(x, torch.tensor([1.0, 1.0, 2.0, 2.0]), mode="area")
    with pytest.raises(CustomOpError, match="align_corners=True needs mode 'linear' or 'cubic'"):
        custom_ops.dynamic_resize(x, torch.tensor([1.0, 1.0, 2.0, 2.0]), mode="nearest", align_corners=True)
    with pytest.raises(CustomOpError, match="N and C factors must be 1"):
        custom_ops.dynamic_resize(x, torch.tensor([1.0, 2.0, 2.0, 2.0]))
    raw_op = custom_ops.get("graphsurgeon::dynamic_resize")
    with pytest.raises(CustomOpError, match="mode='nearest' with coordinate_transformation_mode='half_pixel'"):
        raw_op(x, torch.tensor([1.0, 1.0, 2.0, 2.0]), "nearest", "half_pixel")
    with pytest.raises(CustomOpError, match="floating point"):
        custom_ops.cumprod(torch.arange(4), 0)
