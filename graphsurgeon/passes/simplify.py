"""simplify: what users expect from onnxsim / onnxslim, to a fixed point.

Each round: constant folding (with static and symbolic shape reasoning, If inlining; see fold_constants),
no-op elimination (Identity, Dropout in inference, Cast to the same type, Reshape/Expand to the same shape,
identity Transpose, whole-tensor Slice, zero Pad, x+0, x*1, ...), common-subexpression elimination (nodes
and identical small initializers), then cleanup (dead nodes, initializers, value_info, functions). Rounds
repeat until one changes nothing. Graph inputs, outputs, their names and the model's metadata are kept.
`input_shape` ("NAME:DIMS") fixes symbolic input dims first, so shape arithmetic on them folds.
"""

from __future__ import annotations

from graphsurgeon.errors import RewriteError
from graphsurgeon.model import Model
from graphsurgeon.passes._fold_shapes import ShapeInfo
from graphsurgeon.passes._simplify_rewrites import (
    eliminate_common_subexpressions,
    eliminate_noops,
    fuse_layout_chains,
    fuse_matmul_add,
    merge_equal_shape_values,
)
from graphsurgeon.passes.cleanup import cleanup
from graphsurgeon.passes.fold_constants import DEFAULT_SIZE_LIMIT, FoldReport, fold_constants

MAX_ROUNDS = 32


def parse_input_shape(spec: str) -> tuple[str, list[int | str]]:
    if ":" not in spec:
        raise RewriteError(f"--input-shape {spec!r}: expected NAME:DIMS, e.g. x:1,3,224,224")
    name, dims_text = spec.rsplit(":", 1)
    dims_text = dims_text.strip().strip("[]()")
    dims: list[int | str] = []
    for part in (p.strip() for p in dims_text.split(",")) if dims_text else ():
        if not part:
            raise RewriteError(f"--input-shape {spec!r}: empty dim")
        if part.lstrip("-").isdigit():
            value = int(part)
            if value < 0:
                raise RewriteError(f"--input-shape {spec!r}: negative dim {value}")
            dims.append(value)
        else:
            dims.append(part)
    return name, dims


def fix_input_shapes(model: Model, specs: list[str] | tuple[str, ...]) -> list[str]:
    graph = model.proto.graph
    inputs = {vi.name: vi for vi in graph.input}
    initializers = {t.name for t in graph.initializer}
    changes = []
    for spec in specs:
        name, dims = parse_input_shape(spec)
        vi = inputs.get(name)
        if vi is None or name in initializers:
            real = [n for n in inputs if n not in initializers]
            raise RewriteError(f"--input-shape: the model has no input {name!r}; its inputs are: {', '.join(real)}")
        if vi.type.WhichOneof("value") != "tensor_type":
            raise RewriteError(f"--input-shape: input {name!r} is not a tensor")
        tensor_type = vi.type.tensor_type
        if tensor_type.HasField("shape") and len(tensor_type.shape.dim) != len(dims):
            raise RewriteError(
                f"--input-shape: input {name!r} has rank {len(tensor_type.shape.dim)}, not {len(dims)} as given"
            )
        if tensor_type.HasField("shape"):
            for dim, value in zip(tensor_type.shape.dim, dims, strict=True):
                if isinstance(value, int) and dim.HasField("dim_value") and dim.dim_value != value:
                    raise RewriteError(
                        f"--input-shape: input {name!r} has the static dim {dim.dim_value} where {value} was given"
                    )
        tensor_type.ClearField("shape")
        shape = tensor_type.shape
        for value in dims:
            d = shape.dim.add()
            if isinstance(value, int):
                d.dim_value = value
            else:
                d.dim_param = value
        changes.append(f"{name}: [{', '.join(str(d) for d in dims)}]")
    _forget_stale_value_info(model)
    model.invalidate()
    return changes


def _forget_stale_value_info(model: Model) -> None:
    """value_info recorded for the old input shapes would contradict the new ones: let inference redo it."""
    graph = model.proto.graph
    for vi in graph.value_info:
        if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") for d in dims):
                vi.type.tensor_type.ClearField("shape")


def _size(model: Model) -> tuple[int, int]:
    from graphsurgeon._walk import model_graphs

    nodes = inits = 0
    for graph in model_graphs(model.proto):
        nodes += len(graph.node)
        inits += len(graph.initializer)
    nodes += sum(len(f.node) for f in model.proto.functions)
    return nodes, inits


def simplify(model: Model, *, input_shape: list[str] | tuple[str, ...] = (), size_limit: int = DEFAULT_SIZE_LIMIT):
    start_nodes = len(model.proto.graph.node)
    if input_shape:
        model.note("simplify: fixed input shapes " + "; ".join(fix_input_shapes(model, input_shape)))
    total = FoldReport()
    noops = cse = rounds = fused = 0
    last: FoldReport | None = None
    for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 - reported below
        before = _size(model)
        report = fold_constants(model, size_limit=size_limit, note=False)
        last = report
        total.folded += report.folded
        total.initializers += report.initializers
        total.ifs_inlined += report.ifs_inlined
        total.sessions += report.sessions
        shapes = ShapeInfo(model)
        removed_noops = eliminate_noops(model, shapes)
        declared = ShapeInfo(model, infer=False) if removed_noops else shapes
        fused_now = fuse_layout_chains(model, declared) + fuse_matmul_add(model, declared)
        fused += fused_now
        removed_noops += fused_now
        merged = merge_equal_shape_values(model, shapes) if not removed_noops else 0
        merged += eliminate_common_subexpressions(model)
        noops += removed_noops
        cse += merged
        mark = len(model.changes)
        cleanup(model)
        del model.changes[mark:]
        if _size(model) == before and not (report.changed() or removed_noops or merged):
            break
    model.note(
        f"simplify: {start_nodes} -> {len(model.proto.graph.node)} nodes in the main graph after {rounds} round(s): "
        f"folded {total.folded} node(s) ({total.sessions} onnxruntime session(s)), inlined {total.ifs_inlined} "
        f"If(s), removed {noops - fused} no-op(s), fused {fused} chain(s) (layout, MatMul+Add), "
        f"merged {cse} common subexpression(s)"
    )
    if last is not None and last.unfolded:
        model.changes.extend(last.lines()[1:])
    return model


__all__ = ["simplify", "fix_input_shapes", "parse_input_shape"]
