"""Must-show: SRCNN with forward(x, factor) exports along all routes and matches torch eager."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from custom_ops_routes import ROUTE_IDS, ROUTES
from onnx.reference import ReferenceEvaluator

import custom_ops
from recipes.srcnn_model import SRCNNBody

FACTORS = [2, 3, 4, 2.5]
SIZES = [(32, 32), (24, 20)]
TOLERANCE = 1e-4


class DynamicSRCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = SRCNNBody()

    def forward(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        return self.body(custom_ops.dynamic_resize(x, factor, mode="cubic"))


@pytest.fixture(scope="module")
def model() -> DynamicSRCNN:
    return DynamicSRCNN().eval()


@pytest.fixture(scope="module")
def exported(model, export_routes):
    args = (torch.randn(1, 1, 32, 32), torch.tensor([1.0, 1.0, 3.0, 3.0]))
    return export_routes(
        "srcnn",
        model,
        args,
        input_names=["input", "factor"],
        output_names=["output"],
        dynamic_axes={"input": {2: "height", 3: "width"}},
    )


def case(model: DynamicSRCNN, size: tuple[int, int], factor: float):
    generator = torch.Generator().manual_seed(int(factor * 10) + size[1])
    x = torch.rand(1, 1, *size, generator=generator)
    with torch.no_grad():
        expected = model.body(F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False))
    feeds = {"input": x.numpy(), "factor": np.array([1, 1, factor, factor], dtype=np.float32)}
    return feeds, expected.numpy()


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_graph_inputs_are_input_and_factor_with_symbolic_height_width(exported, route):
    graph = exported[route].proto.graph
    assert [i.name for i in graph.input] == ["input", "factor"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["height", "width"]
    assert all(not d.HasField("dim_value") for d in dims[2:])


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_lowering_shape(exported, route):
    proto = exported[route].proto
    op_types = [n.op_type for n in proto.graph.node]
    if route[1] == "standard":
        assert "Resize" in op_types and not proto.functions
        assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}
    else:
        assert "dynamic_resize" in op_types and "Resize" not in op_types
        assert [(f.domain, f.name) for f in proto.functions] == [("graphsurgeon", "dynamic_resize")]
        assert ("graphsurgeon", 1) in {(o.domain, o.version) for o in proto.opset_import}
    assert proto.ir_version <= 10
    onnx.checker.check_model(proto, full_check=True)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_onnxruntime_matches_torch_eager(model, exported, route, factor, size):
    feeds, expected = case(model, size, factor)
    (output,) = exported[route].run(feeds)
    assert output.shape == (1, 1, int(size[0] * factor), int(size[1] * factor))
    np.testing.assert_allclose(output, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("route", [r for r in ROUTES if r[1] == "function"], ids=["dynamo", "torchscript"])
def test_function_lowering_runs_in_reference_evaluator(model, exported, route, factor, size):
    feeds, expected = case(model, size, factor)
    (output,) = ReferenceEvaluator(exported[route].proto).run(None, feeds)
    np.testing.assert_allclose(output, expected, rtol=0, atol=TOLERANCE)
