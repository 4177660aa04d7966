"""No-op elimination: Identity, Dropout in inference, Cast to the same type, Reshape/Expand to the same shape,
identity Transpose, whole-tensor Slice, zero Pad, x+0, x*1, ... (one rule per op and opset range).

A no-op's output is an alias of its input: every read of it (nested subgraphs included) is rewired to what it
stands for and the node goes. A graph output keeps its name: the tensor passed through is renamed to the output
instead (when a node of the same graph produces it and it is not part of the interface); otherwise the node
stays. One walk over the nodes in topological order; each small constant is read at most once per pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import AttributeProto, NodeProto, TensorProto, helper

from graphsurgeon.core.constants import constant_behind
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.rules import OpRules
from graphsurgeon.verbs.fold.shapes import Partial, ShapeInfo, _attr
from graphsurgeon.verbs.simplify.rewrites import Aliases, NodeOrder, known_equal, nodes_in_order, small_constant

_STANDARD = ("", "ai.onnx")
_SUBGRAPH_TYPES = (AttributeProto.GRAPH, AttributeProto.GRAPHS)


class NoopPass:
    """What the rules need during one pass: the model, shape knowledge, the opset, and small constants read
    once each (a pass only rewires reads, so a constant's value cannot change during it)."""

    def __init__(self, model: Editor, shapes: ShapeInfo):
        self.model = model
        self.shapes = shapes
        self.opset = model.opset_version()
        self._constants: dict[tuple[int, str], np.ndarray | None] = {}
        self._neutral: dict[tuple[int, str, int], np.ndarray | None] = {}

    def constant(self, scope: Scope, name: str) -> np.ndarray | None:
        """The value of a small constant (see `small_constant`), or None."""
        key = (id(scope), name)
        if key not in self._constants:
            self._constants[key] = small_constant(self.model, scope, name)
        return self._constants[key]

    def neutral(self, scope: Scope, name: str, neutral: int) -> np.ndarray | None:
        """The value of a constant (up to 1 MiB inline: an attention mask of zeros is bigger than the usual
        small constant) when every element is `neutral`, else None. Its first element is looked at first, so
        an ordinary weight is rejected without being read."""
        key = (id(scope), name, neutral)
        if key not in self._neutral:
            self._neutral[key] = None
            tensor = constant_behind(scope, name)
            size = declared_nbytes(tensor) if tensor is not None and not is_external(tensor) else None
            if tensor is not None and size is not None and size <= _NEUTRAL_LIMIT and _first_is(tensor, neutral):
                value = small_constant(self.model, scope, name, limit=_NEUTRAL_LIMIT)
                if value is not None and np.all(value == neutral):
                    self._neutral[key] = value
        return self._neutral[key]

    def target(self, scope: Scope, name: str) -> list | None:
        """A 1-D int shape operand as a list of ints/symbols, from a constant or a partial value."""
        value = self.constant(scope, name)
        if value is not None:
            if value.ndim != 1 or value.dtype.kind not in "iu":
                return None
            return [int(v) for v in value]
        partial: Partial | None = self.shapes.value(scope, name)
        if partial is None or partial.scalar:
            return None
        return list(partial.elems)


_NEUTRAL_LIMIT = 1 << 20


def _first_is(tensor: TensorProto, neutral: int) -> bool:
    """Is the first element of an inline tensor `neutral` (or can it not be told cheaply)?"""
    if not tensor.HasField("raw_data"):
        return True  # typed fields: small_constant reads them
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        return bool(np.frombuffer(tensor.raw_data, dtype=dtype, count=1)[0] == neutral)
    except (KeyError, ValueError, TypeError):
        return True


NoopRule = Callable[[NoopPass, Scope, NodeProto], "int | None"]
NOOP_RULES: OpRules[NoopRule] = OpRules()  # op -> which input the node passes through unchanged, or None
_MULTI_OUTPUT = {"Identity", "Dropout", "Split"}  # rules that judge their extra outputs themselves


def _extra_outputs_used(scope: Scope, node: NodeProto) -> bool:
    return any(o and (scope.readers(o) or o in scope.outputs) for o in node.output[1:])


@NOOP_RULES.register("Identity")
def _identity(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    return 0


@NOOP_RULES.register("Dropout")
def _dropout(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if _extra_outputs_used(scope, node):
        return None
    if _attr(node, "is_test", 1) == 0 and p.opset is not None and p.opset < 7:
        return None
    if len(node.input) > 2 and node.input[2]:
        mode = p.constant(scope, node.input[2])
        if mode is None or bool(mode.reshape(-1)[0]):
            return None
    return 0


@NOOP_RULES.register("Split")
def _split(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    return 0 if len(node.output) == 1 else None


@NOOP_RULES.register("Cast")
def _cast(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    return 0 if known_equal(_attr(node, "to"), p.shapes.elem_type(scope, node.input[0])) else None


@NOOP_RULES.register("CastLike")
def _cast_like(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if len(node.input) < 2:
        return None
    shapes = p.shapes
    return 0 if known_equal(shapes.elem_type(scope, node.input[0]), shapes.elem_type(scope, node.input[1])) else None


@NOOP_RULES.register("Sum", "Max", "Min", "Mean", "Concat")
def _single_operand(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    return 0 if len([i for i in node.input if i]) == 1 else None


@NOOP_RULES.register("Transpose")
def _transpose(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    perm = _attr(node, "perm")
    if perm is None:
        dims = p.shapes.dims(scope, node.input[0])
        return 0 if dims is not None and len(dims) <= 1 else None
    return 0 if list(perm) == list(range(len(perm))) else None


@NOOP_RULES.register("Reshape")
def _reshape(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    dims = p.shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    target = p.target(scope, node.input[1])
    if target is None or len(target) != len(dims) or sum(1 for t in target if t == -1) > 1:
        return None
    allowzero = _attr(node, "allowzero", 0)
    same = all(t == -1 or (t == 0 and not allowzero) or known_equal(t, d) for t, d in zip(target, dims, strict=True))
    return 0 if same else None


@NOOP_RULES.register("Expand")
def _expand(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    dims = p.shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    target = p.target(scope, node.input[1])
    if target is None or len(target) > len(dims):
        return None
    same = all(t == 1 or known_equal(t, d) for t, d in zip(reversed(target), reversed(dims), strict=False))
    return 0 if same else None


@NOOP_RULES.register("Tile")
def _tile(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    dims = p.shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    reps = p.constant(scope, node.input[1])
    return 0 if reps is not None and reps.size == len(dims) and np.all(reps == 1) else None


def _axes_operand(p: NoopPass, scope: Scope, node: NodeProto) -> object:
    return _attr(node, "axes") if len(node.input) < 2 else p.constant(scope, node.input[1])


@NOOP_RULES.register("Unsqueeze")
def _unsqueeze(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if p.shapes.symbolic_dims(scope, node.input[0]) is None:
        return None
    axes = _axes_operand(p, scope, node)
    return 0 if axes is not None and np.asarray(axes).size == 0 else None


@NOOP_RULES.register("Squeeze")
def _squeeze(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if p.shapes.symbolic_dims(scope, node.input[0]) is None:
        return None
    # no axes (no attribute before opset 13, no input from 13 on) or empty ones: squeeze every unit dim
    given = len(node.input) >= 2 and bool(node.input[1]) or _attr(node, "axes") is not None
    axes = _axes_operand(p, scope, node)
    if not given or (axes is not None and np.asarray(axes).size == 0):
        static = p.shapes.dims(scope, node.input[0])
        return 0 if static is not None and all(d is not None and d != 1 for d in static) else None
    return None


@NOOP_RULES.register("Pad")
def _pad(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if p.shapes.symbolic_dims(scope, node.input[0]) is None or len(node.input) < 2:
        return None
    pads = p.constant(scope, node.input[1])
    return 0 if pads is not None and pads.size and np.all(pads == 0) else None


@NOOP_RULES.register("Slice", since=10)
def _slice(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    if p.shapes.symbolic_dims(scope, node.input[0]) is None or len(node.input) < 3:
        return None
    static = p.shapes.dims(scope, node.input[0])
    starts = p.constant(scope, node.input[1])
    ends = p.constant(scope, node.input[2])
    axes = p.constant(scope, node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = p.constant(scope, node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if static is None or starts is None or ends is None:
        return None
    if (len(node.input) > 3 and node.input[3] and axes is None) or (
        len(node.input) > 4 and node.input[4] and steps is None
    ):
        return None
    return _whole_slice(static, starts, ends, axes, steps)


@NOOP_RULES.register("Slice", until=9)
def _slice_attributes(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    static = p.shapes.dims(scope, node.input[0])
    starts, ends, axes = _attr(node, "starts"), _attr(node, "ends"), _attr(node, "axes")
    if static is None or starts is None or ends is None:
        return None
    return _whole_slice(static, np.asarray(starts), np.asarray(ends), None if axes is None else list(axes), None)


def _whole_slice(static, starts, ends, axes, steps) -> int | None:
    """0 if slicing `static` dims this way keeps every element, else None."""
    rank = len(static)
    axes_list = [int(a) + rank if a < 0 else int(a) for a in (axes if axes is not None else range(len(starts)))]
    steps_list = [int(s) for s in (steps if steps is not None else [1] * len(starts))]
    for axis, s, e, st in zip(axes_list, starts.tolist(), ends.tolist(), steps_list, strict=False):
        if axis >= rank or st != 1 or static[axis] is None:
            return None
        d = static[axis]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if max(0, s) != 0 or min(e, d) != d:
            return None
    return 0


@NOOP_RULES.register("Add", "Sub", "Mul", "Div")
def _arithmetic(p: NoopPass, scope: Scope, node: NodeProto) -> int | None:
    """x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, where the constant neither broadcasts x up nor changes its type."""
    if len(node.input) != 2:
        return None
    op = node.op_type
    neutral = 0 if op in ("Add", "Sub") else 1
    shapes = p.shapes
    for keep_index, const_index in ((0, 1), (1, 0)):
        if const_index == 0 and op in ("Sub", "Div"):
            continue
        value = p.neutral(scope, node.input[const_index], neutral)
        if value is None:
            continue
        if shapes.symbolic_dims(scope, node.input[0]) is None:
            return None
        kept = node.input[keep_index]
        kept_dims = shapes.symbolic_dims(scope, kept)
        if kept_dims is None or value.ndim > len(kept_dims):
            continue
        kept_type = shapes.elem_type(scope, kept)
        if kept_type is None or kept_type != shapes.elem_type(scope, node.input[const_index]):
            continue
        if all(c == 1 or known_equal(c, d) for c, d in zip(reversed(value.shape), reversed(kept_dims), strict=False)):
            return keep_index
    return None


def _interface_names(scope: Scope) -> set[str]:
    return set(scope.inputs) | set(scope.outputs) | set(scope.initializers)


def eliminate_noops(
    model: Editor, shapes: ShapeInfo, order: NodeOrder | None = None, counts: dict[str, int] | None = None
) -> int:
    """Remove Identity, Dropout in inference, Cast/Reshape/Expand/Transpose/... that change nothing.

    `counts["from constants"]` (if given) counts the removed no-ops that passed a constant through: their
    readers now read a constant, which may let them fold."""
    p = NoopPass(model, shapes)
    rules: dict[str, NoopRule | None] = {}
    removed = 0
    for scope in model.index.scopes:
        aliases = Aliases()
        dead: list[NodeProto] = []
        renamed: set[str] = set()
        for node in nodes_in_order(scope, order):
            op = node.op_type
            if op not in rules:
                rules[op] = NOOP_RULES.lookup(op, p.opset)
            rule = rules[op]
            if rule is None or node.domain not in _STANDARD or not node.input or not node.input[0]:
                continue
            if not node.output or any(a.type in _SUBGRAPH_TYPES for a in node.attribute):
                continue
            if op not in _MULTI_OUTPUT and (len(node.output) != 1 or _extra_outputs_used(scope, node)):
                continue
            try:
                keep = rule(p, scope, node)
            except (ValueError, TypeError, IndexError):
                keep = None
            if keep is None:
                continue
            source = aliases.resolve(node.input[keep])
            if counts is not None and constant_behind(scope, source) is not None:
                counts["from constants"] = counts.get("from constants", 0) + 1
            out = node.output[0]
            if out in scope.outputs:
                producer = scope.producer.get(source)
                if producer is None or source in _interface_names(scope) or source in renamed:
                    continue
                scope.rename_definition(source, out)
                aliases.add(source, out)
                renamed.add(out)
            else:
                aliases.add(out, source)
            dead.append(node)
        if dead:
            model.replace_uses(aliases.map, scope=scope)
            model.remove_nodes(dead, scope=scope)
            removed += len(dead)
    return removed


__all__ = ["NOOP_RULES", "NoopPass", "eliminate_noops"]
