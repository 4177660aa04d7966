"""inline: model-local functions replaced by their bodies at every call (all of them, or the selected ones)."""

from __future__ import annotations

import fnmatch
from typing import Annotated

import onnx.inliner
from onnx import ModelProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError, SelectorError


def _weightless(model: ModelProto) -> ModelProto:
    """The model without initializer values (inlining never reads them): names and types only."""
    light = ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(light, field, getattr(model, field))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, source = light.graph, model.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    return light


def _selected(ctx: Editor, selectors: list[str]) -> list[tuple[str, str]]:
    functions = [(f.domain, f.name) for f in ctx.proto.functions]
    chosen: list[tuple[str, str]] = []
    for selector in selectors:
        hits = [
            (d, n)
            for d, n in functions
            if fnmatch.fnmatchcase(n, selector) or fnmatch.fnmatchcase(f"{d}::{n}", selector)
        ]
        if not hits:
            known = ", ".join(f"{d}::{n}" for d, n in functions[:10])
            raise SelectorError(f"no model-local function matches {selector!r} (the model has: {known})")
        chosen += [h for h in hits if h not in chosen]
    return chosen


@verb(writes=True, preserves_meaning=True)
def inline(
    ctx: Editor,
    *,
    function: Annotated[
        list[str], Opt("functions to inline: NAME, DOMAIN::NAME or a glob (default: all)", metavar="SEL")
    ] = [],  # noqa: B006
) -> None:
    """Inline model-local functions: each call becomes the function's body (onnx's inliner, on a weight-free copy).

    Function bodies that import another ai.onnx opset than the model are converted to the model's. Functions
    no call is left to are removed; weights, metadata and doc strings stay as they were.
    """
    if not ctx.proto.functions:
        ctx.note("the model has no model-local functions")
        return
    chosen = _selected(ctx, function) if function else None
    light = _weightless(ctx.proto)
    try:
        if chosen is None:
            inlined = onnx.inliner.inline_local_functions(light, convert_version=True)
        else:
            inlined = onnx.inliner.inline_selected_functions(light, chosen)
    except Exception as e:  # the inliner raises RuntimeError / ValueError / ConvertError
        raise RewriteError(f"onnx's inliner failed: {str(e).strip().splitlines()[0][:200]}") from None
    graph = ctx.proto.graph
    before = {(f.domain, f.name) for f in ctx.proto.functions}
    del graph.node[:]
    graph.node.extend(inlined.graph.node)
    kept = {(f.domain, f.name) for f in inlined.functions}
    del ctx.proto.functions[:]
    ctx.proto.functions.extend(inlined.functions)
    for opset in inlined.opset_import:
        if ctx.opset_version(opset.domain) is None:
            ctx.proto.opset_import.add().CopyFrom(opset)
    ctx._reindex()
    for domain, name in sorted(before - kept):
        ctx.record("inlined", "function", f"{domain}::{name}")
    ctx.record("replaced", "graph", "main graph", f"{len(graph.node)} nodes after inlining")
    if kept & before and chosen is None:
        ctx.note(f"{len(kept & before)} function(s) could not be inlined and stay")
