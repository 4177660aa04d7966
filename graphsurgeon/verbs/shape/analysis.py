"""Which tensors carry a changed dim, and which constants must change so the model runs at any value of it.

One pass walks every scope in topological order (subgraphs and function bodies where their owner or caller
is), giving every tensor a *symbolic shape* (dims are ints or monomials over symbols, see dims.py) and every
small integer tensor a *symbolic value* (what ``Shape``-derived arithmetic computes). A node none of whose
inputs carries a changed symbol keeps the shapes onnx's inference found for the original model; the others go
through a rule for their op (rules.py). Rules that find a constant disagreeing with the symbols (a Reshape
target holding the old batch, an Expand shape, a ConstantOfShape, a baked mask broadcast against the batch)
record a *demand*, which is followed back through the arithmetic that made the constant (backtrack.py) down to
the constant itself, where it becomes a *plan* for that one use. Passes repeat until no new plan appears; the
plans are then materialized by rewrite.py. Anything the rules cannot follow is refused, naming the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from graphsurgeon.core.constants import constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import inline_problem, is_external, read_tensor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.rules import OpRules
from graphsurgeon.core.select import describe
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, evaluate, fmt, fmt_shape, symbols
from graphsurgeon.verbs.shape.exported import MISSING, ExportedShapes, Shape, home_of

SMALL = 64  # integer tensors up to this many elements carry symbolic values
MAX_PASSES = 8
_INT_TYPES = (TensorProto.INT64, TensorProto.INT32)
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE)  # shape arithmetic exported through floats


@dataclass(frozen=True)
class Value:
    """A small integer tensor of rank 0 or 1 whose elements are symbolic dims."""

    dtype: int
    scalar: bool
    elems: tuple[MaybeDim, ...]

    def is_static(self) -> bool:
        return all(isinstance(e, int) for e in self.elems)

    def replaced(self, index: int, dim: MaybeDim) -> Value:
        elems = list(self.elems)
        elems[index] = dim
        return Value(self.dtype, self.scalar, tuple(elems))


@dataclass
class TensorPlan:
    """A constant tensor read by one node must follow symbols along some axes (uniform or arange along them)."""

    tensor: TensorProto
    axes: dict[int, MaybeDim] = field(default_factory=dict)


Use = tuple[Scope, NodeProto, int]  # a node input


def refuse(scope: Scope, node: NodeProto, text: str) -> RewriteError:
    return RewriteError(f"{describe(scope, node)}: {text}")


def _follow(rule, analysis: Analysis, scope: Scope, node: NodeProto) -> list:
    """A shape rule's outputs; a rule failing on what a node holds (an axis past the rank, pads that do not
    pair up: a hostile or broken model) is a refusal naming the node, never a crash."""
    try:
        return rule(analysis, scope, node)
    except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError) as e:
        raise refuse(scope, node, f"its attributes or inputs do not fit its input's shape ({type(e).__name__})") from e


class Analysis(ExportedShapes):
    """Symbolic shapes and values for a model whose graph inputs get new dims; the constants to rewrite."""

    def __init__(
        self,
        model: Editor,
        seeds: dict[str, Shape],
        env: dict[str, int],
        *,
        leading: bool = False,
    ) -> None:
        super().__init__(model, dict(env))  # env: changed symbol -> its value in the exported model
        self.index = model.index
        self.seeds = seeds  # graph input -> its new symbolic shape
        self.changed = frozenset(env)
        self.leading = leading  # ambiguous places of a dim of exported value 1: take the first
        self.opset = model.opset_version() or 1
        self.defaults_are_constants = model.proto.ir_version < 4  # IR 3 lists every initializer as an input
        self.shapes: dict[tuple[int, str], Shape | None] = {}
        self.values: dict[tuple[int, str], Value] = {}
        self.use_values: dict[tuple[int, int], Value] = {}
        self.use_tensors: dict[tuple[int, int], TensorPlan] = {}
        self.uses: dict[tuple[int, int], Use] = {}
        self.sources: dict[str, tuple[str, int]] = {}  # symbol -> (main graph input, axis) carrying it exactly
        self.function_sources: dict[tuple[int, str], tuple[str, int]] = {}
        self.visited_functions: set[int] = set()
        self.new_plans = 0
        self.touched: set[tuple[int, str]] = set()  # tensors whose shapes the change reaches
        self._agreeing: set[tuple[Shape, Shape]] = set()
        self._evaluated: dict[MaybeDim, int | None] = {}
        self._constants: dict[tuple[int, str], Value | None] = {}
        self.current: int | None = None  # the node being walked: a plan for its own operand needs no new pass

    # -- reading inputs ----------------------------------------------------------------------------------
    def _key(self, scope: Scope, name: str) -> tuple[int, str]:
        return id(home_of(scope, name)), name

    def shape(self, scope: Scope, node: NodeProto, i: int) -> Shape | None:
        """The symbolic shape of a node's input (a plan for that use wins)."""
        names = node.input
        name = names[i] if i < len(names) else ""
        if not name:
            return None
        plan = self.use_tensors.get((id(node), i)) if self.use_tensors else None
        if plan is not None:
            dims = [int(d) for d in plan.tensor.dims]
            return tuple(plan.axes.get(a, d) for a, d in enumerate(dims))
        key = (id(home_of(scope, name)), name)
        found = self.shapes.get(key, MISSING)
        if found is MISSING:
            found = self.shapes[key] = self.exported_shape(scope, name)
        return found  # type: ignore[return-value]

    def tensor_shape(self, scope: Scope, name: str) -> Shape | None:
        key = (id(home_of(scope, name)), name)
        found = self.shapes.get(key, MISSING)
        if found is MISSING:
            found = self.shapes[key] = self.exported_shape(scope, name)
        return found  # type: ignore[return-value]

    def value(self, scope: Scope, node: NodeProto, i: int) -> Value | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        planned = self.use_values.get((id(node), i))
        if planned is not None:
            return planned
        if (id(node), i) in self.use_tensors:
            return None
        return self.tensor_value(scope, node.input[i])

    def tensor_value(self, scope: Scope, name: str) -> Value | None:
        key = (id(home_of(scope, name)), name)
        value = self.values.get(key)
        if value is not None:
            return value
        found = self._constants.get(key, MISSING)
        if found is MISSING:
            found = self._constants[key] = self._constant_value(scope, name)
        return found  # type: ignore[return-value]

    def _constant_value(self, scope: Scope, name: str) -> Value | None:
        tensor = self.constant(scope, name)
        if tensor is None or tensor.data_type not in _INT_TYPES + _FLOAT_TYPES or len(tensor.dims) > 1:
            return None
        if is_external(tensor) or (int(np.prod(tensor.dims)) if tensor.dims else 1) > SMALL:
            return None
        problem = inline_problem(tensor)  # data that disagrees with its dims: refused, naming the tensor
        if problem is not None:
            raise RewriteError(problem)
        arr = numpy_helper.to_array(tensor)
        if tensor.data_type in _FLOAT_TYPES and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            return None
        return Value(tensor.data_type, arr.ndim == 0, tuple(int(v) for v in arr.reshape(-1)))

    def constant(self, scope: Scope, name: str) -> TensorProto | None:
        """The initializer or Constant node value named `name` (a graph input with a default is not one, but in
        IR 3, where every initializer is listed as an input, it is)."""
        home = scope.resolve(name)
        if home is None:
            return None
        if name in home.initializers and (name not in home.inputs or self.defaults_are_constants):
            return home.initializers[name]
        producer = home.producer.get(name)
        if producer is not None and is_constant_node(producer):
            return constant_tensor(producer)
        return None

    def read(self, tensor: TensorProto) -> np.ndarray:
        return read_tensor(tensor, self.model.external_data_dir)

    def carries_change(self, shape: Shape | None) -> bool:
        if shape is None:
            return False
        changed = self.changed
        for d in shape:
            if type(d) is Mono and any(s in changed for s, _ in d.syms):
                return True
        return False

    def eval(self, d: MaybeDim) -> int | None:
        return evaluate(d, self.env)

    def _value_of(self, d: MaybeDim) -> int | None:
        """eval, memoized per dim (the same few symbolic dims recur on every tensor)."""
        if d not in self._evaluated:
            self._evaluated[d] = evaluate(d, self.env)
        return self._evaluated[d]

    # -- the passes ----------------------------------------------------------------------------------------
    def run(self) -> None:
        for _ in range(MAX_PASSES):
            self.new_plans = 0
            self.shapes.clear()
            self.values.clear()
            self.visited_functions.clear()
            self.touched.clear()
            main = self.index.main
            self.touched.update((id(main), name) for name in self.seeds)
            for name, shape in self.seeds.items():
                self.shapes[(id(main), name)] = shape
                for axis, d in enumerate(shape):
                    if isinstance(d, Mono) and d.symbol is not None:
                        self.sources.setdefault(d.symbol, (name, axis))
            for name in main.inputs:
                if name not in self.seeds:
                    for axis, d in enumerate(self.tensor_shape(main, name) or ()):
                        if isinstance(d, Mono) and d.symbol is not None:
                            self.sources.setdefault(d.symbol, (name, axis))
            self.walk(main)
            if not self.new_plans:
                return
        raise RewriteError("the shape analysis did not settle; please report this model")

    def walk(self, scope: Scope) -> None:
        from graphsurgeon.verbs.shape.subgraphs import run_function, run_subgraphs
        from graphsurgeon.verbs.shape.values import SHAPE_RULES, VALUE_RULES

        functions = self.index.functions
        for node in ordered_nodes(scope):
            self.current = id(node)
            count = len(node.input)
            inputs = [self.shape(scope, node, i) for i in range(count)]
            touched = any(map(self.carries_change, inputs)) or any(
                v is not None and self.carries_change(v.elems)
                for v in (self.value(scope, node, i) for i in range(count))
            )
            children = scope.children.get(id(node))
            if children and not touched:
                touched = self._outer_touched(scope, node)
            function = functions.get((node.domain, node.op_type, node.overload)) if functions else None
            if function is not None and touched:
                outputs = run_function(self, scope, node, function)
            elif children and touched:
                outputs = run_subgraphs(self, scope, node)
            elif touched or scope.is_function:
                rule = SHAPE_RULES.lookup(node.op_type, self.opset) if node.domain in ("", "ai.onnx") else None
                if rule is None:
                    if not touched:
                        outputs = [self.exported_shape(scope, o) if o else None for o in node.output]
                    else:
                        raise refuse(
                            scope,
                            node,
                            f"graphsurgeon has no shape rule for {node.op_type}, so it cannot follow "
                            f"{self._changed_text(inputs)} through it",
                        )
                else:
                    outputs = _follow(rule, self, scope, node)
            else:
                outputs = [self.exported_shape(scope, o) if o else None for o in node.output]
                if any(o is None or None in o for o in outputs) and node.domain in ("", "ai.onnx"):
                    rule = SHAPE_RULES.lookup(node.op_type, self.opset)
                    if rule is not None:
                        try:
                            outputs = [
                                e if e is not None and None not in e else r
                                for e, r in zip(outputs, _follow(rule, self, scope, node), strict=False)
                            ]
                        except RewriteError:
                            pass
            if touched and None in outputs and self._loses_change(node, outputs):
                raise refuse(
                    scope,
                    node,
                    f"the shape of its output cannot be told, so {self._changed_text(inputs)} cannot be followed "
                    "through it",
                )
            for position, out in enumerate(node.output):
                if not out or position >= len(outputs):
                    continue
                shape = outputs[position]
                if touched and not scope.is_function:
                    self._check(scope, node, out, shape)
                if touched:
                    self.touched.add((id(scope), out))
                self.shapes[(id(scope), out)] = shape
            if len(node.output) == 1 and node.output[0] and node.domain in ("", "ai.onnx"):
                vrule = VALUE_RULES.lookup(node.op_type, self.opset)
                if vrule is not None:
                    try:
                        found = vrule(self, scope, node)
                    except (ValueError, IndexError, TypeError, KeyError, OverflowError, ZeroDivisionError):
                        found = None
                    if found is not None:
                        self.values[(id(scope), node.output[0])] = found

    @staticmethod
    def _loses_change(node: NodeProto, outputs: list[Shape | None]) -> bool:
        """A changed dim flows in (the node is touched) and every output's shape is unknown: downstream, the
        exported shapes would be taken for the new ones (and constants that carry the dim would go unnoticed)."""
        produced = [o for position, o in enumerate(outputs) if position < len(node.output) and node.output[position]]
        return bool(produced) and all(o is None for o in produced)

    def _outer_touched(self, scope: Scope, node: NodeProto) -> bool:
        for child in scope.children.get(id(node), ()):
            for name in child.free_names:
                if self.carries_change(self.tensor_shape(scope, name)):
                    return True
                v = self.tensor_value(scope, name)
                if v is not None and self.carries_change(v.elems):
                    return True
        return False

    def _changed_text(self, shapes: list[Shape | None]) -> str:
        names = sorted({s for shape in shapes for d in shape or () for s in symbols(d) if s in self.changed})
        return ", ".join(repr(n) for n in names) or "the changed dims"

    def _check(self, scope: Scope, node: NodeProto, name: str, shape: Shape | None) -> None:
        """Our shape at the exported values must be what onnx inferred for the exported model."""
        exported = self.exported_shape(scope, name)
        if shape is None or exported is None or shape == exported or (shape, exported) in self._agreeing:
            return
        if len(shape) != len(exported):
            raise refuse(scope, node, f"output {name!r} would have rank {len(shape)}, not {len(exported)}")
        for axis, (mine, theirs) in enumerate(zip(shape, exported, strict=True)):
            if mine == theirs or mine is None or not isinstance(theirs, int):
                continue
            if self._value_of(mine) not in (None, theirs):
                raise refuse(
                    scope,
                    node,
                    f"output {name!r} axis {axis} is {theirs} in the exported model but follows as {fmt(mine)} "
                    f"(= {self.eval(mine)}), so its shapes cannot be followed",
                )
        self._agreeing.add((shape, exported))  # the same few shapes recur on every layer

    # -- demands -----------------------------------------------------------------------------------------
    def plan_value(self, use: Use, elem: int, dim: MaybeDim) -> None:
        """The constant read at `use` must hold `dim` at element `elem` (for this reader only)."""
        scope, node, i = use
        key = (id(node), i)
        current = self.use_values.get(key) or self.tensor_value(scope, node.input[i])
        if current is None or elem >= len(current.elems):
            raise refuse(scope, node, f"its operand {node.input[i]!r} cannot be rewritten element by element")
        if current.elems[elem] == dim:
            return
        self.use_values[key] = current.replaced(elem, dim)
        self.uses[key] = use
        if id(node) != self.current:  # its own operand: the rule already gave the outputs it implies
            self.new_plans += 1

    def plan_tensor(self, use: Use, axis: int, dim: MaybeDim) -> None:
        scope, node, i = use
        key = (id(node), i)
        plan = self.use_tensors.get(key)
        if plan is None:
            tensor = self.constant(scope, node.input[i])
            assert tensor is not None
            plan = TensorPlan(tensor)
        if plan.axes.get(axis) == dim:
            return
        if axis in plan.axes:
            raise refuse(scope, node, f"constant {node.input[i]!r} axis {axis} would need two different sizes")
        check_rebatchable(self, use, plan.tensor, axis)
        plan.axes[axis] = dim
        self.use_tensors[key] = plan
        self.uses[key] = use
        self.new_plans += 1

    def demand_axis(self, use: Use, axis: int, dim: MaybeDim) -> None:
        from graphsurgeon.verbs.shape.backtrack import follow

        follow(self, "axis", use, axis, dim)

    def demand_value(self, use: Use, elem: int, dim: MaybeDim) -> None:
        from graphsurgeon.verbs.shape.backtrack import follow

        follow(self, "value", use, elem, dim)

    # -- shared rule helpers -----------------------------------------------------------------------------
    def broadcast(self, scope: Scope, node: NodeProto, indices: list[int]) -> Shape | None:
        """Numpy broadcasting of the inputs' symbolic shapes; a static operand dim equal to a symbolic one's
        exported value (and not 1) is demanded to follow it."""
        shapes = [(i, self.shape(scope, node, i)) for i in indices if i < len(node.input) and node.input[i]]
        if any(s is None for _, s in shapes):
            return None
        rank = max((len(s) for _, s in shapes if s is not None), default=0)
        out: list[MaybeDim] = []
        for axis in range(rank):
            dims = []
            for i, s in shapes:
                assert s is not None
                pos = axis - (rank - len(s))
                dims.append((i, pos, s[pos] if pos >= 0 else 1))
            symbolic = [d for _, _, d in dims if d is None or isinstance(d, Mono)]
            static = [d for _, _, d in dims if isinstance(d, int) and d != 1]
            if not symbolic:
                out.append(static[0] if static else 1)
                continue
            known = [d for d in symbolic if d is not None]
            if not known:
                out.append(static[0] if static else None)
                continue
            target = known[0]
            for other in known[1:]:
                if other != target and self._value_of(other) != 1 and self._value_of(target) != 1:
                    if self._value_of(other) == self._value_of(target) and not (symbols(other) and symbols(target)):
                        continue
                    raise refuse(
                        scope,
                        node,
                        f"broadcasts {fmt(target)} against {fmt(other)} on one axis; they cannot both be free "
                        "(give them the same symbol, or fix one)",
                    )
                if self._value_of(target) == 1 and other != target:
                    target = other
            value = self._value_of(target)
            for i, pos, d in dims:
                if isinstance(d, int) and d != 1:
                    if value is not None and d != value:
                        raise refuse(scope, node, f"broadcasts {fmt(target)} (= {value}) against {d}")
                    if self.carries_change((target,)):
                        self.demand_axis((scope, node, i), pos, target)
            out.append(target)
        return tuple(out)

    def describe_shape(self, shape: Shape | None) -> str:
        return fmt_shape(shape)


