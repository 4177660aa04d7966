"""add-preprocess: image preprocessing as ONNX nodes in front of a graph input (raw uint8 NHWC in)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from graphsurgeon.core.editor import Editor, tensor_dtype
from graphsurgeon.core.format import dtype_name
from graphsurgeon.core.typeinfo import static_dims
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import GraphSurgeonError, RewriteError


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = []
        for part in text.split(","):
            num, _, den = part.strip().partition("/")
            values.append(float(num) / (float(den) if den else 1.0))
        return values
    except (ValueError, ZeroDivisionError):
        raise RewriteError(f"`{option}` takes numbers separated by commas (a/b allowed), not {text!r}") from None


@verb(writes=True, preserves_meaning=False)
def add_preprocess(
    ctx: Editor,
    *,
    input: Annotated[str, Opt("the graph input to feed (float NCHW) from a raw image", metavar="NAME")],
    layout: Annotated[str, Opt("layout of the raw image", choices=("NCHW", "NHWC"))] = "NCHW",
    dtype: Annotated[str | None, Opt("element type of the raw image (e.g. uint8; default: the input's)")] = None,
    mean: Annotated[str | None, Opt("per-channel mean subtracted after scaling", metavar="M,M,M")] = None,
    std: Annotated[str | None, Opt("per-channel std divided by after the mean", metavar="S,S,S")] = None,
    scale: Annotated[str | None, Opt("factor applied first (e.g. 1/255)", metavar="F")] = None,
    resize: Annotated[str | None, Opt("resize (bilinear) to this height and width", metavar="H,W")] = None,
) -> None:
    """Put image preprocessing in front of a graph input, as ONNX nodes: the model then takes the raw image.

    The input keeps its name and takes `dtype` in `layout`; the steps, in this order, are Cast to the input's
    float type, Transpose NHWC -> NCHW, Resize to `resize` (any image size accepted then), multiply by `scale`,
    subtract `mean`, divide by `std`: x = ((cast(img) * scale) - mean) / std.
    """
    main = ctx.index.main
    if input not in main.inputs or input in main.initializers:
        raise RewriteError(f"the model has no graph input {input!r} (its inputs: {', '.join(ctx.graph_inputs)})")
    info = main.inputs[input]
    assert info is not None
    float_type = info.type.tensor_type.elem_type
    dims = static_dims(info.type)
    if float_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16):
        raise RewriteError(f"graph input {input!r} is {dtype_name(float_type)}, not a float image tensor")
    if dims is None or len(dims) != 4:
        raise RewriteError(f"graph input {input!r} is not a 4-D NCHW tensor (its shape: {dims})")
    channels = dims[1]
    try:
        raw_type = tensor_dtype(dtype) if dtype is not None else float_type
    except GraphSurgeonError:
        raise RewriteError(f"`dtype` {dtype!r} is not an element type (uint8, float, ...)") from None
    values = {name: _floats(text, name) for name, text in (("mean", mean), ("std", std), ("scale", scale))}
    size = _floats(resize, "resize")
    if size is not None and (len(size) != 2 or any(v <= 0 or v != int(v) for v in size)):
        raise RewriteError(f"`resize` takes a height and a width, H,W, not {resize!r}")
    if values["scale"] is not None and len(values["scale"]) != 1:
        raise RewriteError(f"`scale` takes one number, not {scale!r}")
    for name in ("mean", "std"):
        given = values[name]
        if given is not None and len(given) not in (1, channels if isinstance(channels, int) else len(given)):
            raise RewriteError(f"`{name}` has {len(given)} values for {channels} channels")
    if values["std"] is not None and 0.0 in values["std"]:
        raise RewriteError("`std` must not be zero")

    names = ctx.names()
    np_float = helper.tensor_dtype_to_np_dtype(float_type)
    nodes, constants, current = [], [], input

    def step(op: str, extra: list[str], label: str, **attributes) -> None:
        nonlocal current
        out = names.fresh(f"{input}_{label}")
        nodes.append(
            helper.make_node(op, [current, *extra], [out], name=names.fresh(f"preprocess_{label}"), **attributes)
        )
        current = out

    def constant(label: str, value: np.ndarray) -> str:
        name = names.fresh(f"{input}_{label}")
        constants.append(numpy_helper.from_array(value, name))
        return name

    if raw_type != float_type:
        step("Cast", [], "float", to=float_type)
    if layout == "NHWC":
        step("Transpose", [], "nchw", perm=[0, 3, 1, 2])
    if size is not None:
        shape = names.fresh(f"{input}_shape")
        nodes.append(
            helper.make_node("Shape", [current], [shape], name=names.fresh("preprocess_shape"), start=0, end=2)
        )
        sizes = names.fresh(f"{input}_sizes")
        hw = constant("hw", np.array([int(v) for v in size], np.int64))
        nodes.append(helper.make_node("Concat", [shape, hw], [sizes], name=names.fresh("preprocess_sizes"), axis=0))
        step("Resize", ["", "", sizes], "resized", mode="linear")
    if values["scale"] is not None:
        step("Mul", [constant("scale", np.array(values["scale"][0], np_float))], "scaled")
    for name, op in (("mean", "Sub"), ("std", "Div")):
        given = values[name]
        if given is not None:
            step(op, [constant(name, np.array(given, np_float).reshape(1, -1, 1, 1))], name)
    if not nodes:
        ctx.note("no preprocessing step was asked for")
        return
    opset = ctx.opset_version()
    if opset is None or opset < 7:  # Sub/Div/Mul broadcast from opset 7 (onnxruntime has no earlier kernels)
        raise RewriteError(
            f"add-preprocess needs ai.onnx opset 7 or later, the model has {opset} (convert-opset first)"
        )
    if size is not None and (opset is None or opset < 15):
        raise RewriteError(f"`resize` needs opset 15 or later, the model has {opset} (convert-opset first)")

    shape_dims: list[int | str | None] = list(dims)
    if size is not None:
        shape_dims[2], shape_dims[3] = "height", "width"
    if layout == "NHWC":
        shape_dims = [shape_dims[0], shape_dims[2], shape_dims[3], shape_dims[1]]
    inside = names.fresh(f"{input}_preprocessed")
    nodes[-1].output[0] = inside
    ctx.replace_uses({input: inside})
    ctx.remove_graph_input(input)
    ctx.add_graph_input(input, raw_type, shape_dims)
    ctx.insert_nodes(main, 0, nodes)
    for tensor in constants:  # after the nodes: before IR 4 each is a Constant node put first, ahead of them
        ctx.add_initializer(tensor.name, tensor)
