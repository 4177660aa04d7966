"""Applying a fold plan to the model through the editing API: planned nodes go, kept values become
initializers (Constant nodes inside functions), and initializers only the removed nodes read are dropped."""

from __future__ import annotations

from onnx import helper

from graphsurgeon.core.constants import is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes
from graphsurgeon.verbs.fold.evaluate import free_reads
from graphsurgeon.verbs.fold.plan import Plan
from graphsurgeon.verbs.fold.report import FoldReport


def apply_plan(
    ctx: Editor, plan: Plan, materialized, report: FoldReport, evaluators, aliases, *, record_nodes: bool = True
) -> int:
    """Edit the model as planned; returns how many nodes were folded away (each recorded if `record_nodes`)."""
    index = ctx.index
    removed_count = 0
    dying: dict[int, set[str]] = {}
    alias_targets = {target for mapping in aliases.values() for target in mapping.values()}
    scopes = list(index.scopes)
    for scope in scopes:
        mapping = aliases.get(id(scope))
        if mapping:
            ctx.replace_uses(mapping, scope=scope)
            report.aliased += len(mapping)
    for scope in scopes:
        planned = plan.order.get(id(scope))
        if not planned:
            continue
        removed = [n for n in planned if plan.is_removed(n)]
        # initializers read only by removed nodes
        candidates = {r for n in removed for r in free_reads(n, plan.implicit(scope, n))}
        for r in candidates:
            home = scope.resolve(r)
            if home is None or home.is_function or r not in home.initializers or r in home.inputs or r in home.outputs:
                continue
            if r in alias_targets:
                continue
            if all(plan.is_removed(reader) for reader in home.readers(r)):
                dying.setdefault(id(home), set()).add(r)
        new = [(name, t) for (sid, name), t in materialized.items() if sid == id(scope)]
        for name, t in new:
            producer = scope.producer.get(name)
            if (
                producer is not None
                and is_constant_node(producer)
                and plan.fold.get(id(producer), ("", "", ""))[2] == "const"
            ):
                report.constants_moved += 1
            else:
                report.initializers += 1
                report.new_bytes += declared_nbytes(t) or 0
        if record_nodes:
            for node in removed:
                ctx.changes.record("folded", "node", node.name or node.op_type)
        ctx.remove_nodes(removed, scope=scope)
        if plan.keeps_constant_nodes(scope):
            ctx.insert_nodes(scope, 0, [helper.make_node("Constant", [], [name], value=t) for name, t in new])
        else:
            for name, t in new:
                ctx.add_initializer(name, t, scope=scope)
        removed_count += len(removed)
    by_id = {id(s): s for s in scopes}
    for sid, names in dying.items():
        scope = by_id[sid]
        report.freed_bytes += sum(declared_nbytes(scope.initializers[n]) or 0 for n in names if n in scope.initializers)
        report.removed_initializers += len(names)
        ctx.remove_initializers(names, scope=scope)
    for ev in evaluators.values():
        report.sessions += ev.sessions
        report.reference_runs += ev.reference_runs
    report.folded += removed_count
    return removed_count
