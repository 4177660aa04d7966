"""retype: a graph input or output takes another element type, with the Cast inside the model."""

from __future__ import annotations

from typing import Annotated

from onnx import TensorProto, ValueInfoProto, helper

from graphsurgeon.core.editor import Editor, tensor_dtype
from graphsurgeon.core.format import dtype_name
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import GraphSurgeonError, RewriteError
from graphsurgeon.verbs.convert.narrow import Narrower, make_plan


def parse_name_dtype(text: str) -> tuple[str, int]:
    """``NAME:DTYPE`` (the name may hold colons; the type is after the last one)."""
    name, sep, dtype = text.rpartition(":")
    if not sep or not name or not dtype:
        raise RewriteError(f"expected NAME:DTYPE (e.g. input_ids:int32), not {text!r}")
    try:
        return name, tensor_dtype(dtype.strip())
    except GraphSurgeonError:
        raise RewriteError(f"{dtype!r} in {text!r} is not an element type (int32, uint8, float16, ...)") from None


def _elem(info) -> int:
    return info.type.tensor_type.elem_type if info is not None and info.type.HasField("tensor_type") else 0


@verb(writes=True, preserves_meaning=False)
def retype(
    ctx: Editor,
    *,
    input: Annotated[
        dict[str, int],
        Opt("a graph input's new element type (repeatable)", metavar="NAME:DTYPE", entry=parse_name_dtype),
    ] = {},  # noqa: B006
    graph_output: Annotated[
        dict[str, int],
        Opt("a graph output's new element type (repeatable)", metavar="NAME:DTYPE", entry=parse_name_dtype),
    ] = {},  # noqa: B006
    int64_to_int32: Annotated[
        bool, Opt("compute int64 index and shape arithmetic in int32 where the values provably fit")
    ] = False,
) -> None:
    """Give graph inputs or outputs another element type (token ids int64 -> int32, images float -> uint8).

    The interface names stay; a Cast inside the model turns the new input type into the one the model
    computes with (and the computed output into the new output type). Narrowing casts wrap or round as
    ONNX's Cast does: the caller feeds values that fit.

    With `int64_to_int32`, int64 tensors whose values provably fit int32 are computed in int32: token ids
    retyped to int32 reach their Gather without a Cast, and index arithmetic from Shape, constants and such
    inputs narrows where every operator allows int32 (its schema's type constraints). Operands ONNX fixes to
    int64 (Reshape's shape, Shape's output, TopK's K, ...) keep it, with one Cast where a narrowed tensor
    meets them; a value whose range cannot be proven (an int64 graph input) keeps int64.
    """
    if not input and not graph_output and not int64_to_int32:
        raise RewriteError("give `input` or `graph_output` (NAME:DTYPE), or `int64_to_int32`, to retype")
    main = ctx.index.main
    for name in input:
        if name not in main.inputs or name in main.initializers:
            raise RewriteError(f"the model has no graph input {name!r} (its inputs: {', '.join(ctx.graph_inputs)})")
        if not _elem(main.inputs[name]):
            raise RewriteError(f"graph input {name!r} is not a tensor of a known element type")
    for name in graph_output:
        if name not in main.outputs:
            raise RewriteError(f"the model has no graph output {name!r} (its outputs: {', '.join(main.outputs)})")
        if not _elem(main.outputs[name]) or main.producer.get(name) is None:
            raise RewriteError(f"graph output {name!r} has no known element type or no producing node to cast")
    if (input or graph_output) and ctx.opset_version("") is None:
        raise RewriteError("the model imports no ai.onnx opset, so the Casts retyping needs cannot be added")
    names = ctx.names()
    for name, dtype in input.items():
        info = main.inputs[name]
        assert info is not None  # checked above: a typed tensor
        old = _elem(info)
        if old == dtype:
            ctx.note(f"graph input {name!r} is {dtype_name(dtype)} already")
            continue
        inside = names.fresh(f"{name}_{dtype_name(old)}")
        ctx.replace_uses({name: inside})
        cast = helper.make_node("Cast", [name], [inside], name=names.fresh(f"{name}_cast"), to=old)
        ctx.insert_nodes(main, 0, [cast])
        for entry in (vi for vi in ctx.proto.graph.input if vi.name == name):  # a duplicated entry too
            entry.type.tensor_type.elem_type = dtype
        ctx.record("retyped", "input", name, f"{dtype_name(old)} -> {dtype_name(dtype)}")
    main = ctx.index.main  # inserting in front re-indexes
    for name, dtype in graph_output.items():
        info = main.outputs[name]
        assert info is not None  # checked above: a typed tensor
        old = _elem(info)
        if old == dtype:
            ctx.note(f"graph output {name!r} is {dtype_name(dtype)} already")
            continue
        producer = main.producer[name]
        computed = names.fresh(f"{name}_{dtype_name(old)}")
        ctx.rename_node_output(producer, list(producer.output).index(name), computed)
        ctx.replace_uses({name: computed})
        kept = ValueInfoProto()  # the output's declared type described the computed value: it keeps it
        kept.CopyFrom(info)
        kept.name, kept.doc_string = computed, ""
        ctx.add_value_info(kept)
        ctx.add_node("Cast", [computed], [name], name=names.fresh(f"{name}_cast"), attributes={"to": dtype})
        for entry in (vi for vi in ctx.proto.graph.output if vi.name == name):  # a duplicated entry too
            entry.type.tensor_type.elem_type = dtype
        if name in main.value_info:
            ctx.remove_value_info({name})
        ctx.record("retyped", "output", name, f"{dtype_name(old)} -> {dtype_name(dtype)}")
    if int64_to_int32:
        _narrow(ctx)


def _narrow(ctx: Editor) -> None:
    plan = make_plan(ctx)
    main = ctx.index.main
    wide_inputs = [n for n in ctx.graph_inputs if _elem(main.inputs[n]) == TensorProto.INT64]
    if wide_inputs:
        ctx.note(
            f"int64 graph input(s) {', '.join(map(repr, wide_inputs))} keep int64 and so does what is computed "
            "from them (retype them with `input` NAME:int32 to narrow that too)"
        )
    if not plan.narrowed:
        ctx.note(
            f"no int64 tensor narrowed to int32 (of {plan.int64_tensors}): none is computed from values proven "
            "to fit int32 where that removes more int64 tensors than the Casts it needs"
        )
        return
    narrower = Narrower(ctx, plan)
    with ctx.quietly():
        narrower.casts()
        narrower.constants()
        narrower.producers()
        narrower.finish()
    after = plan.int64_tensors - len(plan.narrowed) - narrower.constants_converted + len(plan.up)
    ctx.record(
        "narrowed",
        "tensors",
        "int64 -> int32",
        f"{len(plan.narrowed)} in {plan.groups} group(s) (int64 tensors {plan.int64_tensors} -> {after}, "
        f"Casts +{narrower.casts_added} -{narrower.casts_removed})",
    )
