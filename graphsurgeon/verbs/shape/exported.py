"""The exported model's shapes: what onnx's inference (or, when every node output is declared in full, the
declarations themselves) gave each tensor, as symbolic shapes (dim_params become symbols). The base of Analysis.
"""

from __future__ import annotations

import re

from onnx import GraphProto, TypeProto

from graphsurgeon.core.constants import constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.walk import model_graphs
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono

Shape = tuple[MaybeDim, ...]
_INFERRED_UNKNOWN = re.compile(r"unk__\d+")  # what onnx's inference calls a dim it could not find
_PROBE = 1_000_003  # values given to symbols whose exported value is unknown (never equal to a real dim)


MISSING = object()


def home_of(scope: Scope, name: str) -> Scope:
    """The scope defining `name` as seen from `scope` (itself when nothing is outside it to look in)."""
    if scope.parent is None or scope.is_function:
        return scope
    return scope.resolve(name) or scope


def declared_types(graphs: list[GraphProto]) -> tuple[dict[int, dict[str, TypeProto]], bool]:
    """The declared types of each graph (by id), and whether every node output has a tensor shape declared with
    every dim known (a value, or a name other than an earlier inference's unk__N). Checked on the serialized
    shape: an unknown dim is an empty Dimension (``0a 00``) or one holding only a denotation (``1a``); bytes
    that merely look like one only cost an inference."""
    found: dict[int, dict[str, TypeProto]] = {}
    complete = True
    for graph in graphs:
        types = found.setdefault(id(graph), {})
        known = set()
        for vi in (*graph.input, *graph.value_info, *graph.output):
            t = vi.type
            kind = t.WhichOneof("value")
            if kind is None:
                continue
            types.setdefault(vi.name, t)
            if complete and kind == "tensor_type" and t.tensor_type.HasField("shape"):
                data = t.tensor_type.shape.SerializeToString()
                if b"\n\x00" not in data and b"\x1a" not in data and b"unk__" not in data:
                    known.add(vi.name)
        complete = complete and all(o in known for node in graph.node for o in node.output if o)
    return found, complete


class ExportedShapes:
    """Per graph, the exported types; per tensor, its exported shape (memoized). `env` gains a probe value for
    every dim_param met that is not being changed."""

    def __init__(self, model: Editor, env: dict[str, int]) -> None:
        self.model = model
        self.env = env
        self.types: dict[int, dict[str, TypeProto]] = {}
        self._exported: dict[tuple[int, str], Shape | None] = {}
        self._converted: dict[bytes, Shape | None] = {}
        self._infer()

    def _infer(self) -> None:
        proto = self.model.proto
        graphs = list(model_graphs(proto))
        self.types, complete = declared_types(graphs)
        if complete:  # onnx's inference would only find what is declared
            return
        try:
            inferred_graphs = list(model_graphs(infer_shapes(light_copy(proto), strict_mode=False, data_prop=True)))
        except Exception:  # advisory: without it only declared types are known
            return
        for graph, found in zip(graphs, inferred_graphs, strict=False):  # what inference found wins
            types = self.types.setdefault(id(graph), {})
            for vi in (*found.input, *found.value_info, *found.output):
                if vi.type.WhichOneof("value") is not None:
                    types[vi.name] = vi.type

    def exported_shape(self, scope: Scope, name: str) -> Shape | None:
        """The shape onnx's inference gave `name` in the exported model (symbols for dim_params)."""
        home = home_of(scope, name)
        key = (id(home), name)
        found = self._exported.get(key, MISSING)
        if found is MISSING:
            found = self._exported[key] = self._exported_shape(home, name)
        return found  # type: ignore[return-value]

    def _exported_shape(self, home: Scope, name: str) -> Shape | None:
        if name in home.initializers:
            return tuple(int(d) for d in home.initializers[name].dims)
        t = self.types.get(id(home.container), {}).get(name)
        if t is None:
            return None
        key = t.SerializeToString()  # many tensors share a type: convert each one once
        found = self._converted.get(key, MISSING)
        if found is MISSING:
            found = self._converted[key] = self._convert(t)
        return found  # type: ignore[return-value]

    def _convert(self, t: TypeProto) -> Shape | None:
        if t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
            return None
        out: list[MaybeDim] = []
        for d in t.tensor_type.shape.dim:
            kind = d.WhichOneof("value")
            if kind == "dim_value" and d.dim_value >= 0:
                out.append(d.dim_value)
            elif kind == "dim_param" and d.dim_param and not _INFERRED_UNKNOWN.fullmatch(d.dim_param):
                out.append(self._symbol(d.dim_param))
            else:
                out.append(None)
        return tuple(out)

    def _symbol(self, name: str) -> Mono:
        if name not in self.env:
            self.env[name] = _PROBE + 2 * len(self.env)  # distinct odd values, never a real dim
        return Mono.of(name)

    def elem_type(self, scope: Scope, name: str) -> int | None:
        home = scope.resolve(name) or scope
        if name in home.initializers:
            return home.initializers[name].data_type
        producer = home.producer.get(name)
        if producer is not None and is_constant_node(producer):
            tensor = constant_tensor(producer)
            return tensor.data_type if tensor is not None else None
        t = self.types.get(id(home.container), {}).get(name)
        if t is None or t.WhichOneof("value") != "tensor_type":
            return None
        return t.tensor_type.elem_type or None