def check_rebatchable(analysis: Analysis, use: Use, tensor: TensorProto, axis: int) -> None:
    """A constant may follow a symbol along `axis` when it is affine along it: ``first + i * step`` for item i,
    with `first` and `step` slices (a step of 0: it repeats; a step of 1 in an index tensor: it counts)."""
    scope, node, i = use
    count = int(np.prod(tensor.dims)) if tensor.dims else 1
    if count > 1 << 24:
        raise refuse(scope, node, f"constant {node.input[i]!r} is too large to re-batch ({count} elements)")
    arr = analysis.read(tensor)
    if axis >= arr.ndim:
        raise refuse(scope, node, f"constant {node.input[i]!r} has no axis {axis}")
    if affine_along(arr, axis) is None:
        raise refuse(
            scope,
            node,
            f"constant {node.input[i]!r} has size {arr.shape[axis]} on axis {axis} like the dim that changes, but "
            "its values are neither repeated nor counting along it (a weight, or data for each exported item), "
            "so it cannot follow it",
        )


def affine_along(arr: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(first, step) slices (kept dims) with ``arr == first + arange * step`` along `axis`, or None."""
    first = np.take(arr, [0], axis=axis)
    if np.array_equal(np.broadcast_to(first, arr.shape), arr):
        return first, np.zeros_like(first)
    if arr.dtype.kind not in "iu" or arr.shape[axis] < 2:
        return None
    step = np.take(arr, [1], axis=axis) - first
    shape = [1] * arr.ndim
    shape[axis] = arr.shape[axis]
    counted = first + np.arange(arr.shape[axis], dtype=arr.dtype).reshape(shape) * step
    return (first, step) if np.array_equal(counted, arr) else None


ShapeRule = Callable[[Analysis, Scope, NodeProto], "list[Shape | None]"]
ValueRule = Callable[[Analysis, Scope, NodeProto], "Value | None"]
SHAPE_RULES_TABLE: OpRules[ShapeRule] = OpRules()
VALUE_RULES_TABLE: OpRules[ValueRule] = OpRules()


def attr(node: NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name and not a.ref_attr_name:
            return helper.get_attribute_value(a)
    return default
