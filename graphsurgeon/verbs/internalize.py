"""internalize: every weight in external data back inline (refused when the result would pass 2 GB)."""

from __future__ import annotations

import os

from graphsurgeon.core import io
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import external_ref, is_external, resolve_location
from graphsurgeon.core.units import format_bytes
from graphsurgeon.core.verb import verb
from graphsurgeon.core.walk import model_tensors
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.convert.datafile import external_nbytes, set_inline_bytes

_SAVE_MARGIN = 64 << 20  # what write_model keeps free below protobuf's limit


@verb(writes=True, preserves_meaning=True)
def internalize(ctx: Editor) -> None:
    """Bring every weight kept in external data back into the model file.

    Refused, before anything is read, when the model would not fit in one protobuf (2 GB). Data files are
    only read; a save no longer references them.
    """
    external = [t for t in model_tensors(ctx.proto) if is_external(t)]
    if not external:
        ctx.note("the model keeps no weight in external data")
        return
    incoming = sum(external_nbytes(t) for t in external)
    graph = ctx.proto.ByteSize()
    if graph + incoming > io.PROTOBUF_LIMIT - _SAVE_MARGIN:
        raise RewriteError(
            f"the model would be {format_bytes(graph + incoming)} inline, over protobuf's 2 GB limit for one file; "
            "keep its weights external (externalize with `shard_size` splits them into several files)"
        )
    data_dir = ctx.external_data_dir
    assert data_dir is not None  # validated on load: external tensors need a folder
    files: dict[str, int] = {}
    try:
        for tensor in external:
            ref = external_ref(tensor)
            if ref.location not in files:
                files[ref.location] = os.open(resolve_location(ref.location, data_dir, tensor.name), os.O_RDONLY)
            length = external_nbytes(tensor)
            data = os.pread(files[ref.location], length, ref.offset) if length else b""
            if len(data) != length:
                raise RewriteError(f"tensor {tensor.name!r}: short read from {ref.location}")
            set_inline_bytes(tensor, data)
    finally:
        for fd in files.values():
            os.close(fd)
    ctx.record("inlined", "external data", ", ".join(files), f"{len(external)} tensors, {format_bytes(incoming)}")
