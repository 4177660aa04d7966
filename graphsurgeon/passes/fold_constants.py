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

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import NodeProto, TensorProto, helper

from graphsurgeon import _io
from graphsurgeon._external_data import declared_nbytes, external_ref, is_external, read_tensor, resolve_location
from graphsurgeon._index import Scope
from graphsurgeon._walk import graphs_under, model_tensors, node_subgraphs
from graphsurgeon.errors import RewriteError
from graphsurgeon.model import Model
from graphsurgeon.passes._fold_eval import Evaluator, free_reads, tensor_from_array
from graphsurgeon.passes._fold_shapes import ShapeInfo, ordered_nodes

DEFAULT_SIZE_LIMIT = 1 << 20
BATCH_BYTES = 64 << 20  # tensors (read and produced) per onnxruntime session: bounds peak memory
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
NON_TENSOR_OPS = frozenset(
    {
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceInsert",
        "SequenceErase",
        "SplitToSequence",
        "SequenceMap",
        "Optional",
        "ZipMap",
    }
)
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
_EXTERNAL_THRESHOLD = 1024
_INLINE_CONSTANT = 1 << 20  # inline constants up to this size go into a session as initializers, not feeds


@dataclass
class Unfolded:
    op: str
    name: str
    scope: str
    reason: str
    policy: bool  # kept on purpose (random, QDQ, excluded, size) rather than impossible

    def __str__(self) -> str:
        where = "" if self.scope == "main" else f" in {self.scope}"
        return f"{self.op} {self.name!r}{where}: {self.reason}"


@dataclass
class FoldReport:
    folded: int = 0
    initializers: int = 0
    new_bytes: int = 0
    removed_initializers: int = 0
    freed_bytes: int = 0
    ifs_inlined: int = 0
    constants_moved: int = 0
    aliased: int = 0
    relocated: int = 0
    sessions: int = 0
    reference_runs: int = 0
    unfolded: list[Unfolded] = field(default_factory=list)

    @property
    def failures(self) -> list[Unfolded]:
        return [u for u in self.unfolded if not u.policy]

    def changed(self) -> bool:
        return bool(self.folded or self.ifs_inlined or self.removed_initializers)

    def lines(self) -> list[str]:
        out = [
            f"fold-constants: folded {self.folded} node(s) into {self.initializers} new constant(s) "
            f"({_fmt_bytes(self.new_bytes)}) and {self.constants_moved} Constant node(s) turned initializer; "
            f"{self.aliased} folded value(s) equal to a constant read it instead of a copy; "
            f"removed {self.removed_initializers} initializer(s) only they read "
            f"({_fmt_bytes(self.freed_bytes)}); inlined {self.ifs_inlined} If(s); "
            f"{self.sessions} onnxruntime session(s), {self.reference_runs} reference evaluation(s)"
        ]
        if self.relocated:
            out.append(
                f"fold-constants: moved {self.relocated} surviving tensor(s) of mostly-dead external data files "
                "into the new data file (those files are no longer referenced)"
            )
        if self.unfolded:
            out.append(f"fold-constants: {len(self.unfolded)} node(s) with constant inputs left unfolded:")
            out.extend(f"  {u}" for u in self.unfolded[:50])
            if len(self.unfolded) > 50:
                out.append(f"  ... and {len(self.unfolded) - 50} more")
        return out


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _scope_label(scope: Scope) -> str:
    return "main" if scope.parent is None and not scope.is_function else scope.name


def _has_ref_attr(node: NodeProto) -> bool:
    if any(a.ref_attr_name for a in node.attribute):
        return True
    subgraphs = (sub for _, g in node_subgraphs(node) for sub in graphs_under(g))
    return any(a.ref_attr_name for sub in subgraphs for n in sub.node for a in n.attribute)


def _subgraph_has_random(node: NodeProto) -> bool:
    return any(n.op_type in RANDOM_OPS for _, g in node_subgraphs(node) for sub in graphs_under(g) for n in sub.node)


