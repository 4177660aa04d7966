"""merge: one model from two, B's inputs fed by A's outputs (`connect`), names kept apart by prefixes."""

from __future__ import annotations

import os
from typing import Annotated, Any

from onnx import ModelProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import is_external, read_tensor
from graphsurgeon.core.format import dtype_name, format_type
from graphsurgeon.core.typeinfo import TypeLookup, elem_type, shape_conflict
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_tensors
from graphsurgeon.errors import ModelLoadError, RewriteError
from graphsurgeon.verbs.convert.datafile import DataFileWriter, data_folder, set_inline_bytes


def _open(other: Any) -> Editor:
    if isinstance(other, Editor):
        return Editor(_copy(other.proto), path=other.path, external_data_dir=other.external_data_dir)
    if isinstance(other, str | os.PathLike):
        return Editor.open(other)
    raise ModelLoadError(f"merge takes B as a model path or a loaded model, not {type(other).__name__}")


def _copy(proto: ModelProto) -> ModelProto:
    copy = ModelProto()
    copy.CopyFrom(proto)
    return copy


def _prefix(editor: Editor, prefix: str) -> None:
    """Every tensor and node name of the main graph's namespace gets `prefix`."""
    editor.rename_tensors({name: prefix + name for name in editor.tensor_names()})
    for scope, node in list(editor.index.find_nodes()):
        if node.name and not scope.is_function:
            node.name = prefix + node.name
    editor._reindex()


