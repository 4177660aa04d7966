"""The editing API in one runnable script: build a small model, patch it from Python, check it, save it.

    python examples/editing_api.py [OUT_DIR]

Every edit keeps the model's indexes valid and is recorded as a structured change, exactly as when a verb
makes it; everything the edits don't touch stays as it was.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

import graphsurgeon as gs


def exported_model() -> onnx.ModelProto:
    """What an exporter might write: x -> Conv -> Identity -> Relu -> y, with a doc string and metadata."""
    weight = helper.make_tensor("w", onnx.TensorProto.FLOAT, [4, 3, 3, 3], np.ones(108, dtype=np.float32) / 27)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Identity", ["conv"], ["conv_copy"], name="copy"),
            helper.make_node("Relu", ["conv_copy"], ["y"], name="relu"),
        ],
        "net",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9, doc_string="demo")
    helper.set_model_props(model, {"author": "exporter"})
    return model


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    original = out_dir / "model.onnx"
    onnx.save(exported_model(), original)

    model = gs.load(original)
    print(model)  # path, node count, opset, interface

    # 1. Find things: by name, op type or glob; producers and consumers of a tensor.
    relu = model.node("Relu")
    print("Relu reads", list(relu.input), "produced by", model.producer(relu.input[0]).name)

    # 2. Drop the Identity: its reader now reads the Conv's output.
    model.bypass_node(model.node("copy"))

    # 3. Clamp the output: a Clip after the Relu, with its bound as a new constant, as the new graph output.
    model.add_initializer("six", np.array(6.0, dtype=np.float32))
    model.add_node("Clip", ["y", "", "six"], ["y6"], name="relu6")
    model.remove_graph_output("y")
    model.add_graph_output("y6", "float", ["batch", 4, 8, 8])

    # 4. A debug output for the Conv, and clearer names.
    model.add_graph_output("conv", "float", ["batch", 4, 8, 8])
    model.rename_tensor("conv", "features")
    model.rename_node(model.node("conv"), "stem_conv")

    # 5. What changed, as records (also printed as readable lines).
    for change in model.changes:
        print(" ", change)

    patched = model.save(out_dir / "patched.onnx")

    # 6. Check it numerically: Relu6 of the original's output, via onnxruntime.
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32) * 20
    (want,) = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got, features = ort.InferenceSession(str(patched), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.allclose(got, np.minimum(want, 6.0)) and features.shape == (2, 4, 8, 8)
    assert onnx.load(patched).metadata_props[0].value == "exporter"  # untouched parts survive
    print("outputs match: relu6(original) == patched;", f"wrote {patched}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
