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
wherever the dims involved are static, and folding does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, NodeProto, TensorProto, TypeProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.rules import OpRules
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.core.walk import model_graphs

_SMALL = 64  # largest integer constant (elements) tracked as a partial value
_INT_TYPES: dict[int, type[np.integer]] = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}


def _static(dim) -> bool:
    """A dim with a usable value (a negative dim_value, which some files carry for "unknown", is not one)."""
    return dim.HasField("dim_value") and dim.dim_value >= 0


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
        """`reuse`: an earlier instance whose inferred types still hold (the model changed since only by
        meaning-preserving rewires, which keep every surviving name's value): no inference, only propagation."""
        self.model = model
        self.index = model.index
        self.types: dict[int, dict[str, TypeProto]] = {}
        self.partial: dict[tuple[int, str], Partial] = {}
        # (id(scope), name) -> (element type, dims): inferred dims completed by DIM_RULES; and dims known
        self.derived: dict[tuple[int, str], tuple[int | None, tuple[Elem, ...]]] = {}
        self._dims: dict[tuple[int, str], tuple[Elem, ...]] = {}
        self._constants: dict[tuple[int, str], Partial | None] = {}
        self.opset = model.opset_version()
        if reuse is not None:
            self.types = {key: dict(types) for key, types in reuse.types.items()}
        elif infer:
            self._infer()
        self._record_declared()
        self._propagate()

    # -- types -------------------------------------------------------------------------------------------
    def _infer(self) -> None:
        proto = self.model.proto
        graphs = list(model_graphs(proto))
        light = light_copy(proto)
        try:
            inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # advisory: without it, only declared types are known
            return
        for graph, inferred_graph in zip(graphs, model_graphs(inferred), strict=False):
            types = self.types.setdefault(id(graph), {})
            for vi in (*inferred_graph.input, *inferred_graph.value_info, *inferred_graph.output):
                if vi.type.WhichOneof("value") is not None:
                    types[vi.name] = vi.type

    def _record_declared(self) -> None:
        """Declared value_info / inputs / outputs where inference said nothing; initializers exactly."""
        for scope in self.index.graph_scopes():
            types = self.types.setdefault(id(scope.container), {})
            graph = scope.graph
            for vi in (*graph.input, *graph.value_info, *graph.output):
                if vi.name not in types and vi.type.WhichOneof("value") is not None:
                    types[vi.name] = vi.type
            for t in graph.initializer:
                types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))

    def type_of(self, scope: Scope, name: str) -> TypeProto | None:
        home: Scope | None = scope.resolve(name) or scope
        while home is not None:
            found = self.types.get(id(home.container), {}).get(name)
            if found is not None:
                return found
            home = home.parent
        return None

    def is_tensor(self, scope: Scope, name: str) -> bool | None:
        t = self.type_of(scope, name)
        if t is None:
            return None
        return t.WhichOneof("value") == "tensor_type"

    def elem_type(self, scope: Scope, name: str) -> int | None:
        t = self.type_of(scope, name)
        if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.elem_type:
            home = scope.resolve(name) or scope
            derived = self.derived.get((id(home), name))
            return derived[0] if derived is not None else None
        return t.tensor_type.elem_type

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
        return list(found)

    def _declared_dims(self, scope: Scope, name: str) -> list[Elem] | None:
        """Dims from the inferred or declared type alone."""
        t = self.type_of(scope, name)
        if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
            return None
        home = scope.resolve(name) or scope
        out: list[Elem] = []
        for axis, d in enumerate(t.tensor_type.shape.dim):
            if _static(d):
                out.append(d.dim_value)
            elif d.dim_param:
                out.append(Sym(("param", d.dim_param)))
            else:
                out.append(Sym(("anon", id(home.container), name, axis)))
        return out

    def nbytes(self, scope: Scope, name: str) -> int | None:
        """Bytes of a tensor whose type and dims are all static; None otherwise."""
        dims = self.static_dims(scope, name)
        elem = self.elem_type(scope, name)
        if dims is None or elem is None or elem == TensorProto.STRING:
            return None
        try:
            size = np.dtype(helper.tensor_dtype_to_np_dtype(elem)).itemsize
        except Exception:
            return None
        count = 1
        for d in dims:
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
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
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

    def _propagate(self) -> None:
        for scope in self.index.scopes:
            for node in ordered_nodes(scope):
                if node.domain not in ("", "ai.onnx") or not node.output:
                    continue
                if len(node.output) == 1 and node.output[0] and self._may_be_int(scope, node.output[0]):
                    try:
                        result = self._rule(scope, node)
                    except (ValueError, IndexError, TypeError, KeyError, OverflowError):
                        result = None
                    if result is not None:
                        self.partial[(id(scope), node.output[0])] = result
                self._complete_dims(scope, node)

    def _may_be_int(self, scope: Scope, name: str) -> bool:
        """Could this value carry a partial value (its inferred type is unknown, an int type or bool)?"""
        t = self.types.get(id(scope.container), {}).get(name)
        if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.elem_type:
            return True
        return t.tensor_type.elem_type in _INT_TYPES or t.tensor_type.elem_type == TensorProto.BOOL

    def _complete_dims(self, scope: Scope, node: NodeProto) -> None:
        """Dims onnx's inference left unknown (or anonymous), from the op's rule in DIM_RULES."""
        from graphsurgeon.verbs.fold.dims import DIM_RULES

        local = self.types.get(id(scope.container), {})
        declared: list[list[Elem] | None] = []
        for o in node.output:
            t = local.get(o) if o else None
            if t is None or t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
                declared.append(None if o else [])
            else:
                declared.append(self._declared_dims(scope, o))
        if all(d is not None and all(isinstance(e, int) for e in d) for d in declared):
            return
        rule = DIM_RULES.lookup(node.op_type, self.opset)
        if rule is None:
            return
        try:
            results = rule(self, scope, node)
        except (ValueError, IndexError, TypeError, KeyError, OverflowError, ZeroDivisionError):
            return
        for out, known, result in zip(node.output, declared, results or (), strict=False):
            if not out or result is None:
                continue
            elem, dims = result
            self.derived[(id(scope), out)] = (elem, tuple(_merge(known, dims)))

    def _rule(self, scope: Scope, node: NodeProto) -> Partial | None:
        rule = PARTIAL_RULES.lookup(node.op_type, self.opset)
        return rule(self, scope, node) if rule is not None else None


