"""freeze-input: a graph input becomes a constant (the inverse of promote-input), optionally folded."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from onnx import ModelProto, ValueInfoProto, helper, numpy_helper

from graphsurgeon.core.attributes import is_file, load_npy, split_assignment
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.format import format_type
from graphsurgeon.core.inference import newly_refused
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.typeinfo import static_dims
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError

_INLINE_CHECK_LIMIT = 1 << 16  # frozen values up to this size are given to the check as constants


def _fits(dims: list[int | str | None], shape: tuple[int, ...]) -> bool:
    return len(dims) == len(shape) and all(not isinstance(d, int) or d == s for d, s in zip(dims, shape, strict=True))


def frozen_value(name: str, text: str, info: ValueInfoProto | None) -> np.ndarray:
    """The value `text` gives input `name` (a .npy file, or numbers "1,2,3" shaped by the input's static
    shape), in the input's element type; refused when it does not fit the declared type."""
    if info is None or not info.type.HasField("tensor_type") or not info.type.tensor_type.elem_type:
        raise RewriteError(f"input {name!r} is not a typed tensor, so it cannot be frozen")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
    except (KeyError, TypeError, ValueError):
        raise RewriteError(
            f"input {name!r} has element type {info.type.tensor_type.elem_type}, which numpy cannot hold"
        ) from None
    dims = static_dims(info.type)
    declared = format_type(info.type)
    if is_file(text):
        value = load_npy(text, f"input {name!r}")
        if value.dtype != dtype and not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise RewriteError(f"input {name!r} is {declared}; {text} holds {value.dtype}, which does not convert")
        value = value.astype(dtype, copy=False)
    else:
        parts = [p.strip() for p in text.strip().removeprefix("[").removesuffix("]").split(",") if p.strip()]
        try:
            flat = np.array([float(p) if dtype.kind in "fc" else int(p, 0) for p in parts]).astype(dtype)
        except ValueError:
            raise RewriteError(
                f"input {name!r} ({declared}) needs numbers like 1,2,3 or a .npy file, not {text!r}"
            ) from None
        if dims is not None and all(isinstance(d, int) for d in dims):
            shape = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        elif dims is not None and len(dims) == 1:
            shape = (flat.size,)
        else:
            raise RewriteError(f"input {name!r} is {declared}, with no static shape to give {text!r}; use a .npy file")
        if int(np.prod(shape)) != flat.size:
            raise RewriteError(f"input {name!r} is {declared}: it needs {int(np.prod(shape))} values, not {flat.size}")
        value = flat.reshape(shape)
    if dims is not None and not _fits(dims, value.shape):
        raise RewriteError(f"input {name!r} is {declared}; the value's shape {list(value.shape)} does not fit it")
    return value


@verb(writes=True)
def freeze_input(
    ctx: Editor,
    *,
    input: Annotated[  # noqa: A002 - the CLI's --input
        list[str], Opt("NAME=VALUE (numbers 1,2,3 shaped like the input) or NAME=FILE.npy", metavar="NAME=VALUE")
    ] = [],  # noqa: B006 - never mutated
    initializers: Annotated[
        bool, Opt("also every input that has an initializer, at that value (IR < 4 lists each weight as one)")
    ] = False,
    fold: Annotated[bool, Opt("then fold what the frozen values make constant")] = False,
) -> None:
    """Turn graph inputs into constants: each becomes an initializer of that name and leaves the interface.

    A value is a .npy file or a list of numbers (``1,2,3``) that the input's static shape shapes; it must
    fit the input's declared element type and static dims. With `fold`, constant folding then evaluates
    everything the frozen values made constant (a summary of what it folded is recorded). Subgraphs that
    read the input from outer scope read the constant. Models of IR < 4 keep the input, with the value as
    its default (initializers there must be listed as inputs). `initializers` freezes the inputs that only
    carry an initializer's default (an IR < 4 model's weights, or an export with initializers kept as
    inputs), which onnxruntime can neither fold nor prepack: their values stay where they are, an IR < 4
    model is raised to IR 4 so its initializers may stand alone.
    """
    index = ctx.index
    index.check_references()
    main = index.main
    if not main.outputs:
        raise RewriteError("the model has no graph outputs, so no input's value is used; add one (add-outputs) first")
    if not input and not initializers:
        raise RewriteError(
            "name the inputs to freeze (--input NAME=VALUE), or freeze the initializers' (--initializers)"
        )
    if initializers:
        _freeze_initializer_inputs(ctx)
    values: dict[str, np.ndarray] = {}
    for spelling in input:
        name, text = split_assignment(spelling, "input")
        if name in values:
            raise RewriteError(f"input {name!r} is given twice")
        if name not in ctx.graph_inputs:
            known = ", ".join(ctx.graph_inputs) or "none"
            raise RewriteError(f"the model has no graph input {name!r}; its inputs: {known}")
        values[name] = frozen_value(name, text, main.inputs.get(name))
    if not values:
        return
    keep_inputs = ctx.proto.ir_version < 4
    _refuse_values_the_model_cannot_take(ctx, values, keep_inputs)
    for name, value in values.items():
        ctx.add_initializer(name, value)
        if keep_inputs:
            ctx.note(f"IR version {ctx.proto.ir_version}: {name!r} stays a graph input, with the value as its default")
        else:
            ctx.remove_graph_input(name)
    if fold:
        from graphsurgeon.verbs.fold import fold as fold_constants

        with ctx.quietly():
            report = fold_constants(ctx)
        for line in report.lines()[:1]:
            ctx.changes.record("folded", "graph", "", line.removeprefix("fold-constants: "))


def _freeze_initializer_inputs(ctx: Editor) -> None:
    main = ctx.index.main
    names = [name for name in main.inputs if name in main.initializers]
    if not names:
        ctx.note("no graph input has an initializer: no weight to freeze")
        return
    if ctx.proto.ir_version < 4:  # where an initializer must be listed as an input
        old, ctx.proto.ir_version = ctx.proto.ir_version, 4
        ctx.record("changed", "IR version", "", f"{old} -> 4 (initializers need not be inputs from IR 4 on)")
    for name in names:
        ctx.remove_graph_input(name)


def _refuse_values_the_model_cannot_take(ctx: Editor, values: dict[str, np.ndarray], keep_inputs: bool) -> None:
    """A value that fits the input's declaration can still contradict how the model uses it (a Split's `split`
    not summing to the axis): onnx's strict shape inference, on a weight-free copy with the values in, says so."""

    def freeze(light: ModelProto) -> None:
        for name, value in values.items():
            if value.nbytes > _INLINE_CHECK_LIMIT:  # big values stay typed inputs: only their shape is checked
                continue
            light.graph.initializer.append(numpy_helper.from_array(value, name))
            if not keep_inputs:
                for i in reversed(range(len(light.graph.input))):
                    if light.graph.input[i].name == name:
                        del light.graph.input[i]

    problem = newly_refused(light_copy(ctx.proto), freeze)
    if problem is not None:
        raise RewriteError(f"with {', '.join(map(repr, values))} frozen as given, the model is invalid: {problem}")
