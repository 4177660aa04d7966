"""Numeric comparison of two models in onnxruntime: the engine of ``compare`` and of ``--verify``.

Both models run from their files (or serialized graphs) with their weights left on disk, on the same inputs:
given feeds win, the rest are random but sane — floats from a normal distribution, integers in the range
their use allows (an index into a Gather reads below the gathered axis' size), one value per symbolic dim
name. For each output the worst absolute and relative error is reported; outputs pass when every element
satisfies ``|b - a| <= atol + rtol * |a|`` (exact equality for integers, booleans and strings). Float16
outputs get at least 4 units in the last place of the tensor's largest magnitude as atol: onnxruntime computes
float16 chains in float32 unless a graph output pins an intermediate, so exposing one (add-outputs) rounds there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, helper

from graphsurgeon.core.runtime import first_line, make_session
from graphsurgeon.errors import GraphSurgeonError

Feeds = Mapping[str, np.ndarray]
RTOL, ATOL, RUNS = 1e-3, 1e-5, 1  # the defaults of compare and --verify, written once


@dataclass(frozen=True)
class Runnable:
    """A model onnxruntime can open: a file path or a serialized graph, and the folder of its external data."""

    source: Path | bytes
    data_dir: Path | None = None
    label: str = "model"

    def graph(self) -> ModelProto:
        if isinstance(self.source, bytes):
            proto = ModelProto()
            proto.ParseFromString(self.source)
            return proto
        return onnx.load(str(self.source), load_external_data=False)


@dataclass
class OutputComparison:
    name: str
    ok: bool
    max_abs: float | None = None
    max_rel: float | None = None
    problem: str | None = None  # shape or dtype mismatch, a missing output, differing integers...

    def __str__(self) -> str:
        errors = "" if self.max_abs is None else f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}"
        verdict = "ok" if self.ok else "MISMATCH"
        detail = "; ".join(p for p in (errors, self.problem) if p)
        return f"{self.name}: {verdict}" + (f" ({detail})" if detail else "")


@dataclass
class CompareReport:
    """Per output, the worst errors over all runs; `status` is equal, different, or error (could not run)."""

    runs: int
    rtol: float
    atol: float
    outputs: list[OutputComparison] = field(default_factory=list)
    error: str | None = None  # why the comparison could not be made (the original cannot run, ...)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "equal" if all(o.ok for o in self.outputs) else "different"

    @property
    def ok(self) -> bool:
        return self.status == "equal"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "runs": self.runs,
            "rtol": self.rtol,
            "atol": self.atol,
            "error": self.error,
            "outputs": [asdict(o) for o in self.outputs],
            "notes": self.notes,
        }

    def __str__(self) -> str:
        if self.error is not None:
            return f"could not compare: {self.error}"
        head = f"{self.status} over {self.runs} run(s) (rtol {self.rtol:g}, atol {self.atol:g})"
        return "\n".join([head, *(f"  {o}" for o in self.outputs), *(f"  note: {n}" for n in self.notes)])


# -- random but sane inputs --------------------------------------------------------------------------------
def _index_bounds(model: ModelProto) -> dict[str, int]:
    """Graph inputs used as Gather / GatherElements indices into a tensor of known size: exclusive upper bound."""
    dims: dict[str, list[int]] = {t.name: list(t.dims) for t in model.graph.initializer}
    for vi in (*model.graph.input, *model.graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape") and vi.name not in dims:
            shape = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in shape):
                dims[vi.name] = [d.dim_value for d in shape]
    passthrough = {"Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity"}
    origin: dict[str, str] = {vi.name: vi.name for vi in model.graph.input}
    bounds: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in passthrough and node.input and node.input[0] in origin:
            for out in node.output:
                origin[out] = origin[node.input[0]]
        if node.op_type in ("Gather", "GatherElements") and len(node.input) > 1 and node.input[1] in origin:
            data = dims.get(node.input[0])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if data and -len(data) <= axis < len(data):
                source = origin[node.input[1]]
                size = data[axis]
                bounds[source] = min(bounds.get(source, size), size)
    return bounds


def random_feeds(
    model: ModelProto, *, seed: int = 0, symbolic: int = 2, given: Feeds | None = None
) -> dict[str, np.ndarray]:
    """Inputs for every real graph input of `model` (given ones are used as they are).

    Raises:
        GraphSurgeonError: an input that is not a tensor of a numeric, boolean or string type, or declares no
            shape, with no value given.
    """
    rng = np.random.default_rng(seed)
    given = dict(given or {})
    initializers = {t.name for t in model.graph.initializer}
    bounds = _index_bounds(model)
    symbols: dict[str, int] = {}
    feeds: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if vi.name in given:
            feeds[vi.name] = np.asarray(given[vi.name])
            continue
        if not vi.type.HasField("tensor_type"):
            raise GraphSurgeonError(f"input {vi.name!r} is not a tensor: give its value in a feeds file")
        tensor_type = vi.type.tensor_type
        if not tensor_type.HasField("shape"):  # no rank to guess (a scalar made onnxruntime abort an Attention)
            raise GraphSurgeonError(f"input {vi.name!r} declares no shape: give its value in a feeds file")
        shape = []
        for d in tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                shape.append(d.dim_value)
            else:
                shape.append(symbols.setdefault(d.dim_param, symbolic) if d.dim_param else symbolic)
        elem = tensor_type.elem_type
        if elem == TensorProto.STRING:
            feeds[vi.name] = np.array([f"s{v}" for v in rng.integers(0, 9, int(np.prod(shape)))], dtype=object).reshape(
                shape
            )
            continue
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
        except (KeyError, TypeError, ValueError):
            raise GraphSurgeonError(
                f"input {vi.name!r} has element type {elem}, which random inputs cannot make"
            ) from None
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            high = max(1, min(bounds.get(vi.name, 3), np.iinfo(dtype).max))
            feeds[vi.name] = rng.integers(0, high, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise GraphSurgeonError(f"input {vi.name!r} has dtype {dtype}, which random inputs cannot make")
    return feeds


def load_feeds(path: str | Path) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz`` file (array names are input names)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as e:
        raise GraphSurgeonError(f"cannot read feeds from {path}: {first_line(e)}") from None


# -- comparing -----------------------------------------------------------------------------------------------
def _session(model: Runnable) -> Any:
    source = model.source if isinstance(model.source, bytes) else Path(model.source)
    return make_session(source, data_dir=model.data_dir)


def _compare(name: str, a: Any, b: Any, rtol: float, atol: float) -> OutputComparison:
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return OutputComparison(name, False, problem="sequence lengths differ")
        parts = [_compare(name, x, y, rtol, atol) for x, y in zip(a, b, strict=True)]
        worst = [p for p in parts if not p.ok]
        return worst[0] if worst else (parts[0] if parts else OutputComparison(name, True))
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return OutputComparison(name, False, problem=f"shape {list(b.shape)}, expected {list(a.shape)}")
    if a.dtype != b.dtype:
        return OutputComparison(name, False, problem=f"dtype {b.dtype}, expected {a.dtype}")
    if a.dtype.kind not in "fc":
        same = a.tolist() == b.tolist() if a.dtype.kind in "OUS" else bool(np.array_equal(a, b))
        return OutputComparison(
            name, same, 0.0 if same else None, 0.0 if same else None, None if same else "values differ"
        )
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    if not np.array_equal(nan_a, nan_b):
        return OutputComparison(name, False, problem="NaN in different places")
    finite = ~nan_a & np.isfinite(a64)
    if not np.array_equal(np.where(finite, 0.0, a64), np.where(finite, 0.0, b64), equal_nan=True):
        return OutputComparison(name, False, problem="infinities in different places")
    diff = np.abs(np.where(finite, a64 - b64, 0.0))
    scale = np.abs(np.where(finite, a64, 0.0))
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    max_rel = float(rel.max()) if rel.size else 0.0
    ok = bool(np.all(diff <= max(atol, _rounding_slack(a, scale)) + rtol * scale))
    return OutputComparison(name, ok, max_abs, max_rel)


def _rounding_slack(a: np.ndarray, scale: np.ndarray) -> float:
    """For float types below float32: 4 units in the last place of the tensor's largest magnitude (the same
    computation rounding its intermediates at other points differs by that much); 0 otherwise."""
    if a.dtype.itemsize >= 4 or not scale.size:
        return 0.0
    return 4 * float(np.finfo(a.dtype).eps) * float(scale.max())


def _merge(old: OutputComparison | None, new: OutputComparison) -> OutputComparison:
    if old is None:
        return new
    worst = old if (old.max_abs or 0.0) >= (new.max_abs or 0.0) else new
    return OutputComparison(
        new.name,
        old.ok and new.ok,
        max(old.max_abs or 0.0, new.max_abs or 0.0) if old.max_abs is not None and new.max_abs is not None else None,
        max(old.max_rel or 0.0, new.max_rel or 0.0) if old.max_rel is not None and new.max_rel is not None else None,
        old.problem or new.problem or worst.problem,
    )


def _as_declared(model: ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`feeds` in the element types `model` declares for its inputs, where the values survive the conversion
    exactly (an input retyped int64 -> int32 is fed the original's values); others are left as they are."""
    declared = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.input if vi.type.HasField("tensor_type")}
    converted = dict(feeds)
    for name, value in feeds.items():
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(declared.get(name, 0)))
        except (KeyError, TypeError, ValueError):
            continue
        value = np.asarray(value)
        if value.dtype != dtype and object not in (value.dtype, dtype):
            with np.errstate(all="ignore"):
                cast = value.astype(dtype)
            if np.array_equal(cast.astype(value.dtype), value):
                converted[name] = cast
    return converted