def _constant_tensor(node: NodeProto, name: str) -> TensorProto | None:
    """The tensor of a Constant node (dense forms only), named `name`; None for sparse values."""
    for a in node.attribute:
        if a.ref_attr_name:
            return None
        t = None
        if a.name == "value":
            t = TensorProto()
            t.CopyFrom(a.t)
        elif a.name == "value_float":
            t = helper.make_tensor(name, TensorProto.FLOAT, [], [a.f])
        elif a.name == "value_floats":
            t = helper.make_tensor(name, TensorProto.FLOAT, [len(a.floats)], list(a.floats))
        elif a.name == "value_int":
            t = helper.make_tensor(name, TensorProto.INT64, [], [a.i])
        elif a.name == "value_ints":
            t = helper.make_tensor(name, TensorProto.INT64, [len(a.ints)], list(a.ints))
        elif a.name == "value_string":
            t = helper.make_tensor(name, TensorProto.STRING, [], [a.s])
        elif a.name == "value_strings":
            t = helper.make_tensor(name, TensorProto.STRING, [len(a.strings)], list(a.strings))
        if t is not None:
            t.name = name
            return t
    return None


def _is_constant_node(node: NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1


class ValueReader:
    """Reads initializer values, memory-mapping large external tensors instead of copying them."""

    def __init__(self, data_dir: Path | None):
        self.data_dir = data_dir

    def prefetch(self, tensor: TensorProto) -> None:
        """Ask the kernel to start reading an external tensor now (the next batch's, while this one runs)."""
        if not is_external(tensor) or self.data_dir is None or not hasattr(os, "posix_fadvise"):
            return
        try:
            ref = external_ref(tensor)
            path = resolve_location(ref.location, self.data_dir, tensor.name)
            length = ref.length if ref.length is not None else (declared_nbytes(tensor) or 0)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, ref.offset, length, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        except OSError:
            pass  # only a hint

    def read(self, tensor: TensorProto) -> np.ndarray:
        if is_external(tensor) and self.data_dir is not None and tensor.data_type not in (TensorProto.STRING,):
            try:
                dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
            except Exception:
                dtype = None
            nbytes = declared_nbytes(tensor)
            if dtype is not None and nbytes and dtype.kind in "biufc" and nbytes >= (1 << 16):
                ref = external_ref(tensor)
                path = resolve_location(ref.location, self.data_dir, tensor.name)
                if ref.length is not None and ref.length != nbytes:
                    return read_tensor(tensor, self.data_dir)  # raises the clear error
                return np.memmap(path, dtype=dtype, mode="r", offset=ref.offset, shape=tuple(tensor.dims))
        return read_tensor(tensor, self.data_dir)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Materializer:
    """Turns folded values into TensorProtos: inline, or appended to a new external data file."""

    def __init__(self, model: Model):
        self.model = model
        proto = model.proto
        self.external = model.external_data_dir is not None and any(is_external(t) for t in model_tensors(proto))
        self._file = None
        self._location: str | None = None
        self._path: Path | None = None

    def tensor(self, name: str, value: np.ndarray) -> TensorProto:
        value = np.ascontiguousarray(value) if value.dtype != object else value
        if not self.external or value.dtype == object or value.dtype.kind in "US" or value.nbytes < _EXTERNAL_THRESHOLD:
            return tensor_from_array(name, np.asarray(value))
        try:
            offset = self.append_bytes(memoryview(value).cast("B"))
        except (TypeError, ValueError):
            offset = self.append_bytes(value.tobytes())
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        tensor.dims.extend(value.shape)
        tensor.data_location = TensorProto.EXTERNAL
        for key, val in (("location", self._location), ("offset", offset), ("length", value.nbytes)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(val)
        return tensor

    @property
    def location(self) -> str | None:
        return self._location

    def append_bytes(self, data) -> int:
        """Append to the new data file (4 KiB-aligned when large); returns the offset.

        Writes happen on a background thread (positional writes), overlapping the next evaluation; at most
        two are in flight, so memory stays bounded by about two batches.
        """
        if self._file is None:
            self._open()
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        offset = self._end
        if size >= 4096 and offset % 4096:
            offset += 4096 - offset % 4096
        self._end = offset + size
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(_pwrite_all, self._file.fileno(), data, offset))
        return offset

    def _open(self) -> None:
        model = self.model
        stem = model.path.name.removesuffix(".onnx") if model.path is not None else "model"
        self._location = _io._unused_location(model.proto, f"{stem}.folded.data")
        data_dir = model.external_data_dir
        assert data_dir is not None
        n = 0
        while (data_dir / self._location).exists():
            n += 1
            self._location = _io._unused_location(model.proto, f"{stem}.folded{n}.data")
        self._path = data_dir / self._location
        self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        model.adopt_data_file(self._path)
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphsurgeon-fold-writer")
        self._pending = []
        self._end = 0

    def flush(self) -> None:
        if self._file is not None:
            while self._pending:
                self._pending.pop(0).result()

    def close(self) -> None:
        if self._file is not None:
            try:
                self.flush()
                if self._end > os.fstat(self._file.fileno()).st_size:
                    os.ftruncate(self._file.fileno(), self._end)
            finally:
                self._pool.shutdown(wait=True)
                self._file.close()
                self._file = None


class _Plan:
    """Which nodes fold, how their values are obtained, and what must be kept."""

    def __init__(self, model: Model, shapes: ShapeInfo, *, size_limit: int, exclude: set[int], fold_qdq: bool):
        self.model = model
        self.index = model.index
        self.shapes = shapes
        self.size_limit = size_limit
        self.exclude = exclude
        self.fold_qdq = fold_qdq
        self.fold: dict[int, tuple[Scope, NodeProto, str]] = {}  # id(node) -> (scope, node, kind)
        self.kept: set[int] = set()  # planned (evaluated) but staying in the graph
        self.order: dict[int, list[NodeProto]] = {}  # id(scope) -> planned nodes in topological order
        self.unfolded: list[Unfolded] = []
        self.dead_scopes: set[int] = set()
        self.functions = {(k[0], k[1]) for k in self.index.functions}
        self.implicit_cache: dict[int, set[str]] = {}

    def implicit(self, scope: Scope, node: NodeProto) -> set[str]:
        key = id(node)
        if key not in self.implicit_cache:
            self.implicit_cache[key] = scope.implicit_inputs(node)
        return self.implicit_cache[key]

    # -- knowledge ---------------------------------------------------------------------------------------
    def known(self, scope: Scope, name: str) -> bool:
        home = scope.resolve(name)
        if home is None:
            return False
        if name in home.inputs:
            return False
        if name in home.initializers:
            return True
        producer = home.producer.get(name)
        if producer is None:
            return False
        if id(producer) in self.fold:
            return True
        return home.is_function and _is_constant_node(producer) and _constant_tensor(producer, name) is not None

    def is_removed(self, node: NodeProto) -> bool:
        return id(node) in self.fold and id(node) not in self.kept

    def _reject(self, scope: Scope, node: NodeProto, reason: str, policy: bool) -> None:
        self.unfolded.append(Unfolded(node.op_type, node.name, _scope_label(scope), reason, policy))

    # -- planning ----------------------------------------------------------------------------------------
    def build(self) -> None:
        for scope in self.index.scopes:
            if scope.owner is not None and (id(scope.parent) in self.dead_scopes or id(scope.owner) in self.fold):
                self.dead_scopes.add(id(scope))
                continue
            planned: list[NodeProto] = []
            for node in ordered_nodes(scope):
                kind = self._classify(scope, node)
                if kind is not None:
                    self.fold[id(node)] = (scope, node, kind)
                    planned.append(node)
            self.order[id(scope)] = planned
        self._apply_size_limit()

    def _classify(self, scope: Scope, node: NodeProto) -> str | None:
        outputs = [o for o in node.output if o]
        if not outputs:
            return None
        if _is_constant_node(node):
            if scope.is_function or _constant_tensor(node, node.output[0]) is None:
                return None  # functions keep their Constants; sparse Constants fold through onnxruntime below
            return "const"
        if _has_ref_attr(node):
            return None  # depends on the attributes of the function's call site
        partial = self.shapes.value(scope, outputs[0]) if len(node.output) == 1 else None
        reads = free_reads(node, self.implicit(scope, node))
        all_known = all(self.known(scope, r) for r in reads)
        if partial is not None and partial.is_static() and not all_known:
            if id(node) in self.exclude:
                self._reject(scope, node, "excluded by --exclude", True)
                return None
            return "partial"
        if not all_known:
            return None
        if id(node) in self.exclude:
            self._reject(scope, node, "excluded by --exclude", True)
            return None
        if node.op_type in RANDOM_OPS or _subgraph_has_random(node):
            self._reject(scope, node, "random op: never folded", True)
            return None
        if node.op_type in QDQ_OPS and not self.fold_qdq:
            self._reject(scope, node, "quantization op: kept by default (fold_qdq=True to fold)", True)
            return None
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in self.functions:
            self._reject(scope, node, f"custom op {node.domain}::{node.op_type}: no implementation to run", False)
            return None
        if node.op_type in NON_TENSOR_OPS or any(self.shapes.is_tensor(scope, o) is False for o in outputs):
            self._reject(scope, node, "produces a sequence, map or optional, not a tensor", True)
            return None
        return "eval"

    # -- the size limit ----------------------------------------------------------------------------------
    def readers(self, scope: Scope, name: str) -> list[NodeProto]:
        return scope.readers(name)

    def is_frontier(self, scope: Scope, name: str) -> bool:
        """Must this planned value be kept as a constant (something that stays reads it, or it is an output)?"""
        if name in scope.outputs:
            return True
        return any(not self.is_removed(r) for r in scope.readers(name))

    def value_nbytes(self, scope: Scope, node: NodeProto, kind: str, name: str) -> int | None:
        if kind == "const":
            t = _constant_tensor(node, name)
            return declared_nbytes(t) if t is not None else None
        if kind == "partial":
            return 8 * 64
        return self.shapes.nbytes(scope, name)

    def initializer_reads_nbytes(self, scope: Scope, node: NodeProto) -> int:
        total = 0
        for r in free_reads(node, self.implicit(scope, node)):
            home = scope.resolve(r)
            if home is not None and r in home.initializers:
                total += declared_nbytes(home.initializers[r]) or 0
        return total

    def _leaf_nbytes(self, home: Scope, name: str) -> int:
        t = home.initializers.get(name)
        if t is not None:
            return declared_nbytes(t) or 0
        producer = home.producer.get(name)
        if producer is not None and _is_constant_node(producer):
            t = _constant_tensor(producer, name)
            return (declared_nbytes(t) or 0) if t is not None else 0
        return 0

    def _freed_by(self, scope: Scope, node: NodeProto, claimed: set[tuple[int, str]]) -> list[tuple[int, str, int]]:
        """Unclaimed tensors that disappear when the cone of planned nodes ending at `node` folds away."""
        found: list[tuple[int, str, int]] = []
        seen: set[int] = {id(node)}
        stack = [(scope, node)]
        while stack:
            s, n = stack.pop()
            for r in free_reads(n, self.implicit(s, n)):
                home = s.resolve(r)
                if home is None:
                    continue
                producer = home.producer.get(r)
                key = (id(home), r)
                if producer is not None and id(producer) in self.fold and not _is_constant_node(producer):
                    if self.is_removed(producer) and id(producer) not in seen:
                        seen.add(id(producer))
                        stack.append((home, producer))
                    continue
                if key in claimed or r in home.outputs or r in home.inputs:
                    continue
                if all(self.is_removed(reader) for reader in home.readers(r)):
                    found.append((id(home), r, self._leaf_nbytes(home, r)))
        return found

    def _apply_size_limit(self) -> None:
        claimed: set[tuple[int, str]] = set()
        work: list[int] = []
        for key, (_, _, kind) in self.fold.items():
            if kind == "eval":
                work.append(key)
        work.reverse()
        while work:
            key = work.pop()
            scope, node, kind = self.fold[key]
            if key in self.kept or kind != "eval":
                continue
            too_big = []
            for out in node.output:
                if not out or not self.is_frontier(scope, out):
                    continue
                size = self.value_nbytes(scope, node, kind, out)
                if size is not None and size > self.size_limit:
                    too_big.append((out, size))
            if not too_big:
                continue
            need = sum(size for _, size in too_big)
            freed = self._freed_by(scope, node, claimed)
            if sum(size for _, _, size in freed) >= need:
                claimed.update((home, name) for home, name, _ in freed)
                continue
            self.kept.add(key)
            shown = ", ".join(f"{name!r} ({_fmt_bytes(size)})" for name, size in too_big)
            self._reject(
                scope, node, f"size limit: {shown} above {_fmt_bytes(self.size_limit)} and would grow the model", True
            )
            for r in free_reads(node, self.implicit(scope, node)):
                home = scope.resolve(r)
                producer = home.producer.get(r) if home is not None else None
                if producer is not None and id(producer) in self.fold:
                    work.append(id(producer))


def _select_excluded(model: Model, selectors: list[str] | tuple[str, ...]) -> set[int]:
    if not selectors:
        return set()
    from graphsurgeon._select import select_nodes

    ids: set[int] = set()
    for selector in selectors:
        ids.update(id(node) for _, node in select_nodes(model.index, selector))
    return ids


def _partial_value(plan: _Plan, scope: Scope, name: str) -> np.ndarray:
    value = plan.shapes.value(scope, name)
    assert value is not None and value.is_static()
    return value.array()


def _run(model: Model, report: FoldReport, *, size_limit: int, exclude: set[int], fold_qdq: bool, batch_bytes: int):
    """One plan/evaluate/edit round. Returns the number of nodes removed."""
    shapes = ShapeInfo(model)
    plan = _Plan(model, shapes, size_limit=size_limit, exclude=exclude, fold_qdq=fold_qdq)
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
            if root.is_function:
                evaluators[id(root)] = Evaluator(model.proto, opset_import=list(root.container.opset_import))
            else:
                evaluators[id(root)] = Evaluator(model.proto)
        return evaluators[id(root)]

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
                    return reader.read(_constant_tensor(producer, name))
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
                        tensor = _constant_tensor(producer, name)
                if tensor is None or is_external(tensor) or tensor.ByteSize() > _INLINE_CONSTANT:
                    return None
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
            wanted_ids: set[int] = set()
            for node in reversed(planned):
                if plan.is_removed(node) or any(
                    id(r) in wanted_ids for o in node.output if o for r in scope.readers(o)
                ):
                    wanted_ids.add(id(node))
            for node in planned:
                if id(node) not in wanted_ids:
                    continue
                kind = plan.fold[id(node)][2]
                if kind in ("const", "partial"):
                    name = node.output[0]
                    if plan.is_frontier(scope, name):
                        if kind == "const":
                            tensor = _constant_tensor(node, name)
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
                for node in nodes:
                    for r in free_reads(node, plan.implicit(scope, node)):
                        home = scope.resolve(r)
                        if home is not None and r in home.initializers:
                            reader.prefetch(home.initializers[r])

            if batches:
                prefetch(batches[0])
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
                    report.unfolded.append(Unfolded(node.op_type, node.name, _scope_label(scope), reason, False))

                def is_failed_read(name: str, scope: Scope = scope) -> bool:
                    home = scope.resolve(name)
                    return home is not None and (id(home), name) in failed

                ready = []
                for node in nodes:
                    bad = next((r for r in free_reads(node, plan.implicit(scope, node)) if is_failed_read(r)), None)
                    if bad is not None:
                        on_failure(node, f"reads {bad!r}, which could not be folded")
                    else:
                        ready.append(node)
                results = evaluator_for(scope).evaluate(
                    ready, lambda n, scope=scope: plan.implicit(scope, n), get, needed_after, on_failure, get_tensor
                )
                del ids
                for name, value in results.items():
                    keep(name, value)
                del results
            # values that nodes kept in the graph (failed, or over the size limit) still read
            _materialize_late(plan, scope, planned, materialized, get, writer)
        removed = _edit(model, plan, materialized, report, evaluators, aliases)
        if writer.external and writer.location is not None:
            report.relocated += _relocate_survivors(model, writer)
    finally:
        writer.close()
    return removed


def _relocate_survivors(model: Model, writer: Materializer) -> int:
    """Move what is left of mostly-dead data files (under a quarter still used) into the new data file.

    Existing files are never modified; this only spares a save from copying gigabytes of weights that
    folding made dead for the sake of a few small survivors (biases next to transposed weights).
    """
    data_dir = model.external_data_dir
    if data_dir is None:
        return 0
    by_location: dict[str, list[TensorProto]] = {}
    for tensor in model_tensors(model.proto):
        if is_external(tensor):
            by_location.setdefault(external_ref(tensor).location, []).append(tensor)
    moved = 0
    for location, tensors in by_location.items():
        if location == writer.location:
            continue
        path = resolve_location(location, data_dir, tensors[0].name)
        live = sum(declared_nbytes(t) or 0 for t in tensors)
        if live * 4 > path.stat().st_size:
            continue
        for tensor in tensors:
            ref = external_ref(tensor)
            length = ref.length if ref.length is not None else declared_nbytes(tensor)
            if length is None:
                continue
            with open(path, "rb") as f:
                f.seek(ref.offset)
                data = f.read(length)
            offset = writer.append_bytes(data)
            entries = {e.key: e for e in tensor.external_data}
            for key, value in (("location", writer.location), ("offset", offset), ("length", length)):
                if key in entries:
                    entries[key].value = str(value)
                else:
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, str(value)
            moved += 1
    return moved


def _materialize_late(plan: _Plan, scope: Scope, planned, materialized, get, writer) -> None:
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


def _recompute(plan: _Plan, scope: Scope, name: str, get) -> np.ndarray:
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


def _alias_instead(plan: _Plan, scope: Scope, producer: NodeProto, name: str, value, aliases, seen, reread) -> bool:
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
    if not isinstance(value, np.ndarray) or value.dtype == object or value.nbytes < 64:
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
    import hashlib

    raw = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
    if raw.size <= 1 << 16:
        return hashlib.blake2b(raw, digest_size=16).digest()
    step = raw.size // 64
    pieces = b"".join(raw[i * step : i * step + 64].tobytes() for i in range(64)) + raw[-64:].tobytes()
    return hashlib.blake2b(pieces, digest_size=16).digest()


def _edit(model: Model, plan: _Plan, materialized, report: FoldReport, evaluators, aliases) -> int:
    from graphsurgeon.passes._simplify_rewrites import Aliases, apply_aliases

    index = model.index
    removed_count = 0
    dying: dict[int, set[str]] = {}
    alias_targets = {target for mapping in aliases.values() for target in mapping.values()}
    for scope in index.scopes:
        mapping = aliases.get(id(scope))
        if mapping:
            table = Aliases()
            for alias, target in mapping.items():
                table.add(alias, target)
            apply_aliases(scope, table)
            report.aliased += len(mapping)
    for scope in index.scopes:
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
        if scope.is_function:
            consts = [helper.make_node("Constant", [], [name], value=t) for name, t in new]
            kept = [n for n in scope.container.node if not plan.is_removed(n)]
            del scope.container.node[:]
            scope.container.node.extend(consts + kept)
        else:
            scope.remove_nodes(removed)
            for _, t in new:
                scope.container.initializer.append(t)
        removed_count += len(removed)
        for name, t in new:
            producer = scope.producer.get(name)
            if (
                producer is not None
                and _is_constant_node(producer)
                and plan.fold.get(id(producer), ("", "", ""))[2] == "const"
            ):
                report.constants_moved += 1
            else:
                report.initializers += 1
                report.new_bytes += declared_nbytes(t) or 0
    by_id = {id(s): s for s in index.scopes}
    for sid, names in dying.items():
        scope = by_id[sid]
        report.freed_bytes += sum(declared_nbytes(scope.initializers[n]) or 0 for n in names if n in scope.initializers)
        report.removed_initializers += len(names)
        scope.remove_initializers(names)
    for ev in evaluators.values():
        report.sessions += ev.sessions
        report.reference_runs += ev.reference_runs
    report.folded += removed_count
    model.invalidate()
    return removed_count


def fold_constants(
    model: Model,
    *,
    size_limit: int = DEFAULT_SIZE_LIMIT,
    exclude: list[str] | tuple[str, ...] = (),
    strict: bool = False,
    fold_qdq: bool = False,
    batch_bytes: int = BATCH_BYTES,
    note: bool = True,
) -> FoldReport:
    from graphsurgeon.passes._fold_if import inline_constant_ifs

    if size_limit < 0:
        raise RewriteError(f"size limit must be >= 0 bytes, not {size_limit}")
    model.index.check_references()
    excluded = _select_excluded(model, exclude)
    report = FoldReport()
    for _ in range(64):
        report.unfolded.clear()
        _run(model, report, size_limit=size_limit, exclude=excluded, fold_qdq=fold_qdq, batch_bytes=batch_bytes)
        inlined = inline_constant_ifs(model)
        report.ifs_inlined += inlined
        if not inlined:
            break
        excluded = _select_excluded(model, exclude) if exclude else set()
    _dedupe_unfolded(report)
    if note:
        for line in report.lines():
            model.note(line)
    if strict and report.failures:
        shown = "; ".join(str(u) for u in report.failures[:10])
        more = f" (and {len(report.failures) - 10} more)" if len(report.failures) > 10 else ""
        raise RewriteError(f"{len(report.failures)} node(s) with constant inputs could not be folded: {shown}{more}")
    return report


def _dedupe_unfolded(report: FoldReport) -> None:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for u in report.unfolded:
        key = (u.op, u.name, u.scope)
        if key not in seen:
            seen.add(key)
            unique.append(u)
    report.unfolded = unique
