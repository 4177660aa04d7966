"""One plan / evaluate / edit round of constant folding, and the pieces evaluation needs: reading planned
values, deduplicating equal results, re-evaluating a value a kept node still reads."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Set as AbstractSet

import numpy as np
from onnx import FunctionProto, NodeProto, TensorProto

from graphsurgeon.core.constants import constant_tensor
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import inline_problem, is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.fold.edit import apply_plan
from graphsurgeon.verbs.fold.evaluate import Evaluator, free_reads, tensor_from_array
from graphsurgeon.verbs.fold.materialize import Materializer, ValueReader, relocate_survivors
from graphsurgeon.verbs.fold.plan import Plan, scope_label
from graphsurgeon.verbs.fold.report import FoldReport, Unfolded
from graphsurgeon.verbs.fold.shapes import ShapeInfo

_INLINE_CONSTANT = 1 << 20  # inline constants up to this size go into a session as initializers, not feeds


def _partial_value(plan: Plan, scope: Scope, name: str) -> np.ndarray:
    value = plan.shapes.value(scope, name)
    assert value is not None and value.is_static()
    return value.array()


def run_round(
    model: Editor,
    report: FoldReport,
    *,
    size_limit: int,
    exclude: set[int],
    fold_qdq: bool,
    batch_bytes: int,
    shapes: ShapeInfo | None = None,
    record_nodes: bool = True,
    orders: dict[int, list[NodeProto]] | None = None,
):
    """One plan/evaluate/edit round. Returns the number of nodes removed. `shapes`: still valid knowledge (the
    model changed since only by meaning-preserving edits that keep every surviving name's value);
    `record_nodes`: record each folded node (simplify reports removed nodes itself); `orders`: each scope's
    topological order, if known for the graph as it is (the walk that computed `shapes` had it)."""
    shapes = shapes if shapes is not None else ShapeInfo(model)
    plan = Plan(model, shapes, size_limit=size_limit, exclude=exclude, fold_qdq=fold_qdq, orders=orders)
    plan.build()
    report.unfolded.extend(plan.unfolded)
    if not plan.fold:
        return 0
    index = model.index
    reader = ValueReader(model.external_data_dir)
    writer = Materializer(model)
    materialized: dict[tuple[int, str], TensorProto] = {}  # (id(scope), name) -> tensor
    aliases: dict[int, dict[str, str]] = {}  # id(scope) -> {folded value: equal constant it now reads}
    seen: dict[tuple, str] = {}  # content key -> first materialized name (per scope, in the key)
    failed: set[tuple[int, str]] = set()
    evaluators: dict[int, Evaluator] = {}

    def evaluator_for(scope: Scope) -> Evaluator:
        root = scope
        while root.parent is not None:
            root = root.parent
        if id(root) not in evaluators:
            if isinstance(root.container, FunctionProto):
                evaluators[id(root)] = Evaluator(model.proto, opset_import=list(root.container.opset_import))
            else:
                evaluators[id(root)] = Evaluator(model.proto)
        return evaluators[id(root)]

    progress = contextlib.ExitStack()
    try:
        for scope in index.scopes:
            planned = plan.order.get(id(scope))
            if not planned:
                continue
            retained: dict[str, np.ndarray] = {}

            def get(name: str, scope: Scope = scope, retained: dict = retained) -> np.ndarray:
                if name in retained:
                    return retained[name]
                home = scope.resolve(name)
                assert home is not None, name
                key = (id(home), name)
                if key in materialized:
                    writer.flush()
                    return reader.read(materialized[key])
                if name in home.initializers:
                    return reader.read(home.initializers[name])
                producer = home.producer[name]
                entry = plan.fold.get(id(producer))
                kind = entry[2] if entry is not None else "const"
                if kind == "const":
                    constant = constant_tensor(producer, name)
                    assert constant is not None  # only Constants with a value are read as "const"
                    return reader.read(constant)
                if kind == "partial":
                    return _partial_value(plan, home, name)
                raise KeyError(f"value {name!r} of {home.name} was not evaluated")  # a bug if reached

            def get_tensor(name: str, scope: Scope = scope, retained: dict = retained) -> TensorProto | None:
                """Small inline constants, as they are (the session holds them as initializers)."""
                if name in retained:
                    return None
                home = scope.resolve(name)
                tensor = None
                if home is not None and (id(home), name) in materialized:
                    tensor = materialized[(id(home), name)]
                elif home is not None and name in home.initializers:
                    tensor = home.initializers[name]
                elif home is not None and name in home.producer:
                    producer = home.producer[name]
                    entry = plan.fold.get(id(producer))
                    if entry is None or entry[2] == "const":
                        tensor = constant_tensor(producer, name)
                if tensor is None or is_external(tensor) or tensor.ByteSize() > _INLINE_CONSTANT:
                    return None
                problem = inline_problem(tensor)
                if problem:  # onnxruntime and the reference evaluator would fail on it with no clear word
                    raise RewriteError(f"cannot fold: {problem}")
                if tensor.name != name:
                    renamed = TensorProto()
                    renamed.CopyFrom(tensor)
                    renamed.name = name
                    return renamed
                return tensor

            def keep(name: str, value: np.ndarray, scope: Scope = scope, retained: dict = retained) -> None:
                producer = scope.producer.get(name)
                key = (id(scope), name)
                if producer is not None and plan.is_removed(producer) and plan.is_frontier(scope, name):
                    if key not in materialized and not _alias_instead(
                        plan, scope, producer, name, value, aliases, seen, get
                    ):
                        materialized[key] = writer.tensor(name, value)
                if any(id(r) in plan.fold for r in scope.readers(name)):
                    retained[name] = value

            # python-computed values first (Constants, static shape values): no session needed
            batch: list[NodeProto] = []
            batch_size = 0
            batches: list[list[NodeProto]] = []
            # a node kept in the graph (size limit) is evaluated only if a node that folds reads it
            wanted_ids: set[int] | None = None  # None: every planned node (none is kept)
            if any(id(node) in plan.kept for node in planned):
                wanted_ids = set()
                for node in reversed(planned):
                    if plan.is_removed(node) or any(
                        id(r) in wanted_ids for o in node.output if o for r in scope.readers(o)
                    ):
                        wanted_ids.add(id(node))
            for node in planned:
                if wanted_ids is not None and id(node) not in wanted_ids:
                    continue
                kind = plan.fold[id(node)][2]
                if kind in ("const", "partial"):
                    name = node.output[0]
                    if plan.is_frontier(scope, name):
                        if kind == "const":
                            tensor = constant_tensor(node, name)
                            assert tensor is not None  # planned "const" only when it has a value
                            materialized[(id(scope), name)] = tensor
                        else:
                            materialized[(id(scope), name)] = tensor_from_array(name, get(name))
                    continue
                size = sum(plan.value_nbytes(scope, node, kind, o) or 0 for o in node.output if o)
                size += plan.initializer_reads_nbytes(scope, node)
                if batch and batch_size + size > batch_bytes:
                    batches.append(batch)
                    batch, batch_size = [], 0
                batch.append(node)
                batch_size += size
            if batch:
                batches.append(batch)

            def prefetch(nodes: list[NodeProto], scope: Scope = scope) -> None:
                if not writer.external:
                    return  # no weight in external data: nothing to ask the kernel for
                for node in nodes:
                    for r in free_reads(node, plan.implicit(scope, node)):
                        home = scope.resolve(r)
                        if home is not None and r in home.initializers:
                            reader.prefetch(home.initializers[r])

            if batches:
                prefetch(batches[0])
            task = progress.enter_context(model.progress.task(f"folding {scope.display_name}", total=len(batches)))
            for position, nodes in enumerate(batches):
                if position + 1 < len(batches):
                    prefetch(batches[position + 1])
                ids = {id(n) for n in nodes}

                def needed_after(name: str, batch_ids: set[int], scope: Scope = scope) -> bool:
                    if name in scope.outputs:
                        return True
                    return any(id(r) not in batch_ids for r in scope.readers(name))

                def on_failure(node: NodeProto, reason: str, scope: Scope = scope) -> None:
                    plan.kept.add(id(node))
                    failed.update((id(scope), o) for o in node.output if o)
                    report.unfolded.append(Unfolded(node.op_type, node.name, scope_label(scope), reason, False))

                def is_failed_read(name: str, scope: Scope = scope) -> bool:
                    home = scope.resolve(name)
                    return home is not None and (id(home), name) in failed

                ready = [] if failed else nodes
                for node in nodes if failed else ():
                    bad = next((r for r in free_reads(node, plan.implicit(scope, node)) if is_failed_read(r)), None)
                    if bad is not None:
                        on_failure(node, f"reads {bad!r}, which could not be folded")
                    else:
                        ready.append(node)

                def implicit(node: NodeProto, scope: Scope = scope) -> AbstractSet[str]:
                    return plan.implicit(scope, node)

                results = evaluator_for(scope).evaluate(ready, implicit, get, needed_after, on_failure, get_tensor)
                del ids
                for name, value in results.items():
                    keep(name, value)
                del results
                task.advance()
            # values that nodes kept in the graph (failed, or over the size limit) still read
            _materialize_late(plan, scope, planned, materialized, get, writer)
        removed = apply_plan(model, plan, materialized, report, evaluators, aliases, record_nodes=record_nodes)
        if writer.external and writer.location is not None:
            report.relocated += relocate_survivors(model, writer)
    finally:
        progress.close()
        writer.close()
    return removed


def _materialize_late(plan: Plan, scope: Scope, planned, materialized, get, writer) -> None:
    for node in planned:
        if id(node) not in plan.kept:
            continue
        for r in free_reads(node, plan.implicit(scope, node)):
            home = scope.resolve(r)
            if home is None or (id(home), r) in materialized:
                continue
            producer = home.producer.get(r)
            if producer is None or not plan.is_removed(producer):
                continue
            try:
                value = get(r)
            except KeyError:
                value = _recompute(plan, home, r, get)
            materialized[(id(home), r)] = writer.tensor(r, value)


def _recompute(plan: Plan, scope: Scope, name: str, get) -> np.ndarray:
    """Evaluate the planned cone ending at `name` again (a value a kept node reads but nobody fetched)."""
    cone: set[int] = set()
    stack = [scope.producer[name]]
    while stack:
        node = stack.pop()
        if id(node) in cone:
            continue
        cone.add(id(node))
        for r in free_reads(node, plan.implicit(scope, node)):
            producer = scope.producer.get(r)
            if producer is not None and plan.fold.get(id(producer), (0, 0, ""))[2] == "eval":
                stack.append(producer)
    nodes = [n for n in plan.order[id(scope)] if id(n) in cone]
    failures: list[str] = []
    results = Evaluator(plan.model.proto).evaluate(
        nodes,
        lambda n: plan.implicit(scope, n),
        get,
        lambda o, ids: o == name,
        lambda n, reason: failures.append(reason),
    )
    if name not in results:
        raise RewriteError(f"could not re-evaluate {name!r}: {'; '.join(failures)}")
    return results[name]


def _alias_instead(plan: Plan, scope: Scope, producer: NodeProto, name: str, value, aliases, seen, reread) -> bool:
    """Should readers of the folded value `name` read an equal constant instead of a new copy?

    An Identity of a constant (how exporters share weights between layers) reads its input; a value equal
    to one already materialized in this fold reads that one. Never for a graph output (its name must stay).
    """
    if name in scope.outputs:
        return False
    if producer.op_type == "Identity" and producer.domain in ("", "ai.onnx"):
        source = producer.input[0]
        home = scope.resolve(source)
        if home is not None and source in home.initializers and source not in home.inputs:
            aliases.setdefault(id(scope), {})[name] = source
            return True
    if not isinstance(value, np.ndarray) or value.dtype == object:
        return False
    key = (id(scope), str(value.dtype), value.shape, _fingerprint(value))
    first = seen.get(key)
    if first is None:
        seen[key] = (name, value if value.nbytes <= _KEEP_FOR_COMPARE else None)
        return False
    first_name, first_value = first
    if first_value is None:
        first_value = reread(first_name)
    if not np.array_equal(first_value, value, equal_nan=value.dtype.kind in "fc"):
        return False
    aliases.setdefault(id(scope), {})[name] = first_name
    return True


_KEEP_FOR_COMPARE = 1 << 16


def _fingerprint(value: np.ndarray) -> bytes:
    """A cheap content key: a hash of the whole value when small, of 64 evenly spread 64-byte pieces otherwise."""
    raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
    if raw.size <= 1 << 16:
        return hashlib.blake2b(raw.data, digest_size=16).digest()
    step = raw.size // 64
    pieces = b"".join(raw[i * step : i * step + 64].tobytes() for i in range(64)) + raw[-64:].tobytes()
    return hashlib.blake2b(pieces, digest_size=16).digest()
