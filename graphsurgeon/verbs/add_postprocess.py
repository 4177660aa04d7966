"""add-postprocess: softmax, argmax or top-k as ONNX nodes behind a graph output."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from onnx import TensorProto

from graphsurgeon.core.editor import Editor
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