# -- partial-value rules, one per op ---------------------------------------------------------------------------
PartialRule = Callable[[ShapeInfo, Scope, NodeProto], "Partial | None"]
PARTIAL_RULES: OpRules[PartialRule] = OpRules()


@PARTIAL_RULES.register("Shape")
def _shape(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    dims = info.symbolic_dims(scope, node.input[0])
    if dims is None:
        return None
    rank = len(dims)
    start, end = _attr(node, "start", 0), _attr(node, "end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    return Partial(TensorProto.INT64, False, tuple(dims[start:end]))


@PARTIAL_RULES.register("Size")
def _size(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    dims = info.static_dims(scope, node.input[0])
    if dims is None:
        return None
    return Partial(TensorProto.INT64, True, (int(np.prod(dims, dtype=np.int64)),))


@PARTIAL_RULES.register("Identity")
def _identity(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    return info._input(scope, node, 0)


@PARTIAL_RULES.register("Cast")
def _cast(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src, to = info._input(scope, node, 0), _attr(node, "to")
    if src is None or to not in _INT_TYPES:
        return None
    return Partial(to, src.scalar, src.elems)


@PARTIAL_RULES.register("Gather")
def _gather(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data, idx = info._input(scope, node, 0), info._input(scope, node, 1)
    if data is None or idx is None or data.scalar or _attr(node, "axis", 0) not in (0, -1) or not idx.is_static():
        return None
    n = len(data.elems)
    indices = [i for i in idx.elems if isinstance(i, int)]
    return Partial(data.dtype, idx.scalar, tuple(data.elems[i + n if i < 0 else i] for i in indices))


@PARTIAL_RULES.register("Slice", until=9)
def _slice_attributes(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data = info._input(scope, node, 0)
    if data is None or data.scalar:
        return None
    starts, ends = tuple(_attr(node, "starts", [])), tuple(_attr(node, "ends", []))
    return _slice_1d(data, starts, ends, tuple(_attr(node, "axes", [0])), (1,))


@PARTIAL_RULES.register("Slice", since=10)
def _slice_inputs(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    data = info._input(scope, node, 0)
    if data is None or data.scalar or len(node.input) < 3:
        return None
    operands = [info._input(scope, node, i) if i < len(node.input) and node.input[i] else None for i in range(1, 5)]
    starts, ends, axes, steps = operands
    given = [i < len(node.input) and bool(node.input[i]) for i in range(1, 5)]
    if any(g and p is None for g, p in zip(given, operands, strict=True)):
        return None
    if starts is None or ends is None or not all(p is None or p.is_static() for p in operands):
        return None
    return _slice_1d(
        data,
        starts.elems,
        ends.elems,
        axes.elems if axes is not None else (0,),
        steps.elems if steps is not None else (1,),
    )


def _slice_1d(data: Partial, s: tuple, e: tuple, ax: tuple, st: tuple) -> Partial | None:
    if len(s) != 1 or len(e) != 1 or tuple(ax) not in ((0,), (-1,)) or len(st) != 1 or st[0] == 0:
        return None
    return Partial(data.dtype, False, tuple(data.elems[slice(s[0], e[0], st[0])]))


@PARTIAL_RULES.register("Concat")
def _concat(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    parts = [info._input(scope, node, i) for i in range(len(node.input))]
    if any(p is None or p.scalar for p in parts) or _attr(node, "axis", 0) not in (0, -1):
        return None
    elems: tuple[Elem, ...] = ()
    for p in parts:
        assert p is not None
        elems += p.elems
    first = parts[0]
    assert first is not None
    return Partial(first.dtype, False, elems)


@PARTIAL_RULES.register("Unsqueeze")
def _unsqueeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src = info._input(scope, node, 0)
    return None if src is None or not src.scalar else Partial(src.dtype, False, src.elems)


@PARTIAL_RULES.register("Squeeze")
def _squeeze(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    src = info._input(scope, node, 0)
    return None if src is None or src.scalar or len(src.elems) != 1 else Partial(src.dtype, True, src.elems)


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}


@PARTIAL_RULES.register("Add", "Sub", "Mul", "Div")
def _arithmetic(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    a, b = info._input(scope, node, 0), info._input(scope, node, 1)
    if a is None or b is None or TensorProto.BOOL in (a.dtype, b.dtype):
        return None
    if a.is_static() and b.is_static():
        arr = _ARITHMETIC.get(node.op_type, _int_div)(a.array(), b.array())
        return Partial(a.dtype, arr.ndim == 0, tuple(int(v) for v in np.asarray(arr).reshape(-1)))
    if len(a.elems) != len(b.elems) and 1 not in (len(a.elems), len(b.elems)):
        return None
    n = max(len(a.elems), len(b.elems))
    pairs = zip(a.elems * (n // len(a.elems)), b.elems * (n // len(b.elems)), strict=True)
    return Partial(a.dtype, a.scalar and b.scalar, tuple(_symbolic(node.op_type, x, y) for x, y in pairs))


def _symbolic(op: str, x: Elem, y: Elem) -> Elem:
    """One element of symbolic arithmetic: what the neutral element (x+0, x*1, x/1...) or zero (x*0) fixes."""
    if isinstance(x, int) and isinstance(y, int):
        return int(_ARITHMETIC.get(op, _int_div)(np.array(x), np.array(y)))
    if op == "Mul" and 0 in (x, y):
        return 0
    if (op in ("Add", "Sub") and y == 0) or (op in ("Mul", "Div") and y == 1):
        return x
    if (op == "Add" and x == 0) or (op == "Mul" and x == 1):
        return y
    return None


_COMPARISONS = {
    "Equal": np.equal,
    "Less": np.less,
    "Greater": np.greater,
    "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal,
}


@PARTIAL_RULES.register(*_COMPARISONS)
def _compare(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    """Comparisons of shape values (an If's condition on dims): static operands, or Equal of one symbol."""
    a, b = info._input(scope, node, 0), info._input(scope, node, 1)
    if a is None or b is None or TensorProto.BOOL in (a.dtype, b.dtype):
        return None
    if a.is_static() and b.is_static():
        arr = np.asarray(_COMPARISONS[node.op_type](a.array(), b.array()))
        return Partial(TensorProto.BOOL, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))
    if node.op_type in ("Equal", "LessOrEqual", "GreaterOrEqual") and a.scalar == b.scalar and a.elems == b.elems:
        if all(isinstance(e, Sym) for e in a.elems):
            return Partial(TensorProto.BOOL, a.scalar, (1,) * len(a.elems))  # the same symbol is equal to itself
    return None


@PARTIAL_RULES.register("Not", "And", "Or", "Xor")
def _logic(info: ShapeInfo, scope: Scope, node: NodeProto) -> Partial | None:
    values = [info._input(scope, node, i) for i in range(len(node.input))]
    if not values or any(v is None or v.dtype != TensorProto.BOOL or not v.is_static() for v in values):
        return None
    arrays = [v.array() for v in values if v is not None]
    if node.op_type == "Not":
        arr = np.logical_not(arrays[0])
    else:
        arr = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}[node.op_type](*arrays)
    arr = np.asarray(arr)
    return Partial(TensorProto.BOOL, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.any(b == 0):
        raise ValueError("division by zero")
    return np.trunc(a / b).astype(a.dtype)
