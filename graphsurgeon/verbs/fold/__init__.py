"""fold-constants: evaluate every node whose inputs are all known and replace its outputs with initializers.

Plan, evaluate, edit — each step linear in the graph:

1. *Plan.* Walk every scope (main graph, If/Loop/Scan bodies, model-local functions), outer scopes first,
   in topological order. A value is known if it is an initializer (not overridable by a graph input), a
   Constant's output, the output of a planned node, or — from onnx's shape inference and our own shape
   propagation (:mod:`._fold_shapes`) — a Shape-derived tensor whose dims are static. A node whose reads
   (inputs, and what its subgraphs read from outside) are all known is planned, unless policy says no:
   random ops, Quantize/DequantizeLinear (by default), ``exclude`` selectors, non-tensor outputs. A planned
   node whose output must be kept (read by a node that stays, or a graph output) and would be above the
   size limit stays in the graph unless the inputs it frees are at least as big (a Transpose or Cast of a
   weight used only there) — so the model never grows by a tensor above the limit.
2. *Evaluate.* Planned nodes go to onnxruntime in as few sessions as possible (one per batch of at most
   ``batch_bytes`` of tensors; ``_fold_eval`` splits a batch that fails down to the bad nodes and retries
   those with onnx's reference evaluator). Inputs are read tensor by tensor (external data memory-mapped),
   results go straight to initializers — into a new external data file when the model keeps its weights
   externally — so memory holds one batch at a time.
3. *Edit.* Planned nodes are removed (those kept for size stay), kept values become initializers (Constant
   nodes inside functions), the initializers only they read are dropped, and an If whose condition became
   constant is replaced by its branch; then the pass repeats while such an If was inlined.

Nodes with known inputs that are not folded are reported with a reason; with ``strict`` a node that *could
not* be folded (as opposed to one policy keeps) is an error.
"""

from __future__ import annotations

from typing import Annotated

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.fold.plan import select_excluded
from graphsurgeon.verbs.fold.report import FoldReport
from graphsurgeon.verbs.fold.run import run_round
from graphsurgeon.verbs.fold.shapes import ShapeInfo

DEFAULT_SIZE_LIMIT = 1 << 20
BATCH_BYTES = 64 << 20  # tensors (read and produced) per onnxruntime session: bounds peak memory


def fold(
    ctx: Editor,
    *,
    size_limit: int = DEFAULT_SIZE_LIMIT,
    exclude: list[str] | tuple[str, ...] = (),
    fold_qdq: bool = False,
    batch_bytes: int = BATCH_BYTES,
    shapes: ShapeInfo | None = None,
    checked: bool = False,
    record_nodes: bool = True,
    current: bool = False,
) -> FoldReport:
    """Fold to a fixed point (rounds repeat while an If with a constant condition was inlined); the report
    says what was done and which nodes were left unfolded and why. Edits record nothing but, with
    `record_nodes`, one "folded" record per node removed. `shapes`: knowledge computed earlier and still valid
    (only meaning-preserving edits since), or None; `current`: `shapes` was computed on the graph as it is (no
    edit since), so its walk's node order serves too. `checked`: the caller already ran check_references and
    edited only through the Editor since (simplify's later rounds)."""
    from graphsurgeon.verbs.fold.if_inline import inline_constant_ifs

    if size_limit < 0:
        raise RewriteError(f"size limit must be >= 0 bytes, not {size_limit}")
    if not checked:
        ctx.index.check_references()
    if not ctx.index.main.outputs and any(True for _ in ctx.index.main.nodes):
        raise RewriteError(
            "the model has no graph output, so nothing it computes is kept: folding would empty it; "
            "declare the outputs first (add-outputs)"
        )
    excluded = select_excluded(ctx, exclude)
    report = FoldReport()
    for _ in range(64):
        report.unfolded.clear()
        run_round(
            ctx,
            report,
            size_limit=size_limit,
            exclude=excluded,
            fold_qdq=fold_qdq,
            batch_bytes=batch_bytes,
            shapes=shapes,
            record_nodes=record_nodes,
            orders=shapes.orders if current and shapes is not None else None,
        )
        shapes = None  # the next pass (after an If was inlined) infers again
        inlined = inline_constant_ifs(ctx)
        report.ifs_inlined += inlined
        if not inlined:
            break
        excluded = select_excluded(ctx, exclude) if exclude else set()
    _dedupe_unfolded(report)
    return report


@verb(writes=True, preserves_meaning=True)
def fold_constants(
    ctx: Editor,
    *,
    size_limit: Annotated[
        int,
        Opt(
            "never materialise a new tensor above this size unless the inputs it frees are as big (default: 1 MiB)",
            metavar="BYTES",
            size=True,
        ),
    ] = DEFAULT_SIZE_LIMIT,
    exclude: Annotated[list[str], Opt("nodes never to fold (name, op type or glob)", metavar="SEL")] = [],  # noqa: B006 - never mutated
    strict: Annotated[bool, Opt("fail if a node with constant inputs cannot be folded")] = False,
    fold_qdq: Annotated[bool, Opt("fold QuantizeLinear/DequantizeLinear too")] = False,
) -> None:
    """Evaluate nodes whose inputs are all known (incl. static shape arithmetic); outputs become initializers.

    Nodes that cannot be folded are reported with their reason; `strict` makes that an error.
    """
    with ctx.quietly():
        report = fold(ctx, size_limit=size_limit, exclude=exclude, fold_qdq=fold_qdq)
    record_report(ctx, report)
    if strict and report.failures:
        shown = "; ".join(str(u) for u in report.failures[:10])
        more = f" (and {len(report.failures) - 10} more)" if len(report.failures) > 10 else ""
        raise RewriteError(f"{len(report.failures)} node(s) with constant inputs could not be folded: {shown}{more}")


def record_report(ctx: Editor, report: FoldReport) -> None:
    """The report as change records (its summary, and each node left unfolded) and notes."""
    lines = report.lines()
    ctx.changes.record("summary", "fold", "", lines[0].removeprefix("fold-constants: "))
    if report.relocated:
        ctx.changes.record("relocated", "tensors", "", lines[1].removeprefix("fold-constants: "))
    for unfolded in report.unfolded:
        ctx.changes.record("left unfolded", "node", unfolded.name, unfolded.summary())
    if not report.changed():
        ctx.note(_why_nothing_folded(ctx))


def _why_nothing_folded(ctx: Editor) -> str:
    main = ctx.index.main
    overridable = [n for n in main.initializers if n in main.inputs]
    if overridable and len(overridable) == len(main.initializers):
        return (
            f"all {len(overridable)} initializers are also graph inputs (IR < 4 style), so they are not "
            "constants: a caller may override them"
        )
    return "no node has only constant inputs" + (
        f" ({len(overridable)} initializers are also graph inputs, so not constants)" if overridable else ""
    )


def _dedupe_unfolded(report: FoldReport) -> None:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for u in report.unfolded:
        key = (u.op, u.name, u.scope)
        if key not in seen:
            seen.add(key)
            unique.append(u)
    report.unfolded = unique
