"""Evaluating constant subgraphs: one onnxruntime session per batch, onnx's reference evaluator per node as a
fallback, and a clear reason when neither can.

A batch is a list of nodes of one scope in topological order plus the values they read from outside it.
If onnxruntime refuses the batch (an op it lacks, a type it cannot take), the batch is split in halves
until the failing nodes are alone; each of those is retried with onnx's ReferenceEvaluator. So a batch of
n nodes with k bad ones costs O(k log n) sessions, and the usual case (k = 0) costs one.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet

import numpy as np
import onnx
from onnx import FunctionProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, helper

from graphsurgeon.core.external_data import inline_problem
from graphsurgeon.core.runtime import make_session


class EvalFailure(Exception):
    """A node could not be evaluated; the message says why."""


def free_reads(node: NodeProto, implicit: AbstractSet[str]) -> list[str]:
    """Names a node reads: its inputs, then what its subgraphs read from outside."""
    names = [n for n in node.input if n]
    if implicit:
        names.extend(sorted(implicit - set(names)))
    return names


def _value_info(name: str, value: np.ndarray) -> ValueInfoProto:
    if value.dtype == object or value.dtype.kind in ("U", "S"):
        elem = TensorProto.STRING
    else:
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
    return helper.make_tensor_value_info(name, elem, list(value.shape))


def _as_feed(value: np.ndarray) -> np.ndarray:
    if value.dtype.kind in ("U", "S"):
        return value.astype(object)
    return value


class Evaluator:
    """Runs batches of nodes of one model, sharing its opsets and functions."""

    def __init__(
        self,
        model: ModelProto,
        *,
        opset_import: list[OperatorSetIdProto] | None = None,
        functions: list[FunctionProto] | None = None,
    ):
        self.ir_version = min(model.ir_version, 10) if model.ir_version >= 3 else 10
        self.opset_import = list(opset_import if opset_import is not None else model.opset_import)
        domains = {o.domain for o in self.opset_import}
        for o in model.opset_import:  # a function body may use domains only the model imports
            if o.domain not in domains:
                self.opset_import.append(o)
                domains.add(o.domain)
        self.functions = list(functions if functions is not None else model.functions)
        self._function_keys = {(f.domain, f.name) for f in self.functions}
        self.sessions = 0
        self.reference_runs = 0

    def _model(
        self, nodes: list[NodeProto], feeds: dict[str, np.ndarray], wanted: list[str], constants=()
    ) -> ModelProto:
        graph = helper.make_graph(
            nodes,
            "fold",
            [_value_info(name, value) for name, value in feeds.items()],
            [ValueInfoProto(name=name) for name in wanted],
            list(constants),
        )
        model = helper.make_model(graph, opset_imports=self.opset_import, ir_version=self.ir_version)
        if any((n.domain, n.op_type) in self._function_keys for n in nodes):
            model.functions.extend(self.functions)
        return model

    def run_ort(
        self, nodes: list[NodeProto], feeds: dict[str, np.ndarray], wanted: list[str], constants=()
    ) -> list[np.ndarray]:
        self.sessions += 1
        try:
            model = self._model(nodes, feeds, wanted, constants).SerializeToString()
            session = make_session(model, optimize=False, arena=False)
            results = session.run(wanted, {k: _as_feed(v) for k, v in feeds.items()})
        except Exception as e:  # onnxruntime raises several unrelated types
            raise EvalFailure(f"onnxruntime: {_first_line(e)}") from e
        for name, value in zip(wanted, results, strict=True):
            if not isinstance(value, np.ndarray) or not _storable(value):
                raise EvalFailure(f"onnxruntime: {name!r} is a {type(value).__name__}, not a tensor")
        return results

    def run_reference(self, node: NodeProto, feeds: dict[str, np.ndarray], wanted: list[str]) -> list[np.ndarray]:
        from onnx.reference import ReferenceEvaluator

        self.reference_runs += 1
        try:
            evaluator = ReferenceEvaluator(self._model([node], feeds, wanted))
            results = evaluator.run(wanted, feeds)
        except Exception as e:  # the reference evaluator raises anything
            raise EvalFailure(f"reference evaluator: {_first_line(e)}") from e
        out = []
        for name, value in zip(wanted, results, strict=True):
            if isinstance(value, np.generic):
                value = np.asarray(value)
            if not isinstance(value, np.ndarray) or not _storable(value):
                raise EvalFailure(f"reference evaluator: {name!r} is a {type(value).__name__}, not a tensor")
            out.append(value)
        return out

    def evaluate(
        self,
        nodes: list[NodeProto],
        implicit: Callable[[NodeProto], AbstractSet[str]],
        get: Callable[[str], np.ndarray],
        needed_after: Callable[[str, set[int]], bool],
        on_failure: Callable[[NodeProto, str], None],
        get_tensor: Callable[[str], TensorProto | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Evaluate `nodes` (topologically ordered); return the values `needed_after` asks to keep.

        `get(name)` supplies values read from outside the batch (or `get_tensor(name)`, for small inline
        constants, which the session then holds as initializers: far cheaper than thousands of feeds);
        `needed_after(name, batch_ids)` says whether a value produced in the batch is read outside it (so it
        must be fetched). A node that fails, and
        every node of the batch that reads what it would have produced, is reported to `on_failure`.
        """
        results: dict[str, np.ndarray] = {}
        failed_outputs: set[str] = set()
        nodes = self._evaluate_on_host(nodes, implicit, needed_after, results, get_tensor)
        work: list[list[NodeProto]] = [nodes] if nodes else []
        while work:
            batch = work.pop()
            # drop nodes reading what a failed node would have produced
            kept = []
            for node in batch:
                reads = free_reads(node, implicit(node))
                bad = next((r for r in reads if r in failed_outputs), None)
                if bad is not None:
                    failed_outputs.update(o for o in node.output if o)
                    on_failure(node, f"reads {bad!r}, which could not be folded")
                else:
                    kept.append(node)
            batch = kept
            if not batch:
                continue
            ids = {id(n) for n in batch}
            produced: set[str] = set()
            feed_names: dict[str, None] = {}
            for node in batch:
                for r in free_reads(node, implicit(node)):
                    if r not in produced:
                        feed_names[r] = None
                produced.update(o for o in node.output if o)
            wanted = [o for node in batch for o in node.output if o and needed_after(o, ids)]
            if not wanted:
                continue
            feeds: dict[str, np.ndarray] = {}
            constants: list[TensorProto] = []
            for name in feed_names:
                if name in results:
                    feeds[name] = results[name]
                    continue
                tensor = get_tensor(name) if get_tensor is not None else None
                if tensor is not None:
                    constants.append(tensor)
                else:
                    feeds[name] = get(name)
            try:
                values = self.run_ort(batch, feeds, wanted, constants)
            except EvalFailure as ort_error:
                if len(batch) > 1:
                    half = len(batch) // 2
                    work.append(batch[half:])
                    work.append(batch[:half])
                    continue
                try:
                    for tensor in constants:
                        try:
                            feeds[tensor.name] = onnx.numpy_helper.to_array(tensor)
                        except (KeyError, ValueError, TypeError) as e:  # (element type 99, data of another size)
                            raise EvalFailure(f"constant {tensor.name!r} cannot be read ({type(e).__name__})") from e
                    values = self.run_reference(batch[0], feeds, wanted)
                except EvalFailure as ref_error:
                    failed_outputs.update(o for o in batch[0].output if o)
                    on_failure(batch[0], f"{ort_error}; {ref_error}")
                    continue
            del feeds
            results.update(zip(wanted, values, strict=True))
        return results

    def _evaluate_on_host(
        self,
        nodes: list[NodeProto],
        implicit: Callable[[NodeProto], AbstractSet[str]],
        needed_after: Callable[[str, set[int]], bool],
        results: dict[str, np.ndarray],
        get_tensor: Callable[[str], TensorProto | None] | None,
    ) -> list[NodeProto]:
        """Compute what numpy computes exactly (see host.py) into `results`; return the nodes left for sessions."""
        from graphsurgeon.verbs.fold.host import host_value

        if get_tensor is None:
            return nodes
        opset = next((o.version for o in self.opset_import if o.domain in ("", "ai.onnx")), 0)
        host: dict[str, np.ndarray] = {}
        rest: list[NodeProto] = []
        done: list[NodeProto] = []
        for node in nodes:
            values = []
            if not implicit(node):
                for name in node.input:
                    value = host.get(name) if name else None
                    if value is None and name:
                        tensor = get_tensor(name)
                        bad = tensor is None or inline_problem(tensor) is not None  # (the session path says why)
                        try:
                            value = None if bad or tensor is None else onnx.numpy_helper.to_array(tensor)
                        except (KeyError, ValueError, TypeError):  # an element type numpy has no name for
                            value = None
                    if value is None:
                        break
                    values.append(value)
            result = host_value(node, values, opset) if len(values) == len(node.input) and values else None
            if result is None:
                rest.append(node)
            else:
                host[node.output[0]] = result
                done.append(node)
        if done:
            ids = {id(n) for n in done}
            results.update((n.output[0], host[n.output[0]]) for n in done if needed_after(n.output[0], ids))
        return rest


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _storable(value: np.ndarray) -> bool:
    """Can a TensorProto hold it? (An object array is strings; a None in it, e.g. from an empty optional, is not.)"""
    return value.dtype != object or all(isinstance(v, str | bytes) for v in value.flat)


def tensor_from_array(name: str, value: np.ndarray) -> TensorProto:
    if value.dtype.kind == "U":
        value = value.astype(object)
    return onnx.numpy_helper.from_array(value, name)
