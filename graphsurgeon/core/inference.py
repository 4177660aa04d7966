"""onnx's shape inference and full checker without the segfaults.

Some ops' inference functions in onnx (1.23) read their input's type without checking it is known: a LabelEncoder,
TreeEnsemble, DictVectorizer, EyeLike (with `dtype`) or RegexFullMatch whose input has no type (a custom op's
output, an untyped graph input) kills the process. Such nodes are hidden from inference (an op of a domain no
schema knows, which inference skips) unless a first pass proved every input they read typed; everything else
infers as usual. Found by probing every schema of onnx's registry with untyped inputs (tests/test_fuzz_regressions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import onnx
from onnx import GraphProto, ModelProto, NodeProto

from graphsurgeon.core.walk import model_graphs, node_subgraphs

# (domain, op) whose onnx inference dereferences an unknown input type
UNTYPED_INPUT_CRASHES = frozenset(
    {
        ("", "EyeLike"),
        ("", "RegexFullMatch"),
        ("ai.onnx.ml", "DictVectorizer"),
        ("ai.onnx.ml", "LabelEncoder"),
        ("ai.onnx.ml", "TreeEnsemble"),
    }
)
_HIDDEN = "graphsurgeon.hidden-from-inference"


def _key(node: NodeProto) -> tuple[str, str]:
    return ("" if node.domain == "ai.onnx" else node.domain, node.op_type)


def _risky_nodes(model: ModelProto, hidden_too: bool = False) -> Iterator[tuple[NodeProto, list[GraphProto]]]:
    """Every risky node (and, with `hidden_too`, every hidden one) of function bodies, the main graph and its
    subgraphs, in a fixed order, each with its graph chain (outer first; empty in a function body)."""
    stacks: list[list[tuple[list[GraphProto], NodeProto]]] = [[([], n) for n in f.node] for f in model.functions]
    if model.HasField("graph"):
        stacks.append([([model.graph], n) for n in model.graph.node])
    for stack in stacks:
        while stack:
            chain, node = stack.pop()
            if _key(node) in UNTYPED_INPUT_CRASHES or (hidden_too and node.domain == _HIDDEN):
                yield node, chain
            for _, sub in node_subgraphs(node):
                stack.extend(([*chain, sub] if chain else [], n) for n in sub.node)


def _typed_names(graph: GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if vi.type.WhichOneof("value") is not None:
            names.add(vi.name)
    return names


_HUGE_DIM = 1 << 31


def _declares_huge_dims(model: ModelProto) -> bool:
    """A declared dim no tensor could have (2^62 in a hostile model): onnx's data propagation hangs on it."""
    for graph in model_graphs(model):
        for info in (*graph.input, *graph.output, *graph.value_info):
            if info.type.HasField("tensor_type"):
                if any(d.dim_value >= _HUGE_DIM for d in info.type.tensor_type.shape.dim):
                    return True
        if any(d >= _HUGE_DIM for t in graph.initializer for d in t.dims):
            return True
    return False


def infer_shapes(model: ModelProto, **options) -> ModelProto:
    """`onnx.shape_inference.infer_shapes(model, **options)`, minus the segfaults (see the module docstring).

    `model` is left as it was; the result holds every node as the model does.
    """
    if options.get("data_prop") and _declares_huge_dims(model):
        options = {**options, "data_prop": False}  # onnx's data propagation loops over such dims (a hang)
    risky = list(_risky_nodes(model))
    if not risky:
        return onnx.shape_inference.infer_shapes(model, **options)
    domains = [node.domain for node, _ in risky]
    model.opset_import.add(domain=_HIDDEN, version=1)
    try:
        for node, _ in risky:
            node.domain = _HIDDEN
        first = onnx.shape_inference.infer_shapes(model, **options)
        safe = _proved_typed(model, first, risky)
        for (node, _), domain, ok in zip(risky, domains, safe, strict=True):
            if ok:
                node.domain = domain
        result = first if not any(safe) else onnx.shape_inference.infer_shapes(model, **options)
    finally:
        for (node, _), domain in zip(risky, domains, strict=True):
            node.domain = domain
        del model.opset_import[len(model.opset_import) - 1]
    _restore(result, domains)
    return result


