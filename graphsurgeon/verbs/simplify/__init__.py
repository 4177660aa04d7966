"""simplify: what users expect from onnxsim / onnxslim, to a fixed point.

Each round: constant folding (with static and symbolic shape reasoning, If inlining; see fold_constants),
no-op elimination (noops.py: Identity, Dropout in inference, Cast to the same type, Reshape/Expand to the same
shape, identity Transpose, whole-tensor Slice, zero Pad, x+0, x*1, ...), fusions (fusions.py: layout chains,
MatMul+Add -> Gemm; and the patterns in simplify/patterns/: Conv+BatchNormalization, Conv+bias Add, nested Ifs
on one condition, Reshape targets in 0/-1 form, Reshape pairs around elementwise ops, consecutive Slices),
common-subexpression elimination (rewrites.py: nodes and identical small initializers), then cleanup (dead
nodes, initializers, value_info, functions). Rounds repeat until one changes nothing, or until one provably
settled (see `_settled`: the confirming round would change nothing). Graph inputs, outputs, their names and
the model's metadata are kept. `input_shape` ({name: dims} or "NAME:DIMS" strings) fixes symbolic input dims
first, so shape arithmetic on them folds.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from graphsurgeon.core.collector import collector_paused
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.cleanup import cleanup
from graphsurgeon.verbs.fold import DEFAULT_SIZE_LIMIT, fold
from graphsurgeon.verbs.fold.report import FoldReport
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.fusions import absorb_gemm_transposes, fuse_layout_chains, fuse_matmul_add
from graphsurgeon.verbs.simplify.noops import eliminate_noops
from graphsurgeon.verbs.simplify.patterns import run_patterns
from graphsurgeon.verbs.simplify.rewrites import (
    NodeOrder,
    eliminate_common_subexpressions,
    merge_equal_shape_values,
)

MAX_ROUNDS = 32
SKIP_SETTLED_ROUND = True  # (tests turn it off to prove the skipped round would have changed nothing)
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


def _settled(
    report: FoldReport,
    fused: int,
    merged_values: int | None,
    counts: dict[str, int],
    before_cleanup: tuple[int, int],
    after_cleanup: tuple[int, int],
    shapes: ShapeInfo | None,
) -> bool:
    """Would another round change nothing, although this one did? True when (besides folding having taught
    shape knowledge nothing new: the caller checks) this round only removed no-ops that pass a computed
    value through and merged duplicate initializers: then every node reads values that were just as
    (un)known, knowledge is the same everywhere (`shapes.changes == 0`), no reader count fell (no node merged,
    fused or left dead), and the shape-value merge had nothing to merge. So the confirming round, a full pass
    of every rewrite, is skipped."""
    if report.ifs_inlined or report.unfolded or fused or merged_values or counts:
        return False
    if after_cleanup[0] != before_cleanup[0] or shapes is None or shapes.changes != 0:
        return False
    if merged_values is None:  # not tried this round: only when no partial value holds a symbol
        return all(p.is_static() for p in shapes.partial.values())
    return True


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
    # Shape knowledge stays valid across meaning-preserving edits (a surviving name keeps its value): onnx's
    # inference runs once, and again only when an inlined If brought new nodes or a pattern made a constant
    # inference can use; otherwise partial values and derived dims are propagated anew over the inferred types
    # after folding (new constants) and after rewrites (symbols merged by CSE).
    shapes: ShapeInfo | None = None
    current = False  # was `shapes` computed on the graph as it is (so its walk's node order serves too)?
    with ctx.quietly(), collector_paused():
        for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 - reported below
            before = _size(ctx)
            if shapes is None:
                shapes, current = ShapeInfo(ctx), True
            # Gemm first: a Linear's transposed weight becomes transB, not a new constant folding would write
            fused_first = fuse_matmul_add(ctx, shapes) + absorb_gemm_transposes(ctx, shapes)
            current = current and not fused_first
            report = fold(
                ctx, size_limit=size_limit, shapes=shapes, current=current, checked=rounds > 1, record_nodes=False
            )
            last = report
            total.folded += report.folded
            total.initializers += report.initializers
            total.ifs_inlined += report.ifs_inlined
            total.sessions += report.sessions
            learned: int | None = 0  # names whose knowledge folding changed (None: unknown)
            if report.ifs_inlined:  # nodes from the branches: infer them
                shapes, current = ShapeInfo(ctx), True
                learned = None
            elif report.changed():  # folded values are now constants: propagate them (inferred types hold)
                shapes, current = ShapeInfo(ctx, reuse=shapes), True
                learned = shapes.changes
            order = NodeOrder(ctx, shapes.orders if current else None)  # one sort for this round's rewrites
            counts: dict[str, int] = {}
            removed_noops = eliminate_noops(ctx, shapes, order, counts)
            fused_now = fused_first + fuse_layout_chains(ctx, shapes, order) + fuse_matmul_add(ctx, shapes, order)
            fused_now += absorb_gemm_transposes(ctx, shapes)
            applied_now = run_patterns(ctx, shapes)
            for name, count in applied_now.items():
                applied[name] = applied.get(name, 0) + count
                fused_now += count
            fused += fused_now
            removed_noops += fused_now
            merged_values = merge_equal_shape_values(ctx, shapes, order) if not removed_noops else None
            merged = (merged_values or 0) + eliminate_common_subexpressions(ctx, order, counts)
            noops += removed_noops
            cse += merged
            edited = _size(ctx)
            cleanup.__verb__.run(ctx)  # type: ignore[attr-defined]
            current = False
            if _REVEALING.intersection(applied_now):  # a new constant (Reshape target, condition): infer again
                shapes = None
            elif removed_noops or merged:  # rewires only: inferred types hold, partial values follow anew
                shapes, current = ShapeInfo(ctx, reuse=shapes), True
            if _size(ctx) == before and not (report.changed() or removed_noops or merged):
                break
            if (
                SKIP_SETTLED_ROUND
                and learned == 0
                and _settled(report, fused_now, merged_values, counts, edited, _size(ctx), shapes)
            ):
                break
    del ctx.changes.records[mark:]  # anything recorded meanwhile: simplify reports in its own terms
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
