"""add-postprocess: softmax, argmax or top-k as ONNX nodes behind a graph output."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from onnx import TensorProto

from graphsurgeon.core.attributes import op_schema
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.schema import refused_input_type
from graphsurgeon.core.typeinfo import TypeLookup, elem_type, static_dims
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError


@verb(writes=True, preserves_meaning=False)
def add_postprocess(
    ctx: Editor,
    *,
    graph_output: Annotated[str, Opt("the graph output to post-process (scores, logits)", metavar="NAME")],
    softmax: Annotated[int | None, Opt("softmax over this axis", metavar="AXIS")] = None,
    argmax: Annotated[
        int | None, Opt("the index of the largest value along this axis (int64 labels)", metavar="AXIS")
    ] = None,
    topk: Annotated[int | None, Opt("the K largest values along the last axis, and their indices", metavar="K")] = None,
) -> None:
    """Put a softmax, an argmax or a top-k behind a graph output, as ONNX nodes.

    The graph output keeps its name and now holds the result: probabilities (softmax), int64 labels with the
    axis removed (argmax), or the top K values with their int64 indices as a new output NAME_indices (topk).
    """
    chosen = [name for name, value in (("softmax", softmax), ("argmax", argmax), ("topk", topk)) if value is not None]
    if len(chosen) != 1:
        raise RewriteError(f"give exactly one of `softmax`, `argmax` or `topk` (given: {', '.join(chosen) or 'none'})")
    main = ctx.index.main
    if graph_output not in main.outputs:
        raise RewriteError(f"the model has no graph output {graph_output!r} (its outputs: {', '.join(main.outputs)})")
    if topk is not None and topk < 1:
        raise RewriteError(f"`topk` must be at least 1, not {topk}")
    producer = main.producer.get(graph_output)
    if producer is None:
        raise RewriteError(f"graph output {graph_output!r} is not computed by a node (an input or a constant)")
    known = TypeLookup(ctx).type_of(main, graph_output)
    dims = static_dims(known)
    dtype = elem_type(known) or TensorProto.FLOAT
    axis = softmax if softmax is not None else argmax if argmax is not None else -1
    if dims is not None and not -len(dims) <= axis < len(dims):
        raise RewriteError(f"axis {axis} is out of range for graph output {graph_output!r} of rank {len(dims)}")
    _check_op(ctx, chosen[0], graph_output, known, axis, dims)
    if topk is not None and dims and isinstance(dims[-1], int) and dims[-1] < topk:
        raise RewriteError(f"`topk` {topk} is more than the {dims[-1]} value(s) on the last axis of {graph_output!r}")

    names = ctx.names()
    raw = names.fresh(f"{graph_output}_raw")
    ctx.rename_node_output(producer, list(producer.output).index(graph_output), raw)
    ctx.replace_uses({graph_output: raw})
    ctx.remove_graph_output(graph_output)
    label = names.fresh(f"postprocess_{chosen[0]}")
    if softmax is not None:
        ctx.add_node("Softmax", [raw], [graph_output], name=label, attributes={"axis": softmax})
        ctx.add_graph_output(graph_output, dtype, dims)
    elif argmax is not None:
        ctx.add_node("ArgMax", [raw], [graph_output], name=label, attributes={"axis": argmax, "keepdims": 0})
        kept = None if dims is None else [d for i, d in enumerate(dims) if i != axis % len(dims)]
        ctx.add_graph_output(graph_output, TensorProto.INT64, kept)
    else:
        k = names.fresh(f"{graph_output}_k")
        ctx.add_initializer(k, np.array([topk], np.int64))
        indices = names.fresh(f"{graph_output}_indices")
        ctx.add_node("TopK", [raw, k], [graph_output, indices], name=label, attributes={"axis": -1})
        kept = None if dims is None else [*dims[:-1], topk]
        ctx.add_graph_output(graph_output, dtype, kept)
        ctx.add_graph_output(indices, TensorProto.INT64, kept)
    if graph_output in main.value_info:  # its old type, recorded for the producer's output
        ctx.remove_value_info({graph_output})


_OPS = {"softmax": ("Softmax", 1), "argmax": ("ArgMax", 1), "topk": ("TopK", 10)}  # (op, first opset as made here)


def _check_op(ctx: Editor, chosen: str, graph_output: str, known, axis: int, dims) -> None:
    """Refuse what the op cannot do at the model's opset: a type it does not take (a softmax over int32), an
    opset before the op's form used here (TopK's k as an input), a Softmax before opset 13 on an axis other
    than the last (it normalized over every axis from `axis` on)."""
    op, since = _OPS[chosen]
    opset = ctx.opset_version("")
    schema = op_schema(op, "", opset)
    if schema is None or opset is None or opset < since:
        raise RewriteError(f"{op} as made here needs ai.onnx opset {since} or later; the model imports {opset}")
    refused = refused_input_type(schema, [graph_output], [known])
    if refused is not None:
        _, spelled, _, allowed = refused
        shown = ", ".join(allowed[:6]) + (", ..." if len(allowed) > 6 else "")
        raise RewriteError(f"{op} cannot read graph output {graph_output!r} ({spelled}): it takes {shown}")
    if op == "Softmax" and opset < 13 and (dims is None or axis % len(dims) != len(dims) - 1):
        raise RewriteError(
            f"Softmax before opset 13 normalizes over every axis from `softmax` on, so only the last axis works "
            f"at opset {opset} (convert-opset to 13 first)"
        )
