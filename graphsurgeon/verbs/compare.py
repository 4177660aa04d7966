"""compare: run two models in onnxruntime on the same inputs and report the worst error of every output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.numeric import ATOL, RTOL, RUNS, CompareReport, Runnable, compare_models, load_feeds
from graphsurgeon.core.verb import Opt, verb


def runnable(model: Editor, label: str) -> Runnable:
    """The model as onnxruntime opens it: its graph serialized now (edits included), weights left on disk."""
    return Runnable(model.proto.SerializeToString(), model.external_data_dir, label)


@verb(writes=False)
def compare(
    ctx: Editor,
    *,
    other: Annotated[str, Opt("the model to compare with", metavar="B", positional=True)],
    feeds: Annotated[
        str | None, Opt("inputs from an .npz file (inputs it lacks are random)", metavar="FILE.npz")
    ] = None,
    runs: Annotated[int, Opt("how many input sets to run", metavar="N")] = RUNS,
    rtol: Annotated[float, Opt("relative tolerance", metavar="R")] = RTOL,
    atol: Annotated[float, Opt("absolute tolerance", metavar="A")] = ATOL,
) -> CompareReport:
    """Run this model (A) and another (B) on the same inputs; per output, the worst absolute and relative error.

    Inputs are random but sane (integers in the range their use allows) unless given in `feeds`. The
    report's exit code is 1 when any output differs beyond tolerance or A cannot run.
    """
    b = other if isinstance(other, Editor) else Editor.open(Path(other))  # a path, or a model loaded already
    for model in (ctx, b):  # broken graphs can crash onnxruntime rather than be refused by it
        model.index.check_references()
    return compare_models(
        runnable(ctx, "A"),
        runnable(b, "B"),
        feeds=load_feeds(feeds) if feeds else None,
        runs=runs,
        rtol=rtol,
        atol=atol,
    )
