"""Static and symbolic shape knowledge for folding: inferred types, and the values of Shape-derived tensors.

Two sources:

* onnx's shape inference (with data propagation) on a light copy of the model (large weights become typed
  inputs, so no weight is read): element types and dims of every value it can reach, in every graph.
* our own propagation of *partial values* for the small integer tensors that shape arithmetic produces:
  ``Shape(x)`` is the list of x's dims, each an int when static or a symbol otherwise (the dim_param, or a
  symbol unique to that tensor and axis); Gather / Slice / Concat / Unsqueeze / Squeeze / Cast / Identity
  carry those lists along. A tensor whose partial value is all ints is a constant even though the graph
  computes it from a dynamic tensor (``Shape(x)[1]`` of an ``x`` of shape ``[N, 256]`` is 256), and two
  partial values with the same symbols are equal (``Reshape(x, Concat(Shape(x)[0:1], [256]))`` is a no-op).

onnx's inference alone cannot resolve Shape→Gather→Unsqueeze→Concat→Reshape chains; this propagation can
wherever the dims involved are static, and folding does the rest. The rules: values.py (partial values) and
dims.py (dims where inference stopped).

Knowledge about a name stays true while the name keeps its value, which every meaning-preserving edit
guarantees; so a later instance built with `reuse` keeps the inferred types and recomputes only the nodes
whose reads changed (renamed inputs, or an input whose knowledge changed, e.g. a value folded into a
constant), copying the rest: linear, and cheap after a round that touched a small part of the graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import onnx
from onnx import AttributeProto, NodeProto, TensorProto, TypeProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.inference import infer_shapes
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.walk import model_graphs

_SMALL = 64  # largest integer constant (elements) tracked as a partial value
_INT_TYPES: dict[int, type[np.integer]] = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}


def _static(dim) -> bool:
    """A dim with a usable value (a negative dim_value, which some files carry for "unknown", is not one)."""
    return dim.HasField("dim_value") and dim.dim_value >= 0


_STANDARD = ("", "ai.onnx")


def _may_be_int(t: TypeProto | None) -> bool:
    """Could a value of this inferred type carry a partial value (unknown type, an int type or bool)?"""
    if t is None or t.WhichOneof("value") != "tensor_type":
        return True
    elem = t.tensor_type.elem_type
    return not elem or elem in _INT_TYPES or elem == TensorProto.BOOL


def _static_type(t: TypeProto | None) -> bool:
    """Is this a tensor type whose dims are all static?"""
    if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
        return False
    return all(d.HasField("dim_value") and d.dim_value >= 0 for d in t.tensor_type.shape.dim)


@cache
def _itemsize(elem: int) -> int | None:
    """Bytes per element of a tensor type (None when it has no fixed size)."""
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem)).itemsize
    except Exception:
        return None


def _type_dims(t: TypeProto | None, home: Scope, name: str) -> list[Elem] | None:
    """A tensor type's dims as ints or symbols (the dim_param, else one unique to the tensor and axis)."""
    if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
        return None
    out: list[Elem] = []
    for axis, d in enumerate(t.tensor_type.shape.dim):
        if _static(d):
            out.append(d.dim_value)
        elif d.dim_param:
            out.append(Sym(("param", d.dim_param)))
        else:
            out.append(Sym(("anon", id(home.container), name, axis)))
    return out


@dataclass(frozen=True)
class Sym:
    """An unknown dim: equal only to itself."""

    key: tuple


Elem = int | Sym | None  # None: unknown and not even named


@dataclass(frozen=True)
class Partial:
    """A small integer tensor of rank 0 or 1 whose elements are ints or symbols."""

    dtype: int  # TensorProto data type (INT64 / INT32; BOOL for comparisons of them, elements 0 / 1)
    scalar: bool
    elems: tuple[Elem, ...]

    def is_static(self) -> bool:
        return all(isinstance(e, int) for e in self.elems)

    def array(self) -> np.ndarray:
        arr = np.array(self.elems, dtype=np.bool_ if self.dtype == TensorProto.BOOL else _INT_TYPES[self.dtype])
        return arr.reshape(()) if self.scalar else arr


