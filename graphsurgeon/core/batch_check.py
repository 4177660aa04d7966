"""Verifying a shape edit: a freed batch is checked slice by slice, any other changed dim at one shape.

For a model exported at batch B whose edit made the batch free (make-dynamic, set-shape), the result at batch
N must give what the original gives on consecutive batch-B slices of the same inputs, concatenated along each
output's batch axis (the last slice is completed with extra items whose outputs are dropped). That holds for
any model whose items are independent and whose outputs carry the batch on one axis; it needs nothing else.

A shape edit records what it did as a :class:`ShapeEdit` (``ctx.shape_edit``); :func:`compare_edit` is the
verify step: :func:`compare_batches` when the edit freed a batch, else ``compare_models`` at a shape both
models take (the exported one, or the one the result fixed), with a note saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from graphsurgeon.core.numeric import (
    ATOL,
    RTOL,
    RUNS,
    CompareReport,
    Feeds,
    OutputComparison,
    Runnable,
    _compare,
    _merge,
    _session,
    compare_models,
    random_feeds,
)
from graphsurgeon.core.runtime import first_line
from graphsurgeon.errors import GraphSurgeonError

Dim = int | str | None  # a value, a symbol, or unknown


@dataclass(frozen=True)
class ResizedDim:
    """One graph input dim a shape edit changed."""

    input: str
    axis: int
    before: Dim
    after: Dim

    def __str__(self) -> str:
        shown = ["?" if d is None else repr(d) if isinstance(d, str) else str(d) for d in (self.before, self.after)]
        return f"axis {self.axis} of {self.input!r} ({shown[0]} -> {shown[1]})"


@dataclass(frozen=True)
class BatchAxes:
    """A batch the edit freed: its exported size, its axis on each input and output, the sizes the result
    takes (empty: any)."""

    exported: int
    inputs: Mapping[str, int]
    outputs: Mapping[str, int]
    fixed: tuple[int, ...] = ()

    def sizes(self) -> list[int]:
        """What verify runs: the fixed size, else 1 (a part of a slice) and 2B+1 (whole slices and a part)."""
        return list(self.fixed) if self.fixed else sorted({1, 2 * self.exported + 1})


@dataclass
class ShapeEdit:
    """What a shape edit did to the interface, for verify: the dims it changed and, when they are one batch
    (items independent, outputs carrying it on one axis), its axes; else why they are not."""

    dims: list[ResizedDim] = field(default_factory=list)
    batch: BatchAxes | None = None
    not_batch: str = ""


@dataclass
class SizeResult:
    """The result at one batch size against the original run slice by slice."""

    size: int
    ok: bool
    problem: str = ""
    max_abs: float = 0.0


@dataclass
class BatchCompareReport(CompareReport):
    """A CompareReport whose runs were at other batch sizes than the original's, checked slice by slice."""

    exported: int = 0
    inputs: dict[str, int] = field(default_factory=dict)
    outputs_axes: dict[str, int] = field(default_factory=dict)
    sizes: list[SizeResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        batch = {
            "exported": self.exported,
            "sizes": [s.size for s in self.sizes],
            "inputs": self.inputs,
            "outputs": self.outputs_axes,
            "results": [asdict(s) for s in self.sizes],
        }
        return super().to_dict() | {"batch": batch}


def compare_edit(
    original: Runnable,
    result: Runnable,
    edit: ShapeEdit | None,
    *,
    feeds: Feeds | None = None,
    runs: int = RUNS,
    rtol: float = RTOL,
    atol: float = ATOL,
    result_defaults: Mapping[str, Callable[[], np.ndarray]] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> CompareReport:
    """The verify step of any edit: per batch slice when `edit` freed a batch, else at one shape both take."""

    def plain(given: Feeds | None) -> CompareReport:
        return compare_models(
            original, result, feeds=given, runs=runs, rtol=rtol, atol=atol, result_defaults=result_defaults,
            renamed=renamed,
        )  # fmt: skip

    if edit is None or not edit.dims:
        return plain(feeds)
    mixing = items_mix(original, edit.batch, feeds, rtol, atol) if edit.batch is not None else None
    if edit.batch is not None and mixing is None:
        return compare_batches(
            original, result, edit.batch, feeds=feeds, runs=runs, rtol=rtol, atol=atol,
            result_defaults=result_defaults, renamed=renamed,
        )  # fmt: skip
    changed = ", ".join(str(d) for d in edit.dims[:4]) + (", ..." if len(edit.dims) > 4 else "")
    reason = mixing or edit.not_batch  # items that are not independent: checked as any other changed dim
    why = f": {reason}" if reason else ""
    clash = next((d for d in edit.dims if isinstance(d.before, int) and isinstance(d.after, int)), None)
    if clash is not None:
        report = CompareReport(runs, rtol, atol)
        report.error = (
            f"the original and the result take different fixed sizes on {clash}, which cannot be checked per "
            f"batch slice{why}; no input fits both"
        )
        return report
    pinned = {d.input for d in edit.dims if isinstance(d.after, int)}
    given = dict(feeds or {})
    if pinned - set(given):
        try:
            made = random_feeds(result.graph(), given=given)
        except GraphSurgeonError as e:  # an input random values cannot stand for: said in the report
            report = CompareReport(runs, rtol, atol)
            report.error = str(e)
            return report
        given |= {name: made[name] for name in pinned if name not in given}
    report = plain(given or None)
    shape = "the shape the result fixed" if pinned else "the exported shape"
    report.notes.append(f"compared at {shape} only, not per batch slice ({changed}){why}")
    return report


def items_mix(original: Runnable, batch: BatchAxes, feeds: Feeds | None, rtol: float, atol: float) -> str | None:
    """Why the original's items are not independent (one item's outputs change when another item's inputs
    do: a Softmax over the batch; or rotating the items does not rotate the outputs: a Trilu over the freed
    axis), which makes a per-slice check meaningless; None when they look independent or it cannot be told
    (an exported batch of 1, an original that does not run)."""
    b = batch.exported
    if b < 2 or not batch.outputs:
        return None
    try:
        graph, session = original.graph(), _session(original)
        names = [o.name for o in session.get_outputs()]
        first = random_feeds(graph, seed=0, given=dict(feeds or {}))  # as compare_batches draws its first slice
        other = random_feeds(graph, seed=12, given={k: v for k, v in first.items() if k not in batch.inputs})
        changed, rolled = dict(first), dict(first)
        for name, axis in batch.inputs.items():
            value = np.array(first[name])
            item: list[slice | int] = [slice(None)] * value.ndim
            item[axis] = 0
            value[tuple(item)] = np.asarray(other[name])[tuple(item)]
            changed[name] = value
            rolled[name] = np.roll(first[name], 1, axis=axis)
        before, after = session.run(names, first), session.run(names, changed)
        moved = session.run(names, rolled)
    except Exception:  # noqa: BLE001 - cannot tell: the per-slice check runs (and reports what fails)
        return None
    rest = np.arange(1, b)
    for name, x, y, z in zip(names, before, after, moved, strict=True):
        out_axis = batch.outputs.get(name)
        if out_axis is None or isinstance(x, list) or np.ndim(x) <= out_axis or np.shape(x)[out_axis] != b:
            continue
        if not _compare(name, np.take(x, rest, axis=out_axis), np.take(y, rest, axis=out_axis), rtol, atol).ok:
            return f"in the original, output {name!r} of one item changes when another item's inputs do"
        if not _compare(name, np.roll(x, 1, axis=out_axis), z, rtol, atol).ok:  # a Trilu over the freed axis
            return f"in the original, output {name!r} of an item depends on the item's position"
    return None


def compare_batches(
    original: Runnable,
    result: Runnable,
    batch: BatchAxes,
    *,
    sizes: Sequence[int] | None = None,
    feeds: Feeds | None = None,
    runs: int = RUNS,
    rtol: float = RTOL,
    atol: float = ATOL,
    seed: int = 0,
    result_defaults: Mapping[str, Callable[[], np.ndarray]] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> BatchCompareReport:
    """The result at each batch size against the original run on consecutive batch-B slices, concatenated.

    Every run draws new inputs (given `feeds` hold one batch-B slice: later slices roll their items); the
    original runs once per slice, the result once per size. Per output, the worst errors over all sizes.
    """
    renamed = dict(renamed or {})
    sizes = list(sizes) if sizes is not None else batch.sizes()
    b = batch.exported
    report = BatchCompareReport(
        runs, rtol, atol, exported=b, inputs=dict(batch.inputs), outputs_axes=dict(batch.outputs)
    )
    if runs < 1:
        raise GraphSurgeonError(f"runs must be at least 1, not {runs}")
    if b < 1 or not sizes or min(sizes) < 1:
        report.error = f"no batch to check (exported {b}, sizes {sizes})"
        return report
    shown = " and ".join(str(n) for n in sizes)
    report.notes.append(
        f"checked per batch slice: the result at batch {shown} against the original run on batch-{b} slices of "
        "the same inputs, concatenated"
    )
    given = dict(feeds or {})
    for name, axis in batch.inputs.items():
        if name in given and (np.ndim(given[name]) <= axis or np.shape(given[name])[axis] != b):
            report.error = f"feeds: {name!r} must hold {b} item(s) on axis {axis}, as the original takes"
            return report
    try:
        graph_a = original.graph()
        session_a = _session(original)
    except Exception as e:
        report.error = f"{original.label} cannot be loaded by onnxruntime: {first_line(e)}"
        return report
    names = [o.name for o in session_a.get_outputs()]
    results = {n: SizeResult(n, True) for n in sizes}
    report.sizes = list(results.values())
    try:
        graph_b = result.graph()
        session_b = _session(result)
    except Exception as e:
        problem = f"onnxruntime cannot load {result.label}: {first_line(e)}"
        report.outputs = [OutputComparison(n, False, problem=problem) for n in names]
        for r in report.sizes:
            r.ok, r.problem = False, problem
        return report
    inputs_b = {vi.name for vi in graph_b.graph.input} - {t.name for t in graph_b.graph.initializer}
    defaults = {name: read() for name, read in (result_defaults or {}).items() if name in inputs_b}
    merged: dict[str, OutputComparison] = {}
    for run in range(runs):
        try:
            chunks = _slices(graph_a, batch, given, math.ceil(max(sizes) / b), seed * 1000 + run * 100)
            wanted = [session_a.run(names, chunk) for chunk in chunks]
        except GraphSurgeonError as e:
            report.error = str(e)
            return report
        except Exception as e:
            report.error = f"{original.label} cannot run in onnxruntime on these inputs: {first_line(e)}"
            return report
        for n in sizes:
            used = math.ceil(n / b)
            feeds_b = {renamed.get(k, k): v for k, v in _joined(chunks[:used], batch.inputs, n).items()}
            feeds_b = {k: v for k, v in feeds_b.items() if k in inputs_b} | defaults
            found = _at_size(session_b, result.label, feeds_b, names, wanted[:used], batch, n, renamed, (rtol, atol))
            for o, comparison in found.items():
                if not comparison.ok:
                    comparison.problem = f"at batch {n}: {comparison.problem or 'values differ'}"
                    _fail(results[n], f"{o}: {comparison.problem}")
                results[n].max_abs = max(results[n].max_abs, comparison.max_abs or 0.0)
                merged[o] = _merge(merged.get(o), comparison)
    report.outputs = [merged[o] for o in names if o in merged]
    return report


def _at_size(
    session: Any,
    label: str,
    feeds: dict[str, np.ndarray],
    names: list[str],
    wanted: list[list[Any]],
    batch: BatchAxes,
    n: int,
    renamed: Mapping[str, str],
    tolerances: tuple[float, float],
) -> dict[str, OutputComparison]:
    """The result at batch `n` against the original's slice outputs `wanted`, per output of the original."""
    present = {o.name for o in session.get_outputs()}
    fetched = [o for o in names if renamed.get(o, o) in present]
    try:
        got = dict(zip(fetched, session.run([renamed.get(o, o) for o in fetched], feeds), strict=True))
    except Exception as e:
        return {o: OutputComparison(o, False, problem=f"{label} fails: {first_line(e)}") for o in names}
    out = {}
    for k, o in enumerate(names):
        want = _expected([w[k] for w in wanted], batch.outputs.get(o), n, batch.exported)
        if o not in got:
            out[o] = OutputComparison(o, False, problem=f"{label} has no output {renamed.get(o, o)!r}")
        elif want is None:
            out[o] = OutputComparison(o, False, problem="a sequence cannot be joined from batch slices")
        else:
            out[o] = _compare(o, want, got[o], *tolerances)
    return out


def _fail(result: SizeResult, problem: str) -> None:
    if result.ok:
        result.ok, result.problem = False, problem


def _slices(graph: Any, batch: BatchAxes, given: dict, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`count` input sets for the original: batched inputs differ per slice, the others are shared."""
    first = random_feeds(graph, seed=seed, given=given)
    shared = {k: v for k, v in first.items() if k not in batch.inputs}
    chunks = [first]
    for k in range(1, count):
        rolled = {n: np.roll(v, k, axis=batch.inputs[n]) for n, v in given.items() if n in batch.inputs}
        chunks.append(random_feeds(graph, seed=seed + k, given=shared | rolled))
    return chunks


def _joined(chunks: list[dict[str, np.ndarray]], axes: Mapping[str, int], n: int) -> dict[str, np.ndarray]:
    """The inputs at batch `n`: the slices' batched inputs concatenated and cut to `n` items."""
    out = {}
    for name, value in chunks[0].items():
        axis = axes.get(name)
        if axis is None:
            out[name] = value
        else:
            joined = np.concatenate([c[name] for c in chunks], axis=axis)
            out[name] = np.take(joined, np.arange(n), axis=axis)
    return out


def _expected(parts: list[Any], axis: int | None, n: int, b: int) -> Any:
    """The original's output at batch `n`: its slices' outputs concatenated on the batch axis, cut to `n`."""
    if len(parts) == 1 and n == b or axis is None:  # one whole slice (any layout), or an output without a batch
        return parts[0]
    if any(isinstance(p, list) for p in parts):
        return None
    joined = np.concatenate([np.asarray(p) for p in parts], axis=axis)
    return np.take(joined, np.arange(n), axis=axis)
