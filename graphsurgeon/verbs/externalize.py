"""externalize: weights out to one or several new data files (shards no bigger than a size)."""

from __future__ import annotations

from typing import Annotated

from onnx import TensorProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, inline_problem, is_external
from graphsurgeon.core.io import MIN_EXTERNAL_BYTES
from graphsurgeon.core.units import format_bytes
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.convert.datafile import DataFileWriter, data_folder, external_nbytes, inline_bytes


def _default_pattern(ctx: Editor, sharded: bool) -> str:
    stem = ctx.path.name.removesuffix(".onnx") if ctx.path is not None else "model"
    folder = data_folder(ctx, "externalize")
    for suffix in ("", ".ext", *(f".ext{i}" for i in range(2, 100))):
        pattern = f"{stem}{suffix}.{{n}}.data" if sharded else f"{stem}{suffix}.data"
        if not (folder / pattern.replace("{n}", "1")).exists():
            return pattern
    raise RewriteError(f"no free data file name for {stem!r} in {folder}; pass `location`")


@verb(writes=True, preserves_meaning=True)
def externalize(
    ctx: Editor,
    *,
    threshold: Annotated[int, Opt("move inline initializers of at least this many bytes", size=True)] = 1024,
    shard_size: Annotated[
        int | None, Opt("start a new data file before one would pass this size (e.g. 1GiB)", size=True)
    ] = None,
    location: Annotated[
        str | None, Opt("data file name, relative to the model; {n} numbers the shards", metavar="PATTERN")
    ] = None,
) -> None:
    """Move the weights out to new external data files (optionally in shards of at most a size).

    Inline initializers of at least `threshold` bytes (never under 1 KiB: onnxruntime reads shape tensors only
    inline), and every weight already in external data, are written
    tensor by tensor (external ones copied kernel-side) to new files named by `location` (default
    MODEL.data, or MODEL.{n}.data with `shard_size`). Existing data files are never modified; a save to
    another folder takes only the new files along.
    """
    if shard_size is not None and shard_size <= 0:
        raise RewriteError("`shard_size` must be a positive size")
    if location is not None and shard_size is not None and "{n}" not in location:
        raise RewriteError(f"with `shard_size` the location {location!r} needs {{n}} where the shard number goes")
    tensors: list[TensorProto] = []
    kept_small = 0
    for graph in model_graphs(ctx.proto):
        for tensor in graph.initializer:
            size = declared_nbytes(tensor) or 0
            if is_external(tensor):
                tensors.append(tensor)
            elif tensor.data_type == TensorProto.STRING or size < max(threshold, 1):
                continue
            elif size < MIN_EXTERNAL_BYTES:
                kept_small += 1
            else:
                problem = inline_problem(tensor)  # checked before any file is written
                if problem is not None:
                    raise RewriteError(f"{problem}: its value cannot be moved out")
                tensors.append(tensor)
    if kept_small:
        ctx.note(
            f"{kept_small} initializer(s) under {format_bytes(MIN_EXTERNAL_BYTES)} stay inline: onnxruntime reads "
            "shape tensors (Reshape targets, axes, ConstantOfShape's shape...) only from inline data"
        )
    if not tensors:
        floor = max(threshold, MIN_EXTERNAL_BYTES) if kept_small else threshold
        ctx.note(f"no initializer of at least {format_bytes(floor)} to move out")
        return
    folder = data_folder(ctx, "externalize")
    writer = DataFileWriter(ctx, folder, location or _default_pattern(ctx, shard_size is not None), shard_size)
    total = 0
    try:
        for tensor in tensors:
            if is_external(tensor):
                writer.copy_external(tensor, folder)
            else:
                writer.write(tensor, inline_bytes(tensor))
            total += external_nbytes(tensor)
    finally:
        writer.close()
    for name in writer.files:
        ctx.record("wrote", "data file", name)
    ctx.record("moved", "external data", ", ".join(writer.files), f"{len(tensors)} tensors, {format_bytes(total)}")
    if writer.oversized:
        ctx.note(f"{len(writer.oversized)} tensor(s) are bigger than the shard size and got a file of their own")
