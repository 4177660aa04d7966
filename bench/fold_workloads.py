"""The four workloads of the fold/simplify benchmark, generated (never stored in the repo).

* ``synthetic``: 2,223 blocks of constant Add/Mul, then Add, Shape->Gather->Unsqueeze->Concat->Reshape, Mul
  (20,007 nodes, static input shape).
* ``transformer_ts`` / ``transformer_dynamo``: a 6-layer ``torch.nn.TransformerEncoder`` (d_model 256, 8 heads,
  FFN 1024, batch_first, eval mode) exported by the TorchScript exporter (opset 17, dynamic batch axis) and
  by the dynamo exporter (static shapes).
* ``big``: 34 layers of Transpose(W^T)->MatMul->Add->Relu with 4096x4096 float weights (~2.3 GB), written
  tensor by tensor straight into an external data file (never all in memory). ``big_small`` is the same
  graph at 256x256 for checking outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def synthetic(path: Path, blocks: int = 2223, width: int = 64, opset: int = 17) -> Path:
    """The shape-chain workload at `opset`: Unsqueeze takes its axes as an attribute before opset 13."""
    rng = np.random.default_rng(0)
    axes_as_input = opset >= 13
    nodes, inits = [], []
    prev = "x"
    for i in range(blocks):
        for suffix in "abc":
            inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, width).astype(np.float32), f"c{i}{suffix}"))
        nodes += [
            helper.make_node("Add", [f"c{i}a", f"c{i}b"], [f"k{i}"], name=f"k{i}"),
            helper.make_node("Mul", [f"k{i}", f"c{i}c"], [f"m{i}"], name=f"m{i}"),
            helper.make_node("Add", [prev, f"m{i}"], [f"a{i}"], name=f"a{i}"),
            helper.make_node("Shape", [f"a{i}"], [f"s{i}"], name=f"s{i}"),
            helper.make_node("Gather", [f"s{i}", "zero"], [f"g{i}"], name=f"g{i}", axis=0),
            helper.make_node("Unsqueeze", [f"g{i}", "axes0"], [f"u{i}"], name=f"u{i}")
            if axes_as_input
            else helper.make_node("Unsqueeze", [f"g{i}"], [f"u{i}"], name=f"u{i}", axes=[0]),
            helper.make_node("Concat", [f"u{i}", "minus1"], [f"t{i}"], name=f"t{i}", axis=0),
            helper.make_node("Reshape", [f"a{i}", f"t{i}"], [f"r{i}"], name=f"r{i}"),
            helper.make_node("Mul", [f"r{i}", f"m{i}"], [f"y{i}"], name=f"y{i}"),
        ]
        prev = f"y{i}"
    inits += [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    if axes_as_input:
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes0"))
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, width])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [4, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    onnx.save(model, path)
    return path


def _encoder():
    import torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024, batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False).eval()


def transformer_ts(path: Path) -> Path:
    import torch

    torch.backends.mha.set_fastpath_enabled(False)
    x = torch.randn(2, 16, 256)
    with torch.no_grad():
        torch.onnx.export(
            _encoder(),
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["src"],
            output_names=["out"],
            dynamic_axes={"src": {0: "batch"}, "out": {0: "batch"}},
        )
    return path


def transformer_dynamo(path: Path) -> Path:
    import torch

    x = torch.randn(2, 16, 256)
    with torch.no_grad():
        program = torch.onnx.export(_encoder(), (x,), dynamo=True, input_names=["src"], output_names=["out"])
    program.save(str(path))
    return path


def big(path: Path, layers: int = 34, width: int = 4096) -> Path:
    """Stream weights into `path`.data one tensor at a time; the graph file holds no weight."""
    rng = np.random.default_rng(0)
    location = path.name + ".data"
    nodes, inits = [], []
    prev = "x"
    scale = 1.0 / np.sqrt(width)
    with open(path.parent / location, "wb") as f:
        for i in range(layers):
            for name, shape in ((f"W{i}", (width, width)), (f"b{i}", (width,))):
                value = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
                offset = f.tell()
                if offset % 4096:
                    f.write(b"\0" * (4096 - offset % 4096))
                    offset = f.tell()
                f.write(value.tobytes())
                tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(shape))
                tensor.data_location = TensorProto.EXTERNAL
                for key, val in (("location", location), ("offset", offset), ("length", value.nbytes)):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, str(val)
                inits.append(tensor)
                del value
            nodes += [
                helper.make_node("Transpose", [f"W{i}"], [f"Wt{i}"], name=f"t{i}", perm=[1, 0]),
                helper.make_node("MatMul", [prev, f"Wt{i}"], [f"mm{i}"], name=f"mm{i}"),
                helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"add{i}"], name=f"add{i}"),
                helper.make_node("Relu", [f"add{i}"], [f"y{i}"], name=f"relu{i}"),
            ]
            prev = f"y{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path.write_bytes(model.SerializeToString())
    return path


def big_small(path: Path) -> Path:
    return big(path, layers=34, width=256)


WORKLOADS = {
    "synthetic": synthetic,
    "transformer_ts": transformer_ts,
    "transformer_dynamo": transformer_dynamo,
    "big": big,
    "big_small": big_small,
}

LATEST_OPSET = onnx.defs.onnx_opset_version()


def generate(name: str, out: Path) -> Path:
    """Write workload `name` to `out`; ``synthetic_opsetN`` (or ``synthetic_latest``) is synthetic at opset N."""
    if name.startswith("synthetic_"):
        suffix = name.removeprefix("synthetic_")
        opset = LATEST_OPSET if suffix == "latest" else int(suffix.removeprefix("opset"))
        return synthetic(out, opset=opset)
    return WORKLOADS[name](out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write one benchmark workload")
    parser.add_argument("name", help=f"{', '.join(WORKLOADS)}, or synthetic_opsetN / synthetic_latest")
    parser.add_argument("out", type=Path)
    parser.add_argument("--opset", help="for synthetic: the opset to write (a number or 'latest')")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    name = f"synthetic_{'latest' if args.opset == 'latest' else 'opset' + args.opset}" if args.opset else args.name
    print(generate(name, args.out))