def _merge(known: list[Elem] | None, derived: list[Elem]) -> list[Elem]:
    """Inferred dims completed by derived ones: an int wins, then a named dim, then the derived symbol."""
    if known is None:
        return derived
    if len(known) != len(derived):
        return known
    out: list[Elem] = []
    for k, d in zip(known, derived, strict=True):
        if isinstance(k, int) or isinstance(d, int) or d is None:
            out.append(k if isinstance(k, int) or not isinstance(d, int) else d)
        elif isinstance(k, Sym) and k.key[0] == "param":
            out.append(k)
        else:
            out.append(d)
    return out


def _attr(node: NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            if a.ref_attr_name:
                return default
            return helper.get_attribute_value(a)
    return default


class ShapeInfo:
    """Types from onnx's inference (graphs only, not function bodies) and partial values, per scope."""

    def __init__(self, model: Editor, *, infer: bool = True, reuse: ShapeInfo | None = None):
        """`reuse`: an earlier instance whose knowledge still holds (the model changed since only by
        meaning-preserving edits, which keep every surviving name's value): no inference, and propagation only
        where reads changed."""
        self.model = model
        self.index = model.index
        self.types: dict[int, dict[str, TypeProto]] = {}
        self.partial: dict[tuple[int, str], Partial] = {}
        # (id(scope), name) -> (element type, dims): inferred dims completed by DIM_RULES; and dims known
        self.derived: dict[tuple[int, str], tuple[int | None, tuple[Elem, ...]]] = {}
        self._dims: dict[tuple[int, str], tuple[Elem, ...]] = {}
        self._elems: dict[tuple[int, str], int] = {}
        self._constants: dict[tuple[int, str], Partial | None] = {}
        # what the walk saw, for a later instance's reuse: id(node) -> (op, domain, inputs, outputs); and the
        # (id(scope), name) of every node output
        self._seen: dict[int, tuple] = {}
        self._produced: set[tuple[int, str]] = set()
        # id(scope) -> its nodes in the topological order the walk used: valid until the graph is edited
        self.orders: dict[int, list[NodeProto]] = {}
        # how many names' knowledge differs from `reuse`'s (None: not built from one, everything is new)
        self.changes: int | None = None
        self.opset = model.opset_version()
        if reuse is not None:
            self.types = {key: dict(types) for key, types in reuse.types.items()}
        elif infer:
            self._infer()
        self._record_declared()
        previous = reuse if reuse is not None and reuse.index is self.index else None
        changed = self._propagate(previous)
        self.changes = len(changed) if previous is not None else None

    # -- types -------------------------------------------------------------------------------------------
    def _infer(self) -> None:
        proto = self.model.proto
        graphs = list(model_graphs(proto))
        light = light_copy(proto)
        try:
            inferred = infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # advisory: without it, only declared types are known
            return
        for graph, inferred_graph in zip(graphs, model_graphs(inferred), strict=False):
            types = self.types.setdefault(id(graph), {})
            for vi in (*inferred_graph.input, *inferred_graph.value_info, *inferred_graph.output):
                if vi.type.WhichOneof("value") is not None:
                    types[vi.name] = vi.type

    def _record_declared(self) -> None:
        """Declared value_info / inputs / outputs where inference said nothing. (Initializers are typed
        exactly by their own dtype and dims, read where asked: see `_initializer`.)"""
        for scope in self.index.graph_scopes():
            types = self.types.setdefault(id(scope.container), {})
            graph = scope.graph
            for vi in (*graph.input, *graph.value_info, *graph.output):
                if vi.name not in types and vi.type.WhichOneof("value") is not None:
                    types[vi.name] = vi.type

    def _lookup(self, scope: Scope, name: str) -> tuple[Scope, TensorProto | None, TypeProto | None]:
        """Where `name` is defined, the initializer it is (typed exactly by its dtype and dims), else its
        recorded type; one resolve."""
        home = scope.resolve(name) or scope
        if not home.is_function:
            tensor = home.initializers.get(name)
            if tensor is not None:
                return home, tensor, None
        at: Scope | None = home
        while at is not None:
            found = self.types.get(id(at.container), {}).get(name)
            if found is not None:
                return home, None, found
            at = at.parent
        return home, None, None

    def type_of(self, scope: Scope, name: str) -> TypeProto | None:
        _, tensor, t = self._lookup(scope, name)
        if tensor is not None:
            return helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
        return t

    def is_tensor(self, scope: Scope, name: str) -> bool | None:
        _, tensor, t = self._lookup(scope, name)
        if tensor is not None:
            return True
        return None if t is None else t.WhichOneof("value") == "tensor_type"

    def elem_type(self, scope: Scope, name: str) -> int | None:
        found = self._elems.get((id(scope), name))
        if found is not None:
            return found
        home, tensor, t = self._lookup(scope, name)
        if tensor is not None and tensor.data_type:
            found = tensor.data_type
        elif t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.elem_type:
            derived = self.derived.get((id(home), name))
            found = derived[0] if derived is not None else None
        else:
            found = t.tensor_type.elem_type
        if found is not None:  # a known type never changes (unknown ones may be derived later in the walk)
            self._elems[(id(scope), name)] = found
        return found

    def dims(self, scope: Scope, name: str) -> list[int | None] | None:
        """Static dims (None where not static), or None if the rank is unknown."""
        dims = self.symbolic_dims(scope, name)
        return None if dims is None else [d if isinstance(d, int) else None for d in dims]

    def static_dims(self, scope: Scope, name: str) -> list[int] | None:
        """Dims when all are static; None otherwise."""
        dims = self.dims(scope, name)
        if dims is None:
            return None
        static = [d for d in dims if d is not None]
        return static if len(static) == len(dims) else None

    def symbolic_dims(self, scope: Scope, name: str) -> list[Elem] | None:
        """Dims as ints or symbols (dim_param, else unique to this tensor and axis); None if rank unknown."""
        found = self._dims.get((id(scope), name))  # cached under the reading scope too: no resolve on a hit
        if found is None:
            home = scope.resolve(name) or scope
            key = (id(home), name)
            found = self._dims.get(key)
            if found is None:
                derived = self.derived.get(key)
                if derived is not None:
                    found = derived[1]
                else:
                    declared = self._declared_dims(scope, name)
                    if declared is None:
                        return None
                    found = tuple(declared)
                self._dims[key] = found
            self._dims[(id(scope), name)] = found
        return list(found)

    def _declared_dims(self, scope: Scope, name: str) -> list[Elem] | None:
        """Dims from the inferred or declared type alone."""
        home, tensor, t = self._lookup(scope, name)
        if tensor is not None:
            return [int(d) for d in tensor.dims]
        return _type_dims(t, home, name)

    def nbytes(self, scope: Scope, name: str) -> int | None:
        """Bytes of a tensor whose type and dims are all static; None otherwise."""
        dims = self.symbolic_dims(scope, name)
        elem = self.elem_type(scope, name)
        if dims is None or elem is None or elem == TensorProto.STRING:
            return None
        size = _itemsize(elem)
        if size is None:
            return None
        count = 1
        for d in dims:
            if not isinstance(d, int):
                return None
            count *= d
        return count * size

    # -- partial values ----------------------------------------------------------------------------------
    def value(self, scope: Scope, name: str) -> Partial | None:
        home = scope.resolve(name)
        if home is None:
            return None
        return self.partial.get((id(home), name))

    def _constant_partial(self, scope: Scope, name: str) -> Partial | None:
        home = scope.resolve(name)
        if home is None:
            return None
        key = (id(home), name)
        if key not in self._constants:
            self._constants[key] = self._read_constant_partial(home, name)
        return self._constants[key]

    def _read_constant_partial(self, home: Scope, name: str) -> Partial | None:
        tensor = None
        if name in home.initializers and not (home.parent is None and not home.is_function and name in home.inputs):
            tensor = home.initializers[name]
        else:
            producer = home.producer.get(name)
            if producer is not None and producer.op_type == "Constant" and producer.domain in ("", "ai.onnx"):
                for a in producer.attribute:
                    if a.name == "value" and a.type == AttributeProto.TENSOR:
                        tensor = a.t
                    elif a.name == "value_int":
                        return Partial(TensorProto.INT64, True, (a.i,))
                    elif a.name == "value_ints":
                        return Partial(TensorProto.INT64, False, tuple(a.ints))
        if tensor is None or tensor.data_type not in _INT_TYPES or len(tensor.dims) > 1 or is_external(tensor):
            return None
        count = math.prod(tensor.dims)
        if count > _SMALL:
            return None
        arr = onnx.numpy_helper.to_array(tensor)
        return Partial(tensor.data_type, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))

    def _input(self, scope: Scope, node: NodeProto, i: int) -> Partial | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        found = self.value(scope, name)
        return found if found is not None else self._constant_partial(scope, name)

    def _propagate(self, previous: ShapeInfo | None = None) -> set[str]:
        """One walk over every scope in topological order: partial values, then dims where inference stopped.
        Rules are looked up once per op type; a node whose outputs all have static inferred dims runs none.
        With `previous`, a node that reads the same names as then, none of whose knowledge changed, keeps
        what `previous` derived for it (by name: a name shadowed in another scope costs a recomputation only).
        Returns the names whose knowledge differs from `previous`'s."""
        from graphsurgeon.verbs.fold.dims import DIM_RULES
        from graphsurgeon.verbs.fold.values import PARTIAL_RULES

        partial_rules: dict[str, Callable | None] = {}
        dim_rules: dict[str, Callable | None] = {}
        # names whose knowledge differs from `previous`'s: values once produced that are constants now (folded)
        # and differ, then the outputs of recomputed nodes that differ
        changed = self._resourced_changes(previous) if previous is not None else set()
        seen, produced, partial = self._seen, self._produced, self.partial
        earlier = previous._seen if previous is not None else {}
        for scope in self.index.scopes:
            local = self.types.get(id(scope.container), {})
            sid = id(scope)
            self.orders[sid] = nodes = ordered_nodes(scope)
            for node in nodes:
                domain = node.domain
                if domain not in _STANDARD:
                    continue
                outputs = tuple(node.output)
                if not outputs:
                    continue
                op = node.op_type
                inputs = tuple(node.input)
                seen[id(node)] = signature = (op, domain, inputs, outputs)
                single = len(outputs) == 1
                if single:
                    produced.add((sid, outputs[0]))
                else:
                    produced.update((sid, o) for o in outputs)
                if previous is not None:
                    if earlier.get(id(node)) == signature and not (changed and any(i in changed for i in inputs)):
                        self._copy_outputs(previous, sid, outputs)
                        continue
                    before = [previous._knowledge(scope, o) if o else None for o in outputs]
                found = [local.get(outputs[0])] if single else [local.get(o) if o else None for o in outputs]
                if single and outputs[0] and _may_be_int(found[0]):
                    if op not in partial_rules:
                        partial_rules[op] = PARTIAL_RULES.lookup(op, self.opset)
                    rule = partial_rules[op]
                    if rule is not None:
                        try:
                            result = rule(self, scope, node)
                        except (ValueError, IndexError, TypeError, KeyError, OverflowError):
                            result = None
                        if result is not None:
                            partial[(sid, outputs[0])] = result
                if not (
                    (not outputs[0] or _static_type(found[0]))
                    if single
                    else all(not o or _static_type(t) for o, t in zip(outputs, found, strict=True))
                ):
                    if op not in dim_rules:
                        dim_rules[op] = DIM_RULES.lookup(op, self.opset)
                    dim_rule = dim_rules[op]
                    if dim_rule is not None:
                        self._complete_dims(scope, node, list(outputs), found, dim_rule)
                if previous is not None:
                    changed.update(
                        o for o, old in zip(outputs, before, strict=True) if o and self._knowledge(scope, o) != old
                    )
        return changed

    def _knowledge(self, scope: Scope, name: str) -> tuple:
        """All a rule can learn about a produced name: partial value, element type, dims."""
        home = scope.resolve(name) or scope
        key = (id(home), name)
        partial = self.partial.get(key)
        if partial is None:
            partial = self._constants.get(key)
        return (partial, self.elem_type(scope, name), self._dims_tuple(scope, name))

    def _dims_tuple(self, scope: Scope, name: str) -> tuple | None:
        dims = self.symbolic_dims(scope, name)
        return None if dims is None else tuple(dims)

    def _resourced_changes(self, previous: ShapeInfo) -> set[str]:
        """Names `previous` saw produced by a node that are initializers now (folded) and whose knowledge
        differs (a small int tensor computed by onnxruntime is a partial value now, a type is exact...).
        Names, not (scope, name) keys: a name shadowed in another scope only costs a recomputation there."""
        changed: set[str] = set()
        produced = previous._produced
        for scope in self.index.graph_scopes():
            sid = id(scope)
            for name, tensor in scope.initializers.items():
                if (sid, name) not in produced or name in scope.producer:
                    continue
                partial = self._constant_partial(scope, name) if tensor.data_type in _INT_TYPES else None
                now = (partial, tensor.data_type or None, tuple(int(d) for d in tensor.dims))
                if now != previous._produced_knowledge(scope, name):
                    changed.add(name)
        return changed

    def _produced_knowledge(self, scope: Scope, name: str) -> tuple:
        """`_knowledge` of a name this instance saw produced by a node of `scope` (which may define it otherwise
        now: only what was recorded then is read)."""
        key = (id(scope), name)
        partial = self.partial.get(key) or self._constants.get(key)
        derived = self.derived.get(key)
        t = self.types.get(id(scope.container), {}).get(name)
        elem = self._elems.get(key)
        if elem is None and t is not None and t.WhichOneof("value") == "tensor_type" and t.tensor_type.elem_type:
            elem = t.tensor_type.elem_type
        if elem is None and derived is not None:
            elem = derived[0]
        dims = self._dims.get(key)
        if dims is None:
            found = derived[1] if derived is not None else _type_dims(t, scope, name)
            dims = None if found is None else tuple(found)
        return (partial, elem, dims)

    def _copy_outputs(self, previous: ShapeInfo, sid: int, outputs: tuple[str, ...]) -> None:
        for o in outputs:
            key = (sid, o)
            if key in previous.partial:
                self.partial[key] = previous.partial[key]
            if key in previous.derived:
                self.derived[key] = previous.derived[key]

    def _complete_dims(self, scope: Scope, node: NodeProto, outputs: list[str], found: list, rule) -> None:
        """Dims onnx's inference left unknown (or anonymous), from the op's rule in DIM_RULES."""
        try:
            results = rule(self, scope, node)
        except (ValueError, IndexError, TypeError, KeyError, OverflowError, ZeroDivisionError):
            return
        for out, t, result in zip(outputs, found, results or (), strict=False):
            if not out or result is None:
                continue
            known = _type_dims(t, scope, out) if t is not None else None  # (a node output: `t` is its type)
            elem, dims = result
            self.derived[(id(scope), out)] = (elem, tuple(_merge(known, dims)))