def _connections(connect: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for entry in connect:
        a_out, sep, b_in = entry.rpartition(":")
        if not sep or not a_out or not b_in:
            raise RewriteError(f"`connect` takes A_OUT:B_IN pairs, not {entry!r}")
        if b_in in pairs:
            raise RewriteError(f"B's input {b_in!r} is connected twice")
        pairs[b_in] = a_out
    return pairs


def _upgrade(editor: Editor, version: int, which: str) -> None:
    """Bring a model's default-domain opset up to `version` with onnx's converter (weights not loaded)."""
    from graphsurgeon.verbs.convert_opset import convert_in_place

    try:
        convert_in_place(editor, version)
    except RewriteError as e:
        raise RewriteError(f"model {which} cannot be brought to opset {version}: {e}") from None


@verb(writes=True, preserves_meaning=False)
def merge(
    ctx: Editor,
    *,
    other: Annotated[str, Opt("the model fed by this one", metavar="B", positional=True)],
    connect: Annotated[list[str], Opt("feed B's input B_IN from A's output A_OUT", metavar="A_OUT:B_IN")],
    prefix_a: Annotated[str | None, Opt("prefix for every name of A (the model loaded first)")] = None,
    prefix_b: Annotated[str | None, Opt("prefix for every name of B")] = None,
) -> None:
    """Make one model from two: B runs on A's outputs as `connect` says.

    The inputs are A's plus B's unconnected ones; the outputs are A's unconnected ones plus B's. Names used in
    both are refused unless `prefix_a` / `prefix_b` set them apart (connect names are given without the
    prefixes). The default-domain opset is the higher of the two (the other model converted up), the IR
    version the higher one; A's metadata and doc strings are kept, B's weights are copied (external ones to a
    new data file beside A).
    """
    b = _open(other)
    pairs = _connections(connect)
    a_outputs, b_inputs = set(ctx.graph_outputs), set(b.graph_inputs)
    for b_in, a_out in pairs.items():
        if a_out not in a_outputs:
            raise RewriteError(f"A has no graph output {a_out!r} (its outputs: {', '.join(ctx.graph_outputs)})")
        if b_in not in b_inputs or b_in in b.index.main.initializers:
            raise RewriteError(f"B has no graph input {b_in!r} (its inputs: {', '.join(b.graph_inputs)})")
        type_a = TypeLookup(ctx).type_of(ctx.index.main, a_out)
        type_b = TypeLookup(b).type_of(b.index.main, b_in)
        ta, tb = elem_type(type_a), elem_type(type_b)
        if ta and tb and ta != tb:
            raise RewriteError(f"A's output {a_out!r} is {dtype_name(ta)} but B's input {b_in!r} is {dtype_name(tb)}")
        conflict = shape_conflict(type_a, type_b)  # a sequence for a tensor, another rank, another static dim
        if conflict is not None and type_a is not None and type_b is not None:
            raise RewriteError(
                f"A's output {a_out!r} ({format_type(type_a)}) cannot feed B's input {b_in!r} "
                f"({format_type(type_b)}): {conflict}"
            )
    for domain in {o.domain for o in b.proto.opset_import} & {o.domain for o in ctx.proto.opset_import} - {
        "",
        "ai.onnx",
    }:
        if ctx.opset_version(domain) != b.opset_version(domain):
            raise RewriteError(f"A and B import domain {domain!r} at different versions")
    a_fn = {(f.domain, f.name, f.overload): f for f in ctx.proto.functions}
    for f in b.proto.functions:
        key = (f.domain, f.name, f.overload)
        if key in a_fn and a_fn[key].SerializeToString() != f.SerializeToString():
            raise RewriteError(f"A and B both define function {f.domain}::{f.name}, differently")

    _refuse_clashes(ctx, b, pairs, prefix_a or "", prefix_b or "")

    if prefix_a:
        _prefix(ctx, prefix_a)
        pairs = {b_in: prefix_a + a_out for b_in, a_out in pairs.items()}
    if prefix_b:
        _prefix(b, prefix_b)
        pairs = {prefix_b + b_in: a_out for b_in, a_out in pairs.items()}
    va, vb = ctx.opset_version(""), b.opset_version("")
    if va is not None and vb is not None and va != vb:
        _upgrade(ctx, vb, "A") if va < vb else _upgrade(b, va, "B")

    b.rename_tensors(pairs)  # B reads A's outputs directly
    _splice(ctx, b, set(pairs.values()))
    ctx.proto.ir_version = max(ctx.proto.ir_version, b.proto.ir_version)


def _refuse_clashes(a: Editor, b: Editor, pairs: dict[str, str], prefix_a: str, prefix_b: str) -> None:
    """Refuse, before any edit, a tensor name the merged graph would define twice: every name of A (prefixed)
    against B's (prefixed) names other than the connected inputs, which become A's outputs."""
    names_a = {prefix_a + name for name in a.tensor_names() if name}
    names_b = {prefix_b + name for name in b.tensor_names() - set(pairs) if name}
    clash = sorted(names_a & names_b)
    if clash:
        shown = ", ".join(repr(n) for n in clash[:5]) + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
        hint = "give `prefix_a` or `prefix_b`" if not (prefix_a or prefix_b) else "give different prefixes"
        raise RewriteError(f"A and B both use the tensor name(s) {shown}; {hint} to keep them apart")
    nodes_a = {prefix_a + n.name for n in a.proto.graph.node if n.name}
    same = sorted(nodes_a & {prefix_b + n.name for n in b.proto.graph.node if n.name})
    if same:  # onnxruntime refuses a graph with two nodes of one name
        shown = ", ".join(repr(n) for n in same[:5]) + (f" and {len(same) - 5} more" if len(same) > 5 else "")
        hint = "give `prefix_a` or `prefix_b`" if not (prefix_a or prefix_b) else "give different prefixes"
        raise RewriteError(f"A and B both have node(s) named {shown}; {hint} to keep them apart")


def _splice(ctx: Editor, b: Editor, connected: set[str]) -> None:
    main, bmain = ctx.index.main, b.proto.graph
    writer: DataFileWriter | None = None
    for tensor in model_tensors(b.proto):
        if not is_external(tensor):
            continue
        if ctx.path is None and ctx.external_data_dir is None:
            set_inline_bytes(tensor, read_tensor(tensor, b.external_data_dir).tobytes())
            continue
        if writer is None:
            folder = data_folder(ctx, "merge")
            stem = ctx.path.name.removesuffix(".onnx") if ctx.path is not None else "model"
            location, n = f"{stem}.merged.data", 1
            while (folder / location).exists():
                n += 1
                location = f"{stem}.merged{n}.data"
            writer = DataFileWriter(ctx, folder, location)
        assert b.external_data_dir is not None
        writer.copy_external(tensor, b.external_data_dir)
    if writer is not None:
        writer.close()
    for o in b.proto.opset_import:
        if ctx.opset_version(o.domain) is None:
            ctx.add_opset_import(o.domain, o.version)
    for f in b.proto.functions:
        if (f.domain, f.name, f.overload) not in ctx.index.functions:
            ctx.add_function(f)
    for name in connected:
        ctx.remove_graph_output(name)
    main = ctx.index.main
    for info in bmain.input:
        if info.name not in connected:
            main.add_input(info)
            ctx.record("added", "input", info.name)
    for tensor in bmain.initializer:
        ctx.add_initializer(tensor.name, tensor)
    for sparse in bmain.sparse_initializer:
        ctx.add_sparse_initializer(sparse)
    for info in bmain.value_info:
        ctx.add_value_info(info)
    ctx.insert_nodes(main, len(main.container.node), list(bmain.node))
    main = ctx.index.main  # nodes with subgraphs re-index
    for info in bmain.output:
        main.add_output(info)
        ctx.record("added", "output", info.name)
