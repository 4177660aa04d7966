"""simplify: what users expect from onnxsim / onnxslim, to a fixed point.

Each round: constant folding (with static and symbolic shape reasoning, If inlining; see fold_constants),
no-op elimination (Identity, Dropout in inference, Cast to the same type, Reshape/Expand to the same shape,
identity Transpose, whole-tensor Slice, zero Pad, x+0, x*1, ...), fusions (layout chains, MatMul+Add -> Gemm,
and the patterns in simplify/patterns/: Conv+BatchNormalization, Conv+bias Add, nested Ifs on one condition,
Reshape targets in 0/-1 form, consecutive Slices), common-subexpression elimination (nodes
and identical small initializers), then cleanup (dead nodes, initializers, value_info, functions). Rounds
repeat until one changes nothing. Graph inputs, outputs, their names and the model's metadata are kept.
`input_shape` ({name: dims} or "NAME:DIMS" strings) fixes symbolic input dims first, so shape arithmetic on them folds.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.cleanup import cleanup
from graphsurgeon.verbs.fold import DEFAULT_SIZE_LIMIT, fold
from graphsurgeon.verbs.fold.report import FoldReport
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import run_patterns
from graphsurgeon.verbs.simplify.rewrites import (
    eliminate_common_subexpressions,
    eliminate_noops,
    fuse_layout_chains,
    fuse_matmul_add,
    merge_equal_shape_values,
)

MAX_ROUNDS = 32
_REVEALING = {"reshape_zero_minus_one", "nested_if"}  # patterns that make constants onnx's inference can use
Dims = list[int | str | None]


def parse_input_shape(spec: str) -> tuple[str, Dims]:
    """``x:1,3,224,224`` -> ("x", [1, 3, 224, 224]); a dim may be a symbol, or ``?`` for unknown."""
    if ":" not in spec:
        raise RewriteError(f"input shape {spec!r}: expected NAME:DIMS, e.g. x:1,3,224,224")
    name, dims_text = spec.rsplit(":", 1)
    dims_text = dims_text.strip().strip("[]()")
    dims: Dims = []
    for part in (p.strip() for p in dims_text.split(",")) if dims_text else ():
        if not part:
            raise RewriteError(f"input shape {spec!r}: empty dim")
        if part.lstrip("-").isdigit():
            value = int(part)
            if value < 0:
                raise RewriteError(f"input shape {spec!r}: negative dim {value}")
            dims.append(value)
        elif part == "?":
            dims.append(None)
        else:
            dims.append(part)
    return name, dims


def fix_input_shapes(ctx: Editor, shapes: dict[str, Dims]) -> None:
    """Set input dims with set-shape's engine: constants that carried an old static dim follow the new one
    (re-batching), or the edit is refused naming the node; declared shapes downstream are recomputed."""
    from graphsurgeon.verbs.shape import change_shapes

    change_shapes(ctx, inputs=shapes)
    _forget_stale_value_info(ctx)


def _forget_stale_value_info(model: Editor) -> None:
    """value_info recorded for the old input shapes would contradict the new ones: let inference redo it."""
    graph = model.proto.graph
    for vi in graph.value_info:
        if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            if any(not d.HasField("dim_value") for d in dims):
                vi.type.tensor_type.ClearField("shape")


def _size(model: Editor) -> tuple[int, int]:
    """Nodes and initializers in every graph and function (cheap: the index already holds them)."""
    nodes = initializers = 0
    for scope in model.index.scopes:
        nodes += len(scope.container.node)
        initializers += len(scope.initializers)
    return nodes, initializers


@verb(writes=True, preserves_meaning=True)
def simplify(
    ctx: Editor,
    *,
    input_shape: Annotated[
        dict[str, Dims],
        Opt(
            "fix an input's dims first, e.g. x:1,3,224,224 (repeat for several inputs)",
            metavar="NAME:DIMS",
            entry=parse_input_shape,
        ),
    ] = {},  # noqa: B006 - never mutated
    size_limit: Annotated[
        int, Opt("largest new constant folding may create (see fold-constants)", metavar="BYTES", size=True)
    ] = DEFAULT_SIZE_LIMIT,
) -> None:
    """Shape inference, constant folding, dead code, no-op elimination and CSE, to a fixed point.

    Inputs, outputs, their names and the metadata stay; `input_shape` fixes symbolic dims first.
    """
    start_nodes = Counter(n.name or n.op_type for _, n in ctx.index.find_nodes())
    start_count = len(ctx.proto.graph.node)
    if input_shape:
        fix_input_shapes(ctx, input_shape)
    total = FoldReport()
    noops = cse = rounds = fused = 0
    applied: dict[str, int] = {}  # pattern -> times applied
    last: FoldReport | None = None
    mark = len(ctx.changes)
    # Shape knowledge stays valid across meaning-preserving edits (a surviving name keeps its value), so it is
    # computed once per round and again only when folding changed the model; the rewrites after folding can
    # reveal more (a constant Reshape target, symbols merged by CSE), so a round that made any invalidates it.
    shapes: ShapeInfo | None = None
    with ctx.quietly():
        for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 - reported below
            before = _size(ctx)
            shapes = shapes if shapes is not None else ShapeInfo(ctx)
            report = fold(ctx, size_limit=size_limit, shapes=shapes)
            last = report
            total.folded += report.folded
            total.initializers += report.initializers
            total.ifs_inlined += report.ifs_inlined
            total.sessions += report.sessions
            if report.changed():
                shapes = ShapeInfo(ctx)
            removed_noops = eliminate_noops(ctx, shapes)
            fused_now = fuse_layout_chains(ctx, shapes) + fuse_matmul_add(ctx, shapes)
            applied_now = run_patterns(ctx, shapes)
            for name, count in applied_now.items():
                applied[name] = applied.get(name, 0) + count
                fused_now += count
            fused += fused_now
            removed_noops += fused_now
            merged = merge_equal_shape_values(ctx, shapes) if not removed_noops else 0
            merged += eliminate_common_subexpressions(ctx)
            noops += removed_noops
            cse += merged
            cleanup.__verb__.run(ctx)  # type: ignore[attr-defined]
            if _REVEALING.intersection(applied_now):  # a new constant (Reshape target, condition): infer again
                shapes = None
            elif removed_noops or merged:  # rewires only: inferred types hold, partial values follow anew
                shapes = ShapeInfo(ctx, reuse=shapes)
            if _size(ctx) == before and not (report.changed() or removed_noops or merged):
                break
    del ctx.changes.records[mark:]  # folding's own per-node records: simplify reports in its own terms
    removed = start_nodes - Counter(n.name or n.op_type for _, n in ctx.index.find_nodes())
    for label, count in removed.items():
        for _ in range(count):
            ctx.changes.record("removed", "node", label)
    ctx.changes.record(
        "summary",
        "simplify",
        "",
        f"{start_count} -> {len(ctx.proto.graph.node)} nodes in the main graph after {rounds} round(s): "
        f"folded {total.folded} node(s) ({total.sessions} onnxruntime session(s)), inlined {total.ifs_inlined} "
        f"If(s), removed {noops - fused} no-op(s), fused {fused} chain(s) (layout, MatMul+Add, patterns), "
        f"merged {cse} common subexpression(s)",
    )
    if applied:
        shown = ", ".join(f"{name} x{count}" for name, count in sorted(applied.items()))
        ctx.changes.record("summary", "patterns", "", f"applied {shown}")
    if last is not None:
        for unfolded in last.unfolded:
            ctx.changes.record("left unfolded", "node", unfolded.name, unfolded.summary())


__all__ = ["simplify", "fix_input_shapes", "parse_input_shape"]