def compare_models(
    original: Runnable,
    result: Runnable,
    *,
    feeds: Feeds | None = None,
    runs: int = RUNS,
    rtol: float = RTOL,
    atol: float = ATOL,
    result_defaults: Mapping[str, Callable[[], np.ndarray]] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> CompareReport:
    """Run both models on the same inputs `runs` times and compare every output of the original.

    `result_defaults` gives the values of inputs only the result has (a promoted constant: its old value),
    so an interface-changing edit is checked at the original's values. `renamed` maps graph inputs and
    outputs of the original to their names in the result (a rename edit): they are fed and compared as one.
    """
    renamed = dict(renamed or {})
    if runs < 1:
        raise GraphSurgeonError(f"runs must be at least 1, not {runs}")
    report = CompareReport(runs, rtol, atol)
    try:
        graph_a, graph_b = original.graph(), result.graph()
    except Exception as e:  # unreadable files were refused earlier; this is a last guard
        report.error = f"cannot read the models: {first_line(e)}"
        return report
    inputs_a = {vi.name for vi in graph_a.graph.input} - {t.name for t in graph_a.graph.initializer}
    inputs_b = [vi.name for vi in graph_b.graph.input if vi.name not in {t.name for t in graph_b.graph.initializer}]
    inputs_a_in_b = {renamed.get(n, n) for n in inputs_a}
    extra = [
        n for n in inputs_b if n not in inputs_a_in_b and n not in (result_defaults or {}) and n not in (feeds or {})
    ]
    if extra:
        report.error = (
            f"{result.label} has input(s) {', '.join(map(repr, extra))} that {original.label} lacks; "
            "give their values in a feeds file"
        )
        return report
    try:
        session_a = _session(original)
    except Exception as e:
        report.error = f"{original.label} cannot be loaded by onnxruntime: {first_line(e)}"
        return report
    try:
        session_b = _session(result)
    except Exception as e:
        report.outputs = [
            OutputComparison(o.name, False, problem=f"{result.label} cannot be loaded: {first_line(e)}")
            for o in graph_a.graph.output
        ]
        return report
    names_a = [o.name for o in session_a.get_outputs()]
    names_b = {o.name for o in session_b.get_outputs()}
    missing = [n for n in names_a if renamed.get(n, n) not in names_b]
    if len(names_b) > len(names_a) - len(missing):
        report.notes.append(
            f"{result.label} has {len(names_b) - len(names_a) + len(missing)} output(s) "
            "the original lacks (not compared)"
        )
    defaults = {name: read() for name, read in (result_defaults or {}).items() if name in inputs_b}
    merged: dict[str, OutputComparison] = {}
    for run in range(runs):
        want_a, problem = None, ""
        for symbolic in (2, 1):  # a model whose dims were baked in may only run at 1
            try:
                feeds_a = random_feeds(graph_a, seed=run, symbolic=symbolic, given=feeds)
                want_a = session_a.run(names_a, feeds_a)
                break
            except GraphSurgeonError as e:
                report.error = str(e)
                return report
            except Exception as e:
                problem = first_line(e)
        if want_a is None:
            report.error = f"{original.label} cannot run in onnxruntime on these inputs: {problem}"
            return report
        feeds_b = (
            {renamed.get(k, k): v for k, v in feeds_a.items() if renamed.get(k, k) in inputs_b}
            | defaults
            | {k: np.asarray(v) for k, v in (feeds or {}).items() if k in inputs_b and k not in inputs_a}
        )
        present = [n for n in names_a if renamed.get(n, n) in names_b]
        try:
            fetched = session_b.run([renamed.get(n, n) for n in present], _as_declared(graph_b, feeds_b))
            got_b = dict(zip(present, fetched, strict=True))
        except Exception as e:
            report.outputs = [
                OutputComparison(n, False, problem=f"{result.label} fails to run: {first_line(e)}") for n in names_a
            ]
            return report
        for name, value in zip(names_a, want_a, strict=True):
            if name not in got_b:
                wanted = renamed.get(name, name)
                merged[name] = OutputComparison(name, False, problem=f"{result.label} has no output {wanted!r}")
                continue
            merged[name] = _merge(merged.get(name), _compare(name, value, got_b[name], rtol, atol))
    report.outputs = list(merged.values())
    return report