def _proved_typed(model: ModelProto, inferred: ModelProto, risky: list) -> list[bool]:
    """Whether each risky node's inputs all have a type in the first pass (function bodies: never proved)."""
    typed_by_graph: dict[int, set[str]] = {}
    paired = _pair_graphs(model, inferred)
    verdicts = []
    for node, chain in risky:
        if not chain:
            verdicts.append(False)
            continue
        known: list[set[str]] = []
        for graph in chain:
            twin = paired.get(id(graph))
            if twin is None:
                break
            if id(twin) not in typed_by_graph:
                typed_by_graph[id(twin)] = _typed_names(twin)
            known.append(typed_by_graph[id(twin)])
        verdicts.append(
            len(known) == len(chain)
            and len(node.input) > 0  # an input left out (or named "") has no type either
            and all(name and any(name in s for s in known) for name in node.input)
        )
    return verdicts


def _pair_graphs(model: ModelProto, inferred: ModelProto) -> dict[int, GraphProto]:
    """id(graph of model) -> the same graph in the inferred copy (same structure: inference adds no node)."""
    pairs: dict[int, GraphProto] = {}
    if not model.HasField("graph"):
        return pairs
    stack = [(model.graph, inferred.graph)]
    while stack:
        mine, theirs = stack.pop()
        pairs[id(mine)] = theirs
        for a, b in zip(mine.node, theirs.node, strict=False):
            stack.extend((g, h) for (_, g), (_, h) in zip(node_subgraphs(a), node_subgraphs(b), strict=False))
    return pairs


def _restore(result: ModelProto, domains: list[str]) -> None:
    """Give the hidden nodes of an inference result their domains back and drop the helper opset import."""
    for (node, _), domain in zip(_risky_nodes(result, hidden_too=True), domains, strict=False):
        node.domain = domain
    for i in reversed(range(len(result.opset_import))):
        if result.opset_import[i].domain == _HIDDEN:
            del result.opset_import[i]


def full_check(model: ModelProto | str | bytes, data_prop: bool = False) -> None:
    """`onnx.checker.check_model(model, full_check=True)` minus the segfaults: the structural check, then strict
    shape inference with type checking through `infer_shapes` (with `data_prop`, shape values propagated too,
    as onnxruntime does). Raises what onnx raises."""
    onnx.checker.check_model(model)
    if isinstance(model, str):
        proto = onnx.load(model, load_external_data=False)
    elif isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    else:
        proto = model
    infer_shapes(proto, check_type=True, strict_mode=True, data_prop=data_prop)


def _strict_error(model: ModelProto) -> str | None:
    try:
        infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001 - InferenceError and friends: the first line says what
        text = " ".join(str(e).split())
        return text[:300] if text else type(e).__name__
    return None


def newly_refused(light: ModelProto, edit: Callable[[ModelProto], None]) -> str | None:
    """Why onnx's strict shape inference (with data propagation) refuses `light` (a weight-free copy) once
    `edit` changed it, when it accepted it before; None when it still accepts it or never did. For edits whose
    values a user chose (a shape, an input's value, an attribute): refused before anything is written."""
    if _strict_error(light) is not None:
        return None
    edit(light)
    return _strict_error(light)


def refused_input_shapes(light: ModelProto, shapes: dict[str, list]) -> str | None:
    """`newly_refused` for graph inputs given new dims (int, symbol, or None for unknown), by name."""

    def reshape(model: ModelProto) -> None:
        for info in (*model.graph.value_info, *model.graph.output):  # declared for the old dims: derived anew
            if info.type.HasField("tensor_type"):
                info.type.tensor_type.ClearField("shape")
        for info in model.graph.input:
            if info.name not in shapes or not info.type.HasField("tensor_type"):
                continue
            shape = info.type.tensor_type.shape
            shape.Clear()
            for value in shapes[info.name]:
                dim = shape.dim.add()
                if isinstance(value, int):
                    dim.dim_value = value
                elif isinstance(value, str):
                    dim.dim_param = value

    return newly_refused(light, reshape)
